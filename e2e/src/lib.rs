//! Helpers for the end-to-end tests: a client of the test control plane that
//! `e2e/cluster.sh` starts, the kubectl and helm built with it, unique namespaces, and
//! polling with a deadline.
//!
//! The tests never fall back to `~/.kube/config` or `$KUBECONFIG`: they talk only to the
//! cluster named by `VECHE_E2E_KUBECONFIG`, which `cluster.sh run` sets, and fail when it
//! is missing rather than skip.

use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
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
