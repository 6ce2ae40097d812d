//! Per-address token buckets for `/track` (GCRA, from `governor`): a page may report a
//! few times a second with room for a burst; a script hammering it gets 429.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use kit::ApiError;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// The buckets, or none when the rate is zero (limits off).
pub struct TrackLimits(Option<DefaultKeyedRateLimiter<IpAddr>>);

impl TrackLimits {
    /// Buckets refilling at `per_second` holding `burst`; forgets idle addresses every
    /// minute so memory follows the active clients.
    pub fn new(per_second: u32, burst: u32) -> Arc<Self> {
        let quota = NonZeroU32::new(per_second)
            .map(|rate| Quota::per_second(rate).allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(rate)));
        let limits = Arc::new(Self(quota.map(RateLimiter::keyed)));
        let weak = Arc::downgrade(&limits);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(limits) = weak.upgrade() else { return };
                if let Some(limiter) = &limits.0 {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
        });
        limits
    }

    /// 429 with how long to wait when `ip` has spent its bucket.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        limiter.check_key(&ip).map_err(|not_until| ApiError::TooManyRequests {
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }
}
