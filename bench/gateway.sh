#!/usr/bin/env bash
# Benchmark of the API gateway: one authenticated read, GET /api/v1/users/me with a Bearer
# token, over five paths to the same `veche serve users`, every row from one run with one
# load tool and one set of settings:
#
#   (a) direct    straight to the users service (the baseline)
#   (b) gateway   through `veche serve gateway`, the route requiring a token (checks on)
#   (c) nginx     through Debian's nginx: proxy_pass to an upstream with keepalive 64,
#                 forwarding what the gateway forwards on every request: the client's
#                 address, scheme and host (X-Forwarded-For, -Proto, -Host) and a request
#                 id (X-Request-Id: the client's, or one nginx makes)
#   (d) open      through a second gateway whose /api/v1/users route has "auth": "none"
#   (e) bare      the same nginx with proxy_pass alone, forwarding neither (for reference:
#                 it does less for each request than the gateway must)
#
# nginx checks no token and counts no rate, so even row (c) does less than (b) does.
#
# Each path gets two passes: throughput (CONNECTIONS connections; req/s, p50, p99) and
# latency (LATENCY_CONNECTIONS connections, 1 by default, so nothing queues and p50 is
# the cost of one request). Targets, printed as verdicts (MISSED when missed):
#
#   gateway req/s >= nginx req/s                           (throughput pass)
#   gateway p50 - direct p50 < 50 us                       (latency pass)
#   gateway req/s >= 0.85 x open req/s (checks on vs off)  (throughput pass)
#
# The users service verifies the token itself on every path, so (b) - (d) is the
# gateway's own token check (with its cache of verified tokens warm).
#
# The script fails only when something broke (a build, a server that does not start, a
# non-2xx answer, a socket error), or when the veche binary has no `serve gateway`.
#
# Settings (environment): DURATION (10s), CONNECTIONS (32), LATENCY_CONNECTIONS (1),
# THREADS (2), TIMEOUT (10s), WARMUP (2s), ROUNDS (1; more interleave the rows and
# print medians), ROWS ("direct gateway nginx open bare"; a subset
# measures only those, e.g. ROWS="direct nginx"), TOOL (wrk; oha to force the fallback),
# NO_BUILD=1 to reuse the binary already in CARGO_TARGET_DIR.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
LATENCY_CONNECTIONS=${LATENCY_CONNECTIONS:-1}
THREADS=${THREADS:-2}
TIMEOUT=${TIMEOUT:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || bench_die "ROUNDS must be a positive whole number, not '$ROUNDS'"
ROWS=${ROWS:-direct gateway nginx open bare}
TOOL=${TOOL:-wrk}
PASSWORD="correct horse battery staple"
# Rate limits of the gateways, far above what loopback can reach: the bench measures
# proxying and token checks, not throttling.
LIMIT=1000000

cores=$(nproc)
veche="$BENCH_TARGET_DIR/release/veche"

declare -A label=(
    [direct]="(a) direct to users"
    [gateway]="(b) gateway"
    [nginx]="(c) nginx"
    [bare]="(e) nginx, bare"
    [open]="(d) gateway, checks off"
)
rows=()
for r in $ROWS; do
    [[ -n ${label[$r]:-} ]] || bench_die "ROWS: unknown row '$r' (rows: direct gateway nginx open bare)"
    rows+=("$r")
done
((${#rows[@]} > 0)) || bench_die "ROWS is empty"
has_row() { [[ " ${rows[*]} " == *" $1 "* ]]; }
needs_gateway() { has_row gateway || has_row open; }
needs_nginx() { has_row nginx || has_row bare; }

# --- the load tool: wrk first, oha from crates.io if wrk cannot be installed ----------
bench_choose_tool

# --- nginx: Debian's package, installed like wrk -------------------------------------------
# Prints the path of nginx (often /usr/sbin/nginx, not on a user's PATH).
ensure_nginx() {
    local found sudo=()
    found=$(command -v nginx || true)
    [[ -z $found && -x /usr/sbin/nginx ]] && found=/usr/sbin/nginx
    if [[ -z $found ]]; then
        if [[ $(id -u) != 0 ]]; then
            command -v sudo >/dev/null || bench_die "nginx is missing and there is no sudo to install it (apt-get install nginx)"
            sudo=(sudo -n)
        fi
        bench_log "installing nginx from Debian"
        "${sudo[@]}" apt-get install -y -qq nginx >&2 ||
            { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -qq nginx >&2; } ||
            bench_die "could not install nginx (apt-get install nginx)"
        found=$(command -v nginx || echo /usr/sbin/nginx)
        [[ -x $found ]] || bench_die "nginx installed, but not found"
        # Debian's package may start the system's nginx on port 80; ours is a separate
        # process with its own configuration, so that one is left alone.
    fi
    echo "$found"
}
nginx=""
needs_nginx && nginx=$(ensure_nginx)

# --- build: release, in the benchmark's own target directory -----------------------------
build_veche=(cargo build --release -p veche --bin veche)
if [[ ${NO_BUILD:-} != 1 ]]; then
    bench_log "building (CARGO_TARGET_DIR=$BENCH_TARGET_DIR)"
    (cd "$root" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" "${build_veche[@]}" >&2) || bench_die "build of veche"
fi
[[ -x $veche ]] || bench_die "$veche is missing (run without NO_BUILD)"

if needs_gateway && ! gateway_help=$("$veche" serve gateway --help 2>&1); then
    {
        echo "$gateway_help"
        echo
        echo "bench: $veche has no \`veche serve gateway\` (the gateway of issue 4 is not in this build yet),"
        echo "bench: so rows (b) and (d) cannot run. ROWS=\"direct nginx bare\" measures the others."
    } >&2
    bench_die "no gateway to measure"
fi

# --- the servers, stopped on every exit ------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/veche-bench-gateway.XXXXXX")
pids=()
logs=()
stop() { # <pid>: TERM, a graceful drain of up to 5 s, then KILL
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$? pid log
    for pid in "${pids[@]}"; do stop "$pid"; done
    if [[ $rc != 0 ]]; then
        for log in "${logs[@]}"; do
            [[ -s $log ]] || continue
            echo "--- last lines of $(basename "$log") ---" >&2
            tail -n 20 "$log" >&2
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Prints a command so it can be pasted back into a shell (quoting only what needs it).
fmt_cmd() {
    local a out=()
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
    done
    echo "${out[*]}"
}
# The work directory's path in printed commands and files.
show() { sed "s#$work#\$WORK#g"; }

# free_port <variable>: a free port not already given to another of our servers (none
# of them listens yet, so bench_free_port alone could hand out one twice).
taken=" "
free_port() {
    local found # not `port`: that would hide a caller's variable of that name
    for _ in $(seq 1 20); do
        found=$(bench_free_port)
        [[ $taken != *" $found "* ]] && break
    done
    taken+="$found "
    printf -v "$1" '%s' "$found"
}
free_port users_port
users_url="http://127.0.0.1:$users_port"
# Tokens live a day, so a long DURATION cannot outlast the one the load sends.
users_env=(VECHE_LOG=warn "VECHE_PUBLIC_URL=$users_url" VECHE_ACCESS_TOKEN_TTL=86400)
users_cmd=("$veche" serve users --listen "127.0.0.1:$users_port" --data-dir "$work/users-data")

# A gateway: <name> <auth of /api/v1/users>; sets <name>_port, <name>_url, <name>_cmd.
gateway_env=(VECHE_LOG=warn "VECHE_USERS_URL=$users_url" "VECHE_PUBLIC_URL=$users_url"
    "VECHE_CLIENT_RPS=$LIMIT" "VECHE_CLIENT_BURST=$LIMIT" "VECHE_USER_RPS=$LIMIT" "VECHE_USER_BURST=$LIMIT")
setup_gateway() {
    local name=$1 auth=$2 port
    free_port port
    cat >"$work/routes-$name.json" <<JSON
{"upstreams": {"users": ["$users_url"]},
 "routes": [{"prefix": "/api/v1/users", "upstream": "users", "auth": "$auth"},
            {"prefix": "/.well-known", "upstream": "users", "auth": "none"}]}
JSON
    printf -v "${name}_port" '%s' "$port"
    printf -v "${name}_url" '%s' "http://127.0.0.1:$port"
    eval "${name}_cmd=(\"\$veche\" serve gateway --listen 127.0.0.1:$port --data-dir \"\$work/$name-data\")"
}
has_row gateway && setup_gateway gateway required
has_row open && setup_gateway open none

# nginx as the current user, everything under $work: config, pid, logs, temp paths.
# It stays in the foreground (`daemon off`), in this script's session like every other
# process here: Linux's autogroup scheduling shares the CPU between sessions first, and a
# daemon (a session of its own) would not compete with the load tool and the users
# service on the terms the gateway does. By hand, measured that way, the two proxies
# looked even when in this script nginx is 10-15% ahead.
if needs_nginx; then
    free_port nginx_port
    nginx_url="http://127.0.0.1:$nginx_port"
    free_port bare_port
    bare_url="http://127.0.0.1:$bare_port"
    mkdir -p "$work/nginx"
    # As root, nginx's workers would switch to `nobody`; keep them as the current user.
    nginx_user=""
    [[ $(id -u) == 0 ]] && nginx_user="user $(id -un) $(id -gn);"
    cat >"$work/nginx/nginx.conf" <<NGINX
# Generated by bench/gateway.sh: the peer, proxying to the users service.
$nginx_user
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $work/nginx/client_body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    # Client connections stay open for the whole run, as they do with the gateway.
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream users {
        server 127.0.0.1:$users_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
    # The request id as the gateway forwards it: the client's, or a new one.
    map \$http_x_request_id \$forwarded_request_id {
        ""      \$request_id;
        default \$http_x_request_id;
    }
    # (c): what the gateway forwards on every request.
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://users;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Request-Id \$forwarded_request_id;
        }
    }
    # (e): proxy_pass alone.
    server {
        listen 127.0.0.1:$bare_port;
        location / {
            proxy_pass http://users;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
NGINX
    nginx_cmd=("$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" -g 'daemon off;')
    "$nginx" -t -q -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" >&2 ||
        bench_die "nginx rejected the generated configuration ($work/nginx/nginx.conf)"
fi

# Commands and machine first, so a pasted result says what produced it.
echo "== Veche gateway benchmark"
echo "machine:  nproc=$cores  $(uname -m)  $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min load average before the run; other work skews results)"
echo "commit:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
echo "build:    CARGO_TARGET_DIR=$BENCH_TARGET_DIR $(fmt_cmd "${build_veche[@]}")"
echo "users:    $(fmt_cmd "${users_env[@]}" "${users_cmd[@]}" | show)"
if has_row gateway; then
    echo "gateway:  $(fmt_cmd "${gateway_env[@]}" "VECHE_GATEWAY_ROUTES=$work/routes-gateway.json" "${gateway_cmd[@]}" | show)"
    echo "          \$WORK/routes-gateway.json: $(tr -s ' \n' ' ' <"$work/routes-gateway.json" | show)"
fi
if has_row open; then
    echo "open:     the same gateway command on port $open_port with VECHE_GATEWAY_ROUTES=\$WORK/routes-open.json,"
    echo "          whose /api/v1/users route has \"auth\": \"none\""
fi
if needs_nginx; then
    echo "nginx:    $(fmt_cmd "${nginx_cmd[@]}" | show)  ($("$nginx" -v 2>&1 | sed 's/^nginx version: //'))"
    echo "          \$WORK/nginx/nginx.conf:"
    grep -v '^#' "$work/nginx/nginx.conf" | grep -v '^ *$' | show | sed 's/^/            /'
fi

# start <name> <url to wait for> <env...> -- <command...>: in the background, logged.
start() {
    local name=$1 ready=$2 envs=() pid
    shift 2
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    logs+=("$work/$name.log")
    env "${envs[@]}" "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    bench_wait_ready "$ready" "$pid" 60
}

start users "$users_url/readyz" "${users_env[@]}" -- "${users_cmd[@]}"

# POSTs JSON to the users service, checks the status, prints the body.
post_json() {
    local path=$1 body=$2 want=$3 code
    code=$(curl -s -o "$work/resp" -w '%{http_code}' -H 'content-type: application/json' -d "$body" "$users_url$path") ||
        bench_die "POST $path: curl failed"
    [[ $code == "$want" ]] || { cat "$work/resp" >&2; echo >&2; bench_die "POST $path answered $code, not $want"; }
    cat "$work/resp"
}
post_json /api/v1/auth/register \
    "{\"email\":\"bench@example.org\",\"password\":\"$PASSWORD\",\"display_name\":\"Bench\"}" 201 >/dev/null
login=$(post_json /api/v1/auth/login "{\"email\":\"bench@example.org\",\"password\":\"$PASSWORD\"}" 200)
token=$(sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p' <<<"$login")
[[ -n $token ]] || bench_die "no access_token in the login answer: $login"
auth="Authorization: Bearer $token"
direct_url=$users_url

has_row gateway && start gateway "$gateway_url/readyz" "${gateway_env[@]}" \
    "VECHE_GATEWAY_ROUTES=$work/routes-gateway.json" -- "${gateway_cmd[@]}"
has_row open && start open "$open_url/readyz" "${gateway_env[@]}" \
    "VECHE_GATEWAY_ROUTES=$work/routes-open.json" -- "${open_cmd[@]}"
needs_nginx && start nginx "$nginx_url/readyz" -- "${nginx_cmd[@]}"

# --- every path answers the read, with the same body ---------------------------------------
me_path=/api/v1/users/me
get() { # <url> [curl args...]: prints "<status>" and leaves the body in $work/resp
    local url=$1
    shift
    curl -s -o "$work/resp" -w '%{http_code}' "$@" "$url" || bench_die "GET $url: curl failed"
}
[[ $(get "$direct_url$me_path" -H "$auth") == 200 ]] || bench_die "direct GET $me_path: $(cat "$work/resp")"
cp "$work/resp" "$work/me.json"
for r in "${rows[@]}"; do
    url_var="${r}_url"
    url=${!url_var}
    code=$(get "$url$me_path" -H "$auth")
    [[ $code == 200 ]] || { cat "$work/resp" >&2; echo >&2; bench_die "${label[$r]}: GET $me_path answered $code, not 200"; }
    cmp -s "$work/resp" "$work/me.json" || {
        echo "direct:  $(cat "$work/me.json")" >&2
        echo "${label[$r]}: $(cat "$work/resp")" >&2
        bench_die "${label[$r]}: GET $me_path answered another body than the users service itself"
    }
done
# Checks on means the gateway itself refuses a request without a token.
if has_row gateway; then
    code=$(get "$gateway_url$me_path")
    [[ $code == 401 ]] || bench_die "(b) gateway: GET $me_path without a token answered $code, not 401"
fi

# --- the load ---------------------------------------------------------------------------
# Same tool, threads, duration and timeout for every row; only the URL differs.
load_cmd() { # <connections> <duration> <url>: sets the global array `cmd`
    local c=$1 d=$2 url=$3 t=$THREADS
    ((t > c)) && t=$c # wrk needs a connection per thread
    if [[ $TOOL == wrk ]]; then
        cmd=(wrk --latency -t"$t" -c"$c" -d"$d" --timeout "$TIMEOUT" -H "$auth" "$url")
    else
        cmd=(oha --no-tui "${oha_json[@]}" -z "$d" -c "$c" -t "$TIMEOUT" -H "$auth" "$url")
    fi
}
run_load() { # <row name> [file]: runs `cmd`, keeps its output in file, prints the parsed line
    local out parsed requests non2xx errors
    out=$("${cmd[@]}" 2>&1) || { echo "$out" >&2; bench_die "$1: ${cmd[0]} failed"; }
    [[ -n ${2:-} ]] && printf '%s\n' "$out" >"$2"
    if [[ $TOOL == wrk ]]; then parsed=$(bench_parse_wrk <<<"$out"); else parsed=$(bench_parse_oha <<<"$out"); fi
    read -r requests _ _ _ non2xx errors <<<"$parsed"
    [[ $requests -gt 0 ]] || bench_die "$1: no request completed"
    [[ $non2xx == 0 ]] || { echo "$out" >&2; bench_die "$1: $non2xx responses were not 2xx/3xx"; }
    [[ $errors == 0 ]] || { echo "$out" >&2; bench_die "$1: $errors socket errors (connect/read/write/timeout)"; }
    echo "$parsed"
}
# A percentile (50 or 99) of a kept output in microseconds with one decimal:
# bench_parse_wrk rounds to 10 us, too coarse for a 50 us target at latencies near 20 us.
pct_us() { # <file> <50|99>
    if [[ $TOOL == wrk ]]; then
        awk -v p="$2%" '$1 == p {
            n = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
            if (u == "ms") n *= 1000; else if (u == "s") n *= 1000000; else if (u == "m") n *= 60000000
            printf "%.1f", n; exit
        }' "$1"
    else
        jq -r --arg p "p$2" '.latencyPercentiles[$p] * 10000000 | round / 10' "$1"
    fi
}

load_cmd "$CONNECTIONS" "$DURATION" "\$URL$me_path"
echo "load:     throughput: $(fmt_cmd "${cmd[@]}" | sed "s/$token/<access token>/g")"
load_cmd "$LATENCY_CONNECTIONS" "$DURATION" "\$URL$me_path"
echo "          latency:    $(fmt_cmd "${cmd[@]}" | sed "s/$token/<access token>/g")"
echo "          \$URL per row: $(for r in "${rows[@]}"; do u="${r}_url"; printf '%s=%s ' "$r" "${!u}"; done)"
echo "          each row first gets $WARMUP of the throughput load, not counted (pools, JWKS, token cache);"
echo "          then $ROUNDS round(s) of every row's throughput pass, then every row's latency pass"

# Rounds interleave the rows, so a burst of other work on the machine hits every row
# alike; each figure in the table is the median over the rounds.
declare -A runs # "<row> <figure>" -> the figure of every round, space-separated
keep() { runs["$1 $2"]+="$3 "; }
median() { # <row> <figure>
    tr ' ' '\n' <<<"${runs["$1 $2"]}" | grep . | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
for r in "${rows[@]}"; do
    url_var="${r}_url"
    bench_log "${label[$r]}: warm-up for $WARMUP"
    load_cmd "$CONNECTIONS" "$WARMUP" "${!url_var}$me_path"
    run_load "${label[$r]} (warm-up)" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
    for r in "${rows[@]}"; do
        url_var="${r}_url"
        bench_log "round $round/$ROUNDS, ${label[$r]}: throughput for $DURATION at $CONNECTIONS connections"
        load_cmd "$CONNECTIONS" "$DURATION" "${!url_var}$me_path"
        line=$(run_load "${label[$r]}") # an assignment, so a failure stops the script
        read -r _ t_rps t_p50 t_p99 _ <<<"$line"
        keep "$r" rps "$t_rps"
        keep "$r" p50 "$t_p50"
        keep "$r" p99 "$t_p99"
        bench_log "    $t_rps req/s, p50 $t_p50, p99 $t_p99"
        sleep 1
    done
    for r in "${rows[@]}"; do
        url_var="${r}_url"
        bench_log "round $round/$ROUNDS, ${label[$r]}: latency for $DURATION at $LATENCY_CONNECTIONS connection(s)"
        load_cmd "$LATENCY_CONNECTIONS" "$DURATION" "${!url_var}$me_path"
        line=$(run_load "${label[$r]} (latency)" "$work/latency.out")
        read -r _ t_rps _ <<<"$line"
        keep "$r" lat_rps "$t_rps"
        keep "$r" lat_p50_us "$(pct_us "$work/latency.out" 50)"
        keep "$r" lat_p99_us "$(pct_us "$work/latency.out" 99)"
        sleep 1
    done
done
declare -A rps p50 p99 lat_rps lat_p50_us lat_p99_us
for r in "${rows[@]}"; do
    rps[$r]=$(median "$r" rps)
    p50[$r]=$(median "$r" p50)
    p99[$r]=$(median "$r" p99)
    lat_rps[$r]=$(median "$r" lat_rps)
    lat_p50_us[$r]=$(median "$r" lat_p50_us)
    lat_p99_us[$r]=$(median "$r" lat_p99_us)
done

# --- the table ----------------------------------------------------------------------------
echo
((ROUNDS > 1)) && echo "(medians of $ROUNDS rounds)"
printf '%-26s | %-36s | %s\n' "" "throughput, $CONNECTIONS connections" "latency, $LATENCY_CONNECTIONS connection(s)"
printf '%-26s | %10s %12s %12s | %10s %12s %12s\n' row "req/s" p50 p99 "req/s" p50 p99
for r in "${rows[@]}"; do
    printf '%-26s | %10.1f %10.2fms %10.2fms | %10.1f %10.1fus %10.1fus\n' "${label[$r]}" \
        "${rps[$r]}" "${p50[$r]}" "${p99[$r]}" "${lat_rps[$r]}" "${lat_p50_us[$r]}" "${lat_p99_us[$r]}"
done
echo
if has_row gateway && has_row nginx; then
    ratio=$(bench_ratio "${rps[gateway]}" "${rps[nginx]}")
    printf '%-44s %8s   (target >= 1.00) %s\n' "gateway req/s / nginx req/s" "$ratio" "$(bench_verdict "$ratio" '>=' 1)"
fi
if has_row gateway && has_row direct; then
    added=$(awk -v g="${lat_p50_us[gateway]}" -v d="${lat_p50_us[direct]}" 'BEGIN { printf "%.1f", g - d }')
    printf '%-44s %8s   (target < 50 us; p50 %s us vs %s us) %s\n' "gateway p50 - direct p50, latency pass" \
        "$added us" "$(printf %.1f "${lat_p50_us[gateway]}")" "$(printf %.1f "${lat_p50_us[direct]}")" \
        "$(bench_verdict "$added" '<' 50)"
    added=$(awk -v g="${p50[gateway]}" -v d="${p50[direct]}" 'BEGIN { printf "%.0f", (g - d) * 1000 }')
    printf '%-44s %8s   (info: includes queueing at %s connections)\n' "gateway p50 - direct p50, throughput pass" \
        "$added us" "$CONNECTIONS"
fi
if has_row gateway && has_row open; then
    ratio=$(bench_ratio "${rps[gateway]}" "${rps[open]}")
    printf '%-44s %8s   (target >= 0.85) %s\n' "checks on req/s / checks off req/s" "$ratio" \
        "$(bench_verdict "$ratio" '>=' 0.85)"
fi
if has_row nginx && has_row direct; then
    printf '%-44s %8s   (info)\n' "nginx req/s / direct req/s" "$(bench_ratio "${rps[nginx]}" "${rps[direct]}")"
    added=$(awk -v g="${lat_p50_us[nginx]}" -v d="${lat_p50_us[direct]}" 'BEGIN { printf "%.1f", g - d }')
    printf '%-44s %8s   (info; p50 %s us vs %s us)\n' "nginx p50 - direct p50, latency pass" "$added us" \
        "$(printf %.1f "${lat_p50_us[nginx]}")" "$(printf %.1f "${lat_p50_us[direct]}")"
fi
if has_row gateway && has_row bare; then
    printf '%-44s %8s   (info: bare nginx forwards no client address or request id)\n' \
        "gateway req/s / bare nginx req/s" "$(bench_ratio "${rps[gateway]}" "${rps[bare]}")"
fi
if has_row gateway && has_row direct; then
    printf '%-44s %8s   (info)\n' "gateway req/s / direct req/s" "$(bench_ratio "${rps[gateway]}" "${rps[direct]}")"
fi
