#!/usr/bin/env bash
# Analytics benchmark: facts ingested per second through `POST /api/v1/analytics/track`
# (browsers, batches of 50, its maximum, through the gateway) and through the relay's
# delivery endpoint (`POST /internal/v1/analytics/facts`, batches of 500 as the relays
# send them, with a service token), then p50/p99 of the 30-day organization, event and
# platform reports over a store seeded with FACTS facts (10 million by default). All
# through `veche up`; `GET /healthz` on the same listener is the baseline of the ratios.
#
#   bench/analytics.sh                    # FACTS=10000000 DURATION=10 CONNECTIONS=4
#
# Targets: at least 100,000 facts per second on each ingest path, and a report p99 under
# 50 ms. A missed target prints MISSED; the script fails only when something broke.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

FACTS=${FACTS:-10000000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-4}
target=$BENCH_TARGET_DIR/release

bench_ensure_wrk || bench_die "wrk is needed (Debian package wrk)"
bench_log "building release binaries into $BENCH_TARGET_DIR"
CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo build --release --locked -q -p veche
CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo build --release --locked -q -p veche-analytics --example seed_facts

server_pid=""
data=$(mktemp -d)
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$data"
    return 0
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(uname -m); wrk -t2 -c$CONNECTIONS -d${DURATION}s --latency"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min load average before the run)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

seed_started=$(date +%s)
read -r organization event < <("$target/examples/seed_facts" "$data" "$FACTS" 2> >(tail -1 >&2))
bench_log "seeded $FACTS facts in $(($(date +%s) - seed_started)) s ($(du -sh "$data" | cut -f1) on disk)"

port=$(bench_free_port)
internal_port=$(bench_free_port)
admin_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
events_secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
# Rate limits would measure themselves, not analytics: off. The events service's client
# secret is set here so that the benchmark can ask for the token a relay delivers with.
VECHE_LOG=warn VECHE_CLIENT_RPS=0 VECHE_USER_RPS=0 VECHE_ANALYTICS_TRACK_RPS=0 \
    VECHE_INTERNAL_LISTEN="127.0.0.1:$internal_port" VECHE_SERVICE_CLIENTS="events=$events_secret" \
    VECHE_BOOTSTRAP_ADMIN_EMAIL=bench@example.org VECHE_BOOTSTRAP_ADMIN_PASSWORD="$admin_password" \
    "$target/veche" up --listen "127.0.0.1:$port" --data-dir "$data" >"$data/server.log" 2>&1 &
server_pid=$!
bench_wait_ready "http://127.0.0.1:$port/readyz" "$server_pid" 120
public="http://127.0.0.1:$port"
internal="http://127.0.0.1:$internal_port"

admin_token=$(curl -sf "$public/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench@example.org\",\"password\":\"$admin_password\"}" | jq -r .access_token)
service_token=$(curl -sf "$public/api/v1/auth/token" -u "events:$events_secret" \
    -d grant_type=client_credentials -d audience=analytics | jq -r .access_token)
[[ -n $admin_token && $admin_token != null ]] || bench_die "no admin token (server log: $data/server.log)"
[[ -n $service_token && $service_token != null ]] || bench_die "no service token"

# wrk scripts that make every request's facts new: ids from the thread, a counter and
# the batch position, so no fact is a redelivery and each one is counted.
lua_common='
local thread_id = 0
local counter = 0
function setup(thread) thread_id = thread_id + 1; thread:set("tid", thread_id) end
local function uuid(n) return string.format("%08x-0000-4000-8000-%012x", tid, n) end
local function now() return os.date("!%Y-%m-%dT%H:%M:%SZ") end
-- Traffic spreads over the seeded events (ids as the seed makes them) and their
-- organizations, as a relay batch or a busy site would.
local function event_of(n) return string.format("0000e7e7-0000-4000-8000-%012x", n) end
local function organization_of(n) return string.format("00000e9a-0000-4000-8000-%012x", n % 1000) end
'
cat >"$data/track.lua" <<EOF
$lua_common
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) veche-bench"
function request()
    local at, events = now(), {}
    for i = 1, 50 do
        counter = counter + 1
        events[i] = string.format('{"id":"%s","type":"page_view","at":"%s","event_id":"%s"}', uuid(counter), at,
            event_of(math.random(0, 19999)))
    end
    return wrk.format(nil, nil, nil, '{"visitor_id":"bench-' .. tid .. '","events":[' .. table.concat(events, ",") .. ']}')
end
EOF
cat >"$data/deliver.lua" <<EOF
$lua_common
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $service_token"
local kinds = {"event.viewed", "event.viewed", "event.viewed", "registration.made"}
function request()
    local at, facts = now(), {}
    for i = 1, 500 do
        counter = counter + 1
        local event = math.random(0, 19999)
        facts[i] = string.format('{"id":"%s","kind":"%s","occurred_at":"%s","payload":{"event_id":"%s",'
            .. '"organization_id":"%s","visitor_id":"v%d","user_id":"00000000-0000-4000-8000-%012x"}}',
            uuid(counter + 2^40), kinds[counter % 4 + 1], at, event_of(event), organization_of(event),
            counter % 100000, counter % 50000)
    end
    return wrk.format(nil, nil, nil, '{"facts":[' .. table.concat(facts, ",") .. ']}')
end
EOF

# wrk over `url`, as `<requests> <req/s> <p50> <p99>`; any non-2xx answer is a failure.
measure() {
    local name=$1
    shift
    local requests rps p50 p99 non2xx errors
    read -r requests rps p50 p99 non2xx errors < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" | bench_parse_wrk)
    [[ $non2xx == 0 && $errors == 0 ]] || bench_die "$name: $non2xx non-2xx answers, $errors socket errors"
    echo "$requests $rps $p50 $p99"
}

facts_before=$(curl -sf "$internal/metrics" | awk '/^analytics_facts_total\{.*outcome="accepted"/ {print $2}')
read -r _ track_rps track_p50 track_p99 < <(measure track -s "$data/track.lua" "$public/api/v1/analytics/track")
read -r _ deliver_rps deliver_p50 deliver_p99 < <(measure deliver -s "$data/deliver.lua" "$internal/internal/v1/analytics/facts")
facts_after=$(curl -sf "$internal/metrics" | awk '/^analytics_facts_total\{.*outcome="accepted"/ {print $2}')
reports=(
    "organization report (30 days)|/api/v1/analytics/organizations/$organization"
    "event report (30 days)|/api/v1/analytics/events/$event"
    "platform report (30 days)|/api/v1/analytics/platform"
)
report_rows=()
for row in "${reports[@]}"; do
    IFS='|' read -r name path <<<"$row"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $admin_token" "$public$path")
    [[ $code == 200 ]] || bench_die "$name: $path answers $code"
    read -r _ rps p50 p99 < <(measure "$name" -H "Authorization: Bearer $admin_token" "$public$path")
    report_rows+=("$name|$rps|$p50|$p99")
done
read -r _ base_rps base_p50 base_p99 < <(measure baseline "$public/healthz")

echo
echo "store: $FACTS facts seeded ($(du -sh "$data/analytics.db" | cut -f1)), then what the rows below added"
echo "accepted during the ingest rows: $(awk -v a="$facts_after" -v b="${facts_before:-0}" 'BEGIN { printf "%.0f", a - b }') facts"
printf '%-34s %10s %12s %9s %9s  %s\n' "row" "req/s" "facts/s" "p50 ms" "p99 ms" "target"
for row in "track, batches of 50|$track_rps|50|$track_p50|$track_p99" \
    "relay delivery, batches of 500|$deliver_rps|500|$deliver_p50|$deliver_p99"; do
    IFS='|' read -r name rps per p50 p99 <<<"$row"
    facts=$(awk -v r="$rps" -v n="$per" 'BEGIN { printf "%.0f", r * n }')
    printf '%-34s %10.0f %12s %9.2f %9.2f  %s\n' "$name" "$rps" "$facts" "$p50" "$p99" \
        ">= 100000 facts/s $(bench_verdict "$facts" ">=" 100000)"
done
for row in "${report_rows[@]}"; do
    IFS='|' read -r name rps p50 p99 <<<"$row"
    printf '%-34s %10.0f %12s %9.2f %9.2f  %s\n' "$name" "$rps" "-" "$p50" "$p99" \
        "p99 < 50 ms $(bench_verdict "$p99" "<" 50)  ($(bench_ratio "$rps" "$base_rps") of baseline req/s)"
done
printf '%-34s %10.0f %12s %9.2f %9.2f  %s\n' "GET /healthz (baseline)" "$base_rps" "-" "$base_p50" "$base_p99" "baseline"
