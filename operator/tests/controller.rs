//! The controllers against an in-memory API server: a tower service behind a real
//! `kube::Client` that keeps objects by path and understands the requests the
//! controllers make (GET, LIST with a label selector, server-side apply, status apply,
//! DELETE, POST of Events). Reconcile functions are called directly, one at a time, so
//! every test reads as: given this cluster, one reconcile does exactly that.

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::{Client, Resource};
use operator::controller::{self, Context, Environment, platform, service};
use operator::crd::{Platform, PlatformSpec, ServiceDeployment, ServiceDeploymentSpec, ServiceKind, StoreKind};
use operator::render::platform::{CountingEntropy, Entropy};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NS: &str = "apps";

/// One request the fake server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    /// Whether it changed a stored object.
    changed: bool,
}

#[derive(Default)]
struct State {
    /// Objects by their path (`/api/v1/namespaces/apps/secrets/demo-signing-keys`).
    objects: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    /// Paths (prefixes) whose writes fail with this status code.
    fail_writes: Vec<(String, u16)>,
    next_uid: u32,
    /// Whether the Gateway API (HTTPRoute) is served.
    gateway_api: bool,
}

#[derive(Clone, Default)]
struct FakeApi(Arc<Mutex<State>>);

impl FakeApi {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn client(&self) -> Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            let fut: BoxFuture<'static, Result<Response<Body>, Infallible>> =
                Box::pin(async move { Ok(api.handle(req).await) });
            fut
        });
        Client::new(service, NS)
    }

    fn put(&self, path: &str, obj: Value) {
        self.state().objects.insert(path.to_string(), obj);
    }

    fn get(&self, path: &str) -> Option<Value> {
        self.state().objects.get(path).cloned()
    }

    fn remove(&self, path: &str) {
        self.state().objects.remove(path);
    }

    fn writes(&self) -> Vec<Seen> {
        self.state().seen.iter().filter(|s| s.method != Method::GET).cloned().collect()
    }

    fn clear_seen(&self) {
        self.state().seen.clear();
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        let mut state = self.state();
        let failing = state.fail_writes.iter().find(|(p, _)| path.starts_with(p.as_str())).map(|(_, c)| *c);
        // Like a real cluster without the Gateway API: its paths are not served at all,
        // and the answer is a bare 404, not a Status object.
        if path.starts_with("/apis/gateway.networking.k8s.io/") && !state.gateway_api {
            state.seen.push(Seen { method, path, changed: false });
            return Response::builder().status(404).body(Body::from(b"404 page not found\n".to_vec())).unwrap();
        }
        let (status, response, changed) = match method.clone() {
            Method::GET => match state.objects.get(&path) {
                Some(obj) => (200, obj.clone(), false),
                None if is_collection(&path) => (200, list(&state.objects, &path, &query), false),
                None => (404, not_found(&path), false),
            },
            Method::PATCH | Method::PUT if failing.is_some() => {
                (failing.unwrap_or(500), failure(failing.unwrap_or(500)), false)
            }
            Method::PATCH => {
                let patch: Value = serde_json::from_slice(&body).unwrap();
                if let Some(object_path) = path.strip_suffix("/status") {
                    match state.objects.get_mut(object_path) {
                        Some(obj) => {
                            let changed = obj["status"] != patch["status"];
                            obj["status"] = patch["status"].clone();
                            (200, obj.clone(), changed)
                        }
                        None => (404, not_found(&path), false),
                    }
                } else {
                    state.next_uid += 1;
                    let uid = format!("uid-{}", state.next_uid);
                    let (obj, changed) = apply(state.objects.get(&path), patch, uid);
                    state.objects.insert(path.clone(), obj.clone());
                    (200, obj, changed)
                }
            }
            // Events are only counted; anything else is created under its name.
            Method::POST if path.ends_with("/events") => {
                (201, serde_json::from_slice(&body).unwrap_or(json!({})), false)
            }
            Method::POST => {
                let mut obj: Value = serde_json::from_slice(&body).unwrap();
                let object_path = format!("{path}/{}", obj["metadata"]["name"].as_str().unwrap_or_default());
                if state.objects.contains_key(&object_path) {
                    (409, failure(409), false)
                } else {
                    state.next_uid += 1;
                    obj["metadata"]["resourceVersion"] = json!(state.next_uid.to_string());
                    state.objects.insert(object_path, obj.clone());
                    (201, obj, true)
                }
            }
            // A replace succeeds only from the stored resourceVersion (optimistic concurrency).
            Method::PUT => {
                let mut obj: Value = serde_json::from_slice(&body).unwrap();
                let current = state.objects.get(&path).map(|o| o["metadata"]["resourceVersion"].clone());
                match current {
                    Some(version) if version == obj["metadata"]["resourceVersion"] => {
                        state.next_uid += 1;
                        obj["metadata"]["resourceVersion"] = json!(state.next_uid.to_string());
                        state.objects.insert(path.clone(), obj.clone());
                        (200, obj, true)
                    }
                    Some(_) => (409, failure(409), false),
                    None => (404, not_found(&path), false),
                }
            }
            Method::DELETE => match state.objects.remove(&path) {
                Some(obj) => (200, obj, true),
                None => (404, not_found(&path), false),
            },
            _ => (405, failure(405), false),
        };
        state.seen.push(Seen { method, path, changed });
        Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&response).unwrap()))
            .unwrap()
    }
}

/// Server-side apply, as far as one field manager can tell: the applied fields replace
/// ours, the server's own (uid, generation, status) stay; generation moves with spec.
fn apply(old: Option<&Value>, mut patch: Value, uid: String) -> (Value, bool) {
    match old {
        None => {
            patch["metadata"]["uid"] = json!(uid);
            patch["metadata"]["generation"] = json!(1);
            (patch, true)
        }
        Some(old) => {
            let mut new = patch.clone();
            new["metadata"]["uid"] = old["metadata"]["uid"].clone();
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let spec_changed = old.get("spec") != patch.get("spec");
            new["metadata"]["generation"] = json!(if spec_changed { generation + 1 } else { generation });
            if let Some(status) = old.get("status") {
                new["status"] = status.clone();
            }
            let changed = &new != old;
            (new, changed)
        }
    }
}

fn is_collection(path: &str) -> bool {
    // /apis/group/version/namespaces/ns/plural has 7 segments; an object one more.
    let segments = path.trim_start_matches('/').split('/').count();
    (path.starts_with("/apis/") && segments == 6) || (path.starts_with("/api/") && segments == 5)
}

fn list(objects: &BTreeMap<String, Value>, path: &str, query: &str) -> Value {
    let selector = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
        .map(|s| s.replace("%3D", "=").replace("%2F", "/"));
    let items: Vec<Value> = objects
        .iter()
        .filter(|(p, _)| p.strip_prefix(path).is_some_and(|rest| rest.matches('/').count() == 1))
        .map(|(_, obj)| obj.clone())
        .filter(|obj| match &selector {
            Some(sel) => sel.split(',').all(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                obj["metadata"]["labels"][k] == json!(v)
            }),
            None => true,
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items})
}

fn not_found(path: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{path} not found"), "reason": "NotFound", "code": 404})
}

fn failure(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "injected failure", "reason": "InternalError", "code": code})
}

struct FixedEnvironment;

impl Environment for FixedEnvironment {
    fn now(&self) -> i64 {
        1_767_225_600
    }
    fn entropy(&self) -> Box<dyn Entropy + Send> {
        Box::new(CountingEntropy(0))
    }
}

fn context(api: &FakeApi) -> Arc<Context> {
    let reporter = Reporter { controller: "veche-operator".into(), instance: Some("test".into()) };
    Arc::new(Context::new(api.client(), reporter, Box::new(FixedEnvironment)))
}

const PLATFORM: &str = "/apis/veche.io/v1alpha1/namespaces/apps/platforms/demo";

fn sd_path(kind: ServiceKind) -> String {
    format!("/apis/veche.io/v1alpha1/namespaces/apps/servicedeployments/demo-{kind}")
}

fn deployment_path(kind: ServiceKind) -> String {
    format!("/apis/apps/v1/namespaces/apps/deployments/demo-{kind}")
}

/// A Platform as the API server has it, stored in the fake.
fn seed_platform(api: &FakeApi, spec: PlatformSpec) -> Platform {
    let mut platform = Platform::new("demo", spec);
    platform.metadata.namespace = Some(NS.into());
    platform.metadata.uid = Some("platform-uid".into());
    platform.metadata.generation = Some(1);
    api.put(PLATFORM, serde_json::to_value(&platform).unwrap());
    platform
}

fn stored<K: serde::de::DeserializeOwned>(api: &FakeApi, path: &str) -> K {
    serde_json::from_value(api.get(path).unwrap_or_else(|| panic!("{path} is not stored"))).unwrap()
}

fn condition(status: &Value, type_: &str) -> (String, String) {
    let c = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap();
    (c["status"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn first_platform_reconcile_creates_everything() {
    let api = FakeApi::default();
    let platform = seed_platform(&api, PlatformSpec::default());
    let action = platform::reconcile(Arc::new(platform), context(&api)).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30)), "not ready yet: look again soon");
    for path in [
        "/api/v1/namespaces/apps/secrets/demo-signing-keys",
        "/api/v1/namespaces/apps/secrets/demo-service-clients",
        "/api/v1/namespaces/apps/configmaps/demo-routes",
    ] {
        assert!(api.get(path).is_some(), "{path} was not created");
    }
    for kind in ServiceKind::ALL {
        let sd: ServiceDeployment = stored(&api, &sd_path(kind));
        assert_eq!(sd.meta().owner_references.as_ref().unwrap()[0].uid, "platform-uid");
    }
    let status = api.get(PLATFORM).unwrap()["status"].clone();
    assert_eq!(status["endpoint"], "http://demo-gateway.apps.svc");
    assert_eq!(condition(&status, "Ready"), ("False".into(), "ServicesNotReady".into()));
    assert_eq!(condition(&status, "Progressing").0, "True");
    assert_eq!(status["services"].as_array().unwrap().len(), 5);
    assert_eq!(status["observedGeneration"], 1);
    let events = api.state().seen.iter().filter(|s| s.path.contains("/events")).count();
    assert_eq!(events, 1, "SigningKeyCreated is recorded");
}

#[tokio::test]
async fn a_ydb_platform_keeps_services_that_do_not_speak_it_on_one_replica_and_says_so() {
    let api = FakeApi::default();
    let spec: PlatformSpec = serde_json::from_value(json!({
        "database": {"ydb": {"endpoint": "grpcs://ydb:2135", "database": "/d"}},
    }))
    .unwrap();
    let platform = seed_platform(&api, spec);
    // An events ServiceDeployment as an older operator left it: on "ydb", scaled to 3.
    let mut old = ServiceDeployment::new("demo-events", ServiceDeploymentSpec::new("demo", ServiceKind::Events));
    old.spec.store = StoreKind::Ydb;
    old.spec.replicas = Some(3);
    old.metadata.namespace = Some(NS.into());
    old.metadata.labels = Some(BTreeMap::from([("veche.io/platform".into(), "demo".into())]));
    old.metadata.owner_references = Some(vec![platform.controller_owner_ref(&()).unwrap()]);
    api.put(&sd_path(ServiceKind::Events), serde_json::to_value(&old).unwrap());

    platform::reconcile(Arc::new(platform), context(&api)).await.unwrap();
    for kind in ServiceKind::DOMAIN.into_iter().filter(|k| !k.speaks_ydb()) {
        let sd: ServiceDeployment = stored(&api, &sd_path(kind));
        assert_eq!(sd.spec.store, StoreKind::Embedded, "{kind}");
    }
    if !ServiceKind::Events.speaks_ydb() {
        let events: ServiceDeployment = stored(&api, &sd_path(ServiceKind::Events));
        assert_eq!(events.spec.replicas, Some(1), "brought back within its store");
        let status = api.get(PLATFORM).unwrap()["status"].clone();
        assert_eq!(condition(&status, "DatabaseAsRequested"), ("False".into(), "YdbNotSupportedYet".into()));
        let warned = api.state().seen.iter().filter(|s| s.path.contains("/events") && s.method == Method::POST).count();
        assert_eq!(warned, 2, "SigningKeyCreated and DatabaseNotAsRequested");
    }
}

#[tokio::test]
async fn a_second_platform_reconcile_changes_nothing() {
    let api = FakeApi::default();
    let platform = seed_platform(&api, PlatformSpec::default());
    platform::reconcile(Arc::new(platform), context(&api)).await.unwrap();
    let before = api.state().objects.clone();
    api.clear_seen();
    let current: Platform = stored(&api, PLATFORM);
    platform::reconcile(Arc::new(current), context(&api)).await.unwrap();
    assert_eq!(api.state().objects, before, "the cluster is as it was");
    let changes: Vec<_> = api.writes().into_iter().filter(|w| w.changed).collect();
    assert!(changes.is_empty(), "no write changed anything: {changes:?}");
    assert!(!api.writes().iter().any(|w| w.path.ends_with("/status")), "an unchanged status is not written again");
}

#[tokio::test]
async fn a_paused_platform_applies_nothing() {
    let api = FakeApi::default();
    let platform = seed_platform(&api, PlatformSpec { paused: true, ..PlatformSpec::default() });
    platform::reconcile(Arc::new(platform), context(&api)).await.unwrap();
    let writes = api.writes();
    let patches: Vec<_> = writes.iter().filter(|w| w.method == Method::PATCH).collect();
    assert_eq!(patches.len(), 1, "only the Paused status: {writes:?}");
    assert!(patches[0].path.ends_with("/platforms/demo/status"));
    assert!(api.get(&sd_path(ServiceKind::Users)).is_none());
    let status = api.get(PLATFORM).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Progressing"), ("False".into(), "Paused".into()));
    // Told once: the next reconcile of the same generation writes nothing at all.
    api.clear_seen();
    let current: Platform = stored(&api, PLATFORM);
    platform::reconcile(Arc::new(current), context(&api)).await.unwrap();
    assert!(api.writes().is_empty(), "{:?}", api.writes());
}

/// Runs the Platform and then every ServiceDeployment controller once.
async fn roll_out(api: &FakeApi, ctx: &Arc<Context>) {
    let platform: Platform = stored(api, PLATFORM);
    platform::reconcile(Arc::new(platform), ctx.clone()).await.unwrap();
    for kind in ServiceKind::ALL {
        let sd: ServiceDeployment = stored(api, &sd_path(kind));
        service::reconcile(Arc::new(sd), ctx.clone()).await.unwrap();
    }
}

#[tokio::test]
async fn service_reconcile_creates_its_children_and_reports_progress() {
    let api = FakeApi::default();
    seed_platform(&api, PlatformSpec::default());
    let ctx = context(&api);
    roll_out(&api, &ctx).await;
    for (kind, path) in [
        ("deployments", "/apis/apps/v1/namespaces/apps/deployments/demo-events"),
        ("services", "/api/v1/namespaces/apps/services/demo-events"),
        ("pdb", "/apis/policy/v1/namespaces/apps/poddisruptionbudgets/demo-events"),
        ("netpol", "/apis/networking.k8s.io/v1/namespaces/apps/networkpolicies/demo-events"),
        ("sa", "/api/v1/namespaces/apps/serviceaccounts/demo-events"),
        ("pvc", "/api/v1/namespaces/apps/persistentvolumeclaims/demo-events-data"),
    ] {
        assert!(api.get(path).is_some(), "{kind} missing");
    }
    assert!(api.get("/api/v1/namespaces/apps/persistentvolumeclaims/demo-gateway-data").is_none());
    let sd = api.get(&sd_path(ServiceKind::Events)).unwrap();
    assert_eq!(sd["status"]["selector"], "veche.io/platform=demo,veche.io/service=events");
    assert_eq!(condition(&sd["status"], "Ready"), ("False".into(), "RolloutPending".into()));
}

#[tokio::test]
async fn a_second_service_reconcile_changes_nothing() {
    let api = FakeApi::default();
    seed_platform(&api, PlatformSpec::default());
    let ctx = context(&api);
    roll_out(&api, &ctx).await;
    let before = api.state().objects.clone();
    api.clear_seen();
    for kind in ServiceKind::ALL {
        let sd: ServiceDeployment = stored(&api, &sd_path(kind));
        service::reconcile(Arc::new(sd), ctx.clone()).await.unwrap();
    }
    assert_eq!(api.state().objects, before);
    let changes: Vec<_> = api.writes().into_iter().filter(|w| w.changed || w.path.ends_with("/status")).collect();
    assert!(changes.is_empty(), "{changes:?}");
}

#[tokio::test]
async fn platform_turns_ready_when_every_deployment_is_available() {
    let api = FakeApi::default();
    seed_platform(&api, PlatformSpec::default());
    let ctx = context(&api);
    roll_out(&api, &ctx).await;
    // The Deployment controller's part: every replica available for the generation.
    for kind in ServiceKind::ALL {
        let path = deployment_path(kind);
        let mut d = api.get(&path).unwrap();
        d["status"] = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1});
        api.put(&path, d);
    }
    roll_out(&api, &ctx).await;
    // The ServiceDeployments' new status brings the Platform back (a watch event).
    let action = platform::reconcile(Arc::new(stored(&api, PLATFORM)), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(3600)), "ready: only the hourly resync");
    let platform: Platform = stored(&api, PLATFORM);
    let status = platform.status.unwrap();
    assert!(status.services.iter().all(|s| s.ready), "{:?}", status.services);
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "AllServicesReady"));
    let events = api.state().seen.iter().filter(|s| s.method == Method::POST && s.path.contains("/events")).count();
    assert!(events >= 6, "a Ready event for the Platform and for each service: {events}");
}

#[tokio::test]
async fn a_deleted_child_comes_back() {
    let api = FakeApi::default();
    seed_platform(&api, PlatformSpec::default());
    let ctx = context(&api);
    roll_out(&api, &ctx).await;
    let path = deployment_path(ServiceKind::Users);
    let original: Deployment = stored(&api, &path);
    api.remove(&path);
    let sd: ServiceDeployment = stored(&api, &sd_path(ServiceKind::Users));
    service::reconcile(Arc::new(sd), ctx.clone()).await.unwrap();
    let back: Deployment = stored(&api, &path);
    assert_eq!(back.spec, original.spec);
    // And a deleted ServiceDeployment comes back from the Platform.
    api.remove(&sd_path(ServiceKind::Events));
    platform::reconcile(Arc::new(stored(&api, PLATFORM)), ctx).await.unwrap();
    assert!(api.get(&sd_path(ServiceKind::Events)).is_some());
}

#[tokio::test]
async fn a_failing_apply_is_reported_as_degraded_and_retried_with_backoff() {
    let api = FakeApi::default();
    seed_platform(&api, PlatformSpec::default());
    let ctx = context(&api);
    roll_out(&api, &ctx).await;
    api.state().fail_writes.push(("/apis/apps/v1/namespaces/apps/deployments/".into(), 500));
    let sd: Arc<ServiceDeployment> = Arc::new(stored(&api, &sd_path(ServiceKind::Events)));
    let error = service::reconcile(sd.clone(), ctx.clone()).await.unwrap_err();
    assert_eq!(error.label(), "Kube");
    let status = api.get(&sd_path(ServiceKind::Events)).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Degraded"), ("True".into(), "ReconcileFailed".into()));
    assert_eq!(controller::error_policy(sd.clone(), &error, ctx.clone()), Action::requeue(Duration::from_secs(5)));
    assert_eq!(controller::error_policy(sd.clone(), &error, ctx.clone()), Action::requeue(Duration::from_secs(10)));
    let warnings = api.state().seen.iter().filter(|s| s.method == Method::POST && s.path.contains("/events")).count();
    assert!(warnings >= 1, "a Warning event is recorded");
    // The Platform sees its service degraded.
    platform::reconcile(Arc::new(stored(&api, PLATFORM)), ctx.clone()).await.unwrap();
    let platform_status = api.get(PLATFORM).unwrap()["status"].clone();
    assert_eq!(condition(&platform_status, "Degraded"), ("True".into(), "ServiceDegraded".into()));
    // Once the API accepts writes again, Degraded clears.
    api.state().fail_writes.clear();
    service::reconcile(Arc::new(stored(&api, &sd_path(ServiceKind::Events))), ctx.clone()).await.unwrap();
    let status = api.get(&sd_path(ServiceKind::Events)).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Degraded").0, "False");
}

#[tokio::test]
async fn a_service_without_its_platform_is_degraded() {
    let api = FakeApi::default();
    seed_platform(&api, PlatformSpec::default());
    let ctx = context(&api);
    roll_out(&api, &ctx).await;
    api.remove(PLATFORM);
    let sd: ServiceDeployment = stored(&api, &sd_path(ServiceKind::Users));
    let error = service::reconcile(Arc::new(sd), ctx).await.unwrap_err();
    assert_eq!(error.label(), "PlatformMissing");
    let status = api.get(&sd_path(ServiceKind::Users)).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Degraded"), ("True".into(), "ReconcileFailed".into()));
}

#[tokio::test]
async fn disabling_a_service_removes_its_service_deployment() {
    let api = FakeApi::default();
    seed_platform(&api, PlatformSpec::default());
    let ctx = context(&api);
    roll_out(&api, &ctx).await;
    let mut platform: Platform = stored(&api, PLATFORM);
    platform.spec.services.push(operator::crd::ServiceOverrides {
        enabled: Some(false),
        ..operator::crd::ServiceOverrides::new(ServiceKind::Analytics)
    });
    platform.metadata.generation = Some(2);
    api.put(PLATFORM, serde_json::to_value(&platform).unwrap());
    platform::reconcile(Arc::new(platform), ctx).await.unwrap();
    assert!(api.get(&sd_path(ServiceKind::Analytics)).is_none());
    assert!(api.get(&sd_path(ServiceKind::Events)).is_some());
}

#[tokio::test]
async fn an_http_route_without_the_gateway_api_is_a_clear_degraded_condition() {
    let api = FakeApi::default();
    let mut spec = PlatformSpec::default();
    spec.gateway.http_route = Some(operator::crd::HttpRouteSpec {
        parent_ref: operator::crd::ParentRef { name: "public".into(), namespace: None, section_name: None },
    });
    let platform = seed_platform(&api, spec);
    let error = platform::reconcile(Arc::new(platform), context(&api)).await.unwrap_err();
    assert_eq!(error.label(), "GatewayApiMissing");
    let status = api.get(PLATFORM).unwrap()["status"].clone();
    assert_eq!(condition(&status, "Degraded"), ("True".into(), "ReconcileFailed".into()));
    let message =
        status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Degraded").unwrap()["message"].clone();
    assert!(message.as_str().unwrap().contains("Gateway API"), "{message}");
    // With the Gateway API served, the route is applied.
    api.state().gateway_api = true;
    platform::reconcile(Arc::new(stored(&api, PLATFORM)), context(&api)).await.unwrap();
    let route = api.get("/apis/gateway.networking.k8s.io/v1/namespaces/apps/httproutes/demo").unwrap();
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "public");
}

mod leader_election {
    use super::*;
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::Api;
    use operator::leader::{Elector, Timing};

    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/apps/leases/veche-operator";

    fn elector(api: &FakeApi, me: &str) -> Elector {
        Elector::new(Api::<Lease>::namespaced(api.client(), NS), "veche-operator", me, Timing::default())
    }

    fn holder(api: &FakeApi) -> Option<String> {
        api.get(LEASE).and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    }

    #[tokio::test]
    async fn two_replicas_elect_one_leader() {
        let api = FakeApi::default();
        let (a, b) = (elector(&api, "a"), elector(&api, "b"));
        assert!(a.try_acquire().await.unwrap());
        assert!(!b.try_acquire().await.unwrap(), "b waits while a renews");
        assert!(a.try_acquire().await.unwrap(), "a renews");
        assert_eq!(holder(&api).as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn a_released_lease_passes_to_the_standby_at_once() {
        let api = FakeApi::default();
        let (a, b) = (elector(&api, "a"), elector(&api, "b"));
        assert!(a.try_acquire().await.unwrap());
        a.release().await;
        assert_eq!(holder(&api), None);
        assert!(b.try_acquire().await.unwrap());
        assert_eq!(holder(&api).as_deref(), Some("b"));
        assert_eq!(api.get(LEASE).unwrap()["spec"]["leaseTransitions"], 1);
        assert!(!a.try_acquire().await.unwrap(), "the old leader does not take it back");
    }

    #[tokio::test]
    async fn a_lease_whose_holder_stopped_renewing_is_taken_over() {
        let api = FakeApi::default();
        assert!(elector(&api, "a").try_acquire().await.unwrap());
        let mut lease = api.get(LEASE).unwrap();
        lease["spec"]["renewTime"] = json!("2000-01-01T00:00:00.000000Z");
        api.put(LEASE, lease);
        assert!(elector(&api, "b").try_acquire().await.unwrap());
        assert_eq!(holder(&api).as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn a_lost_race_is_not_leadership_and_not_an_error() {
        let api = FakeApi::default();
        let (a, b) = (elector(&api, "a"), elector(&api, "b"));
        assert!(a.try_acquire().await.unwrap());
        a.release().await;
        // Another replica writes between b's read and b's write: b's replace is a 409.
        api.state().fail_writes.push(("/apis/coordination.k8s.io/".into(), 409));
        assert!(!b.try_acquire().await.unwrap());
        assert_eq!(holder(&api), None);
    }
}
