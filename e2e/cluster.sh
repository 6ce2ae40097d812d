#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, built from Go modules, for the end-to-end
# tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (one fake
# node; kwok marks pods Running and Ready), plus kubectl and helm for the tests to use.
# With VECHE_CLUSTER_NODE=real, a real node (e2e/node.sh: kubelet, containerd, CNI,
# kube-proxy, CoreDNS) takes kwok's place, and runs the OCI archives named in
# VECHE_NODE_IMAGES (space-separated) as real containers.
#
#   e2e/cluster.sh build          build the binaries unless cached; prints their directory
#   e2e/cluster.sh up             start a control plane; prints `export KUBECONFIG=...`
#   e2e/cluster.sh down [DIR]     stop it and remove its state
#   e2e/cluster.sh run -- CMD...  up, run CMD with KUBECONFIG set, down (even if CMD fails);
#                                 exits with CMD's status
#   e2e/cluster.sh logs [DIR]     print the tail of every component's log
#
# Versions: e2e/tools/versions.env. Binaries: $VECHE_CLUSTER_CACHE (default
# $HOME/.cache/veche/cluster)/bin-<hash of versions, go.mod, go.sum, Go, build flags>.
# State of a running cluster: $VECHE_CLUSTER_DIR (default /tmp/veche-cluster); each
# component logs to <state>/logs/<name>.log.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"
cache="${VECHE_CLUSTER_CACHE:-$HOME/.cache/veche/cluster}"
state="${VECHE_CLUSTER_DIR:-/tmp/veche-cluster}"
# shellcheck source=tools/versions.env
. "$tools/versions.env"
# shellcheck source=lib.sh
. "$here/lib.sh"

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- build

packages=(
  veche.dev/e2e/tools/cmd/etcd
  k8s.io/kubernetes/cmd/kube-apiserver
  k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kube-scheduler
  k8s.io/kubernetes/cmd/kubectl
  sigs.k8s.io/kwok/cmd/kwok
  helm.sh/helm/v3/cmd/helm
)
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)
# Static binaries (no C toolchain in the way), no paths or VCS state of this machine.
build_env=(CGO_ENABLED=0)
build_flags=(-mod=readonly -buildvcs=false -trimpath)

bin_dir() {
  local key
  key=$({
    cat "$tools/versions.env" "$tools/go.mod" "$tools/go.sum" "$tools/cmd/etcd/main.go"
    go env GOVERSION GOOS GOARCH
    printf '%s\n' "${build_env[@]}" "${build_flags[@]}" "${ldflags[@]}" "${packages[@]}"
  } | sha256sum | cut -c1-16)
  echo "$cache/bin-$key"
}

cmd_build() {
  command -v go >/dev/null || die "go is not installed"
  local dir
  dir=$(bin_dir)
  local missing=0 b
  for b in "${binaries[@]}"; do [[ -x $dir/$b ]] || missing=1; done
  [[ -f $dir/kwok-stages.yaml ]] || missing=1
  if ((missing)); then
    say "building ${binaries[*]} into $dir (a cold build takes about 12 minutes on 2 cores)"
    local started=$SECONDS tmp
    mkdir -p "$cache"
    tmp=$(mktemp -d "$dir.partial.XXXXXX")
    # One go build for all seven: the packages they share compile once.
    (cd "$tools" && env "${build_env[@]}" go build "${build_flags[@]}" -ldflags "${ldflags[*]}" \
      -o "$tmp/" "${packages[@]}") || { rm -rf "$tmp"; die "go build failed"; }
    # kwok has no built-in stages when run bare: take the ones kwokctl uses by default
    # from the same module version.
    local kwok_dir stage
    kwok_dir=$(cd "$tools" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
    for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
      pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
      echo ---
      cat "$kwok_dir/kustomize/stage/$stage.yaml"
    done >"$tmp/kwok-stages.yaml"
    rm -rf "$dir" && mv -T "$tmp" "$dir"
    say "built in $((SECONDS - started))s"
  fi
  echo "$dir"
}

# ---------------------------------------------------------------------------- up

# Certificates: one CA; a serving certificate for 127.0.0.1/localhost; client certificates
# for the admin (system:masters), the controller manager and the scheduler (their own RBAC
# identities), and kwok. A separate service-account signing key.
make_pki() {
  local pki=$state/pki
  mkdir -p "$pki"
  local ec=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
  openssl genpkey "${ec[@]}" -out "$pki/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -out "$pki/ca.crt" -days 30 -subj "/CN=veche-e2e-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  local client=$CLIENT_CERT
  issue apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
  issue admin "/O=system:masters/CN=veche-e2e-admin" "$client"
  issue controller-manager "/CN=system:kube-controller-manager" "$client"
  issue scheduler "/CN=system:kube-scheduler" "$client"
  issue kwok "/O=system:masters/CN=kwok-controller" "$client"
  # What the API server shows a kubelet (logs, port-forward); a real node binds it to
  # system:kubelet-api-admin (node.sh).
  issue kubelet-client "/CN=kube-apiserver-kubelet-client" "$client"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
}

real_node() { [[ ${VECHE_CLUSTER_NODE:-kwok} == real ]]; }

cmd_up() {
  local bin
  bin=$(cmd_build)
  real_node && { "$here/node.sh" build >/dev/null || die "building the real node failed"; }
  if [[ -f $state/pids/kube-apiserver ]] && alive kube-apiserver; then
    die "a cluster is already running in $state (e2e/cluster.sh down first)"
  fi
  rm -rf "$state"
  mkdir -p "$state/logs" "$state/pids" && mkdir -m 700 "$state/etcd"
  echo "$bin" >"$state/bin"
  local started=$SECONDS
  local etcd_port etcd_peer_port kwok_port
  read -r etcd_port etcd_peer_port apiserver_port kwok_port <<<"$(free_ports 4)"
  echo "$apiserver_port" >"$state/apiserver-port"

  make_pki

  # etcd: one member, loopback only, no fsync (the data is thrown away).
  start etcd "$bin/etcd" --name=veche-e2e --data-dir="$state/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster="veche-e2e=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level=warn
  wait_for "etcd health" 60 etcd curl -fsS "http://127.0.0.1:$etcd_port/health"

  local pki=$state/pki
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --secure-port="$apiserver_port" --cert-dir="$pki" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --kubelet-client-certificate="$pki/kubelet-client.crt" --kubelet-client-key="$pki/kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --allow-privileged=true --profiling=false
  kubeconfig admin
  wait_for "kube-apiserver /readyz" 120 kube-apiserver \
    curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$apiserver_port/readyz"

  kubeconfig controller-manager
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$state/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$state/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=0 \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --controllers='*' --horizontal-pod-autoscaler-sync-period=5s \
    --profiling=false

  kubeconfig scheduler
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$state/scheduler.kubeconfig" \
    --authentication-kubeconfig="$state/scheduler.kubeconfig" \
    --authorization-kubeconfig="$state/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false --profiling=false

  local kubectl=("$bin/kubectl" --kubeconfig="$state/admin.kubeconfig")
  if real_node; then
    local images=()
    read -r -a images <<<"${VECHE_NODE_IMAGES:-}"
    "$here/node.sh" up "$state" "$bin" "${images[@]}" || die "the real node did not come up"
  else
    # kwok: the stages kwokctl uses by default (node initialise and lease heartbeat; pod
    # ready, complete and delete), copied next to the binaries at build time.
    kubeconfig kwok
    start kwok "$bin/kwok" --kubeconfig="$state/kwok.kubeconfig" --config="$bin/kwok-stages.yaml" \
      --manage-all-nodes=true --server-address="127.0.0.1:$kwok_port" \
      --node-ip=10.0.0.1 --node-lease-duration-seconds=40

    "${kubectl[@]}" apply -f - >/dev/null <<'NODE'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "1000"}
  capacity: {cpu: "32", memory: 256Gi, pods: "1000"}
NODE
    wait_for "node kwok-node-0 Ready" 60 kwok \
      "${kubectl[@]}" wait --for=condition=Ready node/kwok-node-0 --timeout=2s
  fi
  wait_for "controller manager (default ServiceAccount)" 60 kube-controller-manager \
    "${kubectl[@]}" get serviceaccount default -n default
  alive kube-scheduler || { tail -n 40 "$state/logs/kube-scheduler.log" >&2; die "kube-scheduler exited"; }

  cp "$state/admin.kubeconfig" "$state/kubeconfig"
  say "control plane $KUBERNETES_VERSION up in $((SECONDS - started))s; state and logs in $state"
  echo "export KUBECONFIG=$state/kubeconfig VECHE_E2E_KUBECONFIG=$state/kubeconfig VECHE_E2E_BIN=$bin VECHE_E2E_CLUSTER=$state PATH=$bin:\$PATH"
}

# ---------------------------------------------------------------------------- down

cmd_down() {
  [[ -d $state ]] || { say "nothing running in $state"; return 0; }
  # A real node first: its containers and kubelet, before the API they report to.
  if [[ -d $state/node ]]; then "$here/node.sh" down "$state" || say "the real node's teardown failed; stopping the rest"; fi
  local name pid pids=()
  # Only the processes this cluster started, by the pids it recorded. The state is thrown
  # away, so there is nothing to shut down gracefully for: TERM all, KILL what lingers.
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [[ -f $state/pids/$name ]] || continue
    pid=$(cat "$state/pids/$name")
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  local deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$state"
  say "stopped; removed $state"
}

cmd_logs() {
  local lines=${VECHE_CLUSTER_LOG_LINES:-40} f
  for f in "$state"/logs/*.log; do
    [[ -f $f ]] || continue
    # klog's warning/error/fatal lines, and etcd's and kwok's JSON levels.
    printf '\n----- %s: last %s warnings and errors -----\n' "$f" "$lines" >&2
    grep -E '^[EWF][0-9]{4} |"level":"(warn|error|fatal|panic|WARN|ERROR)"' "$f" | tail -n "$lines" >&2 || true
    printf -- '----- %s: last %s lines -----\n' "$f" "$lines" >&2
    tail -n "$lines" "$f" >&2
  done
}

# ---------------------------------------------------------------------------- run

cmd_run() {
  [[ ${1:-} == -- ]] && shift
  (($#)) || die "usage: $0 run -- COMMAND [ARGS...]"
  # A fresh state directory per run, so runs never meet, unless the caller names one.
  if [[ -z ${VECHE_CLUSTER_DIR:-} ]]; then
    state=$(mktemp -d "${TMPDIR:-/tmp}/veche-cluster.XXXXXX")
  fi
  trap 'cmd_down' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local exports
  if ! exports=$(cmd_up); then
    cmd_logs
    die "the control plane did not come up"
  fi
  eval "$exports"
  export KUBECONFIG VECHE_E2E_KUBECONFIG VECHE_E2E_BIN VECHE_E2E_CLUSTER PATH
  # The command runs in the background so that a signal to this script is handled at once
  # (bash defers traps while a foreground child runs): it is passed on to the command, and
  # the EXIT trap still tears the cluster down.
  local status=0 child
  "$@" &
  child=$!
  trap 'say "interrupted; stopping the command"; kill -TERM "$child" 2>/dev/null || true' INT TERM
  while :; do
    wait "$child" && status=0 || status=$?
    kill -0 "$child" 2>/dev/null || break
  done
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if ((status != 0)); then
    say "command failed (exit $status); the control plane's logs follow"
    cmd_logs
    local keep="$cache/logs-last-failure"
    rm -rf "$keep" && cp -r "$state/logs" "$keep" && say "full logs kept in $keep"
  fi
  return "$status"
}

main() {
  local sub=${1:-}
  shift || true
  case $sub in
    build) cmd_build ;;
    up) cmd_up ;;
    down) [[ -n ${1:-} ]] && state=$1; cmd_down ;;
    logs) [[ -n ${1:-} ]] && state=$1; cmd_logs ;;
    run) cmd_run "$@" ;;
    *) die "usage: $0 build|up|down [DIR]|logs [DIR]|run -- COMMAND..." ;;
  esac
}
main "$@"
