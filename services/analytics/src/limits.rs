//! Per-address token buckets for `/track` ([`kit::limits`]): a page may report a few
//! times a second with room for a burst; a script hammering it gets 429.

use kit::ApiError;
use kit::limits::{Limiter, Rate};
use std::net::IpAddr;
use std::sync::Arc;

/// The buckets, or none when the rate is zero (limits off).
pub struct TrackLimits(Limiter<IpAddr>);

impl TrackLimits {
    /// Buckets refilling at `per_second` holding `burst`; idle addresses are forgotten
    /// every minute.
    pub fn new(per_second: u32, burst: u32) -> Arc<Self> {
        let limits = Arc::new(Self(Limiter::new(Rate { per_second, burst })));
        kit::limits::tidy_every_minute(&limits, |l| l.0.forget_idle());
        limits
    }

    /// 429 with how long to wait when `ip` has spent its bucket.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.0.check(&ip).map_err(|retry_after| ApiError::TooManyRequests { retry_after })
    }
}
