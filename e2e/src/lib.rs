//! Helpers for the end-to-end tests: a client of the test control plane that
//! `e2e/cluster.sh` starts, the kubectl and helm built with it, unique namespaces, and
//! polling with a deadline.
//!
//! The tests never fall back to `~/.kube/config` or `$KUBECONFIG`: they talk only to the
//! cluster named by `VECHE_E2E_KUBECONFIG`, which `cluster.sh run` sets, and fail when it
//! is missing rather than skip.

use std::ffi::OsStr;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};
use tokio::sync::OnceCell;

/// The kubeconfig of the test control plane (set by `e2e/cluster.sh run` and `up`).
pub const KUBECONFIG_ENV: &str = "VECHE_E2E_KUBECONFIG";
/// The directory holding the kubectl, helm and control-plane binaries of that cluster.
pub const BIN_ENV: &str = "VECHE_E2E_BIN";

const HOW: &str = "these tests need the test control plane: run them as\n\n    \
    e2e/cluster.sh run -- cargo test -p veche-e2e --features cluster\n\n\
    or `eval \"$(e2e/cluster.sh up)\"` once and then cargo test (see e2e/README.md)";

/// The test control plane: a client for it, and its kubectl and helm.
pub struct Cluster {
    pub client: Client,
    kubeconfig: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    /// Connects to the test control plane; panics with instructions when there is none.
    pub async fn connect() -> Cluster {
        match Self::try_connect().await {
            Ok(cluster) => cluster,
            Err(err) => panic!("no test cluster: {err:#}\n\n{HOW}"),
        }
    }

    async fn try_connect() -> Result<Cluster> {
        let kubeconfig = PathBuf::from(env(KUBECONFIG_ENV)?);
        let bin = PathBuf::from(env(BIN_ENV)?);
        let parsed = Kubeconfig::read_from(&kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
        let config = Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
            .await
            .context("loading the kubeconfig")?;
        let client = Client::try_from(config).context("building the client")?;
        client
            .apiserver_version()
            .await
            .with_context(|| format!("reaching the API server of {}", kubeconfig.display()))?;
        Ok(Cluster { client, kubeconfig, bin })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A command for one of the cluster's tools (kubectl, helm), aimed at the test cluster.
    pub fn tool(&self, name: &str) -> Command {
        // helm keeps state under these; a test must not touch the user's. The cluster's
        // state directory (the kubeconfig's) goes away with the cluster.
        let state = self.kubeconfig.parent().unwrap_or(Path::new("."));
        let mut cmd = Command::new(self.bin.join(name));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", state.join("helm/cache"))
            .env("HELM_CONFIG_HOME", state.join("helm/config"))
            .env("HELM_DATA_HOME", state.join("helm/data"));
        cmd
    }

    /// Runs kubectl with `args`; returns its output whatever its exit status.
    pub fn kubectl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.tool("kubectl").args(args))
    }

    /// Runs kubectl with `args` and returns its stdout; panics with its stderr on failure.
    pub fn kubectl_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        ok(self.tool("kubectl").args(args))
    }

    /// Runs helm with `args` and returns its stdout; panics with its stderr on failure.
    pub fn helm_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        ok(self.tool("helm").args(args))
    }

    /// `kubectl apply -f -` of `manifest` (YAML, several documents allowed); panics with
    /// kubectl's stderr on failure.
    pub fn apply(&self, manifest: &str) -> String {
        let mut cmd = self.tool("kubectl");
        cmd.args(["apply", "-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("running {}: {e}", describe(&cmd)));
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(manifest.as_bytes()).expect("writing the manifest to kubectl");
        }
        let out = child.wait_with_output().expect("waiting for kubectl");
        if !out.status.success() {
            panic!(
                "kubectl apply failed ({}):\n{}\n--- manifest ---\n{manifest}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What RBAC answers for `user` (e.g. `system:serviceaccount:NS:NAME`), asked the way
    /// a user asks: `kubectl auth can-i VERB RESOURCE -n NAMESPACE --as USER`. A resource
    /// `RESOURCE/SUB` (`platforms.veche.io/status`) asks about the subresource.
    pub fn can_i(&self, user: &str, verb: &str, resource: &str, namespace: &str) -> bool {
        let mut args = vec!["auth", "can-i", verb];
        match resource.split_once('/') {
            Some((resource, sub)) => args.extend([resource, "--subresource", sub]),
            None => args.push(resource),
        }
        args.extend(["-n", namespace, "--as", user]);
        let out = self.kubectl(&args);
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // can-i exits 0 for yes and 1 for no; anything else is an error.
        match (out.status.code(), answer.as_str()) {
            (Some(0), "yes") => true,
            (Some(1), "no") => false,
            _ => panic!(
                "kubectl auth can-i {verb} {resource} -n {namespace} --as {user}: {} {answer:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Writes a kubeconfig that authenticates as ServiceAccount `NAMESPACE/NAME` with a
    /// bound token from the TokenRequest API (`kubectl create token`, one hour), so that a
    /// program run outside the cluster (the operator) has exactly that account's RBAC.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let token = self.kubectl_ok(["create", "token", name, "-n", namespace, "--duration=1h"]);
        let admin = Kubeconfig::read_from(&self.kubeconfig).expect("reading the admin kubeconfig");
        let cluster = admin.clusters.first().and_then(|c| c.cluster.as_ref()).expect("a cluster in the kubeconfig");
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "veche-e2e", "cluster": {
                "server": cluster.server,
                "certificate-authority": cluster.certificate_authority,
            }}],
            "users": [{ "name": name, "user": { "token": token.trim() } }],
            "contexts": [{ "name": "veche-e2e", "context": {
                "cluster": "veche-e2e", "user": name, "namespace": namespace
            }}],
            "current-context": "veche-e2e",
        });
        let dir = self.kubeconfig.parent().unwrap_or(Path::new(".")).join("service-accounts");
        std::fs::create_dir_all(&dir).expect("creating the service-account kubeconfig directory");
        let path = dir.join(format!("{namespace}.{name}.kubeconfig"));
        std::fs::write(&path, config.to_string()).expect("writing the service-account kubeconfig");
        path
    }

    /// A client that acts as ServiceAccount `NAMESPACE/NAME` (see
    /// [`Cluster::service_account_kubeconfig`]).
    pub async fn client_as(&self, namespace: &str, name: &str) -> Client {
        let path = self.service_account_kubeconfig(namespace, name);
        let parsed = Kubeconfig::read_from(&path).expect("reading the service-account kubeconfig");
        let config = Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
            .await
            .expect("loading the service-account kubeconfig");
        Client::try_from(config).expect("building the service-account client")
    }

    /// Waits until Deployment `NAMESPACE/NAME` is Available with exactly `replicas`
    /// available replicas (kwok makes the pods Running and Ready).
    pub async fn wait_available(&self, namespace: &str, name: &str, replicas: i32, timeout: Duration) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("deployment {namespace}/{name} Available with {replicas} replicas");
        eventually(&what, timeout, || async {
            let status = api.get(name).await?.status.unwrap_or_default();
            let available =
                status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Available" && c.status == "True");
            let count = status.available_replicas.unwrap_or(0);
            anyhow::ensure!(available && count == replicas, "Available={available}, availableReplicas={count}");
            Ok(Some(()))
        })
        .await
    }

    /// Applies the operator's CRDs (`crds/`) once per test process and waits until they
    /// are Established.
    pub async fn install_crds(&self) {
        static APPLIED: OnceCell<()> = OnceCell::const_new();
        APPLIED
            .get_or_init(|| async {
                self.kubectl_ok(["apply", "--server-side", "--force-conflicts", "-f", &repo("crds")]);
                let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
                for name in ["platforms.veche.io", "servicedeployments.veche.io"] {
                    let established = await_condition(api.clone(), name, conditions::is_crd_established());
                    tokio::time::timeout(Duration::from_secs(60), established)
                        .await
                        .unwrap_or_else(|_| panic!("{name} not established in time"))
                        .expect("watching the crd");
                }
            })
            .await;
    }

    /// Applies prometheus-operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs
    /// (see [`prometheus_operator_crds`]) once per test process and waits until they are
    /// Established, so that the API server validates the chart's monitoring objects
    /// against their real schemas.
    pub async fn install_monitoring_crds(&self) {
        static APPLIED: OnceCell<()> = OnceCell::const_new();
        APPLIED
            .get_or_init(|| async {
                let dir = prometheus_operator_crds();
                let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
                for plural in MONITORING_CRDS {
                    let file = dir.join(format!("monitoring.coreos.com_{plural}.yaml"));
                    // Server-side: these schemas are larger than the annotation a
                    // client-side apply keeps.
                    self.kubectl_ok(["apply", "--server-side", "--force-conflicts", "-f", &file.to_string_lossy()]);
                    let name = format!("{plural}.monitoring.coreos.com");
                    let established = await_condition(api.clone(), &name, conditions::is_crd_established());
                    tokio::time::timeout(Duration::from_secs(60), established)
                        .await
                        .unwrap_or_else(|_| panic!("{name} not established in time"))
                        .expect("watching the crd");
                }
            })
            .await;
    }

    /// Deletes namespace `name` without waiting for its contents to go.
    /// Installs the operator's chart for `namespace` alone (`watchNamespace`, so its RBAC
    /// is a RoleBinding there) with no replicas, for a test that runs the operator as a
    /// process with the chart's ServiceAccount; returns the release's name. Release names
    /// are unique per namespace because the ClusterRole is named after the release.
    pub fn install_operator_chart(&self, namespace: &str) -> String {
        let release = format!("veche-operator-{namespace}");
        self.helm_ok([
            "install",
            &release,
            &repo("charts/veche-operator"),
            "-n",
            namespace,
            "--set",
            &format!("watchNamespace={namespace}"),
            "--set",
            "replicaCount=0",
            "--wait",
        ]);
        release
    }

    pub fn delete_namespace(&self, name: &str) {
        self.kubectl_ok(["delete", "namespace", name, "--wait=false"]);
    }

    /// Creates a namespace with a name unique to this run, `PREFIX-<suffix>`.
    pub async fn namespace(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name = format!("{prefix}-{:x}{}", nanos % 0xfffff, NEXT.fetch_add(1, Ordering::Relaxed));
        let ns =
            Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
    }
}

/// The operator binary the tests run: `$VECHE_OPERATOR_BIN`, else the `veche-operator`
/// that cargo built next to this test (scripts/test builds it first).
pub fn operator_bin() -> PathBuf {
    if let Ok(path) = std::env::var(OPERATOR_BIN_ENV) {
        return PathBuf::from(path);
    }
    // A test runs as target/<profile>/deps/<name>-<hash>; binaries sit in target/<profile>.
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe.parent().and_then(Path::parent).map(|dir| dir.join("veche-operator"));
    match bin {
        Some(bin) if bin.is_file() => bin,
        _ => panic!(
            "no veche-operator binary next to {}: run `cargo build -p veche-operator` first, or set {OPERATOR_BIN_ENV}",
            exe.display()
        ),
    }
}

/// Overrides where the operator binary is found (see [`operator_bin`]).
pub const OPERATOR_BIN_ENV: &str = "VECHE_OPERATOR_BIN";

/// A `veche-operator run` process outside the cluster, as a platform engineer might run
/// it: with a kubeconfig (a ServiceAccount's, so it has exactly the chart's RBAC),
/// watching one namespace and electing its leader through a Lease there. Its log goes
/// to a file and is printed when a test fails; the process is killed on drop.
pub struct Operator {
    child: Child,
    pub identity: String,
    log: PathBuf,
    _dir: TempDir,
}

impl Operator {
    /// Starts the operator as `identity`, watching `namespace` with `kubeconfig`.
    pub fn start(kubeconfig: &Path, namespace: &str, identity: &str) -> Operator {
        let dir = TempDir::new("operator");
        let log = dir.path().join(format!("{identity}.log"));
        let out = std::fs::File::create(&log).expect("creating the operator log");
        let err = out.try_clone().expect("cloning the log handle");
        let mut cmd = Command::new(operator_bin());
        cmd.args(["run", "--namespace", namespace, "--lease-namespace", namespace, "--identity", identity])
            .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", describe(&cmd)));
        Operator { child, identity: identity.to_string(), log, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the operator logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no graceful shutdown, no release of the Lease.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// CPU time used so far (user and system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and
        // 15th fields of the whole line, in clock ticks (100 per second on Linux).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    /// The peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of operator {} ---", self.identity);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A stand-in for a cluster's storage provisioner (this control plane has none): while
/// it lives, every pending PersistentVolumeClaim in its namespace gets a hostPath
/// PersistentVolume bound to it, so pods with volumes get scheduled. Stops on drop.
pub struct Provisioner(tokio::task::JoinHandle<()>);

impl Drop for Provisioner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Cluster {
    pub fn provision_volumes(&self, namespace: &str) -> Provisioner {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let namespace = namespace.to_string();
        // A watch, not a poll: the volume should exist before the pod that needs it is
        // scheduled, or the scheduler parks the pod as unschedulable for a while.
        Provisioner(tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(claims, watcher::Config::default()).applied_objects());
            while let Some(event) = events.next().await {
                let Ok(claim) = event else { continue };
                if claim.spec.as_ref().is_some_and(|s| s.volume_name.is_none()) {
                    // Already made (and not bound yet) is fine.
                    let _ = volumes.create(&PostParams::default(), &volume_for(&namespace, &claim)).await;
                }
            }
        }))
    }
}

/// Where the volume of `claim` in `namespace` lives on this machine (a real node's pods
/// write there; a test may read what they wrote, as an operator reads a disk).
pub fn volume_path(namespace: &str, claim: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/veche-e2e-volumes/{namespace}/{claim}"))
}

/// A hostPath volume pre-bound to `claim`, of its size, access modes and class. Its
/// directory is made here, writable by any user, as local-path provisioners make theirs:
/// the pods run as a non-root user, and hostPath volumes take no fsGroup.
fn volume_for(namespace: &str, claim: &PersistentVolumeClaim) -> PersistentVolume {
    use std::os::unix::fs::PermissionsExt as _;
    let name = claim.metadata.name.clone().unwrap_or_default();
    let path = volume_path(namespace, &name);
    if std::fs::create_dir_all(&path).is_ok() {
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777));
    }
    let spec = claim.spec.clone().unwrap_or_default();
    let size = spec.resources.and_then(|r| r.requests).and_then(|r| r.get("storage").cloned());
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("{namespace}-{name}") },
        "spec": {
            "capacity": { "storage": size.map_or("1Gi".to_string(), |q| q.0) },
            "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "storageClassName": spec.storage_class_name.unwrap_or_default(),
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": { "path": path, "type": "DirectoryOrCreate" },
            "claimRef": { "namespace": namespace, "name": name, "uid": claim.metadata.uid },
        }
    }))
    .expect("a PersistentVolume literal")
}

/// The prometheus-operator release whose CRDs the chart's monitoring objects are checked
/// against: the monitoring.coreos.com/v1 schemas kube-prometheus-stack installs.
pub const PROMETHEUS_OPERATOR_VERSION: &str = "v0.85.0";

/// The CRDs of the objects the chart makes (plural names).
const MONITORING_CRDS: [&str; 3] = ["servicemonitors", "podmonitors", "prometheusrules"];

/// A directory holding prometheus-operator's CRD manifests
/// (`monitoring.coreos.com_<plural>.yaml`) at [`PROMETHEUS_OPERATOR_VERSION`].
///
/// They come from its Go module (`example/prometheus-operator-crd/` of
/// github.com/prometheus-operator/prometheus-operator) through the Go module proxy, as
/// the control plane's binaries do: `go mod download -json` fetches and verifies the
/// module (against the checksum database) and prints where it is. The manifests are then
/// copied to `$VECHE_CACHE` (default `$HOME/.cache/veche`)
/// `/prometheus-operator-crds/<version>/`, so later runs need neither go nor the network.
pub fn prometheus_operator_crds() -> PathBuf {
    let cache = std::env::var_os("VECHE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is not set")).join(".cache/veche"));
    let dir = cache.join("prometheus-operator-crds").join(PROMETHEUS_OPERATOR_VERSION);
    let complete =
        |dir: &Path| MONITORING_CRDS.iter().all(|p| dir.join(format!("monitoring.coreos.com_{p}.yaml")).is_file());
    if complete(&dir) {
        return dir;
    }
    let module = format!("github.com/prometheus-operator/prometheus-operator@{PROMETHEUS_OPERATOR_VERSION}");
    // Outside any Go module, so no go.mod is read or changed.
    let scratch = TempDir::new("gomod");
    let out = ok(Command::new("go").args(["mod", "download", "-json", &module]).current_dir(scratch.path()));
    let info: serde_json::Value = serde_json::from_str(&out).expect("go mod download -json prints JSON");
    let source = match info.get("Dir").and_then(|d| d.as_str()) {
        Some(module_dir) => Path::new(module_dir).join("example/prometheus-operator-crd"),
        None => panic!("go mod download {module}: no Dir in {out}"),
    };
    // Copied next to the cache and renamed into place: two test processes at once never
    // see half a directory.
    let partial = cache.join("prometheus-operator-crds").join(format!(".{PROMETHEUS_OPERATOR_VERSION}.{}", unique()));
    std::fs::create_dir_all(&partial).unwrap_or_else(|e| panic!("creating {}: {e}", partial.display()));
    for entry in std::fs::read_dir(&source).unwrap_or_else(|e| panic!("reading {}: {e}", source.display())) {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let to = partial.join(path.file_name().expect("a file name"));
            std::fs::copy(&path, &to).unwrap_or_else(|e| panic!("copying {}: {e}", path.display()));
        }
    }
    assert!(complete(&partial), "{} lacks some of {MONITORING_CRDS:?}", source.display());
    if std::fs::rename(&partial, &dir).is_err() {
        // Another process got there first; its copy is the same.
        let _ = std::fs::remove_dir_all(&partial);
    }
    assert!(complete(&dir), "{} is incomplete", dir.display());
    dir
}

/// The absolute path of `path` in this repository.
pub fn repo(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    p.to_str().expect("utf-8 path").to_string()
}

/// A short suffix unique within this process and unlikely to repeat across runs.
fn unique() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{:x}{}", nanos % 0xfffff, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("veche-e2e-{prefix}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => bail!("{name} is not set"),
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", describe(cmd)))
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    if !out.status.success() {
        panic!(
            "{} failed ({}):\n{}{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `timeout` naming
/// `what` and the last state `check` reported through its `Err`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => "condition not met".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
