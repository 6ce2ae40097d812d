//! Rate limits: token buckets per key (GCRA, from `governor`), each refilling at a steady
//! rate with room for a burst. The gateway keys them by client address and by user;
//! analytics keys `/track` by client address.

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A steady rate and a burst; zero rate turns the limit off.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(rate);
        Some(Quota::per_second(rate).allow_burst(burst))
    }
}

/// Keys are hashed on every request: with foldhash rather than SipHash, which is slower,
/// randomly seeded so that callers still cannot choose keys that collide.
type Hasher = foldhash::quality::RandomState;

/// One keyed limiter, or none when its rate is zero.
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: Option<RateLimiter<K, DefaultKeyedStateStore<K, Hasher>, DefaultClock>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: Rate) -> Self {
        Self { inner: rate.quota().map(|quota| RateLimiter::dashmap_with_hasher(quota, Hasher::default())) }
    }

    /// `Err(wait)` when `key` has spent its bucket: how long until the next request fits.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.inner else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets keys whose buckets are full again, so memory follows the active callers.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.inner {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Every minute, while `owner` lives, runs `tidy` on it (to forget idle keys), so memory
/// follows the active callers.
pub fn tidy_every_minute<T: Send + Sync + 'static>(owner: &Arc<T>, tidy: fn(&T)) {
    let weak: Weak<T> = Arc::downgrade(owner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(owner) = weak.upgrade() else { break };
            tidy(&owner);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn a_burst_passes_then_the_bucket_refuses_with_a_wait() {
        let limiter = Limiter::new(Rate { per_second: 1, burst: 3 });
        let key = "127.0.0.1".parse::<IpAddr>().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(&key).is_ok());
        }
        let wait = limiter.check(&key).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && !wait.is_zero(), "{wait:?}");
        let other = "127.0.0.2".parse::<IpAddr>().unwrap();
        assert!(limiter.check(&other).is_ok(), "buckets are per key");
    }

    #[test]
    fn zero_rate_means_no_limit() {
        let limiter = Limiter::new(Rate { per_second: 0, burst: 0 });
        for _ in 0..10_000 {
            assert!(limiter.check(&"u".to_owned()).is_ok());
        }
    }
}
