//! Pure rendering: spec in, Kubernetes objects out. Nothing here talks to the API
//! server, reads the clock or draws random numbers; what varies (time, fresh keys and
//! secrets, what already exists) comes in as arguments, so every function is a plain
//! test subject and the controllers only fetch, apply and report.

pub mod keys;
pub mod platform;
pub mod routes;
pub mod service;
pub mod store;

use crate::crd::{Platform, ServiceDeployment, ServiceKind};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Field manager of every server-side apply, and the `managed-by` label.
pub const MANAGER: &str = "veche-operator";

/// The port every service listens on inside its pod.
pub const HTTP_PORT: i32 = 8080;
/// Where every pod serves `/metrics` (its `metrics` port), apart from the API: the
/// gateway's API port is public, and scrapers need no route through it.
pub const METRICS_PORT: i32 = 9090;

/// Label naming the platform of an object; also how children are found.
pub const PLATFORM_LABEL: &str = "veche.io/platform";
/// Label naming the service of an object.
pub const SERVICE_LABEL: &str = "veche.io/service";
/// Annotation with the hash of the configuration and secrets a service reads, set by
/// the Platform controller on a ServiceDeployment and copied onto its pod template.
pub const CONFIG_HASH_ANNOTATION: &str = "veche.io/config-hash";

/// Why an object could not be rendered.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    /// The API server always sets these; a missing one means the object did not come
    /// from it (or a test forgot it).
    #[error("{kind} has no {field}")]
    MissingMetadata { kind: &'static str, field: &'static str },
    #[error("the signing-key Secret holds an unreadable entry {0}")]
    BadKeyEntry(String),
}

/// The names of everything a platform owns, in one place.
#[derive(Debug, Clone)]
pub struct Names {
    pub platform: String,
    pub namespace: String,
}

impl Names {
    pub fn of(platform: &Platform) -> Result<Self, RenderError> {
        Ok(Self {
            platform: platform.metadata.name.clone().ok_or(missing("Platform", "metadata.name"))?,
            namespace: platform.metadata.namespace.clone().ok_or(missing("Platform", "metadata.namespace"))?,
        })
    }
    pub fn signing_keys(&self) -> String {
        format!("{}-signing-keys", self.platform)
    }
    pub fn service_clients(&self) -> String {
        format!("{}-service-clients", self.platform)
    }
    pub fn routes(&self) -> String {
        format!("{}-routes", self.platform)
    }
    /// Name of the ServiceDeployment of a service, and of everything it owns.
    pub fn service(&self, kind: ServiceKind) -> String {
        format!("{}-{}", self.platform, kind.as_str())
    }
    /// Name of the Ingress or HTTPRoute.
    pub fn route(&self) -> String {
        self.platform.clone()
    }
    /// In-cluster URL of a service, as the other services call it.
    pub fn service_url(&self, kind: ServiceKind) -> String {
        format!("http://{}.{}.svc:{HTTP_PORT}", self.service(kind), self.namespace)
    }
}

pub(crate) fn missing(kind: &'static str, field: &'static str) -> RenderError {
    RenderError::MissingMetadata { kind, field }
}

/// The recommended labels (`app.kubernetes.io/*`) plus ours.
pub fn labels(platform: &str, service: Option<ServiceKind>, version: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "veche".to_string()),
        ("app.kubernetes.io/instance".to_string(), platform.to_string()),
        ("app.kubernetes.io/part-of".to_string(), "veche".to_string()),
        ("app.kubernetes.io/managed-by".to_string(), MANAGER.to_string()),
        (PLATFORM_LABEL.to_string(), platform.to_string()),
    ]);
    if !version.is_empty() {
        labels.insert("app.kubernetes.io/version".to_string(), label_value(version));
    }
    if let Some(service) = service {
        labels.insert("app.kubernetes.io/component".to_string(), service.as_str().to_string());
        labels.insert(SERVICE_LABEL.to_string(), service.as_str().to_string());
    }
    labels
}

/// The labels that select a service's pods: only stable ones, since a Deployment's
/// selector can never change.
pub fn selector_labels(platform: &str, service: ServiceKind) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PLATFORM_LABEL.to_string(), platform.to_string()),
        (SERVICE_LABEL.to_string(), service.as_str().to_string()),
    ])
}

/// A label value is at most 63 characters of `[A-Za-z0-9._-]`; an image tag may be
/// longer or contain other characters.
fn label_value(value: &str) -> String {
    let cleaned: String =
        value.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).take(63).collect();
    cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The owner reference that makes `owner` the controller of a child, so the garbage
/// collector deletes the child with it and `Controller::owns` maps events back.
pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K, kind: &'static str) -> Result<OwnerReference, RenderError> {
    if owner.meta().uid.is_none() {
        return Err(missing(kind, "metadata.uid"));
    }
    owner.controller_owner_ref(&()).ok_or(missing(kind, "metadata.name"))
}

/// The name of a ServiceDeployment, or an error.
pub fn sd_name(sd: &ServiceDeployment) -> Result<String, RenderError> {
    sd.metadata.name.clone().ok_or(missing("ServiceDeployment", "metadata.name"))
}

/// Hex SHA-256 of a sequence of byte strings, each length-prefixed so that
/// `["ab", "c"]` and `["a", "bc"]` differ.
pub fn hash_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The tag the operator deploys when a Platform names none.
pub fn default_tag() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The platform's image reference, `repository:tag`.
pub fn platform_image(platform: &Platform) -> String {
    let image = &platform.spec.image;
    let repository = image.repository.as_deref().unwrap_or(crate::crd::DEFAULT_IMAGE_REPOSITORY);
    let tag = image.tag.as_deref().unwrap_or(default_tag());
    format!("{repository}:{tag}")
}

/// The platform's version label: the image tag.
pub fn platform_version(platform: &Platform) -> &str {
    platform.spec.image.tag.as_deref().unwrap_or(default_tag())
}

/// The URL frontends call: the public host when there is one, else the in-cluster
/// address of the gateway Service.
pub fn public_url(platform: &Platform, names: &Names) -> String {
    match &platform.spec.gateway.host {
        Some(host) if platform.spec.gateway.tls_secret_name.is_some() => format!("https://{host}"),
        Some(host) => format!("http://{host}"),
        None => format!("http://{}.{}.svc", names.service(ServiceKind::Gateway), names.namespace),
    }
}

/// Shorthand used by the controllers for an object's namespace.
pub fn namespace_of<K: ResourceExt>(obj: &K, kind: &'static str) -> Result<String, RenderError> {
    obj.namespace().ok_or(missing(kind, "metadata.namespace"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_parts_separates_parts() {
        assert_ne!(hash_parts([b"ab".as_slice(), b"c"]), hash_parts([b"a".as_slice(), b"bc"]));
        assert_eq!(hash_parts([b"x".as_slice()]).len(), 64);
    }

    #[test]
    fn label_value_cleans_long_and_odd_tags() {
        assert_eq!(label_value("1.2.3"), "1.2.3");
        assert_eq!(label_value("sha256:abc"), "sha256_abc");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
        assert_eq!(label_value("-x-"), "x");
    }
}
