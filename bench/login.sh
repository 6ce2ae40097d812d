#!/usr/bin/env bash
# Login latency while one abusive client floods registrations, every row from one run:
#
#   1. POST /api/v1/auth/login from one client, alone: req/s, p50, p99
#   2. the same logins while another client sends registrations (each an argon2id hash
#      unless refused) on FLOOD_CONNECTIONS connections: req/s, p50, p99, and the ratios
#      of p50 and p99 to row 1                                        (target p50 <= 1.5)
#
# Clients are told apart by X-Forwarded-For (VECHE_TRUST_FORWARDED_FOR=true). The
# gateway's own rate limits are off, so the users service's defences are what is
# measured. VECHE_PASSWORD_HASH_RPS / _BURST, when set, are passed to the server (e.g.
# VECHE_PASSWORD_HASH_RPS=0 measures the flood without the per-client allowance).
#
# A missed target prints MISSED; the script fails only when something broke (a build, a
# server that does not start, a login that is not 2xx, a socket error).
#
# Settings (environment): DURATION (10s), LOGIN_CONNECTIONS (2), FLOOD_CONNECTIONS (16),
# FLOOD_DELAY_MS (10: each flood connection's pause between requests), ACCOUNTS (8),
# TIMEOUT (10s), NO_BUILD=1 to reuse the binary already in CARGO_TARGET_DIR, VECHE_BIN=path
# to run another binary (no build; e.g. a debug build, whose dependencies, argon2 among
# them, are optimised: the ratios hold, the absolute figures are a little slower).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

DURATION=${DURATION:-10s}
LOGIN_CONNECTIONS=${LOGIN_CONNECTIONS:-2}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-16}
FLOOD_DELAY_MS=${FLOOD_DELAY_MS:-10}
ACCOUNTS=${ACCOUNTS:-8}
TIMEOUT=${TIMEOUT:-10s}
PASSWORD="correct horse battery staple"
LOGIN_CLIENT=198.51.100.1
ABUSER=203.0.113.66

veche=${VECHE_BIN:-$BENCH_TARGET_DIR/release/veche}
bench_ensure_wrk || bench_die "wrk is needed (apt-get install -y wrk)"

build=(cargo build --release -p veche --bin veche)
if [[ ${NO_BUILD:-} != 1 && -z ${VECHE_BIN:-} ]]; then
    bench_log "building (CARGO_TARGET_DIR=$BENCH_TARGET_DIR)"
    (cd "$root" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" "${build[@]}" >&2) || bench_die "build of veche"
fi
[[ -x $veche ]] || bench_die "$veche missing (run without NO_BUILD)"

# --- the server, stopped on every exit ----------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/veche-bench.XXXXXX")
server_pid=""
flood_pid=""
cleanup() {
    local rc=$?
    [[ -n $flood_pid ]] && kill "$flood_pid" 2>/dev/null || true
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
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
server_env=(VECHE_LOG=warn VECHE_CLIENT_RPS=0 VECHE_USER_RPS=0 VECHE_TRUST_FORWARDED_FOR=true)
[[ -n ${VECHE_PASSWORD_HASH_RPS:-} ]] && server_env+=("VECHE_PASSWORD_HASH_RPS=$VECHE_PASSWORD_HASH_RPS")
[[ -n ${VECHE_PASSWORD_HASH_BURST:-} ]] && server_env+=("VECHE_PASSWORD_HASH_BURST=$VECHE_PASSWORD_HASH_BURST")
serve=("$veche" up --listen "127.0.0.1:$port" --data-dir "$work/data")

echo "== Veche login latency under a registration flood"
echo "machine:  nproc=$(nproc)  $(uname -m)  $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min load average before the run; other work skews results)"
echo "commit:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
if [[ -n ${VECHE_BIN:-} ]]; then echo "binary:   $veche (VECHE_BIN)"; else echo "build:    CARGO_TARGET_DIR=$BENCH_TARGET_DIR ${build[*]}"; fi
echo "server:   ${server_env[*]} ${serve[*]}"

env "${server_env[@]}" "${serve[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
bench_wait_ready "$base/readyz" "$server_pid" 60

# Accounts bench0..bench<N-1>, each registered from its own address (so no allowance is
# spent on them), all logged in with the right password below.
for i in $(seq 0 $((ACCOUNTS - 1))); do
    code=$(curl -s -o "$work/resp" -w '%{http_code}' -H 'content-type: application/json' \
        -H "x-forwarded-for: 198.51.100.$((i + 10))" \
        -d "{\"email\":\"bench$i@example.org\",\"password\":\"$PASSWORD\",\"display_name\":\"Bench\"}" \
        "$base/api/v1/auth/register") || bench_die "register bench$i: curl failed"
    [[ $code == 201 ]] || { cat "$work/resp" >&2; bench_die "register bench$i answered $code"; }
done

cat >"$work/login.lua" <<LUA
-- POST /api/v1/auth/login from $LOGIN_CLIENT, round-robin over bench0..bench$((ACCOUNTS - 1)).
local n = 0
function request()
  local body = string.format('{"email":"bench%d@example.org","password":"$PASSWORD"}', n % $ACCOUNTS)
  n = n + 1
  return wrk.format("POST", "/api/v1/auth/login",
    { ["Content-Type"] = "application/json", ["X-Forwarded-For"] = "$LOGIN_CLIENT" }, body)
end
LUA
cat >"$work/flood.lua" <<LUA
-- POST /api/v1/auth/register from $ABUSER, a new email each time, ${FLOOD_DELAY_MS} ms apart per connection.
local n = 0
function request()
  n = n + 1
  local body = string.format('{"email":"flood%d@example.org","password":"$PASSWORD","display_name":"Flood"}', n)
  return wrk.format("POST", "/api/v1/auth/register",
    { ["Content-Type"] = "application/json", ["X-Forwarded-For"] = "$ABUSER" }, body)
end
function delay() return $FLOOD_DELAY_MS end
LUA

login_cmd=(wrk --latency -t1 -c"$LOGIN_CONNECTIONS" -d"$DURATION" --timeout "$TIMEOUT" -s "$work/login.lua" "$base/api/v1/auth/login")
# The flood starts a second before the logins and ends a second after them.
flood_secs=$((${DURATION%s} + 2))
flood_cmd=(wrk --latency -t1 -c"$FLOOD_CONNECTIONS" -d"${flood_secs}s" --timeout "$TIMEOUT" -s "$work/flood.lua" "$base/api/v1/auth/register")
echo "load:     ${login_cmd[*]/$work/\$WORK}"
echo "flood:    ${flood_cmd[*]/$work/\$WORK}"

run_logins() { # <row name>: prints the parsed line; fails on non-2xx or socket errors
    local out parsed requests non2xx errors
    out=$("${login_cmd[@]}" 2>&1) || { echo "$out" >&2; bench_die "$1: wrk failed"; }
    parsed=$(bench_parse_wrk <<<"$out")
    read -r requests _ _ _ non2xx errors <<<"$parsed"
    [[ $requests -gt 0 ]] || bench_die "$1: no login completed"
    [[ $non2xx == 0 ]] || { echo "$out" >&2; bench_die "$1: $non2xx logins were not 2xx"; }
    [[ $errors == 0 ]] || { echo "$out" >&2; bench_die "$1: $errors socket errors"; }
    echo "$parsed"
}

bench_log "logins alone for $DURATION"
quiet=$(run_logins "logins alone")
read -r _ q_rps q_p50 q_p99 _ <<<"$quiet"
sleep 1

bench_log "logins during a registration flood for $DURATION"
"${flood_cmd[@]}" >"$work/flood.out" 2>&1 &
flood_pid=$!
sleep 1
flooded=$(run_logins "logins during the flood")
read -r _ f_rps f_p50 f_p99 _ <<<"$flooded"
wait "$flood_pid" || { cat "$work/flood.out" >&2; bench_die "the flood's wrk failed"; }
flood_pid=""
read -r fl_requests fl_rps _ _ fl_refused fl_errors <<<"$(bench_parse_wrk <"$work/flood.out")"
fl_created=$((fl_requests - fl_refused))

p50_ratio=$(bench_ratio "$f_p50" "$q_p50")
p99_ratio=$(bench_ratio "$f_p99" "$q_p99")
echo
printf '%-34s %10s %10s %10s\n' row "req/s" p50 p99
printf '%-34s %10.1f %8.2fms %8.2fms\n' "login, alone" "$q_rps" "$q_p50" "$q_p99"
printf '%-34s %10.1f %8.2fms %8.2fms\n' "login, during the flood" "$f_rps" "$f_p50" "$f_p99"
printf '%-34s %10s %10s %10s   (target p50 <= 1.5) %s\n' "  flood ÷ alone" "" "$p50_ratio" "$p99_ratio" \
    "$(bench_verdict 1.5 '>=' "$p50_ratio")"
printf '%-34s %10.1f   %s answered (%s created, %s refused), %s socket errors\n' \
    "register flood ($FLOOD_CONNECTIONS conns)" "$fl_rps" "$fl_requests" "$fl_created" "$fl_refused" "$fl_errors"
