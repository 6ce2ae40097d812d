//! The operator at work on a real control plane. Each test installs the Helm chart into
//! its own namespace (RBAC bound to that namespace only), runs `veche-operator` as a
//! process with the chart's ServiceAccount token, so it has exactly the chart's
//! permissions, and drives Platforms the way a platform engineer does: kubectl apply,
//! kubectl scale, patches, deletes, and killing the operator.
//!
//! Run: `e2e/cluster.sh run -- cargo test -p veche-e2e --features cluster --test platform`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use e2e::{Cluster, Operator, eventually};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, ObjectList};
use kube::{Resource, ResourceExt};
use operator::crd::{Platform, ServiceDeployment};
use serde::de::DeserializeOwned;

const MINUTE: Duration = Duration::from_secs(60);
const SERVICES: [&str; 5] = ["analytics", "events", "gateway", "organizations", "users"];
const CONFIG_HASH: &str = "veche.io/config-hash";

/// A namespace with the operator's chart installed for it, and the kubeconfig of the
/// chart's ServiceAccount.
struct Rig {
    cluster: Cluster,
    ns: String,
    kubeconfig: PathBuf,
    _volumes: e2e::Provisioner,
}

impl Rig {
    async fn new(prefix: &str) -> Rig {
        let cluster = Cluster::connect().await;
        cluster.install_crds().await;
        let ns = cluster.namespace(prefix).await;
        let release = cluster.install_operator_chart(&ns);
        let kubeconfig = cluster.service_account_kubeconfig(&ns, &release);
        let volumes = cluster.provision_volumes(&ns);
        Rig { cluster, ns, kubeconfig, _volumes: volumes }
    }

    fn operator(&self, identity: &str) -> Operator {
        Operator::start(&self.kubeconfig, &self.ns, identity)
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned,
    {
        Api::namespaced(self.cluster.client.clone(), &self.ns)
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        self.cluster.kubectl_ok(all)
    }

    /// Runs kubectl expecting a refusal; returns its error output.
    fn kubectl_refused(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        let out = self.cluster.kubectl(all);
        assert!(!out.status.success(), "kubectl {args:?} was accepted: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn apply(&self, manifest: &str) {
        self.cluster.apply(&format!(
            "apiVersion: veche.io/v1alpha1\nkind: Platform\nmetadata:\n  namespace: {}\n{manifest}",
            self.ns
        ));
    }

    /// Objects of kind `K` labelled as platform `platform`'s.
    async fn owned<K>(&self, platform: &str) -> anyhow::Result<ObjectList<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let params = ListParams::default().labels(&format!("veche.io/platform={platform}"));
        Ok(self.api::<K>().list(&params).await?)
    }

    /// Waits until Platform `name` reports Ready=True for its current generation, and
    /// returns it.
    async fn ready(&self, name: &str, timeout: Duration) -> Platform {
        let api = self.api::<Platform>();
        eventually(&format!("Platform {name} Ready"), timeout, || async {
            let p = api.get(name).await?;
            let status = p.status.clone().unwrap_or_default();
            let ready = condition(&status.conditions, "Ready");
            ensure!(
                status.observed_generation == p.metadata.generation && ready.as_deref() == Some("True"),
                "generation {:?}, observed {:?}, Ready {:?}: {:?}",
                p.metadata.generation,
                status.observed_generation,
                ready,
                status.services
            );
            Ok(Some(p))
        })
        .await
    }

    /// Waits until Deployment `name` has rolled out its current template with `replicas`
    /// (or whatever it asks for, when `None`): every replica updated and available, and
    /// the old ReplicaSets scaled to zero.
    async fn rolled_out(&self, name: &str, replicas: Option<i32>, timeout: Duration) -> Deployment {
        let api = self.api::<Deployment>();
        eventually(&format!("Deployment {name} rolled out"), timeout, || async {
            let d = api.get(name).await?;
            let asked = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let want = replicas.unwrap_or(asked);
            let s = d.status.clone().unwrap_or_default();
            ensure!(
                asked == want
                    && s.observed_generation == d.metadata.generation
                    && s.updated_replicas == Some(want)
                    && s.available_replicas == Some(want)
                    && s.replicas == Some(want),
                "want {want}: {s:?}"
            );
            Ok(Some(d))
        })
        .await
    }

    /// The ReplicaSets of Deployment `name` (one per template it has had).
    async fn replica_sets(&self, name: &str) -> Vec<ReplicaSet> {
        let all = self.api::<ReplicaSet>().list(&ListParams::default()).await.expect("listing ReplicaSets");
        all.items
            .into_iter()
            .filter(|rs| rs.owner_references().iter().any(|o| o.kind == "Deployment" && o.name == name))
            .collect()
    }
}

fn condition(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition], type_: &str) -> Option<String> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.clone())
}

fn names<K: Resource + Clone>(list: &ObjectList<K>) -> BTreeSet<String> {
    list.items.iter().map(|o| o.meta().name.clone().unwrap_or_default()).collect()
}

fn expected(platform: &str, services: &[&str]) -> BTreeSet<String> {
    services.iter().map(|s| format!("{platform}-{s}")).collect()
}

fn template_hash(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(CONFIG_HASH).cloned())
        .unwrap_or_default()
}

fn controller_uid<K: Resource>(obj: &K) -> Option<String> {
    obj.meta().owner_references.as_ref()?.iter().find(|o| o.controller == Some(true)).map(|o| o.uid.clone())
}

/// Exactly the children a platform of `services` owns, each once, each owned by the
/// right parent.
async fn assert_children(rig: &Rig, platform: &Platform, services: &[&str], volumes: &[&str]) -> anyhow::Result<()> {
    let name = platform.name_any();
    let uid = platform.uid().context("platform uid")?;
    let sds = rig.owned::<ServiceDeployment>(&name).await?;
    ensure!(names(&sds) == expected(&name, services), "ServiceDeployments {:?}", names(&sds));
    ensure!(sds.items.iter().all(|sd| controller_uid(sd).as_deref() == Some(uid.as_str())), "SD owners");
    let sd_uids: BTreeSet<String> = sds.items.iter().filter_map(|sd| sd.uid()).collect();
    let owned_by_sd = |owner: Option<String>| owner.is_some_and(|o| sd_uids.contains(&o));

    let deployments = rig.owned::<Deployment>(&name).await?;
    ensure!(names(&deployments) == expected(&name, services), "Deployments {:?}", names(&deployments));
    ensure!(deployments.items.iter().all(|d| owned_by_sd(controller_uid(d))), "Deployment owners");
    let services_ = rig.owned::<Service>(&name).await?;
    ensure!(names(&services_) == expected(&name, services), "Services {:?}", names(&services_));
    let pdbs = rig.owned::<PodDisruptionBudget>(&name).await?;
    ensure!(names(&pdbs) == expected(&name, services), "PDBs {:?}", names(&pdbs));
    let policies = rig.owned::<NetworkPolicy>(&name).await?;
    ensure!(names(&policies) == expected(&name, services), "NetworkPolicies {:?}", names(&policies));
    let accounts = rig.owned::<ServiceAccount>(&name).await?;
    ensure!(names(&accounts) == expected(&name, services), "ServiceAccounts {:?}", names(&accounts));
    let claims = rig.owned::<PersistentVolumeClaim>(&name).await?;
    let want: BTreeSet<String> = volumes.iter().map(|s| format!("{name}-{s}-data")).collect();
    ensure!(names(&claims) == want, "PVCs {:?}", names(&claims));

    let secrets = rig.owned::<Secret>(&name).await?;
    let want: BTreeSet<String> = [format!("{name}-service-clients"), format!("{name}-signing-keys")].into();
    ensure!(names(&secrets) == want, "Secrets {:?}", names(&secrets));
    ensure!(secrets.items.iter().all(|s| controller_uid(s).as_deref() == Some(uid.as_str())), "Secret owners");
    let maps = rig.owned::<ConfigMap>(&name).await?;
    ensure!(names(&maps) == [format!("{name}-routes")].into(), "ConfigMaps {:?}", names(&maps));

    // kwok runs the pods; each one carries the restricted security context.
    let pods = rig.owned::<Pod>(&name).await?;
    let running = pods.items.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
    ensure!(running.count() == services.len(), "running pods: {:?}", names(&pods));
    for pod in &pods.items {
        let spec = pod.spec.as_ref().context("pod spec")?;
        let security = spec.security_context.as_ref().context("pod securityContext")?;
        ensure!(security.run_as_non_root == Some(true), "{} runs as root", pod.name_any());
        let container = spec.containers.first().context("a container")?;
        let c = container.security_context.as_ref().context("container securityContext")?;
        ensure!(c.read_only_root_filesystem == Some(true) && c.allow_privilege_escalation == Some(false), "{c:?}");
    }
    Ok(())
}

#[tokio::test]
async fn minimal_platform_becomes_ready_heals_rolls_and_is_collected() {
    let rig = Rig::new("minimal").await;
    let _operator = rig.operator("solo");
    rig.kubectl(&["apply", "-f", &e2e::repo("examples/platform-minimal.yaml")]);

    let platform = rig.ready("veche", 2 * MINUTE).await;
    let status = platform.status.clone().unwrap_or_default();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.endpoint.as_deref(), Some(format!("http://veche-gateway.{}.svc", rig.ns).as_str()));
    assert_eq!(status.services.len(), 5, "{:?}", status.services);
    assert!(status.services.iter().all(|s| s.ready && s.available_replicas == 1), "{:?}", status.services);
    let stateful = ["analytics", "events", "organizations", "users"];
    eventually("every child, once", MINUTE, || async {
        assert_children(&rig, &platform, &SERVICES, &stateful).await.map(Some)
    })
    .await;
    let table = rig.kubectl(&["get", "platforms"]);
    assert!(table.lines().nth(1).is_some_and(|l| l.contains("True") && l.contains("veche-gateway")), "{table}");

    // A deleted Deployment comes back.
    let deployments = rig.api::<Deployment>();
    let before = deployments.get("veche-events").await.expect("events deployment").uid();
    rig.kubectl(&["delete", "deployment", "veche-events", "--wait=true"]);
    eventually("veche-events recreated", MINUTE, || async {
        let d = deployments.get_opt("veche-events").await?;
        Ok(d.filter(|d| d.uid() != before).map(|_| ()))
    })
    .await;
    rig.rolled_out("veche-events", None, MINUTE).await;

    // A configuration change rolls only the pods that read it.
    let users_rs = rig.replica_sets("veche-users").await.len();
    let gateway_rs = rig.replica_sets("veche-gateway").await.len();
    rig.kubectl(&[
        "patch",
        "platform",
        "veche",
        "--type=merge",
        "-p",
        r#"{"spec":{"services":[{"name":"users","env":[{"name":"RUST_LOG","value":"debug"}]}]}}"#,
    ]);
    let platform = rig.ready("veche", 2 * MINUTE).await;
    assert_eq!(platform.status.as_ref().and_then(|s| s.observed_generation), Some(2));
    let users = rig.rolled_out("veche-users", None, MINUTE).await;
    let env = &users.spec.as_ref().expect("spec").template.spec.as_ref().expect("pod spec").containers[0].env;
    assert!(env.iter().flatten().any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug")), "{env:?}");
    assert_eq!(rig.replica_sets("veche-users").await.len(), users_rs + 1, "users rolled once");
    assert_eq!(rig.replica_sets("veche-gateway").await.len(), gateway_rs, "the gateway did not roll");

    // A new signing-key Secret (here: the old one deleted, so a fresh key is made) rolls
    // the users service, which signs with it, and nothing that does not read it.
    let hash_before = template_hash(&users);
    let events_before = template_hash(&deployments.get("veche-events").await.expect("events"));
    let secrets = rig.api::<Secret>();
    let old_keys = secrets.get("veche-signing-keys").await.expect("signing keys").data.unwrap_or_default();
    rig.kubectl(&["delete", "secret", "veche-signing-keys"]);
    let users = eventually("users rolled to the new key", MINUTE, || async {
        let d = deployments.get("veche-users").await?;
        Ok((template_hash(&d) != hash_before).then_some(d))
    })
    .await;
    let new_keys = secrets.get("veche-signing-keys").await.expect("signing keys").data.unwrap_or_default();
    assert_eq!(new_keys.len(), 1, "one fresh key");
    assert_ne!(new_keys, old_keys, "the key is new");
    assert!(!template_hash(&users).is_empty());
    rig.rolled_out("veche-users", None, MINUTE).await;
    assert_eq!(rig.replica_sets("veche-users").await.len(), users_rs + 2, "users rolled again");
    let events_after = template_hash(&deployments.get("veche-events").await.expect("events"));
    assert_eq!(events_after, events_before, "events does not read the signing keys");

    // Deleting the Platform removes everything it owned (the garbage collector follows
    // the owner references, two levels deep).
    rig.kubectl(&["delete", "platform", "veche", "--wait=true"]);
    eventually("every child gone", 2 * MINUTE, || async {
        let left = [
            names(&rig.owned::<ServiceDeployment>("veche").await?),
            names(&rig.owned::<Deployment>("veche").await?),
            names(&rig.owned::<Service>("veche").await?),
            names(&rig.owned::<Secret>("veche").await?),
            names(&rig.owned::<ConfigMap>("veche").await?),
            names(&rig.owned::<PersistentVolumeClaim>("veche").await?),
            names(&rig.owned::<Pod>("veche").await?),
        ];
        let left: Vec<String> = left.into_iter().flatten().collect();
        ensure!(left.is_empty(), "still there: {left:?}");
        Ok(Some(()))
    })
    .await;
}

#[tokio::test]
async fn a_ydb_platform_keeps_its_services_on_volumes_and_scales_the_gateway() {
    let rig = Rig::new("scale").await;
    let _operator = rig.operator("solo");
    rig.kubectl(&["create", "secret", "generic", "ydb-credentials", "--from-literal=token=e2e"]);
    rig.apply(
        "  name: big\nspec:\n  database:\n    ydb: {endpoint: 'grpcs://ydb.invalid:2135', database: /local, \
         credentialsSecret: {name: ydb-credentials}}\n",
    );
    rig.ready("big", 2 * MINUTE).await;
    let platform = rig.api::<Platform>().get("big").await.expect("platform");
    // No service speaks YDB yet: each keeps its data on a claim of its own, not on a
    // volume that dies with the pod, and the Platform says so.
    let on_volumes: Vec<&str> = SERVICES.into_iter().filter(|s| *s != "gateway" && !speaks_ydb(s)).collect();
    eventually("every child, once", MINUTE, || async {
        assert_children(&rig, &platform, &SERVICES, &on_volumes).await.map(Some)
    })
    .await;
    let database =
        platform.status.clone().unwrap_or_default().conditions.into_iter().find(|c| c.type_ == "DatabaseAsRequested");
    let database = database.expect("a DatabaseAsRequested condition");
    if !on_volumes.is_empty() {
        assert_eq!((database.status.as_str(), database.reason.as_str()), ("False", "YdbNotSupportedYet"));
        assert!(database.message.contains("do not speak YDB yet"), "{}", database.message);
        let events = rig.kubectl(&["get", "events", "--field-selector", "involvedObject.kind=Platform", "-o", "wide"]);
        assert!(events.contains("DatabaseNotAsRequested"), "{events}");
        // More replicas of such a service are refused at once, by the API server.
        let refused = rig.kubectl_refused(&["scale", "servicedeployment", "big-events", "--replicas=3"]);
        assert!(refused.contains("embedded store"), "{refused}");
        let refused = rig.kubectl_refused(&[
            "patch",
            "platform",
            "big",
            "--type=merge",
            "-p",
            r#"{"spec":{"services":[{"name":"events","autoscaling":{"maxReplicas":6}}]}}"#,
        ]);
        assert!(refused.contains("do not speak yet"), "{refused}");
        assert_eq!(rig.api::<Deployment>().get("big-events").await.expect("d").spec.and_then(|s| s.replicas), Some(1));
    }

    // kubectl scale goes through the ServiceDeployment's scale subresource; the operator
    // carries it to the Deployment and reports it back.
    rig.kubectl(&["scale", "servicedeployment", "big-gateway", "--replicas=3"]);
    rig.rolled_out("big-gateway", Some(3), MINUTE).await;
    let sds = rig.api::<ServiceDeployment>();
    eventually("the ServiceDeployment reports 3 available", MINUTE, || async {
        let sd = sds.get("big-gateway").await?;
        let s = sd.status.clone().unwrap_or_default();
        ensure!(s.replicas == 3 && s.available_replicas == 3, "{s:?}");
        Ok(Some(()))
    })
    .await;
    let scale = rig.kubectl(&["get", "servicedeployment", "big-gateway", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(scale.trim(), "3");
    // The Platform does not set replicas for the gateway, so its next reconcile keeps them.
    rig.kubectl(&["annotate", "platform", "big", "e2e/touch=1"]);
    rig.ready("big", MINUTE).await;
    assert_eq!(rig.api::<Deployment>().get("big-gateway").await.expect("d").spec.and_then(|s| s.replicas), Some(3));

    // Autoscaling on: an HPA appears, scales the Deployment to its minimum, and the
    // operator stops writing replicas.
    rig.kubectl(&[
        "patch",
        "platform",
        "big",
        "--type=merge",
        "-p",
        r#"{"spec":{"services":[{"name":"gateway","autoscaling":{"minReplicas":4,"maxReplicas":6}}]}}"#,
    ]);
    let hpas = rig.api::<HorizontalPodAutoscaler>();
    let hpa = eventually("the HPA", MINUTE, || async { Ok(hpas.get_opt("big-gateway").await?) }).await;
    let spec = hpa.spec.expect("hpa spec");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(4), 6));
    assert_eq!(
        (spec.scale_target_ref.kind.as_str(), spec.scale_target_ref.name.as_str()),
        ("Deployment", "big-gateway")
    );
    let deployments = rig.api::<Deployment>();
    eventually("the HPA raised the Deployment to its minimum", 2 * MINUTE, || async {
        let d = deployments.get("big-gateway").await?;
        let replicas = d.spec.as_ref().and_then(|s| s.replicas);
        ensure!(replicas == Some(4), "replicas {replicas:?}");
        Ok(Some(()))
    })
    .await;
    rig.ready("big", 2 * MINUTE).await;
    // The replica count is the HPA's alone: the operator's applies no longer carry it, a
    // reconcile does not undo the HPA, and server-side apply records no claim of ours.
    rig.kubectl(&["annotate", "--overwrite", "platform", "big", "e2e/touch=2"]);
    rig.ready("big", MINUTE).await;
    let d = deployments.get("big-gateway").await.expect("deployment");
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(4));
    let operator_owns_replicas = d.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some("veche-operator")
            && m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    });
    assert!(!operator_owns_replicas, "the operator must not own spec.replicas: {:?}", d.managed_fields());

    // Autoscaling off: the HPA goes, and the ServiceDeployment's own count (3) returns.
    rig.kubectl(&["patch", "platform", "big", "--type=merge", "-p", r#"{"spec":{"services":[]}}"#]);
    eventually("the HPA removed", MINUTE, || async { Ok(hpas.get_opt("big-gateway").await?.is_none().then_some(())) })
        .await;
    rig.rolled_out("big-gateway", Some(3), MINUTE).await;

    // A platform engineer's own HPA can aim at a ServiceDeployment: the HPA controller
    // writes the scale subresource, the operator carries it to the Deployment.
    rig.cluster.apply(&format!(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: own, namespace: {}}}\n\
         spec:\n  scaleTargetRef: {{apiVersion: veche.io/v1alpha1, kind: ServiceDeployment, name: big-gateway}}\n  \
         minReplicas: 4\n  maxReplicas: 5\n",
        rig.ns
    ));
    rig.rolled_out("big-gateway", Some(4), 2 * MINUTE).await;
    let sd = sds.get("big-gateway").await.expect("sd");
    assert_eq!(sd.spec.replicas, Some(4), "the HPA scaled the ServiceDeployment");
}

/// Whether the catalogue says `service` keeps its data in YDB.
fn speaks_ydb(service: &str) -> bool {
    operator::crd::ServiceKind::SPEAKS_YDB.iter().any(|s| s.as_str() == service)
}

#[tokio::test]
async fn a_killed_operator_converges_on_restart_and_two_replicas_elect_one_leader() {
    let rig = Rig::new("leader").await;
    let first = rig.operator("first");
    let second = rig.operator("second");
    let leases = rig.api::<Lease>();
    let holder = || async {
        let lease = leases.get_opt("veche-operator").await?;
        Ok(lease.and_then(|l| l.spec?.holder_identity))
    };
    let leader = eventually("a leader", MINUTE, || async { holder().await }).await;
    assert!(leader == "first" || leader == "second", "{leader}");
    let (mut leading, mut standing_by) = if leader == "first" { (first, second) } else { (second, first) };

    // Kill the leader mid-rollout: as soon as the first ServiceDeployment exists.
    rig.kubectl(&["apply", "-f", &e2e::repo("examples/platform-minimal.yaml")]);
    let sds = rig.api::<ServiceDeployment>();
    eventually("the rollout started", MINUTE, || async {
        Ok((!sds.list(&ListParams::default()).await?.items.is_empty()).then_some(()))
    })
    .await;
    leading.kill();
    assert!(standing_by.is_running(), "the standby is still up");
    assert!(
        !standing_by.log().contains("controllers starting"),
        "only the leader runs controllers:\n{}",
        standing_by.log()
    );

    // The standby takes over once the Lease expires and finishes the rollout.
    let next =
        eventually("a new leader", MINUTE, || async { Ok(holder().await?.filter(|h| *h == standing_by.identity)) })
            .await;
    assert_eq!(next, standing_by.identity);
    let platform = rig.ready("veche", 2 * MINUTE).await;
    assert!(standing_by.log().contains("controllers starting"), "{}", standing_by.log());

    // And the killed one restarts as a standby; nothing is duplicated.
    let restarted = rig.operator(&leading.identity);
    drop(leading);
    (leading, standing_by) = (standing_by, restarted);
    eventually("every child, once", MINUTE, || async {
        assert_children(&rig, &platform, &SERVICES, &["analytics", "events", "organizations", "users"]).await.map(Some)
    })
    .await;
    let keys = rig.api::<Secret>().get("veche-signing-keys").await.expect("keys").data.unwrap_or_default();
    assert_eq!(keys.len(), 1, "one signing key, not one per operator run: {:?}", keys.keys());
    for service in SERVICES {
        let name = format!("veche-{service}");
        let sets = rig.replica_sets(&name).await;
        assert_eq!(sets.len(), 1, "{name} was rolled out once, not once per operator run");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(standing_by.is_running() && !standing_by.log().contains("controllers starting"), "{}", standing_by.log());
    assert_eq!(holder().await.expect("lease").as_deref(), Some(leading.identity.as_str()));
}

#[tokio::test]
async fn a_failing_platform_reports_degraded_and_a_paused_one_applies_nothing() {
    let rig = Rig::new("paused").await;
    let _operator = rig.operator("solo");
    rig.kubectl(&["create", "secret", "generic", "ydb-credentials", "--from-literal=token=e2e"]);
    // This example publishes through an HTTPRoute, and this cluster does not serve the
    // Gateway API: the operator must say so where a platform engineer looks.
    rig.kubectl(&["apply", "-f", &e2e::repo("examples/platform-ydb.yaml")]);
    let platforms = rig.api::<Platform>();
    eventually("Degraded=True naming the Gateway API", MINUTE, || async {
        let status = platforms.get("veche").await?.status.unwrap_or_default();
        let degraded = status.conditions.iter().find(|c| c.type_ == "Degraded");
        ensure!(
            degraded.is_some_and(|c| c.status == "True"
                && c.reason == "ReconcileFailed"
                && c.message.contains("Gateway API")),
            "{degraded:?}"
        );
        Ok(Some(()))
    })
    .await;
    let events = rig.kubectl(&["get", "events", "--field-selector", "involvedObject.kind=Platform", "-o", "wide"]);
    assert!(events.contains("ReconcileFailed") && events.contains("Gateway API"), "{events}");
    // What could be applied was: the services run.
    rig.rolled_out("veche-gateway", Some(2), MINUTE).await;

    // Paused: changes wait, and the status says why.
    rig.kubectl(&[
        "patch",
        "platform",
        "veche",
        "--type=merge",
        "-p",
        r#"{"spec":{"paused":true,"gateway":{"replicas":3}}}"#,
    ]);
    eventually("Progressing=False, Paused", MINUTE, || async {
        let p = platforms.get("veche").await?;
        let status = p.status.unwrap_or_default();
        let progressing = status.conditions.iter().find(|c| c.type_ == "Progressing");
        ensure!(
            status.observed_generation == p.metadata.generation
                && progressing.is_some_and(|c| c.status == "False" && c.reason == "Paused"),
            "{progressing:?}"
        );
        Ok(Some(()))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let gateway = rig.api::<Deployment>().get("veche-gateway").await.expect("gateway");
    assert_eq!(gateway.spec.and_then(|s| s.replicas), Some(2), "a paused platform applies nothing");

    // Unpaused, with the route dropped: the change lands and the platform is Ready.
    rig.kubectl(&[
        "patch",
        "platform",
        "veche",
        "--type=merge",
        "-p",
        r#"{"spec":{"paused":false,"gateway":{"httpRoute":null}}}"#,
    ]);
    let platform = rig.ready("veche", 2 * MINUTE).await;
    let degraded = platform.status.unwrap_or_default().conditions.into_iter().find(|c| c.type_ == "Degraded");
    assert_eq!(degraded.map(|c| c.status).as_deref(), Some("False"));
    rig.rolled_out("veche-gateway", Some(3), MINUTE).await;
}
