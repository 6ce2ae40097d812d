#!/usr/bin/env bash
# Attendee list benchmark: an organizer's page of 100 attendees with their names (the
# events service asks the users service for them) against the same page without names
# (`names=false`, no lookup), through `veche up` and its gateway, as the organization's
# owner: both rows check the token and the organizer's role alike, so the difference is
# the lookup. Rows alternate (names, none, names, none) so a noisy moment hits both.
#
#   bench/attendees.sh                  # ATTENDEES=300 DURATION=10 CONNECTIONS=8
#
# Target: the p99 with names at most 2x the p99 without. A missed target prints MISSED;
# the script fails only when something broke.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ATTENDEES=${ATTENDEES:-300}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-8}
target=$BENCH_TARGET_DIR/release

bench_ensure_wrk || bench_die "wrk is needed (Debian package wrk)"
command -v jq >/dev/null || bench_die "jq is needed"
if [[ ${NO_BUILD:-} != 1 ]]; then
    bench_log "building release binaries into $BENCH_TARGET_DIR"
    CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo build --release --locked -q -p veche
fi

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

port=$(bench_free_port)
# Rate limits would measure themselves: off.
VECHE_LOG=warn VECHE_CLIENT_RPS=0 VECHE_USER_RPS=0 VECHE_PASSWORD_HASH_RPS=0 \
    "$target/veche" up --listen "127.0.0.1:$port" --data-dir "$data" >"$data/server.log" 2>&1 &
server_pid=$!
public="http://127.0.0.1:$port"
bench_wait_ready "$public/readyz" "$server_pid" 120

password="correct horse battery staple"
# Signs `email` up as `name` and prints an access token.
person() {
    local email=$1 name=$2
    curl -sf "$public/api/v1/auth/register" -H 'Content-Type: application/json' \
        -d "{\"email\":\"$email\",\"password\":\"$password\",\"display_name\":\"$name\"}" >/dev/null ||
        bench_die "sign-up of $email"
    curl -sf "$public/api/v1/auth/login" -H 'Content-Type: application/json' \
        -d "{\"email\":\"$email\",\"password\":\"$password\"}" | jq -r .access_token
}
owner=$(person owner@example.org "Организатор")
auth=(-H "Authorization: Bearer $owner" -H 'Content-Type: application/json')
org=$(curl -sf "$public/api/v1/organizations" "${auth[@]}" -d '{"name":"Bench Club"}' | jq -r .id)
event=$(curl -sf "$public/api/v1/events" "${auth[@]}" -d "{\"title\":\"Bench night\",\"description\":\"\",
    \"start\":\"2031-02-01T15:00:00Z\",\"end\":\"2031-02-01T19:00:00Z\",\"time_zone\":\"Europe/Moscow\",
    \"format\":\"online\",\"venue\":null,\"online_url\":\"https://example.org/live\",\"tags\":[],\"category\":\"meetup\",
    \"capacity\":null,\"price\":null,\"visibility\":\"public\",\"cover_image_url\":null,\"organization_id\":\"$org\"}" | jq -r .id)
[[ $event != null && -n $event ]] || bench_die "no event (server log: $data/server.log)"
curl -sf -X POST "$public/api/v1/events/$event/publish" "${auth[@]}" >/dev/null || bench_die "publish"

seed_started=$(date +%s)
for n in $(seq 1 "$ATTENDEES"); do
    token=$(person "guest$n@example.org" "Гость номер $n")
    curl -sf -X POST "$public/api/v1/events/$event/registrations" -H "Authorization: Bearer $token" >/dev/null ||
        bench_die "registration $n"
done
bench_log "signed up and registered $ATTENDEES attendees in $(($(date +%s) - seed_started)) s"

with="$public/api/v1/events/$event/registrations?limit=100"
without="$with&names=false"
named=$(curl -sf "$with" -H "Authorization: Bearer $owner" | jq '[.items[] | select(.display_name != null)] | length')
[[ $named == 100 ]] || bench_die "the page with names names $named of 100"
bare=$(curl -sf "$without" -H "Authorization: Bearer $owner" | jq '[.items[] | select(.display_name == null)] | length')
[[ $bare == 100 ]] || bench_die "the page without names still names $((100 - bare)) of 100"

measure() {
    local name=$1 url=$2 requests rps p50 p99 non2xx errors
    read -r requests rps p50 p99 non2xx errors < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
        -H "Authorization: Bearer $owner" "$url" | bench_parse_wrk)
    [[ $non2xx == 0 && $errors == 0 ]] || bench_die "$name: $non2xx non-2xx answers, $errors socket errors"
    echo "$rps $p50 $p99"
}
declare -A rps p50 p99
for round in 1 2; do
    for row in with without; do
        read -r r a b < <(measure "$row" "${!row}")
        rps[$row$round]=$r p50[$row$round]=$a p99[$row$round]=$b
    done
done
# The better of two rounds each: a burst of other work in one of them flatters neither.
best() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { if (op == "min") print (a < b ? a : b); else print (a > b ? a : b) }'; }
for row in with without; do
    rps[$row]=$(best "${rps[${row}1]}" "${rps[${row}2]}" max)
    p50[$row]=$(best "${p50[${row}1]}" "${p50[${row}2]}" min)
    p99[$row]=$(best "${p99[${row}1]}" "${p99[${row}2]}" min)
done

echo
echo "event: $ATTENDEES attendees; each row reads the first page of 100 as the owner"
printf '%-36s %10s %9s %9s  %s\n' "row" "req/s" "p50 ms" "p99 ms" "target"
printf '%-36s %10.0f %9.2f %9.2f  %s\n' "page of 100 without names (baseline)" "${rps[without]}" "${p50[without]}" "${p99[without]}" "baseline"
ratio=$(bench_ratio "${p99[with]}" "${p99[without]}")
printf '%-36s %10.0f %9.2f %9.2f  %s\n' "page of 100 with names" "${rps[with]}" "${p50[with]}" "${p99[with]}" \
    "p99 <= 2x baseline: ${ratio}x $(bench_verdict "$ratio" "<" 2.001)"
