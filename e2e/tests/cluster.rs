//! Smoke tests that prove the control plane of `e2e/cluster.sh` is a real one: a real
//! kube-apiserver (version, server-side apply, CEL validation, RBAC), a real controller
//! manager (Deployments, garbage collection, HPA), a real scheduler with kwok running the
//! pods, and the kubectl and helm a user would use.
//!
//! Run: `e2e/cluster.sh run -- cargo test -p veche-e2e --features cluster`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use e2e::{Cluster, TempDir, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);
const KUBE_VERSION_PREFIX: &str = "v1.36.";

/// A Deployment of `replicas` pods whose image is never pulled (kwok runs no containers).
fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "registry.invalid/veche:e2e" }] }
            }
        }
    }))
    .expect("deployment literal")
}

#[tokio::test]
async fn api_server_and_kubectl_report_the_built_version() {
    let cluster = Cluster::connect().await;
    let info = cluster.client.apiserver_version().await.expect("version");
    assert!(info.git_version.starts_with(KUBE_VERSION_PREFIX), "server version {}", info.git_version);
    assert_eq!(info.major, "1");

    let out = cluster.kubectl_ok(["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("kubectl version json");
    let client = v["clientVersion"]["gitVersion"].as_str().unwrap_or_default();
    let server = v["serverVersion"]["gitVersion"].as_str().unwrap_or_default();
    assert!(client.starts_with(KUBE_VERSION_PREFIX), "kubectl version {client}");
    assert_eq!(server, info.git_version);
}

#[tokio::test]
async fn deployment_becomes_available_and_scales_through_kubectl() {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("deploy").await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    api.create(&PostParams::default(), &deployment("web", 2)).await.expect("create deployment");

    cluster.wait_available(&ns, "web", 2, MINUTE).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    let listed = pods.list(&ListParams::default().labels("app=web")).await.expect("pods");
    assert_eq!(listed.items.len(), 2);
    for pod in &listed.items {
        let spec = pod.spec.as_ref().expect("pod spec");
        assert_eq!(spec.node_name.as_deref(), Some("kwok-node-0"), "scheduled onto the kwok node");
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        assert_eq!(phase, Some("Running"));
    }

    // The scale subresource, as a user reaches it.
    cluster.kubectl_ok(["scale", "deployment/web", "--replicas=3", "-n", &ns]);
    cluster.wait_available(&ns, "web", 3, MINUTE).await;
}

#[tokio::test]
async fn server_side_apply_tracks_field_managers_and_conflicts() {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("ssa").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns);
    let cm = |value: &str| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "settings" },
            "data": { "mode": value }
        })
    };

    let first = PatchParams::apply("veche-e2e-one");
    api.patch("settings", &first, &Patch::Apply(cm("a"))).await.expect("first apply");
    // Re-applying the same intent is a no-op for the resourceVersion.
    let before = api.get("settings").await.expect("get").metadata.resource_version;
    api.patch("settings", &first, &Patch::Apply(cm("a"))).await.expect("idempotent apply");
    let after = api.get("settings").await.expect("get").metadata.resource_version;
    assert_eq!(before, after, "a no-op apply must not write");

    // Another manager changing the same field conflicts, unless it forces.
    let second = PatchParams::apply("veche-e2e-two");
    let err = api.patch("settings", &second, &Patch::Apply(cm("b"))).await.expect_err("conflict");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("expected a 409 conflict, got {other}"),
    }
    api.patch("settings", &second.clone().force(), &Patch::Apply(cm("b"))).await.expect("forced apply");
    let got = api.get("settings").await.expect("get");
    assert_eq!(got.data.unwrap_or_default().get("mode").map(String::as_str), Some("b"));
    let managers: Vec<String> =
        got.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(managers.contains(&"veche-e2e-two".to_string()), "managers: {managers:?}");
}

#[tokio::test]
async fn crd_cel_rule_rejects_an_invalid_object_with_its_message() {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("cel").await;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "ranges.e2e.veche.io" },
        "spec": {
            "group": "e2e.veche.io",
            "scope": "Namespaced",
            "names": { "plural": "ranges", "singular": "range", "kind": "Range" },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "additionalPrinterColumns": [
                    { "name": "Min", "type": "integer", "jsonPath": ".spec.min" },
                    { "name": "Max", "type": "integer", "jsonPath": ".spec.max" }
                ],
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "required": ["min", "max"],
                        "properties": {
                            "min": { "type": "integer", "minimum": 0 },
                            "max": { "type": "integer" }
                        },
                        "x-kubernetes-validations": [
                            { "rule": "self.min <= self.max", "message": "min must not exceed max" }
                        ]
                    }}
                }}
            }]
        }
    }))
    .expect("crd literal");
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    crds.patch("ranges.e2e.veche.io", &PatchParams::apply("veche-e2e").force(), &Patch::Apply(&crd))
        .await
        .expect("apply crd");
    tokio::time::timeout(
        MINUTE,
        await_condition(crds.clone(), "ranges.e2e.veche.io", conditions::is_crd_established()),
    )
    .await
    .expect("crd established in time")
    .expect("watching the crd");

    let gvk = GroupVersionKind::gvk("e2e.veche.io", "v1", "Range");
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), &ns, &ApiResource::from_gvk(&gvk));
    let range = |name: &str, min: i64, max: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "e2e.veche.io/v1", "kind": "Range",
            "metadata": { "name": name },
            "spec": { "min": min, "max": max }
        }))
        .expect("range literal")
    };
    // Discovery of a new CRD can lag establishment by a moment.
    eventually("creating a valid Range", MINUTE, || async {
        api.create(&PostParams::default(), &range("good", 1, 3)).await.context("create")?;
        Ok(Some(()))
    })
    .await;

    let err = api.create(&PostParams::default(), &range("bad", 5, 2)).await.expect_err("CEL rule must reject");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("min must not exceed max"), "message: {}", status.message);
        }
        other => panic!("expected 422 Invalid, got {other}"),
    }

    let table = cluster.kubectl_ok(["get", "ranges", "-n", &ns]);
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("MIN") && header.contains("MAX"), "printer columns: {table}");
}

#[tokio::test]
async fn garbage_collector_deletes_children_of_a_deleted_owner() {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("gc").await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns);
    let named = |name: &str| ConfigMap {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    };
    let parent = api.create(&PostParams::default(), &named("parent")).await.expect("parent");
    let mut child = named("child");
    child.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "parent".into(),
        uid: parent.metadata.uid.clone().expect("uid"),
        ..Default::default()
    }]);
    let child = api.create(&PostParams::default(), &child).await.expect("child");
    let child_uid = child.metadata.uid.expect("child uid");

    api.delete("parent", &DeleteParams::background()).await.expect("delete parent");
    tokio::time::timeout(MINUTE, await_condition(api.clone(), "child", conditions::is_deleted(&child_uid)))
        .await
        .expect("garbage collector deleted the child in time")
        .expect("watching the child");
}

#[tokio::test]
async fn hpa_controller_scales_a_deployment_up_to_min_replicas() {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("hpa").await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    deployments.create(&PostParams::default(), &deployment("api", 1)).await.expect("deployment");
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": "api" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "api" },
            "minReplicas": 2, "maxReplicas": 4,
            "metrics": [{ "type": "Resource", "resource": {
                "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 80 } } }]
        }
    }))
    .expect("hpa literal");
    Api::<HorizontalPodAutoscaler>::namespaced(cluster.client.clone(), &ns)
        .create(&PostParams::default(), &hpa)
        .await
        .expect("hpa");
    // No metrics server runs, but the HPA controller still enforces minReplicas.
    eventually("the HPA raising replicas to 2", MINUTE, || async {
        let replicas = deployments.get("api").await?.spec.and_then(|s| s.replicas).unwrap_or(0);
        anyhow::ensure!(replicas == 2, "spec.replicas = {replicas}");
        Ok(Some(()))
    })
    .await;
}

#[tokio::test]
async fn rbac_answers_for_an_impersonated_service_account() {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("rbac").await;
    let manifest = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: reader, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {ns}}}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: reader, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects:
- {{kind: ServiceAccount, name: reader, namespace: {ns}}}
"#
    );
    cluster.apply(&manifest);

    let sa = format!("system:serviceaccount:{ns}:reader");
    assert!(cluster.can_i(&sa, "list", "pods", &ns));
    assert!(cluster.can_i(&sa, "watch", "pods", &ns));
    assert!(!cluster.can_i(&sa, "delete", "pods", &ns));
    assert!(!cluster.can_i(&sa, "list", "secrets", &ns));
    assert!(!cluster.can_i(&sa, "list", "pods", "default"));

    // The same account's real credentials (a bound token), as the operator would run with.
    let client = cluster.client_as(&ns, "reader").await;
    Api::<Pod>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.expect("reader lists pods");
    match Api::<ConfigMap>::namespaced(client, &ns).list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("reader listing configmaps: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn helm_lints_and_installs_a_chart() {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("helm").await;
    let version = cluster.helm_ok(["version", "--short"]);
    assert!(version.starts_with("v3."), "helm version: {version}");

    let dir = TempDir::new("chart");
    let chart = dir.path().join("hello");
    std::fs::create_dir_all(chart.join("templates")).expect("chart dir");
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: \"1.0\"\nkubeVersion: \">=1.30.0-0\"\n",
    )
    .expect("Chart.yaml");
    std::fs::write(chart.join("values.yaml"), "greeting: hello\n").expect("values.yaml");
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hello\n  labels:\n    app.kubernetes.io/name: hello\n    app.kubernetes.io/instance: {{ .Release.Name }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}\n",
    )
    .expect("template");
    let chart = chart.to_str().expect("utf-8 path").to_string();

    let lint = cluster.helm_ok(["lint", &chart]);
    assert!(lint.contains("0 chart(s) failed"), "lint: {lint}");
    cluster.helm_ok(["install", "greet", &chart, "-n", &ns, "--set", "greeting=hi", "--wait", "--timeout", "60s"]);

    let api: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), &ns);
    let cm = api.get("greet-hello").await.expect("installed configmap");
    let data = cm.data.unwrap_or_default();
    assert_eq!(data.get("greeting").map(String::as_str), Some("hi"));
    let kube_version = data.get("kubeVersion").cloned().unwrap_or_default();
    assert!(kube_version.starts_with(KUBE_VERSION_PREFIX), "helm saw kube version {kube_version}");

    let list = cluster.helm_ok(["list", "-n", &ns, "-o", "json"]);
    assert!(list.contains("\"deployed\""), "helm list: {list}");
    cluster.helm_ok(["uninstall", "greet", "-n", &ns, "--wait"]);
    let gone = api.get_opt("greet-hello").await.expect("get after uninstall");
    assert!(gone.is_none(), "uninstall removed the configmap");
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_running_pods() {
    let cluster = Cluster::connect().await;
    let ns = cluster.namespace("teardown").await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns);
    api.create(&PostParams::default(), &deployment("doomed", 2)).await.expect("create deployment");
    cluster.wait_available(&ns, "doomed", 2, MINUTE).await;

    // Pods are deleted gracefully; with no kubelet, kwok's pod-delete stage finishes the job.
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let uid = namespaces.get(&ns).await.expect("namespace").metadata.uid.expect("uid");
    namespaces.delete(&ns, &DeleteParams::default()).await.expect("delete namespace");
    tokio::time::timeout(MINUTE, await_condition(namespaces, &ns, conditions::is_deleted(&uid)))
        .await
        .expect("namespace finalized in time")
        .expect("watching the namespace");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &ns);
    assert!(pods.list(&ListParams::default()).await.expect("pods").items.is_empty());
}
