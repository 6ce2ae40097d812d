//! The custom resources: `Platform` (one whole backend) and `ServiceDeployment` (one
//! service of it), group `veche.io`, version `v1alpha1`.
//!
//! The schemas are structural (the API server rejects anything else): no untagged enums,
//! no free-form maps except string maps, and every choice that a user can get wrong early
//! is a CEL rule here rather than an error the operator reports minutes later.

// `printcolumn(type_ = ...)` repeats inside `#[kube(...)]` by design; clippy takes the
// repeated key for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration, TopologySpreadConstraint};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group of both resources.
pub const GROUP: &str = "veche.io";

/// The image the operator deploys when a Platform names none: the operator and the
/// services are released together, so the default tag is the operator's own version.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "ghcr.io/veche-dev/veche";

/// One whole Veche backend: the four domain services and the gateway, their database,
/// auth and the way in from outside.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "veche.io",
    version = "v1alpha1",
    kind = "Platform",
    doc = "One whole Veche backend: services, database, auth and gateway, reconciled by veche-operator.",
    namespaced,
    status = "PlatformStatus",
    shortname = "vp",
    category = "veche",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    derive = "PartialEq",
    derive = "Default",
    validation = Rule::new("self.metadata.name.size() <= 40").message("a Platform name has at most 40 characters (its services are named <platform>-organizations, and a Service name has at most 63)")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(one_replica_rule()).message(one_replica_message().as_str()).reason(Reason::FieldValueForbidden))]
pub struct PlatformSpec {
    /// The container image of the `veche` binary that every service runs.
    #[serde(default)]
    pub image: ImageSpec,
    /// Where the services keep their data.
    #[serde(default)]
    pub database: DatabaseSpec,
    /// Token issuing and signing keys.
    #[serde(default)]
    pub auth: AuthSpec,
    /// The one entry point: host, TLS, ingress or Gateway API route, CORS and limits.
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// Outgoing mail (tickets, reminders, invitations, account mail). Without it, the
    /// services write mail to files on their volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailSpec>,
    /// Per-service overrides, at most one entry per service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"], "maxItems" = 5))]
    #[x_kube(validation = Rule::new("self.all(s, s.name in ['organizations', 'events', 'analytics'] || !has(s.enabled) || s.enabled)").message("users and gateway cannot be disabled: every other service depends on them"))]
    pub services: Vec<ServiceOverrides>,
    /// Stop writing anything to the cluster for this Platform (deletion still works).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// CEL: replicas above one (or autoscaling) only for the gateway, and for the services
/// that keep their data in YDB when the Platform names a YDB database. The list comes
/// from the catalogue, so the rule loosens by itself as services learn YDB.
fn one_replica_rule() -> String {
    format!(
        "!has(self.services) || self.services.all(s, s.name == 'gateway' \
         || (has(self.database) && has(self.database.ydb) && s.name in [{}]) \
         || ((!has(s.replicas) || s.replicas <= 1) && !has(s.autoscaling)))",
        ydb_speakers()
    )
}

/// The services that speak YDB, as the items of a CEL list: `'events', 'users'`.
fn ydb_speakers() -> String {
    ServiceKind::SPEAKS_YDB.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

/// CEL: the same rule for one ServiceDeployment, whose `store` the operator copies from
/// its Platform (`ydb` only for a service that speaks it).
fn sd_one_replica_rule() -> String {
    format!(
        "self.service == 'gateway' || (has(self.store) && self.store == 'ydb' && self.service in [{}]) \
         || ((!has(self.replicas) || self.replicas <= 1) && !has(self.autoscaling))",
        ydb_speakers()
    )
}

/// The message of [`one_replica_rule`], naming the services it holds to one replica.
fn one_replica_message() -> String {
    let held = ServiceKind::DOMAIN.iter().filter(|s| !s.speaks_ydb()).map(|s| s.to_string());
    format!(
        "more than one replica (or autoscaling) of {} is not possible: they keep their data in the embedded store, \
         one file on one volume, also on a ydb database, which they do not speak yet",
        crate::render::store::and_list(held)
    )
}

/// The image every service runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Repository, e.g. `ghcr.io/veche-dev/veche`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Tag; defaults to the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Names of Secrets (of type dockerconfigjson) to pull the image with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
}

/// Kubernetes' image pull policies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// The database: `embedded` (SQLite files on a volume, one replica per service) or `ydb`.
/// An object with two optional members and a rule rather than an untagged enum, which a
/// structural schema cannot express.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.embedded) && has(self.ydb))").message("set one of embedded or ydb, not both"))]
pub struct DatabaseSpec {
    /// The embedded store (the default when neither is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedSpec>,
    /// A YDB database shared by all services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ydb: Option<YdbSpec>,
}

impl DatabaseSpec {
    /// The YDB settings, when the platform uses YDB.
    pub fn ydb(&self) -> Option<&YdbSpec> {
        self.ydb.as_ref()
    }
}

/// The embedded store: each domain service keeps its SQLite files on its own volume.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedSpec {
    /// Size of each service's volume (a Kubernetes quantity); default `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_size: Option<String>,
    /// StorageClass of the volumes; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// A YDB database.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct YdbSpec {
    /// Endpoint, e.g. `grpcs://ydb.example.net:2135`.
    #[schemars(length(min = 1))]
    pub endpoint: String,
    /// Database path, e.g. `/ru-central1/b1g/etn`.
    #[schemars(length(min = 1))]
    pub database: String,
    /// Secret holding the access token (key default `token`); none for anonymous access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretKeyRef>,
}

/// Where the users, organizations and events services send mail.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailSpec {
    /// The Secret holding the SMTP server's URL, with its password
    /// (`smtps://user:password@smtp.example.org:465`, or `smtp://host:587?tls=required`;
    /// key default `url`).
    pub smtp_url: SecretKeyRef,
    /// The sender, e.g. `Veche <no-reply@example.org>` (default `Veche <no-reply@veche.local>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 320))]
    pub from: Option<String>,
}

/// A key of a Secret in the Platform's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key within it; each field that takes a Secret names its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Token issuing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Issuer (`iss`) of tokens; default: the public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("issuer must be an http(s) URL"))]
    pub issuer: Option<String>,
    /// Lifetime of access tokens in seconds; default 900.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 86400))]
    pub access_token_ttl_seconds: Option<i64>,
    /// Lifetime of an unused session in seconds; default 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 300))]
    pub refresh_token_ttl_seconds: Option<i64>,
    /// Days after which the operator adds a new signing key; default 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub signing_key_rotation_days: Option<i64>,
    /// Identity providers people may sign in with (OpenID Connect, GitHub, Yandex ID,
    /// VK ID). Register
    /// `<public endpoint>/api/v1/auth/oauth/<id>/callback` with each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"], "maxItems" = 20))]
    pub providers: Vec<AuthProvider>,
    /// Frontend pages a sign-in through a provider may return to (exact URIs); the
    /// dashboard always may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 50))]
    #[x_kube(validation = Rule::new("self.all(u, u.startsWith('https://') || u.startsWith('http://'))").message("redirectUris must be http(s) URLs"))]
    pub redirect_uris: Vec<String>,
}

/// How the users service speaks to an identity provider.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect, found by discovery from `issuer`.
    Oidc,
    /// GitHub's OAuth 2.0 and REST API (github.com, or GitHub Enterprise by its URLs).
    Github,
    /// Yandex ID: OAuth 2.0 and its `/info` API.
    Yandex,
    /// VK ID: OAuth 2.1 with PKCE and its `user_info` API.
    Vkid,
}

/// An identity provider people may sign in with.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind != 'oidc' || has(self.issuer)").message("an oidc provider needs an issuer"))]
#[x_kube(validation = Rule::new("self.kind == 'oidc' || !has(self.issuer)").message("only an oidc provider has an issuer; the others take authorizationUrl, tokenUrl and apiUrl when not the public service's"))]
#[x_kube(validation = Rule::new("self.kind != 'oidc' || !(has(self.authorizationUrl) || has(self.tokenUrl) || has(self.apiUrl))").message("authorizationUrl, tokenUrl and apiUrl are for plain OAuth providers; oidc finds its endpoints by discovery"))]
pub struct AuthProvider {
    /// Short name in URLs, such as `corp` or `github`.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z0-9-]+$"))]
    pub id: String,
    /// What people see on the button.
    #[schemars(length(min = 1, max = 100))]
    pub name: String,
    pub kind: ProviderKind,
    /// The issuer URL of an oidc provider (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("issuer must be an https URL"))]
    pub issuer: Option<String>,
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,
    /// The Secret holding the client secret (key default `clientSecret`).
    pub client_secret: SecretKeyRef,
    /// Scopes to ask for; by default `openid email profile` (oidc), `read:user
    /// user:email` (github), `login:info login:email` (yandex) or `vkid.personal_info
    /// email` (vkid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 20))]
    pub scopes: Vec<String>,
    /// Email domains whose people sign in only through this provider (lowercase DNS
    /// names, checked by pattern: a CEL rule over every item would exceed the API
    /// server's cost budget).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("maxItems" = 50))]
    #[schemars(inner(
        length(max = 253),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
    ))]
    pub domains: Vec<String>,
    /// Plain OAuth providers (github, yandex, vkid): where people authorize, when not
    /// the public service (GitHub Enterprise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// Plain OAuth providers: the token endpoint, when not the public service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Plain OAuth providers: the user API's base, when not the public service's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// Defaults of the auth settings, in one place.
impl AuthSpec {
    pub fn access_token_ttl(&self) -> i64 {
        self.access_token_ttl_seconds.unwrap_or(900)
    }
    pub fn refresh_token_ttl(&self) -> i64 {
        self.refresh_token_ttl_seconds.unwrap_or(30 * 24 * 3600)
    }
    pub fn rotation_days(&self) -> i64 {
        self.signing_key_rotation_days.unwrap_or(90)
    }
}

/// The gateway: the one way in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.ingress) && has(self.httpRoute))").message("set one of ingress or httpRoute, not both"))]
#[x_kube(validation = Rule::new("!has(self.tlsSecretName) || has(self.host)").message("tlsSecretName needs a host"))]
pub struct GatewaySpec {
    /// Replicas of the gateway (stateless, so any number); default 1. An entry for the
    /// gateway in `services` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Public DNS name of the platform, e.g. `api.example.org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(DNS_NAME).message("host must be a lowercase DNS name such as api.example.org"))]
    #[schemars(length(max = 253))]
    pub host: Option<String>,
    /// Secret of type kubernetes.io/tls for the host; plain HTTP without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Expose the gateway with an Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Expose the gateway with a Gateway API HTTPRoute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteSpec>,
    /// Origins allowed by CORS, e.g. `https://app.example.org`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
    /// Request rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
}

/// CEL: an RFC 1123 DNS name (lowercase labels of at most 63 characters).
const DNS_NAME: &str = "self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$')";

/// An Ingress for the gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// IngressClass; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Annotations for the ingress controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A Gateway API HTTPRoute for the gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateway to attach to.
    pub parent_ref: ParentRef,
}

/// A reference to a Gateway API Gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Name of the Gateway.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Its namespace; the Platform's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A listener of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// Token-bucket limits of the gateway, per client address and per signed-in user.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// Requests per second per client address; default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub client_rps: Option<i32>,
    /// Burst per client address; default 40.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub client_burst: Option<i32>,
    /// Requests per second per user; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub user_rps: Option<i32>,
    /// Burst per user; default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub user_burst: Option<i32>,
}

/// The services of a platform (the catalogue's list, shared with `veche`).
pub use catalog::Service as ServiceKind;

/// What a Platform says about one of its services; copied into that service's
/// ServiceDeployment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceOverrides {
    /// Which service.
    pub name: ServiceKind,
    /// Whether to run it (organizations, events and analytics can be switched off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Fixed number of replicas; left to `kubectl scale` on the ServiceDeployment when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// How it runs: autoscaling, resources, env, pod template.
    #[serde(flatten)]
    pub workload: Workload,
}

impl ServiceOverrides {
    pub fn new(name: ServiceKind) -> Self {
        Self { name, enabled: None, replicas: None, workload: Workload::default() }
    }
}

/// How a service's pods run; the same in a Platform's `services[]` entry and in the
/// ServiceDeployment it becomes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Scale with CPU load; the Deployment's replica count is then the autoscaler's alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Compute resources of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra environment variables (they win over the operator's by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Pod template overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
}

/// Horizontal autoscaling on CPU utilisation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct Autoscaling {
    /// Lower bound; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Upper bound.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Average CPU utilisation to aim for, in percent of requests; default 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: Option<i32>,
}

/// Where and how the pods of a service are scheduled.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// Annotations on the pods (e.g. for a service mesh or scraping).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// What a Platform reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// One line per service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub services: Vec<ServiceSummary>,
    /// The URL frontends call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// How one service of a platform is doing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    pub name: ServiceKind,
    /// Whether it is ready (every desired replica available, current generation).
    pub ready: bool,
    /// Desired replicas.
    pub replicas: i32,
    /// Available replicas.
    pub available_replicas: i32,
    /// Why it is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One service of one platform.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "veche.io",
    version = "v1alpha1",
    kind = "ServiceDeployment",
    doc = "One service of a Veche Platform; scalable with kubectl scale and HorizontalPodAutoscalers.",
    namespaced,
    status = "ServiceDeploymentStatus",
    shortname = "vsd",
    category = "veche",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.availableReplicas"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(sd_one_replica_rule()).message("more than one replica (or autoscaling) is only for the gateway and for a service that keeps its data in YDB: this one keeps it in the embedded store, one file on one volume").reason(Reason::FieldValueForbidden))]
pub struct ServiceDeploymentSpec {
    /// The Platform this service belongs to (same namespace).
    pub platform_ref: PlatformRef,
    /// Which service; fixed once created.
    #[x_kube(validation = Rule::new("self == oldSelf").message("service is immutable"))]
    pub service: ServiceKind,
    /// The platform's database kind, copied here so that the replica rule can be checked
    /// when the object is scaled by itself.
    #[serde(default)]
    pub store: StoreKind,
    /// Replicas; the API server defaults it to 1 (the scale subresource needs a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0), extend("default" = 1))]
    pub replicas: Option<i32>,
    #[serde(flatten)]
    pub workload: Workload,
    /// A full image reference that wins over the platform's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl ServiceDeploymentSpec {
    /// A service of a platform with nothing overridden.
    pub fn new(platform: &str, service: ServiceKind) -> Self {
        Self {
            platform_ref: PlatformRef { name: platform.to_string() },
            service,
            store: StoreKind::Embedded,
            replicas: None,
            workload: Workload::default(),
            image: None,
        }
    }
}

/// A reference to the owning Platform.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct PlatformRef {
    #[schemars(length(min = 1))]
    pub name: String,
}

/// The database kind of the platform, as far as a ServiceDeployment needs to know it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Embedded,
    Ydb,
}

/// What a ServiceDeployment reports (and what the scale subresource reads).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDeploymentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Replicas of the Deployment (all pods, ready or not).
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    /// Label selector of the pods, for the scale subresource and HPAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The CRDs as YAML documents, as `veche-operator crd` prints them and `crds/` holds them.
pub fn crd_yaml() -> Result<Vec<(&'static str, String)>, serde_saphyr::SerializeError> {
    Ok(vec![
        ("platform.yaml", serde_saphyr::to_string(&released(Platform::crd()))?),
        ("servicedeployment.yaml", serde_saphyr::to_string(&released(ServiceDeployment::crd()))?),
    ])
}

/// A CRD labelled with the release it belongs to: binaries, images, chart and CRDs carry
/// one version, so `kubectl get crd -L app.kubernetes.io/version` tells which is installed.
fn released(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    crd.metadata.labels = Some(BTreeMap::from([
        ("app.kubernetes.io/part-of".to_string(), "veche".to_string()),
        ("app.kubernetes.io/version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]));
    crd
}

/// Where the generated CRDs are kept, relative to the repository root.
pub const CRD_DIRS: [&str; 2] = ["crds", "charts/veche-operator/crds"];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn committed_crds_match_the_code() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for dir in CRD_DIRS {
            for (file, yaml) in crd_yaml().unwrap() {
                let path = root.join(dir).join(file);
                let committed = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(
                    committed == yaml,
                    "{} is not what the code generates; regenerate with:\n  \
                     cargo run -p veche-operator -- crd --write crds --write charts/veche-operator/crds",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn crds_have_status_scale_columns_and_short_names() {
        let platform = Platform::crd();
        assert_eq!(platform.spec.group, "veche.io");
        assert_eq!(platform.spec.scope, "Namespaced");
        assert_eq!(platform.spec.names.short_names, Some(vec!["vp".to_string()]));
        let version = &platform.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<_> =
            version.additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns, ["Ready", "Endpoint", "Age"]);

        let sd = ServiceDeployment::crd();
        let scale = sd.spec.versions[0].subresources.as_ref().unwrap().scale.clone().unwrap();
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        assert_eq!(scale.label_selector_path.as_deref(), Some(".status.selector"));
    }

    /// Every CEL rule in a schema, as (path, rule).
    fn rules(value: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
        if let Some(list) = value.get("x-kubernetes-validations").and_then(|v| v.as_array()) {
            for rule in list {
                out.push((path.to_string(), rule["rule"].as_str().unwrap_or_default().to_string()));
            }
        }
        if let Some(props) = value.get("properties").and_then(|p| p.as_object()) {
            for (name, schema) in props {
                rules(schema, &format!("{path}.{name}"), out);
            }
        }
        if let Some(items) = value.get("items") {
            rules(items, &format!("{path}[]"), out);
        }
    }

    fn all_rules(
        crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) -> Vec<(String, String)> {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema).unwrap();
        let mut out = Vec::new();
        rules(&schema, "", &mut out);
        out
    }

    #[test]
    fn cel_rules_sit_where_they_apply() {
        let platform = all_rules(&Platform::crd());
        let at = |path: &str, needle: &str| platform.iter().any(|(p, r)| p == path && r.contains(needle));
        assert!(at("", "self.metadata.name.size() <= 40"), "{platform:?}");
        assert!(at(".spec", "has(self.database.ydb)"), "{platform:?}");
        assert!(at(".spec.database", "!(has(self.embedded) && has(self.ydb))"), "{platform:?}");
        assert!(at(".spec.gateway.host", "self.matches("), "{platform:?}");
        assert!(at(".spec.services[].autoscaling", "self.minReplicas <= self.maxReplicas"), "{platform:?}");
        let sd = all_rules(&ServiceDeployment::crd());
        assert!(sd.iter().any(|(p, r)| p == ".spec.service" && r == "self == oldSelf"), "{sd:?}");
        assert!(sd.iter().any(|(p, r)| p == ".spec" && r.contains("self.store == 'ydb'")), "{sd:?}");
    }

    mod cel {
        use super::super::*;
        use kube::core::cel::{validate_cel, validate_cel_update};

        fn platform(spec: serde_json::Value) -> Platform {
            let mut p: Platform = serde_json::from_value(serde_json::json!({
                "apiVersion": "veche.io/v1alpha1", "kind": "Platform",
                "metadata": {"name": "demo", "namespace": "apps"}, "spec": spec,
            }))
            .unwrap();
            p.metadata.namespace = Some("apps".into());
            p
        }

        fn errors(p: &Platform) -> String {
            match validate_cel(p) {
                Ok(()) => String::new(),
                Err(e) => format!("{e:?}"),
            }
        }

        #[test]
        fn the_minimal_example_passes() {
            assert_eq!(errors(&platform(serde_json::json!({"database": {"embedded": {}}}))), "");
            assert_eq!(errors(&platform(serde_json::json!({}))), "");
        }

        #[test]
        fn several_replicas_need_ydb() {
            let embedded = platform(serde_json::json!({"services": [{"name": "events", "replicas": 3}]}));
            assert!(errors(&embedded).contains("ydb"), "{}", errors(&embedded));
            let autoscaled =
                platform(serde_json::json!({"services": [{"name": "users", "autoscaling": {"maxReplicas": 3}}]}));
            assert!(errors(&autoscaled).contains("ydb"));
            let gateway = platform(serde_json::json!({"services": [{"name": "gateway", "replicas": 3}]}));
            assert_eq!(errors(&gateway), "", "the gateway keeps no data");
            // On a ydb database, only the services that speak YDB scale out.
            for kind in ServiceKind::DOMAIN {
                let ydb = platform(serde_json::json!({
                    "database": {"ydb": {"endpoint": "grpcs://y:2135", "database": "/d"}},
                    "services": [{"name": kind.as_str(), "replicas": 3}],
                }));
                assert_eq!(errors(&ydb).is_empty(), kind.speaks_ydb(), "{kind}: {}", errors(&ydb));
            }
            let ydb_gateway = platform(serde_json::json!({
                "database": {"ydb": {"endpoint": "grpcs://y:2135", "database": "/d"}},
                "services": [{"name": "gateway", "autoscaling": {"maxReplicas": 5}}, {"name": "events", "replicas": 1}],
            }));
            assert_eq!(errors(&ydb_gateway), "");
        }

        #[test]
        fn the_one_replica_rule_names_the_services_it_holds() {
            let message = one_replica_message();
            for kind in ServiceKind::DOMAIN {
                assert_eq!(message.contains(kind.as_str()), !kind.speaks_ydb(), "{message}");
            }
            assert!(one_replica_rule().contains(" in ["), "{}", one_replica_rule());
        }

        #[test]
        fn min_replicas_may_not_exceed_max() {
            let p = platform(serde_json::json!({
                "services": [{"name": "gateway", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}],
            }));
            assert!(errors(&p).contains("minReplicas must not exceed maxReplicas"), "{}", errors(&p));
        }

        #[test]
        fn host_must_be_a_dns_name() {
            for good in ["api.example.org", "localhost", "a-b.c1.io"] {
                assert_eq!(errors(&platform(serde_json::json!({"gateway": {"host": good}}))), "", "{good}");
            }
            for bad in ["https://api.example.org", "API.example.org", "-a.example", "a..b", "a_b.org"] {
                let e = errors(&platform(serde_json::json!({"gateway": {"host": bad}})));
                assert!(e.contains("DNS name"), "{bad} accepted: {e}");
            }
        }

        #[test]
        fn one_database_and_one_route_kind() {
            let both =
                platform(serde_json::json!({"database": {"embedded": {}, "ydb": {"endpoint": "e", "database": "/d"}}}));
            assert!(errors(&both).contains("one of embedded or ydb"));
            let routes =
                platform(serde_json::json!({"gateway": {"ingress": {}, "httpRoute": {"parentRef": {"name": "g"}}}}));
            assert!(errors(&routes).contains("one of ingress or httpRoute"));
            let tls = platform(serde_json::json!({"gateway": {"tlsSecretName": "t"}}));
            assert!(errors(&tls).contains("tlsSecretName needs a host"));
        }

        #[test]
        fn users_and_gateway_cannot_be_disabled() {
            let p = platform(serde_json::json!({"services": [{"name": "users", "enabled": false}]}));
            assert!(errors(&p).contains("cannot be disabled"));
            let p = platform(serde_json::json!({"services": [{"name": "analytics", "enabled": false}]}));
            assert_eq!(errors(&p), "");
        }

        #[test]
        fn long_platform_names_are_refused() {
            let mut p = platform(serde_json::json!({}));
            p.metadata.name = Some("a".repeat(41));
            assert!(errors(&p).contains("at most 40"));
        }

        fn sd(service: ServiceKind, store: StoreKind, replicas: i32) -> ServiceDeployment {
            let mut spec = ServiceDeploymentSpec::new("demo", service);
            spec.store = store;
            spec.replicas = Some(replicas);
            ServiceDeployment::new("demo-x", spec)
        }

        #[test]
        fn a_service_deployment_scaled_past_one_needs_ydb() {
            assert!(validate_cel(&sd(ServiceKind::Events, StoreKind::Embedded, 2)).is_err());
            for kind in ServiceKind::DOMAIN {
                let result = validate_cel(&sd(kind, StoreKind::Ydb, 2));
                assert_eq!(result.is_ok(), kind.speaks_ydb(), "{kind}: {result:?}");
            }
            assert!(validate_cel(&sd(ServiceKind::Gateway, StoreKind::Embedded, 2)).is_ok());
        }

        #[test]
        fn the_service_of_a_service_deployment_is_immutable() {
            let old = sd(ServiceKind::Gateway, StoreKind::Ydb, 1);
            assert!(validate_cel_update(&sd(ServiceKind::Gateway, StoreKind::Ydb, 2), &old).is_ok());
            let changed = validate_cel_update(&sd(ServiceKind::Users, StoreKind::Ydb, 1), &old);
            assert!(format!("{changed:?}").contains("service is immutable"), "{changed:?}");
        }
    }

    /// The API server takes only structural schemas: every object property typed, no
    /// `anyOf`/`oneOf` at the top of a property without types, no `$ref`.
    #[test]
    fn schemas_are_structural() {
        fn walk(value: &serde_json::Value, path: &str) {
            let obj = value.as_object().unwrap();
            assert!(!obj.contains_key("$ref"), "$ref at {path}");
            let typed = obj.contains_key("type")
                || obj.contains_key("x-kubernetes-int-or-string")
                || obj.contains_key("x-kubernetes-preserve-unknown-fields");
            assert!(typed, "untyped schema at {path}: {value}");
            for key in ["anyOf", "oneOf", "allOf"] {
                if let Some(list) = obj.get(key).and_then(|v| v.as_array()) {
                    for branch in list {
                        assert!(branch.get("type").is_none() || obj.contains_key("type"), "{key} with types at {path}");
                    }
                }
            }
            if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
                for (name, schema) in props {
                    walk(schema, &format!("{path}.{name}"));
                }
            }
            if let Some(items) = obj.get("items") {
                walk(items, &format!("{path}[]"));
            }
            if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
                walk(extra, &format!("{path}{{}}"));
            }
        }
        for crd in [Platform::crd(), ServiceDeployment::crd()] {
            let schema =
                serde_json::to_value(&crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema).unwrap();
            walk(&schema, &crd.spec.names.kind);
        }
    }
}
