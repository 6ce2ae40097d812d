//! Where each service keeps its data, and what a Platform asks for that it cannot have.
//!
//! A domain service on the embedded store keeps one SQLite file on one volume: a second
//! replica would get a file of its own (state split between pods), and a volume that
//! dies with the pod (`emptyDir`) loses everything on restart. So such a service runs
//! on a PersistentVolumeClaim with one replica, whatever the Platform says; YDB is
//! used only by the services that speak it ([`ServiceKind::speaks_ydb`]).

use crate::crd::{Platform, ServiceDeployment, ServiceKind, StoreKind};

/// The store a service runs on: YDB when the platform names a YDB database and the
/// service speaks it, the embedded store otherwise.
pub fn store_of(platform: &Platform, kind: ServiceKind) -> StoreKind {
    choose(platform.spec.database.ydb().is_some(), kind.is_stateful(), kind.speaks_ydb())
}

/// [`store_of`] on plain facts, so that both answers can be tested while no service
/// speaks YDB yet.
fn choose(platform_has_ydb: bool, stateful: bool, speaks_ydb: bool) -> StoreKind {
    if platform_has_ydb && (speaks_ydb || !stateful) { StoreKind::Ydb } else { StoreKind::Embedded }
}

/// Whether a ServiceDeployment's pods keep their data on its own volume. A store of
/// `ydb` counts only for a service that speaks YDB: anything else would run SQLite on
/// a volume that dies with the pod.
pub fn on_volume(sd: &ServiceDeployment) -> bool {
    let kind = sd.spec.service;
    kind.is_stateful() && !(sd.spec.store == StoreKind::Ydb && kind.speaks_ydb())
}

/// What a Platform asks for and does not get, service by service.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// Services that stay on the embedded store although the Platform names YDB.
    pub not_on_ydb: Vec<ServiceKind>,
    /// Services that run one replica although the Platform asks for more (or for
    /// autoscaling), with what it asked for.
    pub one_replica: Vec<(ServiceKind, String)>,
}

impl Shortfall {
    pub fn is_empty(&self) -> bool {
        self.not_on_ydb.is_empty() && self.one_replica.is_empty()
    }

    /// One paragraph for the condition's message.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        if !self.not_on_ydb.is_empty() {
            parts.push(format!(
                "spec.database.ydb is set, but {} do not speak YDB yet: each keeps its data in the embedded \
                 store on its own PersistentVolumeClaim, with one replica",
                and_list(self.not_on_ydb.iter().map(|k| k.as_str().to_string()))
            ));
        }
        if !self.one_replica.is_empty() {
            parts.push(format!(
                "{} {} one replica: the embedded store is one file on one volume",
                and_list(self.one_replica.iter().map(|(k, asked)| format!("{k} (asked for {asked})"))),
                if self.one_replica.len() == 1 { "runs" } else { "run" },
            ));
        }
        parts.join("; ")
    }
}

/// "a", "a and b", "a, b and c".
pub(crate) fn and_list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// What `platform` asks for its `enabled` services that they cannot have.
pub fn shortfall(platform: &Platform, enabled: &[ServiceKind]) -> Shortfall {
    let mut out = Shortfall::default();
    for &kind in enabled.iter().filter(|k| k.is_stateful()) {
        if store_of(platform, kind) == StoreKind::Ydb {
            continue;
        }
        if platform.spec.database.ydb().is_some() {
            out.not_on_ydb.push(kind);
        }
        let o = super::platform::overrides(platform, kind);
        if let Some(auto) = o.and_then(|o| o.workload.autoscaling.as_ref()) {
            out.one_replica.push((kind, format!("autoscaling up to {}", auto.max_replicas)));
        } else if let Some(n) = o.and_then(|o| o.replicas).filter(|n| *n > 1) {
            out.one_replica.push((kind, format!("{n} replicas")));
        }
    }
    out
}

/// The replica count a service on its own volume may have: at most one.
pub fn at_most_one(replicas: Option<i32>) -> Option<i32> {
    replicas.map(|n| n.min(1))
}

/// A ServiceDeployment about to be applied, brought within its store given the one in
/// the cluster: when the cluster's copy was scaled past one (by an older operator on a
/// YDB platform, before its service had to stay on a volume), the apply sets one
/// replica, else the API server would refuse the change of store.
pub fn settle(rendered: &mut ServiceDeployment, current: Option<&ServiceDeployment>) {
    let scaled = current.and_then(|c| c.spec.replicas).is_some_and(|n| n > 1);
    if on_volume(rendered) && rendered.spec.replicas.is_none() && scaled {
        rendered.spec.replicas = Some(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{Autoscaling, DatabaseSpec, PlatformSpec, ServiceOverrides, YdbSpec};

    fn platform(ydb: bool, services: Vec<ServiceOverrides>) -> Platform {
        let database = DatabaseSpec {
            embedded: None,
            ydb: ydb.then(|| YdbSpec {
                endpoint: "grpcs://ydb:2135".into(),
                database: "/d".into(),
                ..Default::default()
            }),
        };
        Platform::new("demo", PlatformSpec { database, services, ..PlatformSpec::default() })
    }

    fn replicas(kind: ServiceKind, n: i32) -> ServiceOverrides {
        ServiceOverrides { replicas: Some(n), ..ServiceOverrides::new(kind) }
    }

    #[test]
    fn ydb_only_for_a_service_that_speaks_it() {
        assert_eq!(choose(true, true, true), StoreKind::Ydb);
        assert_eq!(choose(true, true, false), StoreKind::Embedded);
        assert_eq!(choose(false, true, true), StoreKind::Embedded);
        // The gateway keeps nothing: it follows the platform.
        assert_eq!(choose(true, false, false), StoreKind::Ydb);
        for kind in ServiceKind::DOMAIN {
            assert_eq!(store_of(&platform(true, vec![]), kind) == StoreKind::Ydb, kind.speaks_ydb(), "{kind}");
        }
    }

    #[test]
    fn a_ydb_store_on_a_service_that_does_not_speak_it_still_gets_a_volume() {
        let mut sd =
            ServiceDeployment::new("demo-events", crate::crd::ServiceDeploymentSpec::new("demo", ServiceKind::Events));
        sd.spec.store = StoreKind::Ydb;
        assert_eq!(on_volume(&sd), !ServiceKind::Events.speaks_ydb());
        sd.spec.service = ServiceKind::Gateway;
        assert!(!on_volume(&sd), "the gateway keeps no data");
    }

    #[test]
    fn an_embedded_platform_within_its_limits_lacks_nothing() {
        let p = platform(false, vec![replicas(ServiceKind::Events, 1), replicas(ServiceKind::Gateway, 5)]);
        assert!(shortfall(&p, &ServiceKind::ALL).is_empty());
    }

    #[test]
    fn a_ydb_platform_names_the_services_that_stay_embedded_and_the_replicas_refused() {
        let auto = ServiceOverrides {
            workload: crate::crd::Workload {
                autoscaling: Some(Autoscaling {
                    min_replicas: None,
                    max_replicas: 6,
                    target_cpu_utilization_percentage: None,
                }),
                ..Default::default()
            },
            ..ServiceOverrides::new(ServiceKind::Analytics)
        };
        let p = platform(true, vec![replicas(ServiceKind::Events, 3), auto, replicas(ServiceKind::Gateway, 4)]);
        let s = shortfall(&p, &[ServiceKind::Users, ServiceKind::Events, ServiceKind::Analytics, ServiceKind::Gateway]);
        let embedded: Vec<_> = [ServiceKind::Users, ServiceKind::Events, ServiceKind::Analytics]
            .into_iter()
            .filter(|k| !k.speaks_ydb())
            .collect();
        assert_eq!(s.not_on_ydb, embedded);
        if !ServiceKind::Events.speaks_ydb() {
            assert_eq!(
                s.message(),
                "spec.database.ydb is set, but users, events and analytics do not speak YDB yet: each keeps its \
                 data in the embedded store on its own PersistentVolumeClaim, with one replica; events (asked for \
                 3 replicas) and analytics (asked for autoscaling up to 6) run one replica: the embedded store is \
                 one file on one volume"
            );
        }
    }

    #[test]
    fn a_service_scaled_past_one_by_an_older_operator_is_brought_back_to_one() {
        let sd = |store: StoreKind, replicas: Option<i32>| {
            let mut spec = crate::crd::ServiceDeploymentSpec::new("demo", ServiceKind::Events);
            spec.store = store;
            spec.replicas = replicas;
            ServiceDeployment::new("demo-events", spec)
        };
        let mut rendered = sd(StoreKind::Embedded, None);
        settle(&mut rendered, Some(&sd(StoreKind::Ydb, Some(3))));
        assert_eq!(rendered.spec.replicas, Some(1));
        // Left alone: within bounds, no copy yet, or a count the Platform sets.
        for current in [Some(sd(StoreKind::Embedded, Some(1))), Some(sd(StoreKind::Embedded, Some(0))), None] {
            let mut rendered = sd(StoreKind::Embedded, None);
            settle(&mut rendered, current.as_ref());
            assert_eq!(rendered.spec.replicas, None, "{current:?}");
        }
        let mut gateway = sd(StoreKind::Embedded, None);
        gateway.spec.service = ServiceKind::Gateway;
        let mut current = gateway.clone();
        current.spec.replicas = Some(4);
        settle(&mut gateway, Some(&current));
        assert_eq!(gateway.spec.replicas, None, "the gateway scales freely");
    }

    #[test]
    fn lists_read_as_english() {
        let l = |v: &[&str]| and_list(v.iter().map(|s| s.to_string()));
        assert_eq!(l(&[]), "");
        assert_eq!(l(&["a"]), "a");
        assert_eq!(l(&["a", "b"]), "a and b");
        assert_eq!(l(&["a", "b", "c"]), "a, b and c");
    }

    #[test]
    fn at_most_one_replica_on_a_volume() {
        assert_eq!(at_most_one(Some(3)), Some(1));
        assert_eq!(at_most_one(Some(0)), Some(0), "scaled to zero stays at zero");
        assert_eq!(at_most_one(None), None);
    }
}
