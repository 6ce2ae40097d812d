//! Both images in real containers: on a real node (kubelet, containerd and runc, the CNI
//! bridge, kube-proxy and CoreDNS; e2e/node.sh), the operator, itself running from its
//! image as the chart deploys it, brings `examples/platform-minimal.yaml` up from the
//! `veche` image (both built by `scripts/images` and imported as OCI archives) under the
//! restricted security context it renders (non-root, read-only root filesystem, probes,
//! volumes). Then a newcomer's walkthrough
//! (`examples/walkthrough.sh`) passes through the gateway's Service, and what was
//! written survives the deletion of the pods that wrote it.
//!
//! Run: `scripts/images`, then
//!   VECHE_CLUSTER_NODE=real VECHE_NODE_IMAGES="<images>/veche.oci.tar <images>/veche-operator.oci.tar" \
//!     e2e/cluster.sh run -- cargo test -p veche-e2e --features cluster --test node

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::ensure;
use e2e::{Cluster, eventually};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use operator::crd::Platform;
use serde_json::Value;

const NODE: &str = "veche-node-0";
const IMAGE: &str = concat!("ghcr.io/veche-dev/veche:", env!("CARGO_PKG_VERSION"));
const OPERATOR_IMAGE: &str = concat!("ghcr.io/veche-dev/veche-operator:", env!("CARGO_PKG_VERSION"));
const MINUTE: Duration = Duration::from_secs(60);

/// `kubectl port-forward` to a Service, on a free loopback port; stopped on drop.
struct PortForward {
    child: Child,
    port: u16,
}

impl PortForward {
    fn start(cluster: &Cluster, namespace: &str, service: &str, port: u16) -> PortForward {
        let mut child = cluster
            .tool("kubectl")
            .args(["port-forward", "-n", namespace, &format!("service/{service}"), &format!(":{port}")])
            .args(["--address", "127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kubectl port-forward");
        // "Forwarding from 127.0.0.1:43125 -> 8080"
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).expect("port-forward output");
        // kubectl prints a line per connection: keep reading, or it dies of a broken pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let port = line
            .split_whitespace()
            .nth(2)
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in kubectl port-forward's {line:?}"));
        PortForward { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP exchange with curl: (status, body as JSON or Null).
fn http(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, url, "--max-time", "20"]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    if let Some(body) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
    }
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn pods_of(pods: &Api<Pod>, service: &str) -> anyhow::Result<Vec<Pod>> {
    let params = ListParams::default().labels(&format!("app.kubernetes.io/component={service}"));
    Ok(pods.list(&params).await?.items)
}

/// The one pod of `service`: Running on the real node, every container ready, and not
/// the pod named `not` (a replacement, after a deletion).
async fn ready_pod(pods: &Api<Pod>, service: &str, not: Option<&str>, timeout: Duration) -> Pod {
    eventually(&format!("a ready {service} pod"), timeout, || async {
        let list = pods_of(pods, service).await?;
        let fresh: Vec<&Pod> = list
            .iter()
            .filter(|p| Some(p.name_any().as_str()) != not && p.metadata.deletion_timestamp.is_none())
            .collect();
        ensure!(fresh.len() == 1, "{} {service} pods", fresh.len());
        let pod = fresh[0];
        let status = pod.status.clone().unwrap_or_default();
        let ready = status.container_statuses.iter().flatten().all(|c| c.ready) && status.container_statuses.is_some();
        ensure!(ready && status.phase.as_deref() == Some("Running"), "{}: {:?}", pod.name_any(), status);
        Ok(Some(pod.clone()))
    })
    .await
}

fn walkthrough(url: &str, mail_dir: &Path) {
    let out = Command::new("bash")
        .arg(e2e::repo("examples/walkthrough.sh"))
        .env("VECHE_URL", url)
        .env("VECHE_DATA_DIR", mail_dir)
        .env("MAIL_WAIT", "60")
        .output()
        .expect("running examples/walkthrough.sh");
    assert!(
        out.status.success(),
        "the walkthrough failed against {url}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The operator from its image, in a real container: the chart's Deployment as rendered
/// (its ServiceAccount and token, user, read-only root, probes, leader election), scaled
/// to one, with two changes, both because this test API server listens on loopback only:
/// the pod shares the node's network, and is told the API server's loopback address in
/// place of the `kubernetes` Service's (which routes to an address it does not listen on).
async fn run_operator_from_its_image(cluster: &Cluster, ns: &str, release: &str) {
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig()).expect("the admin kubeconfig");
    let port = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://127.0.0.1:"))
        .expect("the API server's loopback port in the kubeconfig")
        .to_string();
    let patch = serde_json::json!({"spec": {"replicas": 1, "template": {"spec": {
        "hostNetwork": true,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "containers": [{"name": "operator", "env": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": port},
        ]}],
    }}}});
    cluster.kubectl_ok(["patch", "deployment", release, "-n", ns, "--type", "strategic", "-p", &patch.to_string()]);
    cluster.wait_available(ns, release, 1, 2 * MINUTE).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let pod = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
        .await
        .expect("listing the operator's pods")
        .items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
        .expect("the operator's pod");
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(NODE), "the operator runs on the real node");
    assert_eq!(spec.containers[0].image.as_deref(), Some(OPERATOR_IMAGE));
    let name = pod.name_any();
    eventually("the operator's container leading", MINUTE, || async {
        let log = cluster.kubectl(["logs", "-n", ns, &name]);
        let log = String::from_utf8_lossy(&log.stdout);
        ensure!(log.contains("controllers starting"), "its log so far:\n{log}");
        Ok(Some(()))
    })
    .await;
}

#[tokio::test]
async fn the_minimal_platform_runs_the_image_passes_the_walkthrough_and_keeps_its_data() {
    let cluster = Cluster::connect().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = nodes.get_opt(NODE).await.expect("listing nodes");
    assert!(
        node.is_some(),
        "no real node {NODE}: run this suite under VECHE_CLUSTER_NODE=real e2e/cluster.sh run (e2e/README.md)"
    );
    cluster.install_crds().await;
    let ns = cluster.namespace("node").await;
    let release = cluster.install_operator_chart(&ns);
    let _volumes = cluster.provision_volumes(&ns);
    run_operator_from_its_image(&cluster, &ns, &release).await;

    // Apply to the walkthrough passing: what a platform engineer waits for.
    let applied = Instant::now();
    let example = std::fs::read_to_string(e2e::repo("examples/platform-minimal.yaml")).unwrap();
    cluster.apply(&example.replacen("metadata:\n", &format!("metadata:\n  namespace: {ns}\n"), 1));
    let platforms: Api<Platform> = Api::namespaced(cluster.client.clone(), &ns);
    eventually("Platform veche Ready", 5 * MINUTE, || async {
        let p = platforms.get("veche").await?;
        let ready = p.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        ensure!(ready.is_some_and(|c| c.status == "True"), "{:?}", p.status);
        Ok(Some(()))
    })
    .await;
    let ready_after = applied.elapsed();

    // Real containers of the image, on the real node, as the operator rendered them.
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    for service in ["users", "organizations", "events", "analytics", "gateway"] {
        let pod = ready_pod(&pods, service, None, MINUTE).await;
        let spec = pod.spec.clone().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some(NODE), "{service} runs on the real node");
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some(IMAGE), "{service}'s image");
        let security = container.security_context.clone().unwrap_or_default();
        assert_eq!(security.read_only_root_filesystem, Some(true), "{service}: read-only root");
        let status = &pod.status.clone().unwrap().container_statuses.unwrap()[0];
        assert!(status.image_id.contains("sha256:"), "{service}: ran a real image: {}", status.image_id);
        assert_eq!(status.restart_count, 0, "{service} restarted: {status:?}");
        // A second process in the running container (exec through the kubelet and runc).
        let version =
            cluster.kubectl_ok(["exec", "-n", &ns, &pod.name_any(), "--", "/usr/local/bin/veche", "--version"]);
        let expected = format!("veche {}", env!("CARGO_PKG_VERSION"));
        assert!(version.starts_with(&expected), "veche --version in {service}: {version}");
    }

    // The gateway's Service, forwarded to loopback; the invitation mail is read where the
    // organizations service writes it: its volume.
    let forward = PortForward::start(&cluster, &ns, "veche-gateway", 80);
    let organizations_claim = operator::render::service::pvc_name("veche-organizations");
    walkthrough(&forward.url(), &e2e::volume_path(&ns, &organizations_claim));
    let walkthrough_after = applied.elapsed();

    // Data that must outlive its pods: an account (users) and the published events
    // (events), both written before their pods are deleted.
    let email = format!("keeper-{ns}@example.org");
    let account =
        serde_json::json!({"email": email, "password": "correct horse battery staple", "display_name": "Keeper"});
    let (status, body) = http("POST", &format!("{}/api/v1/auth/register", forward.url()), None, Some(&account));
    assert!(status == 201 || status == 200, "register: {status} {body}");
    let login = serde_json::json!({"email": email, "password": "correct horse battery staple"});
    let events_url = format!("{}/api/v1/events?limit=200", forward.url());
    let (status, before) = http("GET", &events_url, None, None);
    assert_eq!(status, 200, "events before: {before}");
    let published = before["items"].as_array().map_or(0, Vec::len);
    assert!(published >= 1, "the walkthrough published an event: {before}");

    for service in ["users", "events"] {
        let old = ready_pod(&pods, service, None, MINUTE).await.name_any();
        pods.delete(&old, &DeleteParams::default()).await.unwrap();
        let new = ready_pod(&pods, service, Some(&old), 3 * MINUTE).await;
        assert_ne!(new.name_any(), old);
    }
    let logged_in = eventually("a login after the users pod's replacement", MINUTE, || async {
        let (status, body) = http("POST", &format!("{}/api/v1/auth/login", forward.url()), None, Some(&login));
        ensure!(status == 200, "login: {status} {body}");
        Ok(Some(body))
    })
    .await;
    assert!(logged_in["access_token"].is_string(), "{logged_in}");
    let after = eventually("the events after the events pod's replacement", MINUTE, || async {
        let (status, body) = http("GET", &events_url, None, None);
        ensure!(status == 200, "events: {status} {body}");
        Ok(Some(body))
    })
    .await;
    assert_eq!(after["items"].as_array().map_or(0, Vec::len), published, "events kept: {after}");

    println!(
        "real node: Platform Ready {:.1} s after apply; walkthrough passed {:.1} s after apply",
        ready_after.as_secs_f64(),
        walkthrough_after.as_secs_f64()
    );
}
