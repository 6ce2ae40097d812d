#!/usr/bin/env bash
# Import benchmark (events service, issue 24): a 5,000-event iCalendar file served on
# loopback, imported through the real fetcher, reader, planner and SQLite writes, then
# synced again unchanged (a 304; a full body without validators) and with 1 in 100 events
# moved. Each row is also given as a share of the first import, measured in the same run.
#
#   bench/import.sh            # EVENTS=5000
#
# Targets: the first import under 5 s; an unchanged re-sync that the server answers with
# 304 under 1% of the import; an unchanged full body under 50% of it (read and compare,
# write nothing). A missed target prints MISSED; the script fails only when something broke.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

EVENTS=${EVENTS:-5000}
bench_log "building the benchmark into $BENCH_TARGET_DIR"
if [[ -z ${NO_BUILD:-} ]]; then
    CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo build --release --locked -q -p veche-events --example import
fi
out=$("$BENCH_TARGET_DIR/release/examples/import" "$EVENTS") || bench_die "the import benchmark failed"
echo "$out"

ratio() { awk -v label="$1" -F'  +' '$1 == label { print $3 }' <<<"$out" | tr -d ' '; }
took() { awk -v label="$1" -F'  +' '$1 == label { print $2 }' <<<"$out" | tr -d ' '; }
check() { awk -v v="$2" -v max="$3" 'BEGIN { exit !(v + 0 < max + 0) }' || echo "MISSED: $1 ($2, target < $3)"; }
check "first import, ms" "$(took 'first import')" 5000
check "unchanged re-sync with a 304, share of the import" "$(ratio 're-sync, unchanged: one 304')" 0.01
check "unchanged full re-sync, share of the import" "$(ratio 're-sync, unchanged body, no validators')" 0.5
