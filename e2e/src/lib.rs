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
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

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
