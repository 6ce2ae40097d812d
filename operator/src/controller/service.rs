//! The ServiceDeployment controller: renders one service's Deployment, Service,
//! PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy, ServiceAccount and
//! volume claim, applies them, and reports the Deployment's progress (which the scale
//! subresource and the Platform read).

use super::{Context, Error, apply, delete_owned, key_of, measured, owned_watch};
use crate::crd::{Platform, ServiceDeployment, ServiceDeploymentStatus};
use crate::render::service::{self as render, ServiceObjects};
use crate::render::{MANAGER, namespace_of, selector_labels};
use crate::status::{self, DeploymentState, READY};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const NAME: &str = "servicedeployment";

/// The controller, watching ServiceDeployments, what they own, and their Platforms
/// (a Platform change, say a new image, reaches every one of its services).
pub fn controller(
    client: Client,
    sds: Api<ServiceDeployment>,
    platforms: Api<Platform>,
    namespace: Option<&str>,
) -> Controller<ServiceDeployment> {
    let controller = Controller::new(sds, watcher::Config::default().any_semantic());
    let store = controller.store();
    controller
        .owns(super::scoped::<Deployment>(&client, namespace), owned_watch())
        .owns(super::scoped::<Service>(&client, namespace), owned_watch())
        .owns(super::scoped::<PodDisruptionBudget>(&client, namespace), owned_watch())
        .owns(super::scoped::<HorizontalPodAutoscaler>(&client, namespace), owned_watch())
        .owns(super::scoped::<NetworkPolicy>(&client, namespace), owned_watch())
        .owns(super::scoped::<ServiceAccount>(&client, namespace), owned_watch())
        .owns(super::scoped::<PersistentVolumeClaim>(&client, namespace), owned_watch())
        .watches(platforms, watcher::Config::default().any_semantic(), move |platform: Platform| {
            let ns = platform.namespace();
            let name = platform.name_any();
            store
                .state()
                .into_iter()
                .filter(|sd| sd.namespace() == ns && sd.spec.platform_ref.name == name)
                .map(|sd| ObjectRef::from_obj(sd.as_ref()))
                .collect::<Vec<_>>()
        })
}

pub async fn reconcile(sd: Arc<ServiceDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(NAME, reconcile_inner(sd, ctx)).await
}

async fn reconcile_inner(sd: Arc<ServiceDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    if sd.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = namespace_of(sd.as_ref(), "ServiceDeployment")?;
    let api: Api<ServiceDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let platforms: Api<Platform> = Api::namespaced(ctx.client.clone(), &ns);
    let result = match platforms.get_opt(&sd.spec.platform_ref.name).await {
        Ok(Some(platform)) if platform.spec.paused => {
            ctx.succeeded(&key_of(sd.as_ref()));
            return Ok(Action::await_change());
        }
        Ok(Some(platform)) => converge(&platform, &sd, &ns, &ctx).await,
        Ok(None) => Err(Error::PlatformMissing(sd.spec.platform_ref.name.clone())),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(deployment) => {
            let state = DeploymentState::of(&deployment);
            let ready = report(&sd, &api, &ctx, Some(&state), None).await?;
            ctx.succeeded(&key_of(sd.as_ref()));
            // Deployment events bring us back as the rollout moves; this is a safety net.
            Ok(Action::requeue(if ready { Duration::from_secs(3600) } else { Duration::from_secs(30) }))
        }
        Err(error) => {
            let message = error.to_string();
            ctx.event(sd.as_ref(), EventType::Warning, "ReconcileFailed", message.clone()).await;
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            let state = deployments.get_opt(&sd.name_any()).await.ok().flatten().map(|d| DeploymentState::of(&d));
            if let Err(e) = report(&sd, &api, &ctx, state.as_ref(), Some(&message)).await {
                tracing::warn!(error = %e, "could not report the failure in status");
            }
            Err(error)
        }
    }
}

/// Applies everything the ServiceDeployment owns; returns the applied Deployment.
async fn converge(platform: &Platform, sd: &ServiceDeployment, ns: &str, ctx: &Context) -> Result<Deployment, Error> {
    let client = &ctx.client;
    let ServiceObjects { service_account, pvc, deployment, service, pdb, hpa, network_policy } =
        render::render(platform, sd)?;
    let uid = sd.uid().unwrap_or_default();
    apply(client, ns, &service_account).await?;
    if let Some(pvc) = &pvc {
        apply(client, ns, pvc).await?;
    }
    let deployment = apply(client, ns, &deployment).await?;
    apply(client, ns, &service).await?;
    apply(client, ns, &pdb).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    match &hpa {
        Some(hpa) => {
            apply(client, ns, hpa).await?;
        }
        None => {
            if delete_owned(&hpas, &sd.name_any(), &uid).await? {
                ctx.event(sd, EventType::Normal, "AutoscalingDisabled", "removed the autoscaler".into()).await;
            }
        }
    }
    apply(client, ns, &network_policy).await?;
    Ok(deployment)
}

/// Writes the status when it changed, with an Event when readiness flips.
async fn report(
    sd: &ServiceDeployment,
    api: &Api<ServiceDeployment>,
    ctx: &Context,
    state: Option<&DeploymentState>,
    error: Option<&str>,
) -> Result<bool, Error> {
    let old = sd.status.clone().unwrap_or_default();
    let verdict = status::service_verdict(state, error);
    let ready = verdict.is_ready();
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(ctx.env.now()).unwrap_or_default());
    let platform = &sd.spec.platform_ref.name;
    let selector = selector_labels(platform, sd.spec.service)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let new = ServiceDeploymentStatus {
        observed_generation: sd.metadata.generation,
        replicas: state.map_or(0, |s| s.replicas),
        available_replicas: state.map_or(0, |s| s.available),
        selector: Some(selector),
        conditions: status::conditions(&old.conditions, verdict, sd.metadata.generation, &now),
    };
    if new != old {
        let body = json!({
            "apiVersion": ServiceDeployment::api_version(&()),
            "kind": ServiceDeployment::kind(&()),
            "status": new,
        });
        api.patch_status(&sd.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await?;
    }
    let was_ready = status::status_of(&old.conditions, READY) == Some("True");
    if ready != was_ready {
        let (type_, reason) = if ready { (EventType::Normal, "Ready") } else { (EventType::Warning, "NotReady") };
        let message = new.conditions.first().map(|c| c.message.clone()).unwrap_or_default();
        ctx.event(sd, type_, reason, message).await;
    }
    Ok(ready)
}
