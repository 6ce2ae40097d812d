//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas of the
//! operator never reconcile at once: the one holding the Lease works, the other waits.
//!
//! Hand-written (about a page) rather than a crate: the lease crates lag kube's major
//! versions, and the algorithm is small. What to do with a Lease is decided by a pure
//! function ([`decide`]); the loop only reads, writes with optimistic concurrency
//! (`resourceVersion`) and sleeps. A holder that stops renewing loses the Lease after
//! `leaseDurationSeconds`; one that shuts down releases it at once.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::time::Duration;

/// Timing of the election.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews (well under the duration).
    pub renew_every: Duration,
    /// How often a follower looks again.
    pub retry_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is none: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it.
    TakeOver,
    /// Someone else holds it and renews: wait.
    Wait { holder: String },
}

/// Decides from the Lease's spec (if it exists), who we are and the time.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else { return Decision::Create };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(holder) => {
            let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15).into());
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
            match renewed {
                Some(at) if at + duration > now => Decision::Wait { holder: holder.to_string() },
                _ => Decision::TakeOver,
            }
        }
    }
}

/// The Lease spec that `decision` writes (`None` for `Wait`).
pub fn next_spec(
    old: Option<&LeaseSpec>,
    decision: &Decision,
    me: &str,
    timing: Timing,
    now: Timestamp,
) -> Option<LeaseSpec> {
    let duration = i32::try_from(timing.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let holding = |acquired: MicroTime, transitions: i32| LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(duration),
        acquire_time: Some(acquired),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let transitions = old.and_then(|s| s.lease_transitions).unwrap_or(0);
    match decision {
        Decision::Create => Some(holding(MicroTime(now), 0)),
        Decision::Renew => {
            let acquired = old.and_then(|s| s.acquire_time.clone()).unwrap_or(MicroTime(now));
            Some(holding(acquired, transitions))
        }
        Decision::TakeOver => Some(holding(MicroTime(now), transitions + 1)),
        Decision::Wait { .. } => None,
    }
}

/// One candidate for the Lease `name` in a namespace.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
    timing: Timing,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: impl Into<String>, me: impl Into<String>, timing: Timing) -> Self {
        Self { api, name: name.into(), me: me.into(), timing }
    }

    /// One round: read, decide, write. Whether we hold the Lease afterwards. A write
    /// that loses a race (409) is simply "not leader" until the next round.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.me, Timestamp::now());
        let Some(next) = next_spec(spec, &decision, &self.me, self.timing, Timestamp::now()) else {
            if let Decision::Wait { holder } = decision {
                tracing::debug!(%holder, "another replica leads");
            }
            return Ok(false);
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                    spec: Some(next),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // resourceVersion stays set: a concurrent writer makes this a 409.
                lease.spec = Some(next);
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(_) => {
                if decision != Decision::Renew {
                    tracing::info!(identity = %self.me, lease = %self.name, "became the leader");
                }
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: cannot read or write the Lease"),
            }
            tokio::time::sleep(self.timing.retry_every).await;
        }
    }

    /// Renews until renewal fails for longer than the lease lasts; then returns, and the
    /// caller must stop working (another replica may lead by now).
    pub async fn keep(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.timing.renew_every).await;
            match self.try_acquire().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("lost the leader Lease to another replica");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew the leader Lease");
                    if last_ok.elapsed() >= self.timing.lease_duration {
                        tracing::error!("could not renew the leader Lease in time");
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up (on shutdown), so a standby takes over without waiting.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.me.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!("released the leader Lease"),
            Err(e) => tracing::warn!(error = %e, "could not release the leader Lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn held(by: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn no_lease_means_create_it() {
        assert_eq!(decide(None, "a", at(100)), Decision::Create);
    }

    #[test]
    fn the_holder_renews_and_others_wait_while_it_does() {
        let lease = held("a", 100);
        assert_eq!(decide(Some(&lease), "a", at(110)), Decision::Renew);
        assert_eq!(decide(Some(&lease), "b", at(114)), Decision::Wait { holder: "a".into() });
    }

    #[test]
    fn an_expired_or_released_lease_is_taken_over() {
        assert_eq!(decide(Some(&held("a", 100)), "b", at(115)), Decision::TakeOver);
        let released = LeaseSpec { holder_identity: None, ..held("a", 100) };
        assert_eq!(decide(Some(&released), "b", at(101)), Decision::TakeOver);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_acquire_time() {
        let timing = Timing::default();
        let old = LeaseSpec { lease_transitions: Some(2), acquire_time: Some(MicroTime(at(50))), ..held("a", 100) };
        let taken = next_spec(Some(&old), &Decision::TakeOver, "b", timing, at(200)).unwrap();
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(200))));
        let renewed = next_spec(Some(&old), &Decision::Renew, "a", timing, at(105)).unwrap();
        assert_eq!((renewed.acquire_time, renewed.renew_time), (Some(MicroTime(at(50))), Some(MicroTime(at(105)))));
        assert_eq!(renewed.lease_transitions, Some(2));
        assert!(next_spec(Some(&old), &Decision::Wait { holder: "a".into() }, "b", timing, at(1)).is_none());
    }
}
