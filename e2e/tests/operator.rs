//! The operator's artifacts against a real API server: its CRDs load and validate
//! Platforms with their CEL rules and printer columns, the examples are accepted, and the
//! Helm chart lints, installs (kwok runs the operator's pod) and grants its
//! ServiceAccount exactly the RBAC the controllers need.
//!
//! Run: `e2e/cluster.sh run -- cargo test -p veche-e2e --features cluster`.

use std::time::Duration;

use e2e::Cluster;

const MINUTE: Duration = Duration::from_secs(60);

/// `kubectl apply` of `manifest` in `ns`; Err(stderr) when the API server refuses it.
fn try_apply(cluster: &Cluster, ns: &str, manifest: &str) -> Result<(), String> {
    let dir = e2e::TempDir::new("manifest");
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, manifest).expect("write manifest");
    let out = cluster.kubectl(["apply", "-n", ns, "-f", path.to_str().expect("utf-8 path")]);
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

#[tokio::test]
async fn crds_accept_the_examples_and_reject_invalid_platforms_with_cel_messages() {
    let cluster = Cluster::connect().await;
    cluster.install_crds().await;
    let ns = cluster.namespace("crds").await;

    for example in ["examples/platform-minimal.yaml", "examples/platform-production.yaml"] {
        let manifest = std::fs::read_to_string(e2e::repo(example)).expect("read example");
        try_apply(&cluster, &ns, &manifest).unwrap_or_else(|e| panic!("{example} refused: {e}"));
    }

    let rejected = [
        (
            "bad-host",
            "spec: {database: {embedded: {}}, gateway: {host: Not_A_DNS_Name}}",
            "host must be a lowercase DNS name",
        ),
        (
            "two-databases",
            "spec: {database: {embedded: {}, ydb: {endpoint: 'grpcs://ydb:2135', database: /db}}}",
            "set one of embedded or ydb, not both",
        ),
        (
            "a-platform-name-that-is-much-too-long-for-its-services",
            "spec: {database: {embedded: {}}}",
            "a Platform name has at most 40 characters",
        ),
    ];
    for (name, spec, message) in rejected {
        let manifest = format!("apiVersion: veche.io/v1alpha1\nkind: Platform\nmetadata: {{name: {name}}}\n{spec}\n");
        match try_apply(&cluster, &ns, &manifest) {
            Ok(()) => panic!("Platform {name} was accepted; expected {message:?}"),
            Err(stderr) => assert!(stderr.contains(message), "Platform {name}: expected {message:?} in:\n{stderr}"),
        }
    }

    // Printer columns and the short name.
    let table = cluster.kubectl_ok(["get", "vp", "-n", &ns]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "READY", "ENDPOINT", "AGE"] {
        assert!(header.contains(column), "missing {column} in:\n{table}");
    }
    assert!(table.contains("veche"), "the minimal example is listed:\n{table}");
}

#[tokio::test]
async fn chart_lints_installs_and_grants_least_privilege() {
    let cluster = Cluster::connect().await;
    cluster.install_crds().await;
    let ns = cluster.namespace("chart").await;
    let chart = e2e::repo("charts/veche-operator");

    let lint = cluster.helm_ok(["lint", &chart]);
    assert!(lint.contains("0 chart(s) failed"), "lint: {lint}");
    // --wait: the operator Deployment becomes Available (kwok runs its pod; the image is
    // never pulled). CRDs already exist, so Helm leaves them alone.
    cluster.helm_ok(["install", "veche-operator", &chart, "-n", &ns, "--wait", "--timeout", "90s"]);
    cluster.wait_available(&ns, "veche-operator", 1, MINUTE).await;

    let sa = format!("system:serviceaccount:{ns}:veche-operator");
    let allowed = [
        ("watch", "platforms.veche.io"),
        ("patch", "platforms.veche.io/status"),
        ("create", "servicedeployments.veche.io"),
        ("patch", "deployments.apps"),
        ("get", "secrets"),
        ("delete", "horizontalpodautoscalers.autoscaling"),
        ("create", "events.events.k8s.io"),
    ];
    for (verb, resource) in allowed {
        assert!(cluster.can_i(&sa, verb, resource, "default"), "the operator must be allowed to {verb} {resource}");
    }
    let denied = [
        ("patch", "platforms.veche.io"),
        ("delete", "platforms.veche.io"),
        ("delete", "deployments.apps"),
        ("delete", "secrets"),
        ("create", "pods"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ];
    for (verb, resource) in denied {
        assert!(
            !cluster.can_i(&sa, verb, resource, "default"),
            "the operator must not be allowed to {verb} {resource}"
        );
    }

    cluster.helm_ok(["uninstall", "veche-operator", "-n", &ns, "--wait"]);
}
