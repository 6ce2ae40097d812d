#!/usr/bin/env bash
# A real Kubernetes node for the end-to-end tests: kubelet and kube-proxy (from the same
# k8s.io/kubernetes module as the control plane), containerd 2 with Debian's runc, the
# CNI bridge plugin from Debian, CoreDNS for cluster names, and a pause image built here.
# Pods on it run real containers from images imported as OCI archives (no registry).
#
#   e2e/node.sh build                    build the node's binaries unless cached; prints
#                                        their directory
#   e2e/node.sh up STATE BIN [IMAGE...]  start the node against the control plane whose
#                                        state is STATE (cluster.sh up), importing each
#                                        OCI archive IMAGE into the node's runtime
#   e2e/node.sh down STATE               stop it: every container, the node's processes,
#                                        mounts, network and rules
#
# cluster.sh calls these when VECHE_CLUSTER_NODE=real (then instead of kwok's fake node).
# The node is `veche-node-0`; pods get addresses on the bridge cni0 (10.88.0.0/16), whose
# host address 10.88.0.1 is the node's address and the cluster DNS server. One real node
# per machine at a time: the bridge and its address are machine-wide.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"
cache="${VECHE_CLUSTER_CACHE:-$HOME/.cache/veche/cluster}"
# shellcheck source=tools/versions.env
. "$tools/versions.env"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=../scripts/debian.sh
. "$here/../scripts/debian.sh"

NODE=veche-node-0
BRIDGE=cni0
POD_CIDR=10.88.0.0/16
NODE_IP=10.88.0.1
PAUSE_IMAGE=registry.k8s.io/pause:3.10

say() { printf 'node: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- build

# What the node runs from Debian: the OCI runtime, CNI plugins, the packet filter tools
# kube-proxy drives, and what builds the pause image.
debian_parts() {
  need_debian runc runc
  need_debian /usr/lib/cni/bridge containernetworking-plugins
  need_debian iptables iptables
  need_debian conntrack conntrack
  need_debian umoci umoci
  need_debian jq jq
  need_debian /usr/lib/x86_64-linux-gnu/libc.a libc6-dev
}

build_flags=(-mod=readonly -buildvcs=false -trimpath)
# containerd without the snapshotters that need C libraries or kernel features we skip.
containerd_tags=no_btrfs,no_devmapper,no_zfs,no_aufs

bin_dir() {
  local key
  key=$({
    cat "$tools/versions.env" "$tools/go.mod" "$tools/go.sum" \
      "$tools/node/go.mod" "$tools/node/go.sum" "$tools/dns/go.mod" "$tools/dns/go.sum" "$tools/dns/main.go"
    go env GOVERSION GOOS GOARCH
    printf '%s\n' "${build_flags[@]}" "${ldflags[@]}" "$containerd_tags" "$PAUSE_IMAGE"
  } | sha256sum | cut -c1-16)
  echo "$cache/node-$key"
}

cmd_build() {
  command -v go >/dev/null || die "go is not installed"
  debian_parts
  local dir b missing=0
  dir=$(bin_dir)
  for b in kubelet kube-proxy containerd containerd-shim-runc-v2 ctr coredns pause.oci.tar; do
    [[ -e $dir/$b ]] || missing=1
  done
  if ((missing)); then
    say "building the node into $dir (a cold build takes several minutes on 2 cores)"
    local started=$SECONDS tmp
    mkdir -p "$cache"
    tmp=$(mktemp -d "$dir.partial.XXXXXX")
    (cd "$tools" && CGO_ENABLED=0 go build "${build_flags[@]}" -ldflags "${ldflags[*]}" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy) || { rm -rf "$tmp"; die "go build (kubelet) failed"; }
    (cd "$tools/node" && CGO_ENABLED=0 go build "${build_flags[@]}" -tags "$containerd_tags" -ldflags "-s -w" -o "$tmp/" \
      github.com/containerd/containerd/v2/cmd/containerd \
      github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
      github.com/containerd/containerd/v2/cmd/ctr) || { rm -rf "$tmp"; die "go build (containerd) failed"; }
    (cd "$tools/dns" && CGO_ENABLED=0 go build "${build_flags[@]}" -ldflags "-s -w" -o "$tmp/coredns" .) ||
      { rm -rf "$tmp"; die "go build (coredns) failed"; }
    build_pause "$tmp" || { rm -rf "$tmp"; die "building the pause image failed"; }
    rm -rf "$dir" && mv -T "$tmp" "$dir"
    say "built in $((SECONDS - started))s"
  fi
  echo "$dir"
}

# The pod sandbox image: Kubernetes' own pause.c (from the module the kubelet is built
# from), static, in a one-layer image, so nothing is pulled from a registry.
build_pause() { # DIR
  local dir=$1 work src
  src=$(cd "$tools" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  work=$(mktemp -d)
  mkdir -p "$work/root"
  gcc -Os -static -DVERSION="${PAUSE_IMAGE##*:}" -o "$work/root/pause" "$src" && strip "$work/root/pause"
  tar --create --file "$work/layer.tar" --directory "$work/root" --numeric-owner --owner=0 --group=0 pause
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:pause"
  umoci raw add-layer --image "$work/oci:pause" "$work/layer.tar"
  umoci config --image "$work/oci:pause" --no-history --config.user 65535:65535 --config.entrypoint /pause
  umoci gc --layout "$work/oci"
  jq --arg ref "$PAUSE_IMAGE" '.manifests[0].annotations = {"io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": "pause"}' \
    "$work/oci/index.json" >"$work/index.json" && mv "$work/index.json" "$work/oci/index.json"
  tar --create --file "$dir/pause.oci.tar" --directory "$work/oci" .
  rm -rf "$work"
}

# ---------------------------------------------------------------------------- up

# resolves NAME: the node's DNS server answers NAME with an address (one A query over UDP).
resolves() {
  python3 - "$1" "$NODE_IP" <<'PY'
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
query = struct.pack(">HHHHHH", 0x5645, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(query, (server, 53))
reply = s.recv(512)
answers = struct.unpack(">H", reply[6:8])[0]
sys.exit(0 if reply[3] & 0x0F == 0 and answers > 0 else 1)
PY
}

cmd_up() {
  local bin=$1 node_bin
  shift
  node_bin=$(cmd_build)
  [[ -d /sys/class/net/$BRIDGE ]] && die "$BRIDGE exists: another real node is up on this machine (e2e/node.sh down STATE)"
  local node=$state/node
  mkdir -p "$node"/{containerd,cni,kubelet,pod-logs}
  echo "$node_bin" >"$node/bin"
  local kubectl=("$bin/kubectl" --kubeconfig="$state/admin.kubeconfig")

  # The kernel side: forwarding, bridged traffic through the packet filter (Services),
  # and the bridge with the node's address, made now so CoreDNS can bind to it.
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up

  # Identities: the kubelet as its node, kube-proxy, CoreDNS (a role of its own: read
  # Services, EndpointSlices, Namespaces and Pods), and the API server's client
  # certificate for kubelets (cluster.sh issues it) bound to system:kubelet-api-admin.
  issue kubelet "/O=system:nodes/CN=system:node:$NODE" "$CLIENT_CERT"
  issue kube-proxy "/CN=system:kube-proxy" "$CLIENT_CERT"
  issue coredns "/CN=veche-e2e-coredns" "$CLIENT_CERT"
  kubeconfig kubelet
  kubeconfig kube-proxy
  kubeconfig coredns
  "${kubectl[@]}" apply -f - >/dev/null <<RBAC
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "veche-e2e:coredns"}
rules:
- {apiGroups: [""], resources: [services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "veche-e2e:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "veche-e2e:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: veche-e2e-coredns}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "veche-e2e:apiserver-kubelet"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}]
RBAC

  # containerd: state under the cluster's directory, Debian's runc, cgroupfs (no systemd
  # here), the CNI plugins from Debian, and the locally built pause image pinned.
  local sock=$node/containerd/containerd.sock
  cat >"$node/containerd/config.toml" <<TOML
version = 3
root = "$node/containerd/root"
state = "$node/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins."io.containerd.cri.v1.runtime"]
  # Never below containerd's own OOM score: lowering it needs CAP_SYS_RESOURCE, which
  # sandboxes like our CI's withhold (runc then fails every pod sandbox, the kubelet
  # asking -998 for it, with "can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$node/cni"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
TOML
  start containerd env PATH="$node_bin:$PATH" "$node_bin/containerd" --config "$node/containerd/config.toml"
  local ctr=("$node_bin/ctr" --address "$sock" --namespace k8s.io)
  wait_for "containerd" 60 containerd "${ctr[@]}" version
  local archive
  for archive in "$node_bin/pause.oci.tar" "$@"; do
    "${ctr[@]}" images import --no-unpack=false --snapshotter overlayfs "$archive" >/dev/null ||
      die "importing $archive into containerd failed"
    say "imported $(basename "$archive")"
  done

  # Pods join the bridge; their addresses come from POD_CIDR, their default route is the
  # node (Service addresses are routed there, to kube-proxy's rules); traffic leaving the
  # pod network is masqueraded; a pod can reach itself through its Service (hairpin).
  cat >"$node/cni/10-veche.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "veche-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$node/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI

  # CoreDNS on the node's address: <service>.<namespace>.svc.cluster.local from the API.
  local kubelet_port kubelet_healthz proxy_healthz proxy_metrics
  read -r kubelet_port kubelet_healthz proxy_healthz proxy_metrics <<<"$(free_ports 4)"
  cat >"$node/Corefile" <<DNS
.:53 {
  bind $NODE_IP
  errors
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $state/coredns.kubeconfig veche-e2e
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
}
DNS
  start coredns "$node_bin/coredns" -conf "$node/Corefile"

  # kube-proxy: Services' virtual addresses as iptables rules.
  cat >"$node/kube-proxy.yaml" <<PROXY
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
PROXY
  start kube-proxy "$node_bin/kube-proxy" --config="$node/kube-proxy.yaml"

  # The kubelet: serves the API server (logs, port-forward) on the node's address, trusts
  # only the cluster's CA, asks the API server to authorize each caller (Webhook).
  cat >"$node/kubelet.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$sock
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: /etc/resolv.conf
failSwapOn: false
podLogsDir: $node/pod-logs
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
KUBELET
  start kubelet "$node_bin/kubelet" --config="$node/kubelet.yaml" --kubeconfig="$state/kubelet.kubeconfig" \
    --hostname-override="$NODE" --node-ip="$NODE_IP" --root-dir="$node/kubelet" \
    --cert-dir="$node/kubelet/pki" --v=1
  wait_for "node $NODE Ready" 120 kubelet \
    "${kubectl[@]}" wait --for=condition=Ready "node/$NODE" --timeout=2s
  wait_for "cluster DNS (kubernetes.default)" 30 coredns resolves kubernetes.default.svc.cluster.local
  alive kube-proxy || { tail -n 40 "$state/logs/kube-proxy.log" >&2; die "kube-proxy exited"; }
  say "node $NODE up: containerd, kubelet, kube-proxy, CoreDNS"
}

# ---------------------------------------------------------------------------- down

cmd_down() {
  local node=$state/node
  [[ -d $node ]] || return 0
  local node_bin pid name
  node_bin=$(cat "$node/bin" 2>/dev/null || true)
  stop() { # NAME: TERM, then KILL what lingers
    [[ -f $state/pids/$1 ]] || return 0
    pid=$(cat "$state/pids/$1")
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  }
  stop kubelet
  # Every container the node ran: the processes in the kubelet's pod cgroups, then the
  # runtime's shims (they carry the node's socket path on their command line).
  local procs
  for procs in $(find /sys/fs/cgroup/pids/kubepods* /sys/fs/cgroup/cpu/kubepods* -name cgroup.procs 2>/dev/null); do
    { xargs -r kill -KILL <"$procs"; } 2>/dev/null || true
  done
  pkill -KILL -f -- "-address $node/containerd/containerd.sock" 2>/dev/null || true
  for name in kube-proxy coredns containerd; do stop "$name"; done
  # kube-proxy's rules go with it; then the mounts, namespaces, bridge and cgroups left.
  if [[ -x $node_bin/kube-proxy ]]; then
    "$node_bin/kube-proxy" --cleanup --config="$node/kube-proxy.yaml" >/dev/null 2>&1 || true
  fi
  grep -o " $node[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  local ns
  # The pods' network namespaces (what the runtime did not get to remove); one that is
  # still busy stays behind, harmless, rather than stopping the teardown.
  for ns in /run/netns/cni-*; do
    [[ -e $ns ]] || continue
    ip netns delete "${ns##*/}" 2>/dev/null || { umount -l "$ns" 2>/dev/null; rm -f "$ns" 2>/dev/null; } || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  find /sys/fs/cgroup/*/kubepods* -depth -type d -exec rmdir {} \; 2>/dev/null || true
  rm -rf "$node"
  say "node stopped"
}

main() {
  local sub=${1:-}
  shift || true
  case $sub in
    build) cmd_build ;;
    up) (($# >= 2)) || die "usage: $0 up STATE BIN [IMAGE...]"; state=$1; shift; cmd_up "$@" ;;
    down) (($# == 1)) || die "usage: $0 down STATE"; state=$1; cmd_down ;;
    *) die "usage: $0 build | up STATE BIN [IMAGE...] | down STATE" ;;
  esac
}
main "$@"
