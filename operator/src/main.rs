//! `veche-operator`: `crd` prints the CustomResourceDefinitions, `run` runs the
//! controllers (behind a leader Lease) with the probe and metrics server.

use clap::{Parser, Subcommand};
use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::events::Reporter;
use operator::controller::{self, Context, SystemEnvironment};
use operator::leader::{Elector, Timing};
use operator::telemetry::{self, Health};
use process::LogFormat;
use std::net::SocketAddr;
use std::sync::Arc;

/// `--version`: the release and the commit it was built from (stamped by build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("VECHE_GIT_COMMIT"), ")");

/// The Veche operator: Platform and ServiceDeployment, reconciled into a running backend.
#[derive(Parser)]
#[command(version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (for `kubectl apply -f -`), or write
    /// them as files into directories.
    Crd {
        /// Write `platform.yaml` and `servicedeployment.yaml` into this directory instead
        /// (repeatable).
        #[arg(long)]
        write: Vec<std::path::PathBuf>,
    },
    /// Run the controllers against the cluster of the current kubeconfig or the pod's
    /// service account.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "VECHE_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the probe and metrics server.
    #[arg(long, env = "VECHE_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Reconciles each controller runs at once (0: no limit). Bounds memory and API load
    /// when many objects change together.
    #[arg(long, env = "VECHE_OPERATOR_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
    /// Log format.
    #[arg(long, env = "VECHE_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Elect a leader through a Lease, so that several replicas are safe.
    #[arg(long, env = "VECHE_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "VECHE_OPERATOR_LEASE_NAME", default_value = "veche-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity in the Lease and in Events (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { write } => {
            let files = operator::crd::crd_yaml()?;
            if write.is_empty() {
                for (_, yaml) in &files {
                    print!("---\n{yaml}");
                }
            }
            for dir in write {
                std::fs::create_dir_all(&dir)?;
                for (name, yaml) in &files {
                    std::fs::write(dir.join(name), yaml)?;
                }
            }
            Ok(())
        }
        Command::Run(args) => run(args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    process::init_logs(args.log_format, "info,kube=warn");
    let client = kube::Client::try_default().await?;
    let health = Health::default();

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, "probe and metrics server");
    let shutdown = process::shutdown_signal().shared();
    let server = axum::serve(listener, telemetry::router(health.clone())).with_graceful_shutdown(shutdown.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "probe server failed");
        }
    });

    let identity = args.identity.unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "veche-operator".into());
        format!("{host}-{}", std::process::id())
    });
    let reporter = Reporter { controller: "veche-operator".into(), instance: Some(identity.clone()) };
    let ctx = Arc::new(Context::new(client.clone(), reporter, Box::new(SystemEnvironment)));

    let elector = args.leader_election.then(|| {
        let ns = args.lease_namespace.clone().unwrap_or_else(|| "default".into());
        Elector::new(
            Api::<Lease>::namespaced(client.clone(), &ns),
            args.lease_name.clone(),
            identity.clone(),
            Timing::default(),
        )
    });

    if let Some(elector) = &elector {
        // A standby is ready: it serves its purpose by waiting.
        health.set_ready(true);
        tracing::info!(%identity, "waiting for the leader Lease");
        tokio::select! {
            _ = elector.acquire() => {}
            _ = shutdown.clone() => {
                server.await.ok();
                return Ok(());
            }
        }
    }
    metrics::gauge!("veche_operator_leader").set(1.0);
    health.set_ready(true);
    tracing::info!(namespace = args.namespace.as_deref().unwrap_or("(all)"), "controllers starting");

    let controllers = controller::run(client.clone(), args.namespace.clone(), args.concurrency, ctx, shutdown.clone());
    let lost = async {
        match &elector {
            Some(elector) => elector.keep().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        _ = controllers => Ok(()),
        _ = lost => Err(anyhow::anyhow!("lost leadership; exiting so that a restart rejoins the election")),
    };
    metrics::gauge!("veche_operator_leader").set(0.0);
    if let Some(elector) = &elector {
        elector.release().await;
    }
    server.await.ok();
    outcome
}
