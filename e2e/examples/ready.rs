//! How long a Platform takes from `kubectl apply` to `Ready=True`, next to the floor: the
//! same objects (rendered by the operator's own renderer) applied directly with
//! `kubectl apply` until every Deployment is Available. Then the operator's peak memory
//! while it reconciles many Platforms at once.
//!
//! Needs the test control plane; `bench/platform.sh` builds a release operator and runs
//! this under `e2e/cluster.sh run`. Environment: ROUNDS (default 5), PLATFORMS (50),
//! VECHE_OPERATOR_BIN (the operator to measure).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use e2e::{Cluster, Operator, TempDir, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use operator::crd::{Platform, ServiceDeployment};
use operator::render::{platform as render_platform, service as render_service};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(300);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The minimal example's Platform, named `name`.
fn platform_json(name: &str) -> Value {
    json!({
        "apiVersion": "veche.io/v1alpha1",
        "kind": "Platform",
        "metadata": { "name": name },
        "spec": { "database": { "embedded": { "storageSize": "1Gi" } } }
    })
}

/// Every object the operator would create for the Platform `name` in `ns`, minus the
/// ServiceDeployments in between and minus owner references (their owners do not exist
/// here): what a platform engineer would apply by hand to get the same backend.
fn rendered_objects(name: &str, ns: &str) -> anyhow::Result<Vec<Value>> {
    let mut platform: Platform = serde_json::from_value(platform_json(name))?;
    platform.metadata.namespace = Some(ns.into());
    platform.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    let inputs = render_platform::Inputs {
        now: k8s_openapi::jiff::Timestamp::now().as_second(),
        signing_keys: None,
        service_clients: None,
    };
    let objects = render_platform::render(&platform, &inputs, &mut render_platform::SystemEntropy)?;
    let mut out = vec![
        serde_json::to_value(&objects.signing_keys)?,
        serde_json::to_value(&objects.service_clients)?,
        serde_json::to_value(&objects.routes)?,
    ];
    for sd in &objects.services {
        let mut sd: ServiceDeployment = sd.clone();
        sd.metadata.uid = Some("00000000-0000-0000-0000-000000000002".into());
        let s = render_service::render(&platform, &sd)?;
        out.push(serde_json::to_value(&s.service_account)?);
        if let Some(pvc) = &s.pvc {
            out.push(serde_json::to_value(pvc)?);
        }
        out.push(serde_json::to_value(&s.deployment)?);
        out.push(serde_json::to_value(&s.service)?);
        out.push(serde_json::to_value(&s.pdb)?);
        out.push(serde_json::to_value(&s.network_policy)?);
    }
    for object in &mut out {
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("ownerReferences");
        }
    }
    Ok(out)
}

fn write_list(dir: &Path, file: &str, items: Vec<Value>) -> String {
    let path = dir.join(file);
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": items });
    std::fs::write(&path, list.to_string()).expect("writing the manifest");
    path.to_str().expect("utf-8 path").to_string()
}

async fn all_available(api: &Api<Deployment>, count: usize) -> anyhow::Result<Option<()>> {
    let list = api.list(&ListParams::default()).await?;
    let available = list
        .items
        .iter()
        .filter(|d| {
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let s = d.status.clone().unwrap_or_default();
            s.observed_generation == d.metadata.generation && s.available_replicas == Some(want)
        })
        .count();
    ensure!(available == count, "{available}/{count} Deployments available");
    Ok(Some(()))
}

async fn ready_count(api: &Api<Platform>) -> anyhow::Result<usize> {
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|p| {
            let s = p.status.clone().unwrap_or_default();
            s.observed_generation == p.metadata.generation
                && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        })
        .count())
}

async fn controllers_started(operator: &Operator) {
    eventually("the operator's controllers", Duration::from_secs(60), || async {
        Ok(operator.log().contains("controllers starting").then_some(()))
    })
    .await
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds = env_number("ROUNDS", 5);
    let platforms = env_number("PLATFORMS", 50);
    let cluster = Cluster::connect().await;
    cluster.install_crds().await;
    let dir = TempDir::new("bench");
    println!("operator: {}", e2e::operator_bin().display());

    if rounds > 0 {
        apply_to_ready(&cluster, &dir, rounds).await?;
    }
    if platforms > 0 {
        many(&cluster, &dir, platforms).await?;
    }
    Ok(())
}

async fn apply_to_ready(cluster: &Cluster, dir: &TempDir, rounds: usize) -> anyhow::Result<()> {
    println!("\n== apply -> ready, minimal Platform (5 services), {rounds} rounds");
    println!("{:<8} {:>14} {:>14} {:>8}", "round", "floor (ms)", "operator (ms)", "ratio");
    let (mut floors, mut ops) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        // The floor: rendered objects, applied with kubectl, until every Deployment is
        // Available.
        let ns = cluster.namespace("floor").await;
        let _volumes = cluster.provision_volumes(&ns);
        let manifest = write_list(dir.path(), &format!("floor-{round}.json"), rendered_objects("veche", &ns)?);
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
        let started = Instant::now();
        cluster.kubectl_ok(["apply", "-n", &ns, "-f", &manifest]);
        eventually("the floor's Deployments", WAIT, || all_available(&deployments, 5)).await;
        let floor = started.elapsed().as_secs_f64() * 1000.0;
        cluster.delete_namespace(&ns);

        // The operator: a Platform, until Ready=True.
        let ns = cluster.namespace("ready").await;
        let _volumes = cluster.provision_volumes(&ns);
        let operator = Operator::start(cluster.kubeconfig(), &ns, "bench");
        controllers_started(&operator).await;
        let manifest = write_list(dir.path(), &format!("platform-{round}.json"), vec![platform_json("veche")]);
        let api: Api<Platform> = Api::namespaced(cluster.client.clone(), &ns);
        let started = Instant::now();
        cluster.kubectl_ok(["apply", "-n", &ns, "-f", &manifest]);
        eventually("the Platform Ready", WAIT, || async { Ok((ready_count(&api).await? == 1).then_some(())) }).await;
        let op = started.elapsed().as_secs_f64() * 1000.0;
        drop(operator);
        cluster.delete_namespace(&ns);
        println!("{round:<8} {floor:>14.0} {op:>14.0} {:>8.2}", op / floor);
        floors.push(floor);
        ops.push(op);
    }
    let (floor, op) = (median(floors), median(ops));
    let ratio = op / floor;
    println!(
        "{:<8} {floor:>14.0} {op:>14.0} {ratio:>8.2}   target: at most 2x the floor: {}",
        "median",
        if ratio <= 2.0 { "met" } else { "MISSED" }
    );

    Ok(())
}

async fn many(cluster: &Cluster, dir: &TempDir, platforms: usize) -> anyhow::Result<()> {
    println!("\n== peak memory while reconciling {platforms} Platforms at once");
    let ns = cluster.namespace("many").await;
    let _volumes = cluster.provision_volumes(&ns);
    let operator = Operator::start(cluster.kubeconfig(), &ns, "bench");
    controllers_started(&operator).await;
    let before = operator.peak_rss_kib();
    let items = (1..=platforms).map(|i| platform_json(&format!("p{i:03}"))).collect();
    let manifest = write_list(dir.path(), "many.json", items);
    let api: Api<Platform> = Api::namespaced(cluster.client.clone(), &ns);
    let started = Instant::now();
    cluster.kubectl_ok(["apply", "-n", &ns, "-f", &manifest]);
    eventually(&format!("{platforms} Platforms Ready"), WAIT, || async {
        let ready = ready_count(&api).await?;
        ensure!(ready == platforms, "{ready}/{platforms} Ready");
        Ok(Some(()))
    })
    .await;
    let all_ready = started.elapsed().as_secs_f64();
    // Settle: late status writes and requeues happen after the last Ready.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let peak = operator.peak_rss_kib() as f64 / 1024.0;
    println!("{:<44} {:>10.1} MiB", "peak RSS before any Platform", before as f64 / 1024.0);
    println!(
        "{:<44} {:>10.1} MiB   target: under 30 MiB: {}",
        format!("peak RSS, {platforms} Platforms to Ready"),
        peak,
        if peak < 30.0 { "met" } else { "MISSED" }
    );
    println!("{:<44} {:>10.1} s", format!("time until all {platforms} Ready"), all_ready);
    println!("{:<44} {:>10.1} s", "operator CPU time, start-up included", operator.cpu_seconds());
    drop(operator);
    cluster.delete_namespace(&ns);
    Ok(())
}
