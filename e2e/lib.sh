# Shell helpers of the end-to-end control plane (cluster.sh) and its real node (node.sh),
# sourced by both after tools/versions.env. They expect `state` (the cluster's state
# directory, with logs/ and pids/), and `say` and `die` functions that name the caller.

# The link flags of every Go tool built here: stripped, and stamped with the real versions
# (`kubectl version`, Helm's `.Capabilities` and chart `kubeVersion` checks see them).
kube_minor=${KUBERNETES_VERSION#v1.}
kube_minor=${kube_minor%%.*}
ldflags=(
  -s -w
  -X "k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  -X "k8s.io/component-base/version.gitMajor=1"
  -X "k8s.io/component-base/version.gitMinor=$kube_minor"
  -X "k8s.io/component-base/version.gitTreeState=clean"
  -X "k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  -X "k8s.io/client-go/pkg/version.gitMajor=1"
  -X "k8s.io/client-go/pkg/version.gitMinor=$kube_minor"
  -X "k8s.io/client-go/pkg/version.gitTreeState=clean"
  -X "helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  -X "helm.sh/helm/v3/internal/version.gitTreeState=clean"
  -X "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  -X "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kube_minor"
  -X "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  -X "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor"
)

# N free TCP ports on 127.0.0.1 (bound and released at once; the small race is accepted).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Starts a component in its own session (so it outlives `up`), logging to logs/NAME.log.
start() {
  local name=$1
  shift
  say "starting $name"
  setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/pids/$name"
}

alive() { kill -0 "$(cat "$state/pids/$1")" 2>/dev/null; }

# wait_for WHAT SECONDS COMPONENT CMD...: retries CMD until it succeeds; fails early if
# COMPONENT died, and then shows the tail of its log.
wait_for() {
  local what=$1 limit=$2 component=$3
  shift 3
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$component"; then
      tail -n 40 "$state/logs/$component.log" >&2 || true
      die "$component exited while waiting for $what"
    fi
    ((SECONDS < deadline)) || { tail -n 40 "$state/logs/$component.log" >&2 || true; die "timed out after ${limit}s waiting for $what"; }
    sleep 0.5
  done
  say "$what: ok"
}

# issue NAME SUBJECT EXTENSIONS: a key and certificate signed by the cluster's CA, in pki/.
issue() {
  local pki=$state/pki
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null
  openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
}

# What a client certificate may be used for.
CLIENT_CERT="keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

# kubeconfig NAME: writes $state/NAME.kubeconfig for the client certificate NAME.
kubeconfig() {
  cat >"$state/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: veche-e2e
  cluster:
    server: https://127.0.0.1:$(cat "$state/apiserver-port")
    certificate-authority: $state/pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $state/pki/$1.crt
    client-key: $state/pki/$1.key
contexts:
- name: veche-e2e
  context: {cluster: veche-e2e, user: $1, namespace: default}
current-context: veche-e2e
KC
}
