//! Throttling of failed logins (OWASP Authentication cheat sheet), per account and per
//! client address. Only failures count, so a frontend or a test that signs in many
//! people from one address is never slowed; a guesser is.
//!
//! Per account: after `free_failures` failures the account's lock doubles with each
//! further failure (1 s, 2 s, 4 s, ... up to `max_lock`). Keys are normalised emails,
//! whether or not an account exists, so the throttle reveals nothing about who is
//! registered. Per address: at most `per_ip_failures` within `window`.
//!
//! State is in memory: it protects one replica, which is what the gateway's rate limits
//! complement. The logic is pure; the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub free_failures: u32,
    pub max_lock: Duration,
    pub per_ip_failures: u32,
    pub window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            max_lock: Duration::from_secs(15 * 60),
            per_ip_failures: 100,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    failures: u32,
    first_failure: u64,
    locked_until: u64,
}

/// Failed-login bookkeeping. Times are seconds since the epoch.
pub struct LoginThrottle {
    policy: Policy,
    accounts: Mutex<HashMap<String, Record>>,
    addresses: Mutex<HashMap<IpAddr, Record>>,
}

/// Entries beyond this many trigger a sweep of stale ones, bounding memory under attack.
const SWEEP_AT: usize = 100_000;

impl LoginThrottle {
    pub fn new(policy: Policy) -> Self {
        Self { policy, accounts: Mutex::default(), addresses: Mutex::default() }
    }

    /// `Err(wait)` when the attempt must not even be checked.
    pub fn check(&self, account: &str, ip: Option<IpAddr>, now: u64) -> Result<(), Duration> {
        let window = self.policy.window.as_secs();
        if let Some(r) = lock(&self.accounts).get(account)
            && r.locked_until > now
        {
            return Err(Duration::from_secs(r.locked_until - now));
        }
        if let Some(ip) = ip
            && let Some(r) = lock(&self.addresses).get(&ip)
            && now < r.first_failure + window
            && r.failures >= self.policy.per_ip_failures
        {
            return Err(Duration::from_secs(r.first_failure + window - now));
        }
        Ok(())
    }

    pub fn failed(&self, account: &str, ip: Option<IpAddr>, now: u64) {
        let window = self.policy.window.as_secs();
        {
            let mut accounts = lock(&self.accounts);
            sweep(&mut accounts, now, window);
            let r = accounts.entry(account.to_owned()).or_default();
            if now >= r.first_failure + window && r.locked_until <= now {
                *r = Record { first_failure: now, ..Record::default() };
            }
            r.failures += 1;
            if r.failures > self.policy.free_failures {
                let exponent = (r.failures - self.policy.free_failures - 1).min(20);
                let lock_secs = (1u64 << exponent).min(self.policy.max_lock.as_secs());
                r.locked_until = now + lock_secs;
            }
        }
        if let Some(ip) = ip {
            let mut addresses = lock(&self.addresses);
            sweep(&mut addresses, now, window);
            let r = addresses.entry(ip).or_default();
            if now >= r.first_failure + window {
                *r = Record { first_failure: now, ..Record::default() };
            }
            r.failures += 1;
        }
    }

    /// A correct password clears the account's record (not the address's: one success
    /// must not buy an address another hundred guesses).
    pub fn succeeded(&self, account: &str) {
        lock(&self.accounts).remove(account);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sweep<K: Eq + std::hash::Hash>(map: &mut HashMap<K, Record>, now: u64, window: u64) {
    if map.len() >= SWEEP_AT {
        map.retain(|_, r| r.locked_until > now || now < r.first_failure + window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(Policy { per_ip_failures: 10, ..Policy::default() })
    }

    #[test]
    fn an_account_locks_after_free_failures_with_doubling_waits() {
        let t = throttle();
        for _ in 0..5 {
            assert!(t.check("a", None, 100).is_ok());
            t.failed("a", None, 100);
        }
        assert!(t.check("a", None, 100).is_ok(), "five failures are free");
        t.failed("a", None, 100);
        assert_eq!(t.check("a", None, 100), Err(Duration::from_secs(1)));
        t.failed("a", None, 101);
        assert_eq!(t.check("a", None, 101), Err(Duration::from_secs(2)));
        assert!(t.check("b", None, 101).is_ok(), "other accounts are unaffected");
    }

    #[test]
    fn success_clears_the_account() {
        let t = throttle();
        for _ in 0..7 {
            t.failed("a", None, 100);
        }
        t.succeeded("a");
        assert!(t.check("a", None, 100).is_ok());
    }

    #[test]
    fn an_address_is_limited_across_accounts_and_recovers_after_the_window() {
        let t = throttle();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..10 {
            t.failed(&format!("user{i}"), Some(ip), 100);
        }
        assert!(t.check("fresh", Some(ip), 100).is_err());
        assert!(t.check("fresh", Some("10.0.0.2".parse().unwrap()), 100).is_ok());
        assert!(t.check("fresh", Some(ip), 100 + 15 * 60).is_ok());
    }

    #[test]
    fn the_lock_is_capped() {
        let t = throttle();
        for _ in 0..40 {
            t.failed("a", None, 100);
        }
        assert_eq!(t.check("a", None, 100), Err(Duration::from_secs(15 * 60)));
    }
}
