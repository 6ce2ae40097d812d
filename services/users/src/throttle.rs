//! Throttling of failed logins (OWASP Authentication cheat sheet, Keycloak's brute force
//! detection), keyed so that a guesser slows itself and nobody else:
//!
//! - Per (account, client address): after `free_failures` failures that client's waits
//!   for that account double with each further failure (1 s, 2 s, 4 s, ... up to
//!   `max_lock`). The owner, from another address, is not held back by them.
//! - Per client address: at most `per_ip_failures` failures within `window`, across all
//!   accounts (one address guessing many accounts).
//! - Per account, a ceiling against guessing from many addresses: once an account has
//!   had `account_ceiling` failures within `window`, no client gets free failures on it
//!   any more (each failure doubles that client's wait from 1 s). A client that has not
//!   failed is never held back, so the owner still signs in.
//!
//! Only failures count, so a frontend or a test that signs in many people from one
//! address is never slowed. Accounts are keyed by normalised email, whether or not an
//! account exists, so the throttle reveals nothing about who is registered.
//!
//! State is in memory: it protects one replica, which is what the gateway's rate limits
//! complement. The rules are pure functions of a record and the time, which the caller
//! passes.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub free_failures: u32,
    pub max_lock: Duration,
    pub per_ip_failures: u32,
    pub window: Duration,
    pub account_ceiling: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            max_lock: Duration::from_secs(15 * 60),
            per_ip_failures: 100,
            window: Duration::from_secs(15 * 60),
            account_ceiling: 100,
        }
    }
}

/// Failures of one key within a window, and the wait they imposed. Times are seconds
/// since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Record {
    failures: u32,
    first_failure: u64,
    locked_until: u64,
}

impl Record {
    /// The record after one more failure at `now`: a stale window starts over (unless a
    /// wait is still running), and past `free` failures the wait doubles.
    fn fail(self, now: u64, free: u32, policy: &Policy) -> Record {
        let mut r = if self.is_stale(now, policy.window.as_secs()) {
            Record { first_failure: now, ..Record::default() }
        } else {
            self
        };
        r.failures = r.failures.saturating_add(1);
        if r.failures > free {
            let exponent = (r.failures - free - 1).min(20);
            r.locked_until = now + (1u64 << exponent).min(policy.max_lock.as_secs());
        }
        r
    }

    /// How long this key must wait at `now`, if at all.
    fn wait(&self, now: u64) -> Option<Duration> {
        (self.locked_until > now).then(|| Duration::from_secs(self.locked_until - now))
    }

    /// How long until the window ends, when `cap` failures are spent within it.
    fn over_cap(&self, now: u64, cap: u32, window: u64) -> Option<Duration> {
        let ends = self.first_failure + window;
        (now < ends && self.failures >= cap).then(|| Duration::from_secs(ends - now))
    }

    /// Whether the record no longer matters: its window is over and no wait is running.
    fn is_stale(&self, now: u64, window: u64) -> bool {
        now >= self.first_failure + window && self.locked_until <= now
    }
}

#[derive(Default)]
struct State {
    /// (account, client address): the guesser's own waits.
    pairs: HashMap<(String, Option<IpAddr>), Record>,
    /// Client address: failures across accounts.
    addresses: HashMap<IpAddr, Record>,
    /// Account: failures from every client, for the ceiling.
    accounts: HashMap<String, Record>,
}

/// Failed-login bookkeeping.
pub struct LoginThrottle {
    policy: Policy,
    state: Mutex<State>,
}

/// Entries beyond this many in a map trigger a sweep of stale ones, bounding memory
/// under attack.
const SWEEP_AT: usize = 100_000;

impl LoginThrottle {
    pub fn new(policy: Policy) -> Self {
        Self { policy, state: Mutex::default() }
    }

    /// `Err(wait)` when this client must not even have its attempt checked.
    pub fn check(&self, account: &str, ip: Option<IpAddr>, now: u64) -> Result<(), Duration> {
        let state = self.lock();
        if let Some(wait) = state.pairs.get(&(account.to_owned(), ip)).and_then(|r| r.wait(now)) {
            return Err(wait);
        }
        let window = self.policy.window.as_secs();
        if let Some(wait) = ip
            .and_then(|ip| state.addresses.get(&ip))
            .and_then(|r| r.over_cap(now, self.policy.per_ip_failures, window))
        {
            return Err(wait);
        }
        Ok(())
    }

    pub fn failed(&self, account: &str, ip: Option<IpAddr>, now: u64) {
        let policy = &self.policy;
        let window = policy.window.as_secs();
        let mut state = self.lock();
        let state = &mut *state;

        // The account's own count only decides whether failures are still free on it.
        sweep(&mut state.accounts, now, window);
        let account_record = state.accounts.entry(account.to_owned()).or_default();
        *account_record = account_record.fail(now, u32::MAX, policy);
        let free = if account_record.failures > policy.account_ceiling { 0 } else { policy.free_failures };

        sweep(&mut state.pairs, now, window);
        let pair = state.pairs.entry((account.to_owned(), ip)).or_default();
        *pair = pair.fail(now, free, policy);

        if let Some(ip) = ip {
            sweep(&mut state.addresses, now, window);
            let address = state.addresses.entry(ip).or_default();
            *address = address.fail(now, u32::MAX, policy);
        }
    }

    /// A correct password clears this client's record for the account (not the
    /// address's: one success must not buy an address another hundred guesses; nor the
    /// account's: the owner signing in does not end a distributed attack).
    pub fn succeeded(&self, account: &str, ip: Option<IpAddr>) {
        self.lock().pairs.remove(&(account.to_owned(), ip));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn sweep<K: Eq + Hash>(map: &mut HashMap<K, Record>, now: u64, window: u64) {
    if map.len() >= SWEEP_AT {
        map.retain(|_, r| !r.is_stale(now, window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(Policy { per_ip_failures: 10, account_ceiling: 20, ..Policy::default() })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_record_waits_double_after_the_free_failures_up_to_the_cap() {
        let policy = Policy::default();
        let mut r = Record::default();
        let mut waits = Vec::new();
        for _ in 0..8 {
            r = r.fail(100, 5, &policy);
            waits.push(r.wait(100).map(|w| w.as_secs()));
        }
        assert_eq!(waits, [None, None, None, None, None, Some(1), Some(2), Some(4)]);
        for _ in 0..40 {
            r = r.fail(100, 5, &policy);
        }
        assert_eq!(r.wait(100), Some(Duration::from_secs(15 * 60)));
    }

    #[test]
    fn a_stale_record_starts_over() {
        let policy = Policy::default();
        let r = Record::default().fail(100, 5, &policy).fail(100, 5, &policy);
        assert!(r.is_stale(100 + 15 * 60, 15 * 60));
        assert_eq!(r.fail(100 + 15 * 60, 5, &policy).failures, 1);
    }

    #[test]
    fn a_client_locks_itself_out_of_an_account_after_free_failures() {
        let t = throttle();
        let attacker = ip("203.0.113.9");
        for _ in 0..5 {
            assert!(t.check("a", attacker, 100).is_ok());
            t.failed("a", attacker, 100);
        }
        assert!(t.check("a", attacker, 100).is_ok(), "five failures are free");
        t.failed("a", attacker, 100);
        assert_eq!(t.check("a", attacker, 100), Err(Duration::from_secs(1)));
        t.failed("a", attacker, 101);
        assert_eq!(t.check("a", attacker, 101), Err(Duration::from_secs(2)));
        assert!(t.check("b", attacker, 101).is_ok(), "other accounts are unaffected");
    }

    #[test]
    fn another_clients_failures_do_not_hold_the_owner_back() {
        let t = throttle();
        let (attacker, owner) = (ip("203.0.113.9"), ip("198.51.100.7"));
        for now in 100..109 {
            t.failed("anna", attacker, now);
        }
        assert!(t.check("anna", attacker, 109).is_err());
        assert!(t.check("anna", owner, 109).is_ok(), "the owner's address has not failed");
    }

    #[test]
    fn success_clears_only_that_clients_record() {
        let t = throttle();
        let (attacker, owner) = (ip("203.0.113.9"), ip("198.51.100.7"));
        for _ in 0..7 {
            t.failed("a", attacker, 100);
            t.failed("a", owner, 100);
        }
        t.succeeded("a", owner);
        assert!(t.check("a", owner, 100).is_ok());
        assert!(t.check("a", attacker, 100).is_err(), "the owner's success does not free the attacker");
    }

    #[test]
    fn an_address_is_limited_across_accounts_and_recovers_after_the_window() {
        let t = throttle();
        let guesser = ip("10.0.0.1");
        for i in 0..10 {
            t.failed(&format!("user{i}"), guesser, 100);
        }
        assert!(t.check("fresh", guesser, 100).is_err());
        assert!(t.check("fresh", ip("10.0.0.2"), 100).is_ok());
        assert!(t.check("fresh", guesser, 100 + 15 * 60).is_ok());
    }

    #[test]
    fn past_the_account_ceiling_failures_are_no_longer_free_but_clean_clients_pass() {
        let t = throttle();
        // Twenty addresses, one failure each: a guess spread over many clients.
        for i in 0..20 {
            t.failed("anna", ip(&format!("10.0.1.{i}")), 100);
            assert!(t.check("anna", ip(&format!("10.0.1.{i}")), 100).is_ok(), "below the ceiling: free");
        }
        t.failed("anna", ip("10.0.2.1"), 100);
        assert_eq!(t.check("anna", ip("10.0.2.1"), 100), Err(Duration::from_secs(1)), "first failure waits");
        assert!(t.check("anna", ip("198.51.100.7"), 100).is_ok(), "a client that never failed passes");
        assert!(t.check("bob", ip("10.0.2.1"), 100).is_ok(), "the ceiling is per account");
    }
}
