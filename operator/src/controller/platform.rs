//! The Platform controller: keeps the signing keys, client secrets, route table,
//! ServiceDeployments and the Ingress or HTTPRoute as the Platform declares them, and
//! reports their state in the Platform's status.

use super::{Context, Error, apply, delete_owned, key_of, measured, owned_watch};
use crate::crd::{Platform, PlatformStatus, ServiceDeployment, ServiceKind};
use crate::render::platform::{self as render, Inputs, PlatformObjects, http_route_resource};
use crate::render::{MANAGER, Names, PLATFORM_LABEL, store};
use crate::status::{self, DATABASE, DEGRADED, PROGRESSING, READY};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const NAME: &str = "platform";

/// A ready platform is looked at again after this long even without events (key
/// rotation is also a time-based change).
const RESYNC: Duration = Duration::from_secs(3600);
/// A platform that is not ready yet is looked at this often (its children's events
/// usually come sooner).
const POLL_NOT_READY: Duration = Duration::from_secs(30);

/// The controller, watching Platforms and what they own.
pub fn controller(
    client: Client,
    platforms: Api<Platform>,
    sds: Api<ServiceDeployment>,
    namespace: Option<&str>,
) -> Controller<Platform> {
    Controller::new(platforms, watcher::Config::default().any_semantic())
        .owns(sds, owned_watch())
        .owns(super::scoped::<Secret>(&client, namespace), owned_watch())
        .owns(super::scoped::<ConfigMap>(&client, namespace), owned_watch())
        .owns(super::scoped::<Ingress>(&client, namespace), owned_watch())
}

pub async fn reconcile(platform: Arc<Platform>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(NAME, reconcile_inner(platform, ctx)).await
}

async fn reconcile_inner(platform: Arc<Platform>, ctx: Arc<Context>) -> Result<Action, Error> {
    if platform.meta().deletion_timestamp.is_some() {
        // Children carry owner references: the garbage collector removes them.
        return Ok(Action::await_change());
    }
    let names = Names::of(&platform)?;
    let api: Api<Platform> = Api::namespaced(ctx.client.clone(), &names.namespace);
    if platform.spec.paused {
        report_paused(&platform, &api, &ctx).await?;
        ctx.succeeded(&key_of(platform.as_ref()));
        return Ok(Action::await_change());
    }
    match converge(&platform, &names, &ctx).await {
        Ok((objects, sds)) => {
            let ready = report(&platform, &api, &ctx, &objects, &sds, None).await?;
            ctx.succeeded(&key_of(platform.as_ref()));
            Ok(Action::requeue(if ready { RESYNC } else { POLL_NOT_READY }))
        }
        Err(error) => {
            // Say so where people look (status, events), then let the backoff retry.
            let message = error.to_string();
            ctx.event(platform.as_ref(), EventType::Warning, "ReconcileFailed", message.clone()).await;
            let sds = current_sds(&platform, &names, &ctx).await.unwrap_or_default();
            let endpoint = platform.status.as_ref().and_then(|s| s.endpoint.clone());
            if let Err(e) = write_status(&platform, &api, &ctx, &sds, endpoint, Some(&message)).await {
                tracing::warn!(error = %e, "could not report the failure in status");
            }
            Err(error)
        }
    }
}

/// Renders and applies everything; returns what was rendered and the applied
/// ServiceDeployments (with their current status).
async fn converge(
    platform: &Platform,
    names: &Names,
    ctx: &Context,
) -> Result<(PlatformObjects, Vec<ServiceDeployment>), Error> {
    let client = &ctx.client;
    let ns = names.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let keys = secrets.get_opt(&names.signing_keys()).await?.and_then(|s| s.data);
    let clients = secrets.get_opt(&names.service_clients()).await?.and_then(|s| s.data);
    let inputs = Inputs { now: ctx.env.now(), signing_keys: keys.as_ref(), service_clients: clients.as_ref() };
    let objects = render::render(platform, &inputs, ctx.env.entropy().as_mut())?;

    let before: usize = keys.as_ref().map_or(0, |k| k.len());
    let after = objects.signing_keys.data.as_ref().map_or(0, |k| k.len());
    apply(client, ns, &objects.signing_keys).await?;
    if keys.is_none() {
        ctx.event(platform, EventType::Normal, "SigningKeyCreated", "created the first token signing key".into()).await;
    } else if keys.as_ref() != objects.signing_keys.data.as_ref() {
        let note = format!("signing keys rotated: {before} before, {after} now");
        ctx.event(platform, EventType::Normal, "SigningKeyRotated", note).await;
    }
    apply(client, ns, &objects.service_clients).await?;
    apply(client, ns, &objects.routes).await?;

    // Only a ydb Platform can have ServiceDeployments an older operator scaled past one
    // on a store their service does not speak: no list for any other.
    let current = match platform.spec.database.ydb() {
        Some(_) => current_sds(platform, names, ctx).await?,
        None => Vec::new(),
    };
    let mut sds = Vec::with_capacity(objects.services.len());
    for sd in &objects.services {
        let mut sd = sd.clone();
        let kind = sd.spec.service;
        store::settle(&mut sd, current.iter().find(|c| c.spec.service == kind));
        sds.push(apply(client, ns, &sd).await?);
    }
    let uid = platform.uid().unwrap_or_default();
    let sd_api: Api<ServiceDeployment> = Api::namespaced(client.clone(), ns);
    let wanted: Vec<String> = objects.services.iter().filter_map(|sd| sd.metadata.name.clone()).collect();
    for kind in ServiceKind::ALL {
        let name = names.service(kind);
        if !wanted.contains(&name) && delete_owned(&sd_api, &name, &uid).await? {
            ctx.event(platform, EventType::Normal, "ServiceRemoved", format!("{kind} is disabled")).await;
        }
    }

    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), ns);
    match &objects.ingress {
        Some(ingress) => {
            apply(client, ns, ingress).await?;
        }
        None => {
            delete_owned(&ingresses, &names.route(), &uid).await?;
        }
    }
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &http_route_resource());
    match &objects.http_route {
        Some(route) => {
            let params = PatchParams::apply(MANAGER).force();
            match routes.patch(&names.route(), &params, &Patch::Apply(route)).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Err(Error::GatewayApiMissing),
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            // The Gateway API may not be installed at all: its kind then reads as 404,
            // which `get_opt` takes for "no such route".
            delete_owned(&routes, &names.route(), &uid).await?;
        }
    }
    Ok((objects, sds))
}

/// The ServiceDeployments of a platform as they are now (for status after a failure).
async fn current_sds(platform: &Platform, names: &Names, ctx: &Context) -> Result<Vec<ServiceDeployment>, Error> {
    let api: Api<ServiceDeployment> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let list = api.list(&ListParams::default().labels(&format!("{PLATFORM_LABEL}={}", names.platform))).await?;
    let uid = platform.uid();
    Ok(list.items.into_iter().filter(|sd| sd.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref())).collect())
}

/// Writes the status and records an Event when readiness changes. Returns readiness.
async fn report(
    platform: &Platform,
    api: &Api<Platform>,
    ctx: &Context,
    objects: &PlatformObjects,
    sds: &[ServiceDeployment],
    error: Option<&str>,
) -> Result<bool, Error> {
    let was_ready = platform.status.as_ref().and_then(|s| status::status_of(&s.conditions, READY)) == Some("True");
    let new = write_status(platform, api, ctx, sds, Some(objects.endpoint.clone()), error).await?;
    let ready = status::status_of(&new.conditions, READY) == Some("True");
    let database = |conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
        conditions.iter().find(|c| c.type_ == DATABASE).map(|c| (c.status.clone(), c.message.clone()))
    };
    let was = platform.status.as_ref().and_then(|s| database(&s.conditions));
    let turned_false = database(&new.conditions).filter(|now| now.0 == "False" && Some(now) != was.as_ref());
    if let Some((_, message)) = turned_false {
        ctx.event(platform, EventType::Warning, "DatabaseNotAsRequested", message).await;
    }
    if ready != was_ready {
        let (type_, reason) = if ready { (EventType::Normal, "Ready") } else { (EventType::Warning, "NotReady") };
        let message = new.conditions.iter().find(|c| c.type_ == READY).map(|c| c.message.clone()).unwrap_or_default();
        ctx.event(platform, type_, reason, message).await;
    }
    Ok(ready)
}

/// The status from the ServiceDeployments, written with server-side apply on the status
/// subresource. Skipped when nothing changed, so a steady state writes nothing.
async fn write_status(
    platform: &Platform,
    api: &Api<Platform>,
    ctx: &Context,
    sds: &[ServiceDeployment],
    endpoint: Option<String>,
    error: Option<&str>,
) -> Result<PlatformStatus, Error> {
    let enabled = render::enabled_services(platform);
    let found: Vec<Option<&ServiceDeployment>> =
        enabled.iter().map(|kind| sds.iter().find(|sd| sd.spec.service == *kind)).collect();
    let summaries: Vec<_> = enabled.iter().zip(&found).map(|(kind, sd)| status::summarize(*kind, *sd)).collect();
    let shortfall = store::shortfall(platform, &enabled);
    let database = status::database_condition(platform.spec.database.ydb().is_some(), &shortfall);
    let verdict = status::platform_verdict(&summaries, &found, error, platform.spec.paused, database);
    let old = platform.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(ctx.env.now()).unwrap_or_default());
    let new = PlatformStatus {
        observed_generation: platform.metadata.generation,
        conditions: status::conditions(&old.conditions, verdict, platform.metadata.generation, &now),
        services: summaries,
        endpoint,
    };
    if new != old {
        patch_status(api, platform, &new).await?;
    }
    Ok(new)
}

async fn patch_status(api: &Api<Platform>, platform: &Platform, status: &PlatformStatus) -> Result<(), Error> {
    let body = json!({
        "apiVersion": Platform::api_version(&()),
        "kind": Platform::kind(&()),
        "status": status,
    });
    api.patch_status(&platform.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(())
}

/// A paused platform writes nothing but, once, the news that it is paused.
async fn report_paused(platform: &Platform, api: &Api<Platform>, ctx: &Context) -> Result<(), Error> {
    let status = platform.status.clone().unwrap_or_default();
    let paused_reported = status.observed_generation == platform.metadata.generation
        && status.conditions.iter().any(|c| c.type_ == PROGRESSING && c.reason == "Paused");
    if paused_reported {
        return Ok(());
    }
    let mut new = status.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(ctx.env.now()).unwrap_or_default());
    let keep = |type_: &'static str| {
        status.conditions.iter().find(|c| c.type_ == type_).map(|c| status::Cond {
            type_,
            status: match c.status.as_str() {
                "True" => status::Status::True,
                "False" => status::Status::False,
                _ => status::Status::Unknown,
            },
            reason: if type_ == READY { "Paused" } else { "AsExpected" },
            message: c.message.clone(),
        })
    };
    let verdict = status::Verdict {
        ready: keep(READY).unwrap_or(status::Cond {
            type_: READY,
            status: status::Status::Unknown,
            reason: "Paused",
            message: "paused before the first rollout".into(),
        }),
        progressing: status::Cond {
            type_: PROGRESSING,
            status: status::Status::False,
            reason: "Paused",
            message: "spec.paused is set: nothing is applied".into(),
        },
        degraded: keep(DEGRADED).unwrap_or(status::Cond {
            type_: DEGRADED,
            status: status::Status::False,
            reason: "AsExpected",
            message: String::new(),
        }),
        database: None,
    };
    new.observed_generation = platform.metadata.generation;
    new.conditions = status::conditions(&status.conditions, verdict, platform.metadata.generation, &now);
    // What the services run on has not changed: nothing was applied.
    new.conditions.extend(status.conditions.iter().filter(|c| c.type_ == DATABASE).cloned());
    patch_status(api, platform, &new).await?;
    ctx.event(platform, EventType::Normal, "Paused", "spec.paused is set: changes are not applied".into()).await;
    Ok(())
}
