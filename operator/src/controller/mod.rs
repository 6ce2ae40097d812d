//! The controllers: fetch, render, apply, report. What they share lives here: the
//! [`Context`] every reconcile gets, the [`Error`] whose variants are metric labels,
//! server-side apply under one field manager, per-object retry backoff, and `run`,
//! which starts both controllers.

pub mod platform;
pub mod service;

use crate::crd::{Platform, ServiceDeployment};
use crate::render::{MANAGER, RenderError};
use crate::telemetry;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a reconcile failed. The variant name is the `error` label of the failure metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Render(#[from] RenderError),
    #[error("Platform {0} does not exist")]
    PlatformMissing(String),
    #[error(
        "gateway.httpRoute is set but this cluster does not serve the Gateway API (HTTPRoute, gateway.networking.k8s.io/v1)"
    )]
    GatewayApiMissing,
}

impl Error {
    /// The metric label of this failure mode.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "Kube",
            Error::Render(_) => "Render",
            Error::PlatformMissing(_) => "PlatformMissing",
            Error::GatewayApiMissing => "GatewayApiMissing",
        }
    }
}

/// Where randomness and time come from: real in the binary, fixed in tests.
pub trait Environment: Send + Sync {
    /// Unix time now.
    fn now(&self) -> i64;
    /// A source of fresh keys and client secrets.
    fn entropy(&self) -> Box<dyn crate::render::platform::Entropy + Send>;
}

/// The system clock and random number generator.
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn now(&self) -> i64 {
        k8s_openapi::jiff::Timestamp::now().as_second()
    }
    fn entropy(&self) -> Box<dyn crate::render::platform::Entropy + Send> {
        Box::new(crate::render::platform::SystemEntropy)
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub env: Box<dyn Environment>,
    /// Consecutive failures per object, for exponential backoff; cleared on success.
    /// A std Mutex: never held across an `.await`, and the critical section is a map
    /// lookup.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, reporter: Reporter, env: Box<dyn Environment>) -> Self {
        let recorder = Recorder::new(client.clone(), reporter);
        Self { client, recorder, env, failures: Mutex::new(HashMap::new()) }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a failure of `key`; returns how long to wait before the next try:
    /// 5 s doubling to at most 5 minutes.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures();
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_after(*n)
    }

    pub fn succeeded(&self, key: &str) {
        self.failures().remove(key);
    }

    /// Publishes an Event about `obj`; a failure to record is logged, not fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, note: String) {
        let event =
            Event { type_, reason: reason.into(), note: Some(note), action: "Reconcile".into(), secondary: None };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not record an event");
        }
    }
}

/// What both controllers do with a failed reconcile: log it and retry after a
/// per-object exponential backoff (the failure is already in status and events).
pub fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff(&key_of(obj.as_ref()));
    tracing::warn!(kind = %K::kind(&()), name = %obj.meta().name.as_deref().unwrap_or(""), error = %error, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

/// Exponential backoff: 5 s after the first failure, doubling, capped at 5 minutes.
pub fn backoff_after(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    Duration::from_secs(secs.min(300))
}

/// A stable key for an object in the backoff map.
pub fn key_of<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Server-side apply of `obj` in `namespace` under the operator's field manager,
/// forcing ownership of the fields we set (we are their one writer).
pub async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let name = obj.meta().name.clone().ok_or(RenderError::MissingMetadata { kind: "child", field: "metadata.name" })?;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj)).await?)
}

/// Deletes `name` if it exists and is controlled by `owner_uid`; absent (or a kind the
/// cluster does not serve) is fine.
pub async fn delete_owned<K>(api: &Api<K>, name: &str, owner_uid: &str) -> Result<bool, Error>
where
    K: Resource + Clone + Debug + DeserializeOwned,
{
    let existing = match api.get_opt(name).await {
        Ok(Some(existing)) => existing,
        Ok(None) => return Ok(false),
        // A kind the cluster does not serve (the Gateway API not installed) answers a
        // bare 404 that is not a Status object: nothing of it can exist either.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let ours = existing.owner_references().iter().any(|o| o.uid == owner_uid && o.controller == Some(true));
    if !ours {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Times a reconcile and records its metrics.
pub async fn measured<F>(controller: &'static str, work: F) -> Result<Action, Error>
where
    F: Future<Output = Result<Action, Error>>,
{
    let started = Instant::now();
    let result = work.await;
    telemetry::record_reconcile(controller, started.elapsed(), result.as_ref().err().map(Error::label));
    result
}

/// Only our own children are watched (and cached): a cluster's Secrets and
/// Deployments could be many, and the operator aims at a few tens of MiB.
pub fn owned_watch() -> watcher::Config {
    watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"))
}

/// Runs both controllers until `shutdown` resolves (then they finish what they are
/// doing and return). Each runs at most `concurrency` reconciles at once: every one in
/// flight holds API connections and response bodies, so this bounds the operator's
/// memory when many objects change together (and the API server's load with it).
pub async fn run(
    client: Client,
    namespace: Option<String>,
    concurrency: u16,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let platforms: Api<Platform> = scoped(&client, namespace.as_deref());
    let sds: Api<ServiceDeployment> = scoped(&client, namespace.as_deref());
    let platform_controller =
        platform::controller(client.clone(), platforms.clone(), sds.clone(), namespace.as_deref())
            .with_config(controller_config(concurrency))
            .graceful_shutdown_on(shutdown.clone());
    let readiness = report_readiness(platform_controller.store(), shutdown.clone());
    let platform_controller =
        platform_controller.run(platform::reconcile, error_policy, ctx.clone()).for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "platform controller");
            }
        });
    let service_controller = service::controller(client.clone(), sds, platforms, namespace.as_deref())
        .with_config(controller_config(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(service::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "service controller");
            }
        });
    futures::join!(platform_controller, service_controller, readiness);
}

/// How often the Platforms' readiness is counted for `/metrics`.
const READINESS_INTERVAL: Duration = Duration::from_secs(15);

/// Keeps `veche_operator_platforms{ready}` at the number of watched Platforms that are
/// Ready and that are not, counted from the controller's cache. Counts rather than a
/// gauge per Platform: a deleted Platform's series could never be taken back, and would
/// read as "not ready" for ever.
async fn report_readiness(store: Store<Platform>, shutdown: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(READINESS_INTERVAL);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {
                let (ready, not_ready) = crate::status::count_ready(&store.state());
                telemetry::record_platforms(ready, not_ready);
            }
        }
    }
}

fn controller_config(concurrency: u16) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(concurrency)
}

/// An Api in one namespace, or across all.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_to_five_minutes() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff_after(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff_after(u32::MAX).as_secs(), 300);
    }
}
