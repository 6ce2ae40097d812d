//! Pure status logic: how a Deployment's state becomes a ServiceDeployment's conditions,
//! and how the ServiceDeployments of a platform become the Platform's.
//!
//! Conditions follow the Kubernetes API conventions: `Ready`, `Progressing` and
//! `Degraded`, status `True`/`False`/`Unknown` only, a CamelCase reason, a human
//! message, and a `lastTransitionTime` that moves only when the status does.

use crate::crd::{ServiceDeployment, ServiceKind, ServiceSummary};
use crate::render::store::Shortfall;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// A Platform's fourth condition: whether its services keep their data where, and with
/// as many replicas as, it asks.
pub const DATABASE: &str = "DatabaseAsRequested";

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
    fn of(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

/// One condition before it gets its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub type_: &'static str,
    pub status: Status,
    pub reason: &'static str,
    pub message: String,
}

impl Cond {
    fn new(type_: &'static str, status: Status, reason: &'static str, message: impl Into<String>) -> Self {
        Self { type_, status, reason, message: message.into() }
    }
}

/// The conditions of an object: three for every object, and a Platform's
/// [`DATABASE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ready: Cond,
    pub progressing: Cond,
    pub degraded: Cond,
    pub database: Option<Cond>,
}

impl Verdict {
    pub fn is_ready(&self) -> bool {
        self.ready.status == Status::True
    }
    fn into_vec(self) -> Vec<Cond> {
        [Some(self.ready), Some(self.progressing), Some(self.degraded), self.database].into_iter().flatten().collect()
    }
}

/// What matters of a Deployment's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentState {
    pub generation: i64,
    pub observed_generation: i64,
    pub desired: i32,
    pub updated: i32,
    pub available: i32,
    pub replicas: i32,
    /// The Deployment gave up on a rollout (`Progressing=False`, `ProgressDeadlineExceeded`).
    pub deadline_exceeded: bool,
    /// Pods could not be created (`ReplicaFailure=True`), with its message.
    pub replica_failure: Option<String>,
}

impl DeploymentState {
    pub fn of(d: &Deployment) -> Self {
        let status = d.status.clone().unwrap_or_default();
        let conditions = status.conditions.unwrap_or_default();
        let find = |t: &str| conditions.iter().find(|c| c.type_ == t);
        Self {
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            replicas: status.replicas.unwrap_or(0),
            deadline_exceeded: find("Progressing")
                .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")),
            replica_failure: find("ReplicaFailure")
                .filter(|c| c.status == "True")
                .map(|c| c.message.clone().unwrap_or_else(|| "pods cannot be created".into())),
        }
    }

    /// Every desired replica is updated and available, and the Deployment controller
    /// has seen the current generation.
    pub fn rolled_out(&self) -> bool {
        self.observed_generation >= self.generation && self.updated >= self.desired && self.available >= self.desired
    }
}

/// The conditions of a ServiceDeployment, from its Deployment (if it exists yet) and the
/// error of the last reconcile (if it failed).
pub fn service_verdict(deployment: Option<&DeploymentState>, error: Option<&str>) -> Verdict {
    let Some(d) = deployment else {
        return Verdict {
            ready: Cond::new(READY, Status::False, "DeploymentMissing", "the Deployment does not exist yet"),
            progressing: Cond::new(PROGRESSING, Status::True, "Creating", "creating the Deployment"),
            degraded: degraded_by(error),
            database: None,
        };
    };
    let ready = d.rolled_out();
    let progress = format!("{}/{} replicas available, {} updated", d.available, d.desired, d.updated);
    let ready_cond = if ready {
        Cond::new(READY, Status::True, "Available", progress.clone())
    } else if d.observed_generation < d.generation {
        Cond::new(READY, Status::False, "RolloutPending", "the Deployment controller has not seen the latest spec")
    } else {
        Cond::new(READY, Status::False, "ReplicasUnavailable", progress.clone())
    };
    let progressing = if ready {
        Cond::new(PROGRESSING, Status::False, "RolloutComplete", "the rollout is complete")
    } else if d.deadline_exceeded {
        Cond::new(PROGRESSING, Status::False, "ProgressDeadlineExceeded", "the rollout stopped making progress")
    } else {
        Cond::new(PROGRESSING, Status::True, "RollingOut", progress)
    };
    let degraded = if let Some(e) = error {
        Cond::new(DEGRADED, Status::True, "ReconcileFailed", e)
    } else if let Some(m) = &d.replica_failure {
        Cond::new(DEGRADED, Status::True, "ReplicaFailure", m.clone())
    } else if d.deadline_exceeded {
        Cond::new(DEGRADED, Status::True, "ProgressDeadlineExceeded", "the rollout stopped making progress")
    } else {
        Cond::new(DEGRADED, Status::False, "AsExpected", "")
    };
    Verdict { ready: ready_cond, progressing, degraded, database: None }
}

fn degraded_by(error: Option<&str>) -> Cond {
    match error {
        Some(e) => Cond::new(DEGRADED, Status::True, "ReconcileFailed", e),
        None => Cond::new(DEGRADED, Status::False, "AsExpected", ""),
    }
}

/// How one ServiceDeployment is doing, from its status: ready only when its status
/// speaks of its current generation and says Ready.
pub fn summarize(kind: ServiceKind, sd: Option<&ServiceDeployment>) -> ServiceSummary {
    let missing = |message: &str| ServiceSummary {
        name: kind,
        ready: false,
        replicas: 0,
        available_replicas: 0,
        message: Some(message.into()),
    };
    let Some(sd) = sd else { return missing("the ServiceDeployment does not exist yet") };
    let Some(status) = &sd.status else { return missing("not reconciled yet") };
    let current = status.observed_generation.is_some() && status.observed_generation == sd.metadata.generation;
    let ready_cond = status.conditions.iter().find(|c| c.type_ == READY);
    let ready = current && ready_cond.is_some_and(|c| c.status == "True");
    let message = if ready {
        None
    } else if !current {
        Some("status is not of the current generation yet".into())
    } else {
        Some(ready_cond.map(|c| c.message.clone()).filter(|m| !m.is_empty()).unwrap_or_else(|| "not ready".into()))
    };
    ServiceSummary {
        name: kind,
        ready,
        replicas: status.replicas,
        available_replicas: status.available_replicas,
        message,
    }
}

/// Whether a Platform's services keep their data where it asks (`ydb` or not), given
/// what it asks for and cannot have.
pub fn database_condition(ydb: bool, shortfall: &Shortfall) -> Cond {
    if !shortfall.not_on_ydb.is_empty() {
        Cond::new(DATABASE, Status::False, "YdbNotSupportedYet", shortfall.message())
    } else if !shortfall.is_empty() {
        Cond::new(DATABASE, Status::False, "ReplicasLimited", shortfall.message())
    } else if ydb {
        Cond::new(DATABASE, Status::True, "AsRequested", "the services keep their data in the YDB database")
    } else {
        let message = "each service keeps its data in the embedded store on its own volume, with one replica";
        Cond::new(DATABASE, Status::True, "AsRequested", message)
    }
}

/// The Platform's conditions from its services' summaries (and the ServiceDeployments
/// for Degraded), the error of the last reconcile, whether it is paused, and its
/// database condition.
pub fn platform_verdict(
    summaries: &[ServiceSummary],
    services: &[Option<&ServiceDeployment>],
    error: Option<&str>,
    paused: bool,
    database: Cond,
) -> Verdict {
    let waiting: Vec<&str> = summaries.iter().filter(|s| !s.ready).map(|s| s.name.as_str()).collect();
    let degraded_services: Vec<String> = services
        .iter()
        .flatten()
        .filter_map(|sd| {
            let status = sd.status.as_ref()?;
            let c = status.conditions.iter().find(|c| c.type_ == DEGRADED && c.status == "True")?;
            Some(format!("{}: {}", sd.spec.service, c.message))
        })
        .collect();
    let all_ready = waiting.is_empty() && !summaries.is_empty();
    let ready = if all_ready {
        Cond::new(READY, Status::True, "AllServicesReady", format!("{} services ready", summaries.len()))
    } else {
        Cond::new(READY, Status::False, "ServicesNotReady", format!("waiting for {}", waiting.join(", ")))
    };
    let progressing = if paused {
        Cond::new(PROGRESSING, Status::False, "Paused", "spec.paused is set: nothing is applied")
    } else {
        Cond::new(
            PROGRESSING,
            Status::of(!all_ready),
            if all_ready { "RolloutComplete" } else { "RollingOut" },
            if all_ready { String::new() } else { format!("rolling out {}", waiting.join(", ")) },
        )
    };
    let degraded = if let Some(e) = error {
        Cond::new(DEGRADED, Status::True, "ReconcileFailed", e)
    } else if !degraded_services.is_empty() {
        Cond::new(DEGRADED, Status::True, "ServiceDegraded", degraded_services.join("; "))
    } else {
        Cond::new(DEGRADED, Status::False, "AsExpected", "")
    };
    Verdict { ready, progressing, degraded, database: Some(database) }
}

/// The verdict as API conditions: `lastTransitionTime` is kept from `old` while a
/// condition's status stays the same, and set to `now` when it changes.
pub fn conditions(old: &[Condition], verdict: Verdict, generation: Option<i64>, now: &Time) -> Vec<Condition> {
    verdict
        .into_vec()
        .into_iter()
        .map(|c| {
            let previous = old.iter().find(|o| o.type_ == c.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == c.status.as_str() => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: c.type_.into(),
                status: c.status.as_str().into(),
                reason: c.reason.into(),
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// How many of `platforms` report Ready=True, and how many do not (no status yet, or
/// any other Ready status).
pub fn count_ready(platforms: &[std::sync::Arc<crate::crd::Platform>]) -> (u64, u64) {
    let ready = platforms
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| status_of(&s.conditions, READY)) == Some("True"))
        .count() as u64;
    (ready, platforms.len() as u64 - ready)
}

/// The status of a condition type in a list, if present.
pub fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ServiceDeploymentSpec, ServiceDeploymentStatus};
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::jiff::Timestamp;

    fn state(generation: i64, observed: i64, desired: i32, updated: i32, available: i32) -> DeploymentState {
        DeploymentState {
            generation,
            observed_generation: observed,
            desired,
            updated,
            available,
            replicas: available,
            ..DeploymentState::default()
        }
    }

    #[test]
    fn ready_only_when_every_desired_replica_is_available_for_the_current_generation() {
        assert!(service_verdict(Some(&state(2, 2, 3, 3, 3)), None).is_ready());
        let stale = service_verdict(Some(&state(3, 2, 3, 3, 3)), None);
        assert!(!stale.is_ready());
        assert_eq!(stale.ready.reason, "RolloutPending");
        let short = service_verdict(Some(&state(2, 2, 3, 3, 2)), None);
        assert_eq!((short.ready.status, short.ready.reason), (Status::False, "ReplicasUnavailable"));
        assert_eq!(short.progressing.status, Status::True);
        let old_pods = service_verdict(Some(&state(2, 2, 3, 1, 3)), None);
        assert!(!old_pods.is_ready(), "available but not yet updated pods are the old version");
    }

    #[test]
    fn scaled_to_zero_is_ready() {
        assert!(service_verdict(Some(&state(1, 1, 0, 0, 0)), None).is_ready());
    }

    #[test]
    fn a_missing_deployment_is_not_ready_and_progressing() {
        let v = service_verdict(None, None);
        assert_eq!(
            (v.ready.status, v.progressing.status, v.degraded.status),
            (Status::False, Status::True, Status::False)
        );
    }

    #[test]
    fn a_stuck_rollout_or_an_error_is_degraded() {
        let stuck = DeploymentState { deadline_exceeded: true, ..state(2, 2, 3, 1, 1) };
        let v = service_verdict(Some(&stuck), None);
        assert_eq!((v.degraded.status, v.degraded.reason), (Status::True, "ProgressDeadlineExceeded"));
        assert_eq!(v.progressing.status, Status::False);
        let v = service_verdict(Some(&state(1, 1, 1, 1, 1)), Some("apply failed: forbidden"));
        assert_eq!((v.degraded.status, v.degraded.message.as_str()), (Status::True, "apply failed: forbidden"));
        assert!(v.is_ready(), "a failed reconcile does not make running pods unready");
    }

    #[test]
    fn deployment_state_reads_status_and_conditions() {
        let d = Deployment {
            metadata: kube::api::ObjectMeta { generation: Some(4), ..Default::default() },
            spec: Some(DeploymentSpec { replicas: Some(2), ..Default::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(4),
                updated_replicas: Some(2),
                available_replicas: Some(1),
                replicas: Some(2),
                conditions: Some(vec![DeploymentCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    message: Some("quota exceeded".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        let s = DeploymentState::of(&d);
        assert_eq!((s.generation, s.desired, s.available), (4, 2, 1));
        assert_eq!(s.replica_failure.as_deref(), Some("quota exceeded"));
        assert_eq!(service_verdict(Some(&s), None).degraded.reason, "ReplicaFailure");
    }

    fn sd(kind: ServiceKind, generation: i64, observed: Option<i64>, ready: &str) -> ServiceDeployment {
        let mut sd = ServiceDeployment::new("x", ServiceDeploymentSpec::new("demo", kind));
        sd.metadata.generation = Some(generation);
        let now = Time(Timestamp::UNIX_EPOCH);
        let verdict = Verdict {
            ready: Cond::new(READY, if ready == "True" { Status::True } else { Status::False }, "R", "1/1"),
            progressing: Cond::new(PROGRESSING, Status::False, "P", ""),
            degraded: Cond::new(DEGRADED, Status::False, "AsExpected", ""),
            database: None,
        };
        sd.status = Some(ServiceDeploymentStatus {
            observed_generation: observed,
            replicas: 1,
            available_replicas: 1,
            selector: None,
            conditions: conditions(&[], verdict, observed, &now),
        });
        sd
    }

    #[test]
    fn a_service_summary_trusts_only_a_status_of_the_current_generation() {
        assert!(summarize(ServiceKind::Users, Some(&sd(ServiceKind::Users, 2, Some(2), "True"))).ready);
        let stale = summarize(ServiceKind::Users, Some(&sd(ServiceKind::Users, 3, Some(2), "True")));
        assert!(!stale.ready);
        assert!(stale.message.unwrap().contains("current generation"));
        assert!(!summarize(ServiceKind::Users, None).ready);
        assert!(!summarize(ServiceKind::Users, Some(&sd(ServiceKind::Users, 2, Some(2), "False"))).ready);
    }

    #[test]
    fn platform_is_ready_when_all_services_are() {
        let a = sd(ServiceKind::Users, 1, Some(1), "True");
        let b = sd(ServiceKind::Gateway, 1, Some(1), "False");
        let sa = summarize(ServiceKind::Users, Some(&a));
        let sb = summarize(ServiceKind::Gateway, Some(&b));
        let v = platform_verdict(&[sa.clone(), sb.clone()], &[Some(&a), Some(&b)], None, false, fine());
        assert_eq!((v.ready.status, v.ready.message.as_str()), (Status::False, "waiting for gateway"));
        assert_eq!(v.progressing.status, Status::True);
        let c = sd(ServiceKind::Gateway, 1, Some(1), "True");
        let sc = summarize(ServiceKind::Gateway, Some(&c));
        let v = platform_verdict(&[sa, sc], &[Some(&a), Some(&c)], None, false, fine());
        assert_eq!(
            (v.ready.status, v.progressing.status, v.degraded.status),
            (Status::True, Status::False, Status::False)
        );
        assert_eq!(platform_verdict(&[], &[], None, false, fine()).ready.status, Status::False);
    }

    #[test]
    fn platform_reports_paused_errors_and_degraded_services() {
        let mut a = sd(ServiceKind::Events, 1, Some(1), "True");
        let s = summarize(ServiceKind::Events, Some(&a));
        let v = platform_verdict(std::slice::from_ref(&s), &[Some(&a)], None, true, fine());
        assert_eq!((v.progressing.status, v.progressing.reason), (Status::False, "Paused"));
        let v = platform_verdict(std::slice::from_ref(&s), &[Some(&a)], Some("boom"), false, fine());
        assert_eq!((v.degraded.status, v.degraded.reason), (Status::True, "ReconcileFailed"));
        let status = a.status.as_mut().unwrap();
        status.conditions[2].status = "True".into();
        status.conditions[2].message = "quota".into();
        let v = platform_verdict(&[s], &[Some(&a)], None, false, fine());
        assert_eq!((v.degraded.reason, v.degraded.message.as_str()), ("ServiceDegraded", "events: quota"));
    }

    fn fine() -> Cond {
        database_condition(false, &Shortfall::default())
    }

    #[test]
    fn the_database_condition_names_what_the_platform_does_not_get() {
        let c = fine();
        assert_eq!((c.type_, c.status, c.reason), (DATABASE, Status::True, "AsRequested"));
        assert!(c.message.contains("embedded store"), "{}", c.message);
        assert!(database_condition(true, &Shortfall::default()).message.contains("YDB database"));
        let fallback = Shortfall { not_on_ydb: vec![ServiceKind::Users], one_replica: vec![] };
        let c = database_condition(true, &fallback);
        assert_eq!((c.status, c.reason), (Status::False, "YdbNotSupportedYet"));
        assert!(c.message.contains("users do not speak YDB yet"), "{}", c.message);
        let limited = Shortfall { not_on_ydb: vec![], one_replica: vec![(ServiceKind::Events, "3 replicas".into())] };
        let c = database_condition(false, &limited);
        assert_eq!((c.status, c.reason), (Status::False, "ReplicasLimited"));
        assert!(c.message.starts_with("events (asked for 3 replicas) runs one replica"), "{}", c.message);
        // A Platform's status carries it as a fourth condition; a ServiceDeployment's does not.
        let platform =
            conditions(&[], platform_verdict(&[], &[], None, false, c), Some(1), &Time(Timestamp::UNIX_EPOCH));
        let types: Vec<_> = platform.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, PROGRESSING, DEGRADED, DATABASE]);
        assert_eq!(conditions(&[], service_verdict(None, None), Some(1), &Time(Timestamp::UNIX_EPOCH)).len(), 3);
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0 = Time(Timestamp::UNIX_EPOCH);
        let t1 = Time(Timestamp::from_second(100).unwrap());
        let first = conditions(&[], service_verdict(None, None), Some(1), &t0);
        assert!(first.iter().all(|c| c.last_transition_time == t0));
        let same = conditions(&first, service_verdict(None, Some("x")), Some(2), &t1);
        assert_eq!(same[0].last_transition_time, t0, "Ready stayed False");
        assert_eq!(same[2].last_transition_time, t1, "Degraded turned True");
        assert_eq!(same[0].observed_generation, Some(2));
        assert!(same.iter().all(|c| ["True", "False", "Unknown"].contains(&c.status.as_str())));
    }

    #[test]
    fn platforms_are_counted_ready_only_with_ready_true() {
        let platform = |ready: Option<&str>| {
            let conditions = ready.map_or(serde_json::json!([]), |status| {
                serde_json::json!([{"type": "Ready", "status": status, "reason": "R", "message": "",
                                    "lastTransitionTime": "2026-01-01T00:00:00Z"}])
            });
            let p: crate::crd::Platform = serde_json::from_value(serde_json::json!({
                "apiVersion": "veche.io/v1alpha1", "kind": "Platform",
                "metadata": {"name": "p"}, "spec": {}, "status": {"conditions": conditions}
            }))
            .unwrap();
            std::sync::Arc::new(p)
        };
        let platforms = [platform(Some("True")), platform(Some("False")), platform(Some("Unknown")), platform(None)];
        assert_eq!(count_ready(&platforms), (1, 3));
        assert_eq!(count_ready(&[]), (0, 0));
    }
}
