#!/usr/bin/env bash
# The reliability suite (issue 25) in its long mode, on a release build, with its figures:
# hard kills survived and writes checked, the soak's p50/p99 and memory per minute, the
# fairness table quiet and under the floods, the outbox held while analytics was away.
#
#   bench/reliability.sh              # the long mode: 100 kills, a 10-minute soak, ~25 min
#   SHORT=1 bench/reliability.sh      # CI's sizes: 20 kills, a 3-minute soak, ~8 min
#   ONLY=soak bench/reliability.sh    # one part: durability, soak, fairness, dependencies
#
# The suite's own assertions are its targets (every acknowledged write read back; no
# error and a flat heap in the soak; the polite client's p99 within 3x under the floods);
# a missed one fails the run. The full-disk test mounts a tmpfs, so it needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

mode=long
[[ -n ${SHORT:-} ]] && mode=short
bench_log "building the suite (release) into $BENCH_TARGET_DIR; mode $mode; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -z ${NO_BUILD:-} ]]; then
    CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo test --release --locked -q -p veche --test reliability --no-run
fi
filter=()
[[ -n ${ONLY:-} ]] && filter=("$ONLY::")
VECHE_RELIABILITY=$([[ $mode == long ]] && echo long || echo short) \
    CARGO_TARGET_DIR=$BENCH_TARGET_DIR cargo test --release --locked -q -p veche --test reliability -- \
    --nocapture --test-threads 1 "${filter[@]}" 2>&1 |
    grep -E '^(durability|soak|fairness|dependencies|reliability):|test result|panicked|MISSED' ||
    bench_die "the reliability suite failed"
