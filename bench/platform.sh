#!/usr/bin/env bash
# The operator on a real control plane (e2e/cluster.sh): time from `kubectl apply` of a
# Platform to Ready=True next to the floor (the same rendered objects applied directly
# with kubectl until every Deployment is Available; target: at most 2x), and the
# operator's peak memory while reconciling PLATFORMS Platforms at once (target: under
# 30 MiB). Both with a release build of the operator.
#
#   bench/platform.sh                     # starts its own control plane
#   ROUNDS=3 PLATFORMS=20 bench/platform.sh
# With a cluster already up (eval "$(e2e/cluster.sh up)"), it uses that one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/bench/lib.sh"

bench_log "building veche-operator and the benchmark (release) into $BENCH_TARGET_DIR"
export CARGO_TARGET_DIR=$BENCH_TARGET_DIR
(cd "$root" && cargo build --release --locked -p veche-operator >&2 &&
    cargo build --release --locked -p veche-e2e --example ready >&2) || bench_die "build"
export VECHE_OPERATOR_BIN=$BENCH_TARGET_DIR/release/veche-operator
bench=$BENCH_TARGET_DIR/release/examples/ready

echo "== Veche operator on a real control plane"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min load average before the run)"
echo "commit:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n ${VECHE_E2E_KUBECONFIG:-} ]]; then
    "$bench"
else
    "$root/e2e/cluster.sh" build >/dev/null
    "$root/e2e/cluster.sh" run -- "$bench"
fi
