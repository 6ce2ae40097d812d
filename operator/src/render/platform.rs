//! Platform → its children: the signing-key Secret, the service-client Secret, the
//! gateway's route ConfigMap, one ServiceDeployment per enabled service, and the
//! Ingress or HTTPRoute.

use super::keys::{self, Rotation};
use super::routes::{self, DEFAULT_ROUTES};
use super::store;
use super::{CONFIG_HASH_ANNOTATION, Names, RenderError, hash_parts, labels, owner_ref, platform_version};
use crate::crd::{Platform, ServiceDeployment, ServiceDeploymentSpec, ServiceKind, ServiceOverrides, StoreKind};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use serde_json::json;
use std::collections::BTreeMap;

/// Key of the service-client Secret that holds `VECHE_SERVICE_CLIENTS` for users.
pub const SERVICE_CLIENTS_KEY: &str = "service-clients";
/// Key of the route ConfigMap that holds the gateway's route table.
pub const ROUTES_KEY: &str = "routes.json";
/// Port of the gateway's Service (the pods listen on 8080).
pub const GATEWAY_SERVICE_PORT: i32 = 80;

/// What varies between reconciles, handed in so rendering stays pure.
pub struct Inputs<'a> {
    /// Unix time now.
    pub now: i64,
    /// Data of the signing-key Secret as it is in the cluster, if it exists.
    pub signing_keys: Option<&'a BTreeMap<String, ByteString>>,
    /// Data of the service-client Secret as it is in the cluster, if it exists.
    pub service_clients: Option<&'a BTreeMap<String, ByteString>>,
}

/// Where fresh secrets come from; the controller uses [`SystemEntropy`], tests a fake.
pub trait Entropy {
    /// A new RS256 private key as PKCS#8 PEM.
    fn signing_key(&mut self) -> Result<String, RenderError>;
    /// A new random client secret.
    fn client_secret(&mut self) -> String;
}

/// Keys and secrets from the system's random number generator.
pub struct SystemEntropy;

impl Entropy for SystemEntropy {
    fn signing_key(&mut self) -> Result<String, RenderError> {
        keys::generate_rsa_pem()
    }
    fn client_secret(&mut self) -> String {
        use base64::Engine;
        let mut bytes = [0u8; 32];
        // The system RNG failing is not something to recover from.
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator failed");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// Numbered stand-ins for keys and secrets (`fake key 1`, `secret-2`, ...): rendering
/// with it is deterministic, for golden files and tests. Never for a real cluster.
pub struct CountingEntropy(pub u32);

impl Entropy for CountingEntropy {
    fn signing_key(&mut self) -> Result<String, RenderError> {
        self.0 += 1;
        Ok(format!("-----BEGIN PRIVATE KEY-----\nfake key {}\n-----END PRIVATE KEY-----\n", self.0))
    }
    fn client_secret(&mut self) -> String {
        self.0 += 1;
        format!("secret-{}", self.0)
    }
}

/// Everything a Platform owns, ready to apply.
#[derive(Debug, Clone)]
pub struct PlatformObjects {
    pub signing_keys: Secret,
    pub service_clients: Secret,
    pub routes: ConfigMap,
    pub services: Vec<ServiceDeployment>,
    pub ingress: Option<Ingress>,
    pub http_route: Option<DynamicObject>,
    /// The URL frontends call.
    pub endpoint: String,
}

/// The services a platform runs, in rollout order.
pub fn enabled_services(platform: &Platform) -> Vec<ServiceKind> {
    ServiceKind::ALL
        .into_iter()
        .filter(|kind| overrides(platform, *kind).and_then(|o| o.enabled).unwrap_or(true) || !can_disable(*kind))
        .collect()
}

fn can_disable(kind: ServiceKind) -> bool {
    !matches!(kind, ServiceKind::Users | ServiceKind::Gateway)
}

/// The platform's overrides for one service, if any.
pub fn overrides(platform: &Platform, kind: ServiceKind) -> Option<&ServiceOverrides> {
    platform.spec.services.iter().find(|o| o.name == kind)
}

/// Renders everything a Platform owns.
pub fn render(platform: &Platform, inputs: &Inputs, entropy: &mut dyn Entropy) -> Result<PlatformObjects, RenderError> {
    let names = Names::of(platform)?;
    let owner = owner_ref(platform, "Platform")?;
    let version = platform_version(platform);
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels(&names.platform, None, version)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    };
    let enabled = enabled_services(platform);

    let rotation = Rotation {
        period: platform.spec.auth.rotation_days() * 86400,
        token_ttl: platform.spec.auth.access_token_ttl(),
    };
    let empty = BTreeMap::new();
    let key_data = keys::rotate(inputs.signing_keys.unwrap_or(&empty), inputs.now, rotation, || entropy.signing_key())?;
    let signing_keys = Secret {
        metadata: meta(names.signing_keys()),
        type_: Some("Opaque".into()),
        data: Some(key_data),
        ..Secret::default()
    };

    let client_data = service_clients(inputs.service_clients.unwrap_or(&empty), entropy);
    let service_clients = Secret {
        metadata: meta(names.service_clients()),
        type_: Some("Opaque".into()),
        data: Some(client_data),
        ..Secret::default()
    };

    let table = routes::route_table(&names, &enabled, DEFAULT_ROUTES);
    // Serialising a map of strings and a list of plain structs cannot fail.
    let routes_json = serde_json::to_string_pretty(&table).expect("the route table serialises");
    let routes = ConfigMap {
        metadata: meta(names.routes()),
        data: Some(BTreeMap::from([(ROUTES_KEY.to_string(), routes_json)])),
        ..ConfigMap::default()
    };

    let secret_bytes = |s: &Secret| -> Vec<u8> {
        // A BTreeMap serialises in key order, so equal data hashes equally.
        serde_json::to_vec(&s.data).unwrap_or_default()
    };
    let keys_bytes = secret_bytes(&signing_keys);
    let clients_bytes = secret_bytes(&service_clients);
    let routes_bytes = serde_json::to_vec(&routes.data).unwrap_or_default();
    let services = enabled
        .iter()
        .map(|kind| {
            let hash = match kind {
                ServiceKind::Users => hash_parts([keys_bytes.as_slice(), &clients_bytes]),
                ServiceKind::Gateway => hash_parts([routes_bytes.as_slice(), &clients_bytes]),
                _ => hash_parts([clients_bytes.as_slice()]),
            };
            service_deployment(platform, &names, *kind, &owner, version, hash)
        })
        .collect();

    Ok(PlatformObjects {
        signing_keys,
        service_clients,
        routes,
        services,
        ingress: ingress(platform, &names, meta(names.route())),
        http_route: http_route(platform, &names, meta(names.route())),
        endpoint: super::public_url(platform, &names),
    })
}

/// The client secrets: existing ones kept, missing ones made, and the
/// `name=secret,...` list the users service reads.
fn service_clients(existing: &BTreeMap<String, ByteString>, entropy: &mut dyn Entropy) -> BTreeMap<String, ByteString> {
    let mut data = BTreeMap::new();
    let mut clients = Vec::new();
    for kind in ServiceKind::ALL {
        let secret = match existing.get(kind.as_str()) {
            Some(value) if !value.0.is_empty() => value.clone(),
            _ => ByteString(entropy.client_secret().into_bytes()),
        };
        // Users is a client of its own token endpoint too: it relays its outbox to analytics.
        clients.push(format!("{}={}", kind.as_str(), String::from_utf8_lossy(&secret.0)));
        data.insert(kind.as_str().to_string(), secret);
    }
    data.insert(SERVICE_CLIENTS_KEY.to_string(), ByteString(clients.join(",").into_bytes()));
    data
}

fn service_deployment(
    platform: &Platform,
    names: &Names,
    kind: ServiceKind,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    version: &str,
    config_hash: String,
) -> ServiceDeployment {
    let mut o = overrides(platform, kind).cloned().unwrap_or_else(|| ServiceOverrides::new(kind));
    let store = store::store_of(platform, kind);
    let replicas = match kind {
        ServiceKind::Gateway => o.replicas.or(platform.spec.gateway.replicas),
        // One file on one volume: one replica, and no autoscaler to add more. The CRD's
        // rules refuse more; this holds for objects stored before those rules.
        _ if store == StoreKind::Embedded => {
            o.workload.autoscaling = None;
            store::at_most_one(o.replicas)
        }
        _ => o.replicas,
    };
    ServiceDeployment {
        metadata: ObjectMeta {
            name: Some(names.service(kind)),
            namespace: Some(names.namespace.clone()),
            labels: Some(labels(&names.platform, Some(kind), version)),
            annotations: Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_string(), config_hash)])),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: ServiceDeploymentSpec {
            store,
            // Unset: the ServiceDeployment's own count (kubectl scale) is left alone.
            replicas,
            workload: o.workload,
            ..ServiceDeploymentSpec::new(&names.platform, kind)
        },
        status: None,
    }
}

fn ingress(platform: &Platform, names: &Names, metadata: ObjectMeta) -> Option<Ingress> {
    let gateway = &platform.spec.gateway;
    let spec = gateway.ingress.as_ref()?;
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: names.service(ServiceKind::Gateway),
            port: Some(ServiceBackendPort { number: Some(GATEWAY_SERVICE_PORT), name: None }),
        }),
        resource: None,
    };
    let mut metadata = metadata;
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: gateway.host.clone(),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath { path: Some("/".into()), path_type: "Prefix".into(), backend }],
                }),
            }]),
            tls: gateway.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS { hosts: gateway.host.clone().map(|h| vec![h]), secret_name: Some(secret.clone()) }]
            }),
            default_backend: None,
        }),
        status: None,
    })
}

/// The Gateway API's HTTPRoute kind (k8s-openapi has no types for it).
pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"))
}

fn http_route(platform: &Platform, names: &Names, metadata: ObjectMeta) -> Option<DynamicObject> {
    let gateway = &platform.spec.gateway;
    let route = gateway.http_route.as_ref()?;
    let mut parent = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": route.parent_ref.name});
    if let Some(ns) = &route.parent_ref.namespace {
        parent["namespace"] = json!(ns);
    }
    if let Some(section) = &route.parent_ref.section_name {
        parent["sectionName"] = json!(section);
    }
    let mut spec = json!({
        "parentRefs": [parent],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"name": names.service(ServiceKind::Gateway), "port": GATEWAY_SERVICE_PORT}],
        }],
    });
    if let Some(host) = &gateway.host {
        spec["hostnames"] = json!([host]);
    }
    let mut object = DynamicObject::new(&names.route(), &http_route_resource()).data(json!({ "spec": spec }));
    object.metadata = metadata;
    Some(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DatabaseSpec, HttpRouteSpec, IngressSpec as VIngress, ParentRef, PlatformSpec, YdbSpec};

    use CountingEntropy as FakeEntropy;

    pub(crate) fn platform(spec: PlatformSpec) -> Platform {
        let mut p = Platform::new("demo", spec);
        p.metadata.namespace = Some("apps".into());
        p.metadata.uid = Some("uid-1".into());
        p.metadata.generation = Some(3);
        p
    }

    fn inputs() -> Inputs<'static> {
        Inputs { now: 1_000_000, signing_keys: None, service_clients: None }
    }

    fn s(value: &ByteString) -> &str {
        std::str::from_utf8(&value.0).unwrap()
    }

    #[test]
    fn a_minimal_platform_owns_keys_clients_routes_and_five_services() {
        let objects = render(&platform(PlatformSpec::default()), &inputs(), &mut FakeEntropy(0)).unwrap();
        assert_eq!(objects.signing_keys.metadata.name.as_deref(), Some("demo-signing-keys"));
        assert_eq!(objects.signing_keys.data.as_ref().unwrap().keys().collect::<Vec<_>>(), ["key-1000000.pem"]);
        let names: Vec<_> = objects.services.iter().map(|sd| sd.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["demo-users", "demo-organizations", "demo-events", "demo-analytics", "demo-gateway"]);
        assert!(objects.ingress.is_none() && objects.http_route.is_none());
        assert_eq!(objects.endpoint, "http://demo-gateway.apps.svc");
        for sd in &objects.services {
            let owner = &sd.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Platform", "uid-1", Some(true)));
            assert_eq!(sd.spec.store, StoreKind::Embedded);
            assert_eq!(sd.spec.replicas, None, "unset replicas leave kubectl scale alone");
        }
    }

    #[test]
    fn service_client_secrets_are_made_once_and_kept() {
        let first = render(&platform(PlatformSpec::default()), &inputs(), &mut FakeEntropy(0)).unwrap();
        let data = first.service_clients.data.clone().unwrap();
        assert_eq!(s(&data["organizations"]), "secret-3");
        assert_eq!(
            s(&data[SERVICE_CLIENTS_KEY]),
            "users=secret-2,organizations=secret-3,events=secret-4,analytics=secret-5,gateway=secret-6"
        );
        let again = Inputs { service_clients: Some(&data), ..inputs() };
        let second = render(&platform(PlatformSpec::default()), &again, &mut FakeEntropy(100)).unwrap();
        assert_eq!(second.service_clients.data.unwrap(), data);
    }

    #[test]
    fn unchanged_inputs_render_identical_hashes_and_a_rotated_key_changes_only_users() {
        let p = platform(PlatformSpec::default());
        let first = render(&p, &inputs(), &mut FakeEntropy(0)).unwrap();
        let keys = first.signing_keys.data.clone().unwrap();
        let clients = first.service_clients.data.clone().unwrap();
        let same = Inputs { now: 1_000_001, signing_keys: Some(&keys), service_clients: Some(&clients) };
        let second = render(&p, &same, &mut FakeEntropy(50)).unwrap();
        let hash = |o: &PlatformObjects, i: usize| {
            o.services[i].metadata.annotations.clone().unwrap()[CONFIG_HASH_ANNOTATION].clone()
        };
        for i in 0..5 {
            assert_eq!(hash(&first, i), hash(&second, i));
        }
        let later = Inputs { now: 1_000_000 + 91 * 86400, ..same };
        let rotated = render(&p, &later, &mut FakeEntropy(50)).unwrap();
        assert_eq!(rotated.signing_keys.data.as_ref().unwrap().len(), 2);
        assert_ne!(hash(&first, 0), hash(&rotated, 0), "users rolls to read the new key");
        assert_eq!(hash(&first, 2), hash(&rotated, 2), "events does not read signing keys");
    }

    #[test]
    fn disabled_services_are_not_rendered_but_users_and_gateway_always_are() {
        let mut spec = PlatformSpec::default();
        for kind in ServiceKind::ALL {
            spec.services.push(ServiceOverrides { enabled: Some(false), ..ServiceOverrides::new(kind) });
        }
        let objects = render(&platform(spec), &inputs(), &mut FakeEntropy(0)).unwrap();
        let kinds: Vec<_> = objects.services.iter().map(|sd| sd.spec.service).collect();
        assert_eq!(kinds, [ServiceKind::Users, ServiceKind::Gateway]);
        let routes = &objects.routes.data.unwrap()[ROUTES_KEY];
        assert!(!routes.contains("\"events\""), "no route to a disabled service: {routes}");
    }

    #[test]
    fn overrides_and_ydb_reach_the_service_deployments() {
        let mut spec = PlatformSpec {
            database: DatabaseSpec {
                ydb: Some(YdbSpec {
                    endpoint: "grpcs://ydb:2135".into(),
                    database: "/db".into(),
                    credentials_secret: None,
                }),
                embedded: None,
            },
            ..PlatformSpec::default()
        };
        spec.gateway.replicas = Some(2);
        spec.services.push(ServiceOverrides { replicas: Some(3), ..ServiceOverrides::new(ServiceKind::Events) });
        let mut auto = ServiceOverrides::new(ServiceKind::Analytics);
        auto.workload.autoscaling = Some(crate::crd::Autoscaling { max_replicas: 5, ..Default::default() });
        spec.services.push(auto);
        let objects = render(&platform(spec), &inputs(), &mut FakeEntropy(0)).unwrap();
        let by = |k: ServiceKind| objects.services.iter().find(|sd| sd.spec.service == k).unwrap();
        assert_eq!(by(ServiceKind::Gateway).spec.replicas, Some(2));
        assert_eq!(by(ServiceKind::Gateway).spec.store, StoreKind::Ydb);
        for kind in ServiceKind::DOMAIN {
            let sd = by(kind);
            let ydb = kind.speaks_ydb();
            assert_eq!(sd.spec.store, if ydb { StoreKind::Ydb } else { StoreKind::Embedded }, "{kind}");
            if !ydb {
                // One file on one volume: whatever the Platform asks, one replica.
                assert!(sd.spec.replicas.is_none_or(|n| n <= 1), "{kind}: {:?}", sd.spec.replicas);
                assert!(sd.spec.workload.autoscaling.is_none(), "{kind}");
            }
        }
        let events = by(ServiceKind::Events).spec.replicas;
        assert_eq!(events, if ServiceKind::Events.speaks_ydb() { Some(3) } else { Some(1) });
    }

    #[test]
    fn ingress_routes_the_host_to_the_gateway_with_tls() {
        let mut spec = PlatformSpec::default();
        spec.gateway.host = Some("api.example.org".into());
        spec.gateway.tls_secret_name = Some("api-tls".into());
        spec.gateway.ingress = Some(VIngress {
            class_name: Some("nginx".into()),
            annotations: BTreeMap::from([("a".into(), "b".into())]),
        });
        let objects = render(&platform(spec), &inputs(), &mut FakeEntropy(0)).unwrap();
        let ingress = objects.ingress.unwrap();
        assert_eq!(ingress.metadata.annotations.unwrap()["a"], "b");
        let spec = ingress.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let rule = &spec.rules.unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("api.example.org"));
        let backend = rule.http.as_ref().unwrap().paths[0].backend.service.clone().unwrap();
        assert_eq!((backend.name.as_str(), backend.port.unwrap().number), ("demo-gateway", Some(80)));
        assert_eq!(spec.tls.unwrap()[0].secret_name.as_deref(), Some("api-tls"));
        assert_eq!(objects.endpoint, "https://api.example.org");
    }

    #[test]
    fn http_route_attaches_to_the_parent_gateway() {
        let mut spec = PlatformSpec::default();
        spec.gateway.host = Some("api.example.org".into());
        spec.gateway.http_route = Some(HttpRouteSpec {
            parent_ref: ParentRef { name: "public".into(), namespace: Some("infra".into()), section_name: None },
        });
        let objects = render(&platform(spec), &inputs(), &mut FakeEntropy(0)).unwrap();
        let route = objects.http_route.unwrap();
        let value = serde_json::to_value(&route).unwrap();
        assert_eq!(value["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(value["kind"], "HTTPRoute");
        assert_eq!(value["metadata"]["name"], "demo");
        assert_eq!(value["spec"]["parentRefs"][0]["name"], "public");
        assert_eq!(value["spec"]["parentRefs"][0]["namespace"], "infra");
        assert_eq!(value["spec"]["hostnames"], json!(["api.example.org"]));
        assert_eq!(value["spec"]["rules"][0]["backendRefs"][0], json!({"name": "demo-gateway", "port": 80}));
        assert_eq!(objects.endpoint, "http://api.example.org");
    }

    #[test]
    fn a_platform_without_uid_is_refused() {
        let mut p = platform(PlatformSpec::default());
        p.metadata.uid = None;
        assert_eq!(
            render(&p, &inputs(), &mut FakeEntropy(0)).unwrap_err(),
            RenderError::MissingMetadata { kind: "Platform", field: "metadata.uid" }
        );
    }
}
