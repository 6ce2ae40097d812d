#!/usr/bin/env bash
# Benchmark of the users service, every row from one run with one load tool and one set
# of settings, so the ratios survive a noisy machine:
#
#   1. GET /api/v1/users/me (JWT check + SQLite read + JSON) against GET /healthz on the
#      same server: req/s, p50, p99, and users/me ÷ healthz      (target >= 0.5)
#   1b. GET /api/v1/users/me again with ENDED (10000) ended sessions listed, which every
#      token check consults (at the gateway and at the users service), against the first
#      run, when none was listed                                    (target >= 0.9)
#   2. POST /api/v1/auth/login (argon2id-bound on purpose) against the ceiling
#      cores ÷ one argon2id hash time, measured in this run         (target >= 0.9)
#   3. idle VmRSS of `veche up` after start-up and a little traffic  (target < 30 MiB)
#
# A missed target prints MISSED; the script fails only when something broke (a build, a
# server that does not start, a non-2xx response, a socket error).
#
# Settings (environment): DURATION (10s), CONNECTIONS (32), THREADS (2), TIMEOUT (10s),
# ACCOUNTS (8), ENDED (10000), HASH_RUNS (20), HASH_WARMUPS (2), TOOL (wrk; oha to force the fallback),
# NO_BUILD=1 to reuse the binaries already in CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
# Logins queue behind one argon2id per core: with 32 connections a login waits ~0.5-1 s,
# so wrk's default 2 s timeout is too close. The same timeout is used for every row.
TIMEOUT=${TIMEOUT:-10s}
ACCOUNTS=${ACCOUNTS:-8}
ENDED=${ENDED:-10000}
HASH_RUNS=${HASH_RUNS:-20}
HASH_WARMUPS=${HASH_WARMUPS:-2}
TOOL=${TOOL:-wrk}
PASSWORD="correct horse battery staple"

cores=$(nproc)
veche="$BENCH_TARGET_DIR/release/veche"
hash_time="$BENCH_TARGET_DIR/release/examples/hash_time"

# --- the load tool: wrk first, oha from crates.io if wrk cannot be installed ----------
bench_choose_tool

# --- build: release, in the benchmark's own target directory -----------------------------
build_veche=(cargo build --release -p veche --bin veche)
build_hash=(cargo build --release -p veche-users --example hash_time)
if [[ ${NO_BUILD:-} != 1 ]]; then
    bench_log "building (CARGO_TARGET_DIR=$BENCH_TARGET_DIR)"
    (cd "$root" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" "${build_veche[@]}" >&2) || bench_die "build of veche"
    (cd "$root" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" "${build_hash[@]}" >&2) || bench_die "build of hash_time"
fi
[[ -x $veche && -x $hash_time ]] || bench_die "binaries missing under $BENCH_TARGET_DIR (run without NO_BUILD)"

# --- the server, stopped on every exit ----------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/veche-bench.XXXXXX")
server_pid=""
cleanup() {
    local rc=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        # Graceful shutdown drains in-flight requests; do not wait for it forever.
        for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
    fi
    if [[ $rc != 0 && -s $work/server.log ]]; then
        echo "--- last lines of the server log ---" >&2
        tail -n 20 "$work/server.log" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(bench_free_port)
base="http://127.0.0.1:$port"
serve=("$veche" up --listen "127.0.0.1:$port" --data-dir "$work/data")

# Commands and machine first, so a pasted result says what produced it.
# Prints a command so it can be pasted back into a shell (quoting only what needs it).
fmt_cmd() {
    local a out=()
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
    done
    echo "${out[*]}"
}
echo "== Veche users benchmark"
echo "machine:  nproc=$cores  $(uname -m)  $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min load average before the run; other work skews results)"
echo "commit:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "build:    CARGO_TARGET_DIR=$BENCH_TARGET_DIR $(fmt_cmd "${build_veche[@]}")"
echo "          CARGO_TARGET_DIR=$BENCH_TARGET_DIR $(fmt_cmd "${build_hash[@]}")"
echo "server:   VECHE_LOG=warn VECHE_CLIENT_RPS=0 VECHE_USER_RPS=0 $(fmt_cmd "${serve[@]}")"

# --- one argon2id hash: median ms, measured while nothing else of ours runs -------------
hash_cmd=("$hash_time" "$HASH_RUNS" "$HASH_WARMUPS")
echo "hash:     $(fmt_cmd "${hash_cmd[@]}")  (median of $HASH_RUNS sequential hashes after $HASH_WARMUPS warm-ups;"
echo "          run before the server starts and again after the login load; the faster is the ceiling's)"
measure_hash() {
    local ms
    ms=$("${hash_cmd[@]}") || bench_die "hash_time"
    [[ $ms =~ ^[0-9]+(\.[0-9]+)?$ ]] || bench_die "hash_time printed '$ms', not a number"
    echo "$ms"
}
hash_ms_before=$(measure_hash)

# The gateway's rate limits would measure themselves, not the service: off.
VECHE_LOG=warn VECHE_CLIENT_RPS=0 VECHE_USER_RPS=0 "${serve[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
bench_wait_ready "$base/readyz" "$server_pid" 60
sleep 2
rss_start=$(bench_rss_mib "$server_pid")

# POSTs JSON, checks the status, prints the body.
post_json() {
    local path=$1 body=$2 want=$3 code
    code=$(curl -s -o "$work/resp" -w '%{http_code}' -H 'content-type: application/json' -d "$body" "$base$path") ||
        bench_die "POST $path: curl failed"
    [[ $code == "$want" ]] || { cat "$work/resp" >&2; echo >&2; bench_die "POST $path answered $code, not $want"; }
    cat "$work/resp"
}

# Accounts bench0..bench<N-1>, all with the correct password: the throttle only counts
# failed logins, so the login row is never slowed by it.
register() {
    post_json /api/v1/auth/register \
        "{\"email\":\"bench$1@example.org\",\"password\":\"$PASSWORD\",\"display_name\":\"Bench\"}" 201 >/dev/null
}
register 0
login=$(post_json /api/v1/auth/login "{\"email\":\"bench0@example.org\",\"password\":\"$PASSWORD\"}" 200)
token=$(sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p' <<<"$login")
[[ -n $token ]] || bench_die "no access_token in the login answer: $login"
auth="Authorization: Bearer $token"

# A little warm-up traffic, then idleness, then the idle RSS (before the load, which
# would leave argon2id's 19 MiB blocks and connection buffers in the allocator).
for _ in $(seq 1 20); do
    curl -sf -o /dev/null "$base/healthz" || bench_die "warm-up GET /healthz"
    curl -sf -o /dev/null -H "$auth" "$base/api/v1/users/me" || bench_die "warm-up GET /api/v1/users/me"
done
sleep 2
rss_idle=$(bench_rss_mib "$server_pid")
# The other accounts only after the idle measurement: each registration is one more
# argon2id hash, and the warm-up above is meant to be "a little traffic".
for i in $(seq 1 $((ACCOUNTS - 1))); do register "$i"; done

# --- the load ---------------------------------------------------------------------------
# The login body rotates over the accounts (wrk only: oha sends one body).
cat >"$work/login.lua" <<LUA
-- POST /api/v1/auth/login, round-robin over bench0..bench$((ACCOUNTS - 1)), right password.
local bodies = {}
for i = 0, $((ACCOUNTS - 1)) do
  bodies[#bodies + 1] = string.format('{"email":"bench%d@example.org","password":"$PASSWORD"}', i)
end
local threads = 0
function setup(thread) thread:set("offset", threads); threads = threads + 1 end
local next_body
function init(args) next_body = (offset or 0) % #bodies + 1 end
function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/api/v1/auth/login", { ["Content-Type"] = "application/json" }, body)
end
LUA

# Same threads, connections, duration and timeout for every row.
load_cmd() { # <name> <url> [extra args...]: sets the global array `cmd`
    local url=$2
    shift 2
    if [[ $TOOL == wrk ]]; then
        cmd=(wrk --latency -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout "$TIMEOUT" "$@" "$url")
    else
        cmd=(oha --no-tui "${oha_json[@]}" -z "$DURATION" -c "$CONNECTIONS" -t "$TIMEOUT" "$@" "$url")
    fi
}
run_load() { # <row name>: runs `cmd`, prints the parsed line, fails on errors
    local out parsed
    out=$("${cmd[@]}" 2>&1) || { echo "$out" >&2; bench_die "$1: ${cmd[0]} failed"; }
    if [[ $TOOL == wrk ]]; then parsed=$(bench_parse_wrk <<<"$out"); else parsed=$(bench_parse_oha <<<"$out"); fi
    read -r requests _ _ _ non2xx errors <<<"$parsed"
    [[ $requests -gt 0 ]] || bench_die "$1: no request completed"
    [[ $non2xx == 0 ]] || { echo "$out" >&2; bench_die "$1: $non2xx responses were not 2xx/3xx"; }
    [[ $errors == 0 ]] || { echo "$out" >&2; bench_die "$1: $errors socket errors (connect/read/write/timeout)"; }
    echo "$parsed"
}

# healthz gets the same Authorization header as users/me, so the baseline parses the
# same request and the difference is the handler's work (token check, store, JSON).
load_cmd healthz "$base/healthz" -H "$auth"
healthz_cmd=("${cmd[@]}")
load_cmd me "$base/api/v1/users/me" -H "$auth"
me_cmd=("${cmd[@]}")
if [[ $TOOL == wrk ]]; then
    load_cmd login "$base/api/v1/auth/login" -s "$work/login.lua"
else
    load_cmd login "$base/api/v1/auth/login" -m POST -T application/json \
        -d "{\"email\":\"bench0@example.org\",\"password\":\"$PASSWORD\"}"
fi
login_cmd=("${cmd[@]}")
# The token in the printed commands is elided: it is long and expires in minutes anyway.
show() { fmt_cmd "$@" | sed "s/$token/<access token>/g; s#$work#\$WORK#g"; }
echo "load:     $(show "${healthz_cmd[@]}")"
echo "          $(show "${me_cmd[@]}")"
echo "          $(show "${login_cmd[@]}")"
if [[ $TOOL == wrk ]]; then
    echo "          (\$WORK/login.lua rotates over $ACCOUNTS accounts bench0..bench$((ACCOUNTS - 1))@example.org)"
fi

bench_log "GET /healthz for $DURATION"
cmd=("${healthz_cmd[@]}")
hz=$(run_load "GET /healthz") # an assignment, so a failure stops the script
read -r _ hz_rps hz_p50 hz_p99 _ <<<"$hz"
sleep 1
bench_log "GET /api/v1/users/me for $DURATION"
cmd=("${me_cmd[@]}")
me=$(run_load "GET /api/v1/users/me")
read -r _ me_rps me_p50 me_p99 _ <<<"$me"
# Sessions ended within the access-token lifetime, written where the users service keeps
# them (as its own endings are); it reads them within a second and every check consults
# them. One of them is a real session, whose token must then be refused: proof that the
# list was read.
bench_log "listing $ENDED ended sessions"
victim=$(post_json /api/v1/auth/login "{\"email\":\"bench0@example.org\",\"password\":\"$PASSWORD\"}" 200)
victim=$(sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p' <<<"$victim")
victim_sid=$(python3 -c 'import base64, json, sys; p = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["sid"])' "$victim") ||
    bench_die "no sid in the access token"
sqlite3 "$work/data/users.db" ".timeout 5000" \
    "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < $ENDED)
     INSERT INTO ended_sessions (session_id, ended_at) SELECT lower(hex(randomblob(16))), unixepoch() FROM n;
     INSERT INTO ended_sessions (session_id, ended_at) VALUES ('$victim_sid', unixepoch());" >/dev/null ||
    bench_die "could not list ended sessions"
sleep 3
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $victim" "$base/api/v1/users/me")
[[ $code == 401 ]] || bench_die "a listed session's token was answered $code, not 401: the list was not read"
bench_log "GET /api/v1/users/me with $ENDED ended sessions listed for $DURATION"
cmd=("${me_cmd[@]}")
me_listed=$(run_load "GET /api/v1/users/me, ended sessions listed")
read -r _ ml_rps ml_p50 ml_p99 _ <<<"$me_listed"
sleep 1
bench_log "POST /api/v1/auth/login for $DURATION"
cmd=("${login_cmd[@]}")
li=$(run_load "POST /api/v1/auth/login")
read -r _ li_rps li_p50 li_p99 _ <<<"$li"
sleep 2
rss_after=$(bench_rss_mib "$server_pid")
# A second hash measurement: a burst of other work on the machine slows one of the two,
# and a slowed hash would flatter the login ratio. The faster one is the ceiling's.
hash_ms_after=$(measure_hash)
hash_ms=$(awk -v a="$hash_ms_before" -v b="$hash_ms_after" 'BEGIN { print (a + 0 < b + 0) ? a : b }')

# --- the table ----------------------------------------------------------------------------
me_ratio=$(bench_ratio "$me_rps" "$hz_rps")
ml_ratio=$(bench_ratio "$ml_rps" "$me_rps")
ceiling=$(awk -v c="$cores" -v ms="$hash_ms" 'BEGIN { printf "%.1f", c * 1000 / ms }')
li_ratio=$(bench_ratio "$li_rps" "$ceiling")
echo
printf '%-26s %10s %10s %10s\n' row "req/s" p50 p99
printf '%-26s %10.1f %8.2fms %8.2fms\n' "GET /healthz (baseline)" "$hz_rps" "$hz_p50" "$hz_p99"
printf '%-26s %10.1f %8.2fms %8.2fms   ratio %s (target >= 0.5) %s\n' "GET /api/v1/users/me" \
    "$me_rps" "$me_p50" "$me_p99" "$me_ratio" "$(bench_verdict "$me_ratio" '>=' 0.5)"
printf '%-26s %10.1f %8.2fms %8.2fms   ratio to the row above %s (target >= 0.9) %s\n' \
    "  with $ENDED ended listed" "$ml_rps" "$ml_p50" "$ml_p99" "$ml_ratio" "$(bench_verdict "$ml_ratio" '>=' 0.9)"
printf '%-26s %10.1f %8.2fms %8.2fms\n' "POST /api/v1/auth/login" "$li_rps" "$li_p50" "$li_p99"
printf '%-26s %10s   ceiling %s cores / %s ms per hash = %s/s   ratio %s (target >= 0.9) %s\n' \
    "  logins/s vs ceiling" "$(printf '%.1f/s' "$li_rps")" "$cores" "$hash_ms" "$ceiling" "$li_ratio" \
    "$(bench_verdict "$li_ratio" '>=' 0.9)"
printf '%-26s %10s   (hash ms before / after the load: %s / %s)\n' "" "" "$hash_ms_before" "$hash_ms_after"
printf '%-26s %10s   (target < 30 MiB) %s  [after 1 register, 1 login, 40 GETs, 2 s idle]\n' \
    "idle RSS of veche up" "$rss_idle MiB" "$(bench_verdict "$rss_idle" '<' 30)"
printf '%-26s %10s   (info: 2 s after start-up, before any request)\n' "RSS at start-up" "$rss_start MiB"
printf '%-26s %10s   (info: after the load and 2 s idle; no target)\n' "RSS after the load" "$rss_after MiB"
