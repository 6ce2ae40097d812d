//! ServiceDeployment (with its Platform) → Deployment, Service, PodDisruptionBudget,
//! HorizontalPodAutoscaler (when autoscaling), NetworkPolicy, ServiceAccount and, for a
//! domain service on the embedded store, its PersistentVolumeClaim.
//!
//! The pods follow the restricted Pod Security Standard: they would be admitted in a
//! namespace labelled `pod-security.kubernetes.io/enforce: restricted`.

use super::platform::{GATEWAY_SERVICE_PORT, ROUTES_KEY, SERVICE_CLIENTS_KEY};
use super::store::on_volume;
use super::{
    CONFIG_HASH_ANNOTATION, HTTP_PORT, METRICS_PORT, Names, PLATFORM_LABEL, RenderError, labels, owner_ref,
    platform_image, platform_version, public_url, sd_name, selector_labels,
};
use crate::crd::{Platform, ServiceDeployment, ServiceKind};
use catalog::env;
use catalog::limits as default_limits;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, LocalObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort,
    ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Where the services keep their data (a writable volume).
pub const DATA_DIR: &str = "/var/lib/veche";
/// Where the users service reads its signing keys (the Secret, read-only).
pub const KEYS_DIR: &str = "/etc/veche/keys";
/// Where the gateway reads its route table (the ConfigMap).
pub const ROUTES_DIR: &str = "/etc/veche/routes";
/// The unprivileged user the pods run as (the conventional "nonroot" of distroless).
pub const RUN_AS: i64 = 65532;
/// Size of the embedded store's volume when the Platform names none.
pub const DEFAULT_STORAGE: &str = "1Gi";
/// Key of the YDB credentials Secret when the Platform names none.
pub const DEFAULT_YDB_TOKEN_KEY: &str = "token";

/// Everything a ServiceDeployment owns.
#[derive(Debug, Clone)]
pub struct ServiceObjects {
    pub service_account: ServiceAccount,
    pub pvc: Option<PersistentVolumeClaim>,
    pub deployment: Deployment,
    pub service: Service,
    pub pdb: PodDisruptionBudget,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub network_policy: NetworkPolicy,
}

/// Name of a service's data volume claim.
pub fn pvc_name(sd_name: &str) -> String {
    format!("{sd_name}-data")
}

/// Renders everything a ServiceDeployment owns. The platform gives what all services
/// share (image, database, auth, gateway settings).
pub fn render(platform: &Platform, sd: &ServiceDeployment) -> Result<ServiceObjects, RenderError> {
    let names = Names::of(platform)?;
    let name = sd_name(sd)?;
    let kind = sd.spec.service;
    let owner = owner_ref(sd, "ServiceDeployment")?;
    let version = platform_version(platform);
    let all_labels = labels(&names.platform, Some(kind), version);
    let selector = selector_labels(&names.platform, kind);
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(all_labels.clone()),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };
    let label_selector = LabelSelector { match_labels: Some(selector.clone()), match_expressions: None };

    let service_account = ServiceAccount {
        metadata: meta(name.clone()),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };

    let pvc = on_volume(sd).then(|| {
        let embedded = platform.spec.database.embedded.clone().unwrap_or_default();
        let size = embedded.storage_size.unwrap_or_else(|| DEFAULT_STORAGE.into());
        PersistentVolumeClaim {
            metadata: meta(pvc_name(&name)),
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: embedded.storage_class_name,
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), Quantity(size))])),
                    limits: None,
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        }
    });

    let deployment = Deployment {
        metadata: meta(name.clone()),
        spec: Some(DeploymentSpec {
            // With autoscaling the count belongs to the HPA: not writing it at all is
            // what keeps server-side apply from resetting it on every reconcile.
            replicas: if autoscaling(sd).is_some() { None } else { Some(replicas(sd)) },
            selector: label_selector.clone(),
            strategy: Some(strategy(sd)),
            revision_history_limit: Some(5),
            template: pod_template(platform, sd, &names, &name, all_labels.clone()),
            ..DeploymentSpec::default()
        }),
        status: None,
    };

    let service_port = if kind == ServiceKind::Gateway { GATEWAY_SERVICE_PORT } else { HTTP_PORT };
    let service = Service {
        metadata: meta(name.clone()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: service_port,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                app_protocol: Some("http".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };

    let pdb = PodDisruptionBudget {
        metadata: meta(name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            // One pod at a time may go: a drain never takes a whole multi-replica
            // service down, and never blocks on a single-replica one.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(label_selector.clone()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    };

    let hpa = autoscaling(sd).map(|auto| HorizontalPodAutoscaler {
        metadata: meta(name.clone()),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: name.clone(),
            },
            min_replicas: Some(auto.min_replicas.unwrap_or(1)),
            max_replicas: auto.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(auto.target_cpu_utilization_percentage.unwrap_or(80)),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        }),
        status: None,
    });

    let network_policy =
        NetworkPolicy { metadata: meta(name.clone()), spec: Some(network_policy_spec(&names, kind, label_selector)) };

    Ok(ServiceObjects { service_account, pvc, deployment, service, pdb, hpa, network_policy })
}

/// The gateway is open to everyone (it is the way in); a domain service only to the
/// pods of its own platform: the gateway and the sibling services that call it.
fn network_policy_spec(names: &Names, kind: ServiceKind, pods: LabelSelector) -> NetworkPolicySpec {
    let from = (kind != ServiceKind::Gateway).then(|| {
        vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(PLATFORM_LABEL.to_string(), names.platform.clone())])),
                match_expressions: None,
            }),
            ..NetworkPolicyPeer::default()
        }]
    });
    NetworkPolicySpec {
        pod_selector: Some(pods),
        policy_types: Some(vec!["Ingress".into()]),
        ingress: Some(vec![NetworkPolicyIngressRule {
            from,
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(HTTP_PORT)),
                protocol: Some("TCP".into()),
                end_port: None,
            }]),
        }]),
        egress: None,
    }
}

/// The replica count of the Deployment: the ServiceDeployment's, and at most one on a
/// volume (the CRD's rule refuses more; this holds for objects stored before it).
fn replicas(sd: &ServiceDeployment) -> i32 {
    let asked = sd.spec.replicas.unwrap_or(1);
    if on_volume(sd) { asked.min(1) } else { asked }
}

/// The autoscaling of a service: none on a volume, which one pod owns.
fn autoscaling(sd: &ServiceDeployment) -> Option<&crate::crd::Autoscaling> {
    sd.spec.workload.autoscaling.as_ref().filter(|_| !on_volume(sd))
}

/// A service on a ReadWriteOnce volume with one SQLite writer must stop before its
/// successor starts; everything else rolls with a surge and no gap.
fn strategy(sd: &ServiceDeployment) -> DeploymentStrategy {
    if on_volume(sd) {
        DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }
    } else {
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }
    }
}

fn pod_template(
    platform: &Platform,
    sd: &ServiceDeployment,
    names: &Names,
    name: &str,
    labels: BTreeMap<String, String>,
) -> PodTemplateSpec {
    let kind = sd.spec.service;
    let pod = sd.spec.workload.pod.clone().unwrap_or_default();
    let mut annotations = pod.annotations.clone();
    if let Some(hash) = sd.metadata.annotations.as_ref().and_then(|a| a.get(CONFIG_HASH_ANNOTATION)) {
        annotations.insert(CONFIG_HASH_ANNOTATION.into(), hash.clone());
    }
    let mut volumes = vec![
        Volume {
            name: "data".into(),
            persistent_volume_claim: on_volume(sd)
                .then(|| PersistentVolumeClaimVolumeSource { claim_name: pvc_name(name), read_only: None }),
            empty_dir: (!on_volume(sd)).then(EmptyDirVolumeSource::default),
            ..Volume::default()
        },
        Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
    ];
    let mut mounts = vec![
        VolumeMount { name: "data".into(), mount_path: DATA_DIR.into(), ..VolumeMount::default() },
        VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..VolumeMount::default() },
    ];
    match kind {
        ServiceKind::Users => {
            volumes.push(Volume {
                name: "signing-keys".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(names.signing_keys()),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: "signing-keys".into(),
                mount_path: KEYS_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
        ServiceKind::Gateway => {
            volumes.push(Volume {
                name: "routes".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: names.routes(),
                    default_mode: Some(0o444),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: "routes".into(),
                mount_path: ROUTES_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
        _ => {}
    }

    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    };

    let container = Container {
        name: kind.as_str().into(),
        image: Some(sd.spec.image.clone().unwrap_or_else(|| platform_image(platform))),
        image_pull_policy: platform.spec.image.pull_policy.map(|p| p.as_str().to_string()),
        args: Some(vec!["serve".into(), kind.as_str().into()]),
        env: Some(env(platform, sd, names)),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
        ]),
        resources: Some(sd.spec.workload.resources.clone().unwrap_or_else(default_resources)),
        // A slow first start (migrations) gets a minute before liveness counts.
        startup_probe: Some(probe("/healthz", 2, 30)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(name.into()),
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                // The data volume is writable by the pod's group.
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            containers: vec![container],
            volumes: Some(volumes),
            image_pull_secrets: (!platform.spec.image.pull_secrets.is_empty()).then(|| {
                platform.spec.image.pull_secrets.iter().map(|s| LocalObjectReference { name: s.clone() }).collect()
            }),
            node_selector: (!pod.node_selector.is_empty()).then_some(pod.node_selector),
            tolerations: (!pod.tolerations.is_empty()).then_some(pod.tolerations),
            affinity: pod.affinity,
            topology_spread_constraints: (!pod.topology_spread_constraints.is_empty())
                .then_some(pod.topology_spread_constraints),
            priority_class_name: pod.priority_class_name,
            termination_grace_period_seconds: Some(30),
            enable_service_links: Some(false),
            ..PodSpec::default()
        }),
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }
}

/// Requests let the scheduler place pods and the HPA compute utilisation; the memory
/// limit keeps a leak from taking a node down.
fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("100m".into())),
            ("memory".into(), Quantity("128Mi".into())),
        ])),
        limits: Some(BTreeMap::from([("memory".into(), Quantity("512Mi".into()))])),
        claims: None,
    }
}

fn value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(false) }),
            ..EnvVarSource::default()
        }),
    }
}

/// The users service's identity providers: their settings as JSON, each client secret
/// by reference to a variable taken from its Secret (never the secret in the spec), and
/// the frontend pages sign-ins may return to.
fn sign_in_env(auth: &crate::crd::AuthSpec) -> Vec<EnvVar> {
    let mut vars = Vec::new();
    if !auth.providers.is_empty() {
        let providers: Vec<serde_json::Value> = auth
            .providers
            .iter()
            .map(|p| {
                let mut entry = serde_json::json!({
                    "id": p.id, "name": p.name, "kind": p.kind, "client_id": p.client_id,
                    "client_secret_env": env::auth_client_secret(&p.id),
                });
                let optional = [
                    ("issuer", p.issuer.clone().map(serde_json::Value::from)),
                    ("scopes", (!p.scopes.is_empty()).then(|| p.scopes.clone().into())),
                    ("domains", (!p.domains.is_empty()).then(|| p.domains.clone().into())),
                    ("authorization_url", p.authorization_url.clone().map(Into::into)),
                    ("token_url", p.token_url.clone().map(Into::into)),
                    ("api_url", p.api_url.clone().map(Into::into)),
                ];
                for (key, value) in optional {
                    if let Some(value) = value {
                        entry[key] = value;
                    }
                }
                entry
            })
            .collect();
        vars.push(value(env::AUTH_PROVIDERS, serde_json::Value::from(providers).to_string()));
        for p in &auth.providers {
            let key = p.client_secret.key.as_deref().unwrap_or(DEFAULT_CLIENT_SECRET_KEY);
            vars.push(from_secret(&env::auth_client_secret(&p.id), &p.client_secret.name, key));
        }
    }
    if !auth.redirect_uris.is_empty() {
        vars.push(value(env::AUTH_REDIRECT_URIS, auth.redirect_uris.join(",")));
    }
    vars
}

/// The key of the SMTP URL in its Secret, unless the Platform names one.
const DEFAULT_SMTP_URL_KEY: &str = "url";

/// The key of a provider's client secret in its Secret, unless the Platform names one.
const DEFAULT_CLIENT_SECRET_KEY: &str = "clientSecret";

/// The environment of a service: the contract between operator and `veche serve`.
/// The ServiceDeployment's own `env` comes last and wins over ours by name.
pub fn env(platform: &Platform, sd: &ServiceDeployment, names: &Names) -> Vec<EnvVar> {
    let kind = sd.spec.service;
    let public = public_url(platform, names);
    let auth = &platform.spec.auth;
    let mut vars = vec![
        value(env::LISTEN, format!("0.0.0.0:{HTTP_PORT}")),
        value(env::METRICS_LISTEN, format!("0.0.0.0:{METRICS_PORT}")),
        value(env::DATA_DIR, DATA_DIR),
        value(env::LOG_FORMAT, "json"),
        value(env::PUBLIC_URL, public.clone()),
        value(env::ISSUER, auth.issuer.clone().unwrap_or(public)),
        value(env::USERS_URL, names.service_url(ServiceKind::Users)),
    ];
    let enabled = super::platform::enabled_services(platform);
    // The users service takes a deleted account out of every organization first, when
    // that service runs (without the URL it deletes without asking).
    if kind != ServiceKind::Users || enabled.contains(&ServiceKind::Organizations) {
        vars.push(value(env::ORGANIZATIONS_URL, names.service_url(ServiceKind::Organizations)));
    }
    vars.push(from_secret(env::SERVICE_CLIENT_SECRET, &names.service_clients(), kind.as_str()));
    // Services with an outbox relay their domain facts to analytics, when it runs.
    let relays = matches!(kind, ServiceKind::Users | ServiceKind::Organizations | ServiceKind::Events);
    if relays && enabled.contains(&ServiceKind::Analytics) {
        vars.push(value(env::ANALYTICS_URL, names.service_url(ServiceKind::Analytics)));
    }
    // Behind a proxy the peer is the proxy: services sit behind the gateway, and the
    // gateway behind the ingress or Gateway API route when there is one. Each then takes
    // the client's address (for rate limits and login throttling) from X-Forwarded-For.
    let gateway = &platform.spec.gateway;
    let proxied = kind != ServiceKind::Gateway || gateway.ingress.is_some() || gateway.http_route.is_some();
    vars.push(value(env::TRUST_FORWARDED_FOR, proxied.to_string()));
    match kind {
        ServiceKind::Users => {
            vars.extend([
                value(env::SIGNING_KEYS_DIR, KEYS_DIR),
                // The operator rotates the Secret; the service must not rotate on its own.
                value(env::KEY_ROTATION_DAYS, "0"),
                value(env::ACCESS_TOKEN_TTL, auth.access_token_ttl().to_string()),
                value(env::REFRESH_TOKEN_TTL, auth.refresh_token_ttl().to_string()),
                from_secret(env::SERVICE_CLIENTS, &names.service_clients(), SERVICE_CLIENTS_KEY),
            ]);
            vars.extend(sign_in_env(auth));
        }
        ServiceKind::Gateway => {
            let gateway = &platform.spec.gateway;
            let limits = gateway.rate_limits.clone().unwrap_or_default();
            vars.extend([
                value(env::GATEWAY_ROUTES, format!("{ROUTES_DIR}/{ROUTES_KEY}")),
                value(env::CORS_ORIGINS, gateway.cors_origins.join(",")),
                value(env::CLIENT_RPS, limits.client_rps.map_or(default_limits::CLIENT_RPS, |n| n as u32).to_string()),
                value(
                    env::CLIENT_BURST,
                    limits.client_burst.map_or(default_limits::CLIENT_BURST, |n| n as u32).to_string(),
                ),
                value(env::USER_RPS, limits.user_rps.map_or(default_limits::USER_RPS, |n| n as u32).to_string()),
                value(env::USER_BURST, limits.user_burst.map_or(default_limits::USER_BURST, |n| n as u32).to_string()),
            ]);
        }
        _ => {}
    }
    // The services that mail people are told where the mail server is.
    if let (Some(mail), true) =
        (&platform.spec.mail, matches!(kind, ServiceKind::Users | ServiceKind::Organizations | ServiceKind::Events))
    {
        let key = mail.smtp_url.key.as_deref().unwrap_or(DEFAULT_SMTP_URL_KEY);
        vars.push(from_secret(env::SMTP_URL, &mail.smtp_url.name, key));
        if let Some(from) = &mail.from {
            vars.push(value(env::MAIL_FROM, from.clone()));
        }
    }
    // Only a service that keeps its data in YDB is told where it is.
    if let (Some(ydb), true) = (platform.spec.database.ydb(), kind.is_stateful() && !on_volume(sd)) {
        vars.push(value(env::YDB_ENDPOINT, ydb.endpoint.clone()));
        vars.push(value(env::YDB_DATABASE, ydb.database.clone()));
        if let Some(secret) = &ydb.credentials_secret {
            let key = secret.key.as_deref().unwrap_or(DEFAULT_YDB_TOKEN_KEY);
            vars.push(from_secret(env::YDB_TOKEN, &secret.name, key));
        }
    }
    for extra in &sd.spec.workload.env {
        match vars.iter_mut().find(|e| e.name == extra.name) {
            Some(ours) => *ours = extra.clone(),
            None => vars.push(extra.clone()),
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        Autoscaling, DatabaseSpec, EmbeddedSpec, PlatformSpec, PodOverrides, SecretKeyRef, ServiceDeploymentSpec,
        ServiceOverrides, StoreKind, YdbSpec,
    };

    fn platform(spec: PlatformSpec) -> Platform {
        let mut p = Platform::new("demo", spec);
        p.metadata.namespace = Some("apps".into());
        p.metadata.uid = Some("uid-p".into());
        p
    }

    fn sd(kind: ServiceKind) -> ServiceDeployment {
        let mut sd = ServiceDeployment::new(&format!("demo-{kind}"), ServiceDeploymentSpec::new("demo", kind));
        sd.metadata.namespace = Some("apps".into());
        sd.metadata.uid = Some("uid-sd".into());
        sd.metadata.annotations = Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.into(), "abc".into())]));
        sd
    }

    fn ydb_platform() -> Platform {
        platform(PlatformSpec {
            database: DatabaseSpec {
                embedded: None,
                ydb: Some(YdbSpec {
                    endpoint: "grpcs://ydb:2135".into(),
                    database: "/ru/db".into(),
                    credentials_secret: Some(SecretKeyRef { name: "ydb-creds".into(), key: None }),
                }),
            },
            ..PlatformSpec::default()
        })
    }

    fn env_of(objects: &ServiceObjects) -> BTreeMap<String, EnvVar> {
        let container = &objects.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
        container.env.clone().unwrap().into_iter().map(|e| (e.name.clone(), e)).collect()
    }

    fn plain(env: &BTreeMap<String, EnvVar>, name: &str) -> String {
        env[name].value.clone().unwrap_or_else(|| panic!("{name} has no plain value"))
    }

    fn secret_ref(env: &BTreeMap<String, EnvVar>, name: &str) -> (String, String) {
        let r = env[name].value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        (r.name.clone(), r.key.clone())
    }

    #[test]
    fn pods_meet_the_restricted_pod_security_standard() {
        let objects = render(&platform(PlatformSpec::default()), &sd(ServiceKind::Events)).unwrap();
        let pod = objects.deployment.spec.unwrap().template.spec.unwrap();
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let sc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(objects.service_account.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some("demo-events"));
    }

    #[test]
    fn container_runs_veche_serve_with_probes_on_port_8080() {
        let objects = render(&platform(PlatformSpec::default()), &sd(ServiceKind::Analytics)).unwrap();
        let c = objects.deployment.spec.unwrap().template.spec.unwrap().containers[0].clone();
        assert_eq!(c.args.unwrap(), ["serve", "analytics"]);
        assert_eq!(c.image.unwrap(), format!("ghcr.io/veche-dev/veche:{}", env!("CARGO_PKG_VERSION")));
        let ports: Vec<_> = c.ports.unwrap().into_iter().map(|p| (p.name.unwrap(), p.container_port)).collect();
        assert_eq!(ports, [("http".to_owned(), 8080), ("metrics".to_owned(), 9090)]);
        let env = c.env.unwrap();
        let metrics_listen = env.iter().find(|e| e.name == "VECHE_METRICS_LISTEN").and_then(|e| e.value.clone());
        assert_eq!(metrics_listen.as_deref(), Some("0.0.0.0:9090"), "metrics apart from the (public) API port");
        let path = |p: Option<Probe>| p.unwrap().http_get.unwrap().path.unwrap();
        assert_eq!(path(c.liveness_probe), "/healthz");
        assert_eq!(path(c.readiness_probe), "/readyz");
    }

    #[test]
    fn identity_providers_reach_the_users_service_with_secrets_by_reference() {
        use crate::crd::{AuthProvider, ProviderKind, SecretKeyRef};
        let mut spec = PlatformSpec::default();
        spec.auth.providers.push(AuthProvider {
            id: "corp-sso".into(),
            name: "Company SSO".into(),
            kind: ProviderKind::Oidc,
            issuer: Some("https://sso.example.org/realms/staff".into()),
            client_id: "veche".into(),
            client_secret: SecretKeyRef { name: "sso-client".into(), key: None },
            scopes: vec![],
            domains: vec!["corp.example".into()],
            authorization_url: None,
            token_url: None,
            api_url: None,
        });
        spec.auth.redirect_uris = vec!["https://app.example.org/signed-in".into()];
        let env = env_of(&render(&platform(spec.clone()), &sd(ServiceKind::Users)).unwrap());
        let providers: serde_json::Value = serde_json::from_str(&plain(&env, "VECHE_AUTH_PROVIDERS")).unwrap();
        assert_eq!(
            providers,
            serde_json::json!([{"id": "corp-sso", "name": "Company SSO", "kind": "oidc", "client_id": "veche",
                "issuer": "https://sso.example.org/realms/staff", "domains": ["corp.example"],
                "client_secret_env": "VECHE_AUTH_CLIENT_SECRET_CORP_SSO"}])
        );
        assert_eq!(secret_ref(&env, "VECHE_AUTH_CLIENT_SECRET_CORP_SSO"), ("sso-client".into(), "clientSecret".into()));
        assert_eq!(plain(&env, "VECHE_AUTH_REDIRECT_URIS"), "https://app.example.org/signed-in");
        let events = env_of(&render(&platform(spec), &sd(ServiceKind::Events)).unwrap());
        assert!(!events.keys().any(|k| k.starts_with("VECHE_AUTH_")), "only users knows the providers");
    }

    #[test]
    fn the_services_that_mail_people_get_the_smtp_url_from_its_secret() {
        use crate::crd::MailSpec;
        let spec = PlatformSpec {
            mail: Some(MailSpec {
                smtp_url: SecretKeyRef { name: "smtp".into(), key: None },
                from: Some("Veche <hello@example.org>".into()),
            }),
            ..PlatformSpec::default()
        };
        for kind in [ServiceKind::Users, ServiceKind::Organizations, ServiceKind::Events] {
            let env = env_of(&render(&platform(spec.clone()), &sd(kind)).unwrap());
            assert_eq!(secret_ref(&env, "VECHE_SMTP_URL"), ("smtp".into(), "url".into()), "{kind}");
            assert_eq!(plain(&env, "VECHE_MAIL_FROM"), "Veche <hello@example.org>");
        }
        for kind in [ServiceKind::Analytics, ServiceKind::Gateway] {
            let env = env_of(&render(&platform(spec.clone()), &sd(kind)).unwrap());
            assert!(!env.contains_key("VECHE_SMTP_URL"), "{kind} sends no mail");
        }
        let env = env_of(&render(&platform(PlatformSpec::default()), &sd(ServiceKind::Events)).unwrap());
        assert!(!env.contains_key("VECHE_SMTP_URL"), "without mail settings, the mailbox on the volume");
    }

    #[test]
    fn services_with_an_outbox_relay_to_analytics_only_while_it_runs() {
        let has = |spec: PlatformSpec, kind| {
            env_of(&render(&platform(spec), &sd(kind)).unwrap()).contains_key("VECHE_ANALYTICS_URL")
        };
        assert!(has(PlatformSpec::default(), ServiceKind::Users));
        assert!(has(PlatformSpec::default(), ServiceKind::Events));
        assert!(!has(PlatformSpec::default(), ServiceKind::Gateway), "the gateway has no outbox");
        let mut without = PlatformSpec::default();
        without
            .services
            .push(ServiceOverrides { enabled: Some(false), ..ServiceOverrides::new(ServiceKind::Analytics) });
        assert!(!has(without, ServiceKind::Events), "no analytics, no relay");
    }

    #[test]
    fn users_asks_organizations_about_deleted_accounts_only_while_it_runs() {
        let has = |spec: PlatformSpec, kind| {
            env_of(&render(&platform(spec), &sd(kind)).unwrap()).contains_key("VECHE_ORGANIZATIONS_URL")
        };
        assert!(has(PlatformSpec::default(), ServiceKind::Users));
        let mut without = PlatformSpec::default();
        without
            .services
            .push(ServiceOverrides { enabled: Some(false), ..ServiceOverrides::new(ServiceKind::Organizations) });
        assert!(!has(without.clone(), ServiceKind::Users), "deleting an account must not wait for a missing service");
        assert!(has(without, ServiceKind::Events));
    }

    #[test]
    fn every_service_gets_the_shared_environment() {
        let objects = render(&platform(PlatformSpec::default()), &sd(ServiceKind::Organizations)).unwrap();
        let env = env_of(&objects);
        assert_eq!(plain(&env, "VECHE_LISTEN"), "0.0.0.0:8080");
        assert_eq!(plain(&env, "VECHE_DATA_DIR"), "/var/lib/veche");
        assert_eq!(plain(&env, "VECHE_LOG_FORMAT"), "json");
        assert_eq!(plain(&env, "VECHE_TRUST_FORWARDED_FOR"), "true", "services sit behind the gateway");
        assert_eq!(plain(&env, "VECHE_PUBLIC_URL"), "http://demo-gateway.apps.svc");
        assert_eq!(plain(&env, "VECHE_ISSUER"), "http://demo-gateway.apps.svc");
        assert_eq!(plain(&env, "VECHE_USERS_URL"), "http://demo-users.apps.svc:8080");
        assert_eq!(plain(&env, "VECHE_ORGANIZATIONS_URL"), "http://demo-organizations.apps.svc:8080");
        assert_eq!(plain(&env, "VECHE_ANALYTICS_URL"), "http://demo-analytics.apps.svc:8080");
        assert_eq!(
            secret_ref(&env, "VECHE_SERVICE_CLIENT_SECRET"),
            ("demo-service-clients".into(), "organizations".into())
        );
        assert!(!env.contains_key("VECHE_SIGNING_KEYS_DIR"));
        assert!(!env.contains_key("VECHE_YDB_ENDPOINT"));
    }

    #[test]
    fn users_reads_keys_from_the_secret_and_never_rotates_itself() {
        let mut spec = PlatformSpec::default();
        spec.auth.issuer = Some("https://id.example.org".into());
        spec.auth.access_token_ttl_seconds = Some(600);
        let objects = render(&platform(spec), &sd(ServiceKind::Users)).unwrap();
        let env = env_of(&objects);
        assert_eq!(plain(&env, "VECHE_SIGNING_KEYS_DIR"), "/etc/veche/keys");
        assert_eq!(plain(&env, "VECHE_KEY_ROTATION_DAYS"), "0");
        assert_eq!(plain(&env, "VECHE_ACCESS_TOKEN_TTL"), "600");
        assert_eq!(plain(&env, "VECHE_REFRESH_TOKEN_TTL"), "2592000");
        assert_eq!(plain(&env, "VECHE_ISSUER"), "https://id.example.org");
        assert_eq!(
            secret_ref(&env, "VECHE_SERVICE_CLIENTS"),
            ("demo-service-clients".into(), "service-clients".into())
        );
        let pod = objects.deployment.spec.unwrap().template.spec.unwrap();
        let volume = pod.volumes.unwrap().into_iter().find(|v| v.name == "signing-keys").unwrap();
        assert_eq!(volume.secret.unwrap().secret_name.as_deref(), Some("demo-signing-keys"));
        let mount = pod.containers[0].volume_mounts.clone().unwrap().into_iter().find(|m| m.name == "signing-keys");
        assert_eq!(mount.unwrap().read_only, Some(true));
    }

    #[test]
    fn gateway_gets_routes_cors_and_limits_and_a_port_80_service() {
        let mut spec = PlatformSpec::default();
        spec.gateway.cors_origins = vec!["https://a.example".into(), "https://b.example".into()];
        spec.gateway.rate_limits = Some(crate::crd::RateLimits { client_rps: Some(5), ..Default::default() });
        let objects = render(&platform(spec), &sd(ServiceKind::Gateway)).unwrap();
        let env = env_of(&objects);
        assert_eq!(plain(&env, "VECHE_GATEWAY_ROUTES"), "/etc/veche/routes/routes.json");
        assert_eq!(plain(&env, "VECHE_CORS_ORIGINS"), "https://a.example,https://b.example");
        assert_eq!(plain(&env, "VECHE_CLIENT_RPS"), "5");
        assert_eq!(plain(&env, "VECHE_CLIENT_BURST"), "40");
        assert_eq!(plain(&env, "VECHE_USER_RPS"), "10");
        assert_eq!(plain(&env, "VECHE_USER_BURST"), "20");
        let port = &objects.service.spec.unwrap().ports.unwrap()[0];
        assert_eq!((port.port, port.target_port.clone()), (80, Some(IntOrString::String("http".into()))));
        assert!(objects.pvc.is_none(), "the gateway keeps no data");
        let data = objects.deployment.spec.unwrap().template.spec.unwrap().volumes.unwrap();
        assert!(data.iter().any(|v| v.name == "routes" && v.config_map.as_ref().unwrap().name == "demo-routes"));
        assert!(data.iter().any(|v| v.name == "data" && v.empty_dir.is_some()));
    }

    #[test]
    fn embedded_store_gets_a_volume_and_recreate_rollouts() {
        let spec = PlatformSpec {
            database: DatabaseSpec {
                embedded: Some(EmbeddedSpec {
                    storage_size: Some("5Gi".into()),
                    storage_class_name: Some("fast".into()),
                }),
                ydb: None,
            },
            ..PlatformSpec::default()
        };
        let objects = render(&platform(spec), &sd(ServiceKind::Events)).unwrap();
        let pvc = objects.pvc.unwrap();
        assert_eq!(pvc.metadata.name.as_deref(), Some("demo-events-data"));
        let pvc_spec = pvc.spec.unwrap();
        assert_eq!(pvc_spec.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(pvc_spec.resources.unwrap().requests.unwrap()["storage"], Quantity("5Gi".into()));
        let deployment = objects.deployment.spec.unwrap();
        assert_eq!(deployment.strategy.unwrap().type_.as_deref(), Some("Recreate"));
        let volumes = deployment.template.spec.unwrap().volumes.unwrap();
        let data = volumes.iter().find(|v| v.name == "data").unwrap();
        assert_eq!(data.persistent_volume_claim.as_ref().unwrap().claim_name, "demo-events-data");
        assert!(volumes.iter().any(|v| v.name == "tmp" && v.empty_dir.is_some()));
    }

    #[test]
    fn ydb_settings_go_only_to_a_service_that_keeps_its_data_there() {
        for kind in ServiceKind::DOMAIN {
            let mut service = sd(kind);
            service.spec.store = StoreKind::Ydb;
            let objects = render(&ydb_platform(), &service).unwrap();
            let env = env_of(&objects);
            let strategy = objects.deployment.spec.unwrap().strategy.unwrap().type_.unwrap();
            if kind.speaks_ydb() {
                assert_eq!(plain(&env, "VECHE_YDB_ENDPOINT"), "grpcs://ydb:2135");
                assert_eq!(plain(&env, "VECHE_YDB_DATABASE"), "/ru/db");
                assert_eq!(secret_ref(&env, "VECHE_YDB_TOKEN"), ("ydb-creds".into(), "token".into()));
                assert!(objects.pvc.is_none());
                assert_eq!(strategy, "RollingUpdate");
            } else {
                // Not SQLite on a volume that dies with the pod: its own claim, as on
                // the embedded store, and no settings it would not read.
                assert!(!env.contains_key("VECHE_YDB_ENDPOINT"), "{kind}");
                assert_eq!(objects.pvc.unwrap().metadata.name.unwrap(), format!("demo-{kind}-data"));
                assert_eq!(strategy, "Recreate");
            }
        }
        let mut gateway = sd(ServiceKind::Gateway);
        gateway.spec.store = StoreKind::Ydb;
        let objects = render(&ydb_platform(), &gateway).unwrap();
        assert!(!env_of(&objects).contains_key("VECHE_YDB_ENDPOINT"));
        assert!(objects.pvc.is_none());
    }

    #[test]
    fn autoscaling_renders_an_hpa_and_leaves_replicas_unwritten() {
        let mut gateway = sd(ServiceKind::Gateway);
        gateway.spec.replicas = Some(4);
        gateway.spec.workload.autoscaling =
            Some(Autoscaling { min_replicas: Some(2), max_replicas: 8, target_cpu_utilization_percentage: None });
        let objects = render(&ydb_platform(), &gateway).unwrap();
        assert_eq!(objects.deployment.spec.as_ref().unwrap().replicas, None);
        let hpa = objects.hpa.unwrap().spec.unwrap();
        assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(2), 8));
        assert_eq!(hpa.scale_target_ref.name, "demo-gateway");
        assert_eq!(hpa.metrics.unwrap()[0].resource.as_ref().unwrap().target.average_utilization, Some(80));
        // Without autoscaling the count is written and no HPA exists.
        gateway.spec.workload.autoscaling = None;
        let fixed = render(&ydb_platform(), &gateway).unwrap();
        assert_eq!(fixed.deployment.spec.unwrap().replicas, Some(4));
        assert!(fixed.hpa.is_none());
    }

    #[test]
    fn a_service_on_its_own_volume_runs_one_replica_without_an_autoscaler() {
        // An object stored before the CRD's rule, or a store the service does not speak.
        for store in [StoreKind::Embedded, StoreKind::Ydb] {
            let mut events = sd(ServiceKind::Events);
            events.spec.store = store;
            if store == StoreKind::Ydb && ServiceKind::Events.speaks_ydb() {
                continue;
            }
            events.spec.replicas = Some(3);
            let objects = render(&ydb_platform(), &events).unwrap();
            assert_eq!(objects.deployment.spec.unwrap().replicas, Some(1), "{store:?}");
            events.spec.workload.autoscaling =
                Some(Autoscaling { min_replicas: Some(2), max_replicas: 8, target_cpu_utilization_percentage: None });
            let objects = render(&ydb_platform(), &events).unwrap();
            assert!(objects.hpa.is_none(), "{store:?}");
            assert_eq!(objects.deployment.spec.unwrap().replicas, Some(1), "{store:?}");
        }
        let mut parked = sd(ServiceKind::Events);
        parked.spec.replicas = Some(0);
        assert_eq!(render(&ydb_platform(), &parked).unwrap().deployment.spec.unwrap().replicas, Some(0));
    }

    #[test]
    fn the_config_hash_lands_on_the_pod_template_so_a_change_rolls_pods() {
        let mut users = sd(ServiceKind::Users);
        let hash = |o: ServiceObjects| {
            o.deployment.spec.unwrap().template.metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone()
        };
        assert_eq!(hash(render(&platform(PlatformSpec::default()), &users).unwrap()), "abc");
        users.metadata.annotations = Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.into(), "def".into())]));
        assert_eq!(hash(render(&platform(PlatformSpec::default()), &users).unwrap()), "def");
    }

    #[test]
    fn user_env_and_pod_overrides_win() {
        let mut events = sd(ServiceKind::Events);
        events.spec.workload.env = vec![value("VECHE_LOG_FORMAT", "text"), value("EXTRA", "1")];
        events.spec.image = Some("registry.local/veche:dev".into());
        events.spec.workload.pod = Some(PodOverrides {
            node_selector: BTreeMap::from([("disk".into(), "ssd".into())]),
            priority_class_name: Some("high".into()),
            annotations: BTreeMap::from([("mesh".into(), "on".into())]),
            ..PodOverrides::default()
        });
        let objects = render(&platform(PlatformSpec::default()), &events).unwrap();
        let env = env_of(&objects);
        assert_eq!(plain(&env, "VECHE_LOG_FORMAT"), "text");
        assert_eq!(plain(&env, "EXTRA"), "1");
        let template = objects.deployment.spec.unwrap().template;
        let pod = template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("registry.local/veche:dev"));
        assert_eq!(pod.node_selector.unwrap()["disk"], "ssd");
        assert_eq!(pod.priority_class_name.as_deref(), Some("high"));
        let annotations = template.metadata.unwrap().annotations.unwrap();
        assert_eq!((annotations["mesh"].as_str(), annotations[CONFIG_HASH_ANNOTATION].as_str()), ("on", "abc"));
    }

    #[test]
    fn network_policy_opens_the_gateway_and_closes_domain_services_to_outsiders() {
        let gateway = render(&platform(PlatformSpec::default()), &sd(ServiceKind::Gateway)).unwrap();
        let rule = &gateway.network_policy.spec.unwrap().ingress.unwrap()[0];
        assert!(rule.from.is_none(), "anyone may reach the gateway");
        let users = render(&platform(PlatformSpec::default()), &sd(ServiceKind::Users)).unwrap();
        let spec = users.network_policy.spec.unwrap();
        assert_eq!(spec.pod_selector.unwrap().match_labels.unwrap()[SERVICE_LABEL_FOR_TEST], "users");
        let from = spec.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(from[0].pod_selector.clone().unwrap().match_labels.unwrap()[PLATFORM_LABEL], "demo");
        assert!(from[0].namespace_selector.is_none(), "only pods of the platform's own namespace");
    }

    const SERVICE_LABEL_FOR_TEST: &str = super::super::SERVICE_LABEL;

    #[test]
    fn children_carry_owner_references_and_recommended_labels() {
        let objects = render(&platform(PlatformSpec::default()), &sd(ServiceKind::Events)).unwrap();
        let metas = [
            &objects.deployment.metadata,
            &objects.service.metadata,
            &objects.pdb.metadata,
            &objects.network_policy.metadata,
            &objects.service_account.metadata,
        ];
        for meta in metas {
            let owner = &meta.owner_references.as_ref().unwrap()[0];
            assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("ServiceDeployment", "demo-events"));
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels["app.kubernetes.io/component"], "events");
            assert_eq!(labels["app.kubernetes.io/instance"], "demo");
            assert_eq!(labels["app.kubernetes.io/managed-by"], "veche-operator");
        }
        let pdb = objects.pdb.spec.unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    }
}
