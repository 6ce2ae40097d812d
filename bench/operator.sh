#!/usr/bin/env bash
# The operator's idle memory (target < 30 MiB) and, from the same run, the rendering
# micro-benchmark (target < 1 ms for a full Platform).
#
# Needs a cluster: KUBECONFIG names one where you may install CRDs (a throwaway
# kube-apiserver is enough; no nodes are needed, nothing is scheduled). The operator
# watches one fresh namespace, reconciles bench/../examples/platform-minimal.yaml there,
# idles, and its VmRSS is read. The namespace is deleted afterwards.
#
#   KUBECONFIG=/path/to/kubeconfig bench/operator.sh
#   BIN=path/to/veche-operator ...      # use a binary already built (skips the build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/bench/lib.sh"

[[ -n ${KUBECONFIG:-} ]] || bench_die "set KUBECONFIG to a cluster where CRDs may be installed"
command -v kubectl >/dev/null || bench_die "kubectl is needed"
IDLE_SECONDS=${IDLE_SECONDS:-10}

if [[ -z ${BIN:-} ]]; then
    bench_log "building veche-operator (release) into $BENCH_TARGET_DIR"
    CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo build --release --locked -p veche-operator >&2 ||
        bench_die "build"
    BIN=$BENCH_TARGET_DIR/release/veche-operator
fi
[[ -x $BIN ]] || bench_die "no executable at $BIN"

ns=veche-bench-$RANDOM
work=$(mktemp -d)
op_pid=
cleanup() {
    [[ -n $op_pid ]] && kill -TERM "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null || true
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

kubectl apply --server-side -f "$root/crds/" >/dev/null || bench_die "installing the CRDs"
kubectl wait --for=condition=Established crd/platforms.veche.io crd/servicedeployments.veche.io --timeout=60s >/dev/null
kubectl create namespace "$ns" >/dev/null || bench_die "creating namespace $ns"
port=$(bench_free_port)

echo "== Veche operator benchmark"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min load average before the run)"
echo "commit:   $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "binary:   $BIN"

"$BIN" run --namespace "$ns" --listen "127.0.0.1:$port" --leader-election false --log-format json \
    >"$work/operator.log" 2>&1 &
op_pid=$!
bench_wait_ready "http://127.0.0.1:$port/readyz" "$op_pid" 30
sleep 2
rss_start=$(bench_rss_mib "$op_pid")

kubectl -n "$ns" apply -f "$root/examples/platform-minimal.yaml" >/dev/null
for i in $(seq 1 300); do
    endpoint=$(kubectl -n "$ns" get platform veche -o jsonpath='{.status.endpoint}' 2>/dev/null || true)
    deployments=$(kubectl -n "$ns" get deployments -o name 2>/dev/null | wc -l)
    [[ -n $endpoint && $deployments -eq 5 ]] && break
    kill -0 "$op_pid" 2>/dev/null || bench_die "the operator exited; log: $(tail -5 "$work/operator.log")"
    sleep 0.1
done
[[ -n $endpoint && $deployments -eq 5 ]] || bench_die "the Platform was not reconciled within 30 s"
sleep "$IDLE_SECONDS"
rss_idle=$(bench_rss_mib "$op_pid")

printf '%-44s %10s %s\n' "row" "value" ""
printf '%-44s %10s %s\n' "idle RSS, one Platform reconciled" "$rss_idle MiB" "$(bench_verdict "$rss_idle" '<' 30)"
printf '%-44s %10s   (info: before any Platform)\n' "RSS at start-up" "$rss_start MiB"
echo
echo "== rendering (cargo bench --profile dev: an upper bound)"
(cd "$root" && CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo bench -q -p veche-operator --bench render --profile dev 2>/dev/null) || bench_die "render bench"
