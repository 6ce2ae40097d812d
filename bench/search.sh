#!/usr/bin/env bash
# Search benchmark (events service): requests per second and p50/p99 of search queries
# through `veche up`, next to `GET /api/v1/events/{id}` on the same server as the baseline,
# on a seeded corpus of 100,000 events and again at 1,000,000 (SIZES to change); then the
# same corpus in PostgreSQL (bench/postgres.sh), the same queries through pgbench, printed
# side by side (PEER=none to skip it).
#
#   bench/search.sh                      # DURATION=10 CONNECTIONS=4 SIZES="100000 1000000"
#
# Targets: p99 under 10 ms for selective queries, under 50 ms for a very common word
# ("open" is in about half of all titles), and Veche ahead of PostgreSQL on every row. A
# missed target prints MISSED; the script fails only when something broke.
#
# A seeded corpus is kept in ~/.cache/veche/bench-fixtures (FIXTURES to change), keyed by
# the code that writes it and the week, so a second run copies it instead of seeding.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-4}
SIZES=${SIZES:-"100000 1000000"}
PEER=${PEER:-postgres}
FIXTURES=${FIXTURES:-$HOME/.cache/veche/bench-fixtures}
target=$BENCH_TARGET_DIR/release
source bench/postgres.sh
[[ $PEER == none ]] || pg_ensure

bench_ensure_wrk || bench_die "wrk is needed (Debian package wrk)"
bench_log "building release binaries into $BENCH_TARGET_DIR"
CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo build --release --locked -q -p veche
CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo build --release --locked -q -p veche-events --example seed

urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="/?&=,:"))' "$1"; }
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

echo "machine: $(nproc) cores, $(uname -m); wrk -t2 -c$CONNECTIONS -d${DURATION}s --latency, one server per corpus"
server_pid=""
data=""
peer=""
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    [[ -n $peer ]] && pg_stop "$peer" && rm -rf "$peer"
    [[ -n $data ]] && rm -rf "$data"
    return 0
}
trap cleanup EXIT

# Waits until the events service has delivered every fact to analytics (the seeded
# events' publications at start, views after the baseline): ingesting them competes with
# search for the two cores. Up to ten minutes. Metrics are on the internal listener.
wait_for_quiet() {
    local port=$1 i lag
    for i in $(seq 1 1200); do
        lag=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^outbox_relay_lag\{service="events"\}/ {print $2}')
        [[ $lag == 0 ]] && return 0
        sleep 0.5
    done
    bench_die "the events outbox did not drain within ten minutes (lag $lag)"
}

# The key of a seeded corpus: what writes it, and the week (events start from the day of
# seeding, and a corpus much older would hold fewer upcoming events).
fixture_key=$( (cat services/events/src/{fixtures,search}.rs services/events/src/store/{mod,crud,migrations}.rs \
    services/events/examples/seed.rs services/kit/src/db.rs Cargo.lock; date -u +%G-%V) | sha256sum | cut -c1-16)

# Seeds SIZE events into DIR (made), or copies the corpus seeded before with the same key.
seeded() {
    local size=$1 dir=$2 fixture=$FIXTURES/search-$1-$fixture_key started
    if [[ ! -f $fixture/sample ]]; then
        rm -rf "$FIXTURES"/search-"$size"-*
        mkdir -p "$fixture"
        started=$(date +%s)
        "$target/examples/seed" "$fixture" "$size" >"$fixture/sample.new" || bench_die "seeding $size events failed"
        mv "$fixture/sample.new" "$fixture/sample"
        bench_log "seeded $size events in $(($(date +%s) - started)) s ($(du -sh "$fixture" | cut -f1) on disk), kept in $fixture"
    fi
    cp -r "$fixture"/. "$dir"/
    cat "$dir/sample"
}

for size in $SIZES; do
    data=$(mktemp -d)
    sample=$(seeded "$size" "$data")
    port=$(bench_free_port)
    internal_port=$(bench_free_port)
    # The gateway's rate limits would measure themselves, not search: off.
    VECHE_LOG=warn VECHE_CLIENT_RPS=0 VECHE_USER_RPS=0 VECHE_INTERNAL_LISTEN="127.0.0.1:$internal_port" \
        "$target/veche" up --listen "127.0.0.1:$port" --data-dir "$data" >"$data/server.log" 2>&1 &
    server_pid=$!
    bench_wait_ready "http://127.0.0.1:$port/readyz" "$server_pid" 120
    now=$(date +%s)
    week_from=$(iso $((now + 20 * 86400)))
    week_to=$(iso $((now + 27 * 86400)))
    # The baseline goes last: each GET records a view, and delivering a hundred thousand
    # views to analytics would load the machine during the rows after it.
    rows=(
        "full text + filters|/api/v1/events?q=джаз&city=kazan&category=concert|10"
        "full text, rare word|/api/v1/events?q=4242|10"
        "date range (a week)|/api/v1/events?from=$week_from&to=$week_to|10"
        "geo (5 km radius)|/api/v1/events?near=55.79,49.12&radius_km=5|10"
        "tags + free|/api/v1/events?tags=music,kids&free=true|10"
        "popularity|/api/v1/events?sort=popularity|10"
        "very common word|/api/v1/events?q=open|50"
        "very common word + city|/api/v1/events?q=open&city=moscow|50"
        "very common word, by relevance|/api/v1/events?q=open&sort=relevance|50"
        "very common word + city, by relevance|/api/v1/events?q=open&city=moscow&sort=relevance|50"
        "GET /events/{id} (baseline)|/api/v1/events/$sample|base"
    )
    echo
    echo "corpus: $size events"
    printf '%-38s %10s %9s %9s  %s\n' "query" "req/s" "p50 ms" "p99 ms" "target"
    results=()
    for row in "${rows[@]}"; do
        IFS='|' read -r name path limit <<<"$row"
        url="http://127.0.0.1:$port$(urlencode "$path")"
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$url") == 200 ]] || bench_die "$name: $url does not answer 200"
        wait_for_quiet "$internal_port"
        read -r _ rps p50 p99 non2xx errors < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" | bench_parse_wrk)
        [[ $non2xx == 0 && $errors == 0 ]] || bench_die "$name: $non2xx non-2xx answers, $errors socket errors"
        results+=("$name|$rps|$p50|$p99|$limit")
    done
    base_rps=$rps
    for result in "${results[@]}"; do
        IFS='|' read -r name rps p50 p99 limit <<<"$result"
        if [[ $limit == base ]]; then
            verdict="baseline"
        else
            verdict="p99 < $limit ms $(bench_verdict "$p99" "<" "$limit")  ($(bench_ratio "$rps" "$base_rps") of baseline req/s)"
        fi
        printf '%-38s %10.0f %9.2f %9.2f  %s\n' "$name" "$rps" "$p50" "$p99" "$verdict"
    done
    kill "$server_pid" && wait "$server_pid" 2>/dev/null || true
    server_pid=""
    if [[ $PEER != none ]]; then
        peer=$(mktemp -d)
        pg_port=$(bench_free_port)
        pg_start "$peer" "$pg_port"
        loading=$(date +%s)
        pg_load "$pg_port" "$data/events.db" "$peer"
        bench_log "loaded $size events into PostgreSQL with its indexes in $(($(date +%s) - loading)) s"
        WEEK_FROM=$week_from WEEK_TO=$week_to SAMPLE=$sample
        echo
        echo "corpus: $size events, PostgreSQL $PG_VERSION (pgbench -c$CONNECTIONS -j2 -T$DURATION, the database alone) beside Veche (HTTP)"
        printf '%-38s %10s %9s %9s %6s %10s  %s\n' "query" "PG tx/s" "p50 ms" "p99 ms" "rows" "Veche/s" "target: Veche ahead"
        for result in "${results[@]}"; do
            IFS='|' read -r name rps _ _ _ <<<"$result"
            read -r tps p50 p99 rows < <(pg_bench "$pg_port" "$peer" "$(pg_query "$name")")
            ratio=$(bench_ratio "$rps" "$tps")
            printf '%-38s %10.0f %9.2f %9.2f %6s %10.0f  %sx %s\n' "$name" "$tps" "$p50" "$p99" "$rows" "$rps" \
                "$ratio" "$(bench_verdict "$ratio" ">=" 1)"
        done
        pg_stop "$peer"
        rm -rf "$peer"
        peer=""
    fi
    rm -rf "$data"
    data=""
done
