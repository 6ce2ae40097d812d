//! Rate limits of the gateway: per client address and per user, from
//! [`kit::limits`]' token buckets.

pub use kit::limits::{Limiter, Rate};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct Limits {
    pub client: Limiter<IpAddr>,
    pub user: Limiter<String>,
}

impl Limits {
    pub fn new(client: Rate, user: Rate) -> Arc<Self> {
        let limits = Arc::new(Self { client: Limiter::new(client), user: Limiter::new(user) });
        kit::limits::tidy_every_minute(&limits, |l| {
            l.client.forget_idle();
            l.user.forget_idle();
        });
        limits
    }
}

/// Whole seconds to put in `Retry-After` (at least one: zero would invite a busy loop).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
