//! Admission to hashing a new password (registration, password reset): a token bucket
//! per client address ([`kit::limits`]). Each admitted request costs an argon2id hash,
//! tens of milliseconds of a core; a client past its allowance gets 429 before any is
//! spent, so one client cannot buy everyone else's logins a queue. The overall share of
//! the cores such hashes may take is bounded in [`crate::password`].

use kit::ApiError;
use kit::limits::{Limiter, Rate};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The buckets, or none when the rate is zero (limits off).
pub struct HashLimits(Limiter<Option<IpAddr>>);

impl HashLimits {
    /// Buckets refilling at `per_second` holding `burst`; idle addresses are forgotten
    /// every minute.
    pub fn new(per_second: u32, burst: u32) -> Arc<Self> {
        let limits = Arc::new(Self(Limiter::new(Rate { per_second, burst })));
        kit::limits::tidy_every_minute(&limits, |l| l.0.forget_idle());
        limits
    }

    /// 429 with how long to wait when `ip` has spent its allowance (clients without a
    /// known address share one bucket).
    pub fn admit(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        self.0.check(&ip).map_err(|wait| ApiError::TooManyRequests { retry_after: whole_seconds(wait) })
    }
}

/// Retry-After is in whole seconds: round up, so a client that obeys it is admitted.
fn whole_seconds(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_millis(1500)), Duration::from_secs(2));
        assert_eq!(whole_seconds(Duration::from_secs(2)), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_client_past_its_burst_is_refused_and_others_are_not() {
        let limits = HashLimits::new(1, 3);
        let (abuser, other) = (Some("203.0.113.9".parse().unwrap()), Some("198.51.100.7".parse().unwrap()));
        for _ in 0..3 {
            assert!(limits.admit(abuser).is_ok());
        }
        assert!(matches!(limits.admit(abuser), Err(ApiError::TooManyRequests { .. })));
        assert!(limits.admit(other).is_ok());
    }
}
