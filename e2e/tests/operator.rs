//! The operator's artifacts against a real API server: its CRDs load and validate
//! Platforms with their CEL rules and printer columns, the examples are accepted, and the
//! Helm chart lints, installs (kwok runs the operator's pod) and grants its
//! ServiceAccount exactly the RBAC the controllers need; its opt-in monitoring objects
//! pass prometheus-operator's CRD schemas and select what they should.
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
            "oidc-without-issuer",
            "spec: {auth: {providers: [{id: corp, name: Corp, kind: oidc, clientId: v, clientSecret: {name: s}}]}}",
            "an oidc provider needs an issuer",
        ),
        (
            "github-with-issuer",
            "spec: {auth: {providers: [{id: gh, name: GitHub, kind: github, issuer: 'https://github.com', clientId: v, clientSecret: {name: s}}]}}",
            "only an oidc provider has an issuer",
        ),
        (
            "bad-sso-domain",
            "spec: {auth: {providers: [{id: corp, name: Corp, kind: oidc, issuer: 'https://sso.example.org', clientId: v, clientSecret: {name: s}, domains: ['Not A Domain']}]}}",
            "spec.auth.providers[0].domains[0]: Invalid value",
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

/// Every monitoring object on, with an override of each kind, in namespace `ns`.
fn monitoring_values(ns: &str) -> String {
    format!(
        r#"
watchNamespace: {ns}
monitoring:
  labels: {{release: kube-prometheus-stack}}
  serviceMonitor:
    enabled: true
    interval: 30s
    scrapeTimeout: 10s
    metricRelabelings: [{{action: drop, sourceLabels: [__name__], regex: "process_.*"}}]
  podMonitor:
    enabled: true
    interval: 15s
    labels: {{team: events}}
    allowScrapeFrom: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: monitoring}}}}}}]
  rules:
    enabled: true
    additionalRuleLabels: {{team: events}}
    disabled: {{VecheOperatorNoLeader: true}}
  dashboard:
    enabled: true
    annotations: {{grafana_folder: Veche}}
"#
    )
}

/// The documents of a multi-document YAML stream, without empty ones.
fn documents(yaml: &str) -> Vec<&str> {
    yaml.split("\n---")
        .map(str::trim)
        .filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#')))
        .collect()
}

/// `kubectl apply --dry-run=server` of `manifest` in `ns`: the objects as the API server
/// would store them (defaults applied, validated against their schemas, unknown fields
/// refused), or Err(stderr).
fn dry_run(cluster: &Cluster, ns: &str, manifest: &str) -> Result<Vec<serde_json::Value>, String> {
    let dir = e2e::TempDir::new("dry-run");
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, manifest).expect("write manifest");
    let out = cluster.kubectl([
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        ns,
        "-o",
        "json",
        "-f",
        path.to_str().expect("utf-8 path"),
    ]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kubectl -o json prints JSON");
    Ok(match json.get("items") {
        Some(items) => items.as_array().cloned().unwrap_or_default(),
        None => vec![json],
    })
}

/// Whether a LabelSelector (as JSON) selects an object with `labels`.
fn selects(selector: &serde_json::Value, labels: &serde_json::Map<String, serde_json::Value>) -> bool {
    let equal = selector["matchLabels"].as_object().into_iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let value = labels.get(e["key"].as_str().unwrap_or_default());
        let listed = || e["values"].as_array().into_iter().flatten().any(|v| Some(v) == value);
        match e["operator"].as_str() {
            Some("Exists") => value.is_some(),
            Some("DoesNotExist") => value.is_none(),
            Some("In") => listed(),
            Some("NotIn") => !listed(),
            other => panic!("unknown selector operator {other:?}"),
        }
    });
    equal && expressions
}

/// The pod templates the operator renders for Platforms, from its golden files
/// (operator/tests/golden, kept in sync with the renderer by its tests).
fn rendered_service_pods() -> Vec<serde_json::Value> {
    let mut pods = Vec::new();
    for golden in ["platform-minimal", "platform-production", "platform-ydb"] {
        let text = std::fs::read_to_string(e2e::repo(&format!("operator/tests/golden/{golden}.yaml"))).expect("golden");
        for doc in documents(&text) {
            let object: serde_json::Value =
                serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{golden}: {e}\n{doc}"));
            if object["kind"] == "Deployment" {
                pods.push(object["spec"]["template"].clone());
            }
        }
    }
    pods
}

#[tokio::test]
async fn chart_monitoring_objects_pass_the_prometheus_operator_schemas() {
    let cluster = Cluster::connect().await;
    cluster.install_monitoring_crds().await;
    let ns = cluster.namespace("monitoring").await;
    let chart = e2e::repo("charts/veche-operator");
    let dir = e2e::TempDir::new("values");
    let values = dir.path().join("monitoring.yaml");
    std::fs::write(&values, monitoring_values(&ns)).expect("write values");
    let values = values.to_str().expect("utf-8 path");

    // Off (the default) and on, the chart lints; off, it makes no monitoring object.
    for args in [vec!["lint", chart.as_str()], vec!["lint", chart.as_str(), "-f", values]] {
        let lint = cluster.helm_ok(&args);
        assert!(lint.contains("0 chart(s) failed"), "{args:?}: {lint}");
    }
    let off = cluster.helm_ok(["template", "veche-operator", &chart, "-n", &ns]);
    for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy", "ConfigMap"] {
        assert!(!off.contains(&format!("kind: {kind}\n")), "monitoring off renders a {kind}:\n{off}");
    }

    // On, the API server accepts every object against the real CRD schemas.
    let on = cluster.helm_ok(["template", "veche-operator", &chart, "-n", &ns, "-f", values]);
    let objects = dry_run(&cluster, &ns, &on).unwrap_or_else(|e| panic!("the API server refused:\n{e}\n{on}"));
    let find = |kind: &str| {
        objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered:\n{on}")).clone()
    };
    let (service_monitor, pod_monitor, rules) = (find("ServiceMonitor"), find("PodMonitor"), find("PrometheusRule"));
    for object in [&service_monitor, &pod_monitor, &rules] {
        assert_eq!(object["metadata"]["labels"]["release"], "kube-prometheus-stack", "{object}");
    }

    // The ServiceMonitor finds the operator's metrics Service, by its labels and port.
    let service = find("Service");
    assert!(selects(&service_monitor["spec"]["selector"], service["metadata"]["labels"].as_object().expect("labels")));
    assert_eq!(service_monitor["spec"]["namespaceSelector"]["matchNames"][0], ns.as_str());
    assert_eq!(service_monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(service_monitor["spec"]["endpoints"][0]["interval"], "30s");

    // The PodMonitor selects every pod the operator renders for a Platform, on a port
    // those pods name, and not the operator's own pod; it looks in the watched namespace.
    let selector = &pod_monitor["spec"]["selector"];
    let port = pod_monitor["spec"]["podMetricsEndpoints"][0]["port"].as_str().expect("a port name");
    let pods = rendered_service_pods();
    assert!(pods.len() >= 15, "{} pod templates in the golden files", pods.len());
    for pod in &pods {
        let labels = pod["metadata"]["labels"].as_object().expect("pod labels");
        assert!(selects(selector, labels), "the PodMonitor misses pods labelled {labels:?}");
        let ports = &pod["spec"]["containers"][0]["ports"];
        assert!(ports.as_array().into_iter().flatten().any(|p| p["name"] == port), "no port {port} in {ports}");
    }
    let operator_pod = &find("Deployment")["spec"]["template"]["metadata"]["labels"];
    assert!(!selects(selector, operator_pod.as_object().expect("labels")), "the PodMonitor selects the operator");
    assert_eq!(pod_monitor["spec"]["namespaceSelector"]["matchNames"][0], ns.as_str());
    assert_eq!(pod_monitor["spec"]["jobLabel"], "veche.io/service");

    // The scrape NetworkPolicy admits the listed peers to those same pods.
    let policy = find("NetworkPolicy");
    assert!(pods.iter().all(|p| selects(&policy["spec"]["podSelector"], p["metadata"]["labels"].as_object().unwrap())));
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );

    // Rules: the disabled alert is left out, the extra label is on every alert.
    let alerts: Vec<&serde_json::Value> =
        rules["spec"]["groups"].as_array().into_iter().flatten().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    let names: Vec<&str> = alerts.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert!(names.contains(&"VecheGatewayHigh5xxRatio") && !names.contains(&"VecheOperatorNoLeader"), "{names:?}");
    assert!(alerts.iter().all(|r| r["labels"]["team"] == "events" && r["labels"]["severity"].is_string()));

    // The dashboard: the sidecar's label, the folder annotation, and the JSON intact.
    let dashboard = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1")
        .unwrap_or_else(|| panic!("no dashboard ConfigMap:\n{on}"));
    assert_eq!(dashboard["metadata"]["annotations"]["grafana_folder"], "Veche");
    let json = dashboard["data"]["veche-platform.json"].as_str().expect("the dashboard JSON");
    let parsed: serde_json::Value = serde_json::from_str(json).expect("the dashboard is JSON");
    assert_eq!(parsed["uid"], "veche-platform");

    // The same objects, broken, are refused: the schemas really are checked.
    let doc_of = |kind: &str| {
        documents(&on).into_iter().find(|d| d.contains(&format!("kind: {kind}\n"))).expect("rendered").to_string()
    };
    let bad_duration = doc_of("PrometheusRule").replacen("for: 10m", "for: ten minutes", 1);
    let refused = dry_run(&cluster, &ns, &bad_duration).expect_err("a rule with `for: ten minutes` was accepted");
    assert!(refused.contains("for") && refused.contains("should match"), "{refused}");
    let unknown_field = doc_of("PodMonitor").replacen("jobLabel:", "jobLabl:", 1);
    let refused = dry_run(&cluster, &ns, &unknown_field).expect_err("a PodMonitor with a misspelt field was accepted");
    assert!(refused.contains("unknown field \"spec.jobLabl\""), "{refused}");

    // And Helm refuses a ServiceMonitor without the Service it scrapes.
    let mut helm = cluster.tool("helm");
    let out = helm
        .args(["template", "veche-operator", &chart, "-n", &ns, "-f", values, "--set", "metrics.service=false"])
        .output()
        .expect("running helm");
    assert!(!out.status.success(), "a ServiceMonitor without its Service rendered");
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs metrics.service: true"));
}
