//! Sessions that ended before their access tokens expire.
//!
//! An access token is a signed statement that lives its whole TTL (15 minutes by
//! default): logging out, a replayed refresh token, a password reset, or an account
//! disabled or deleted ends the session at once, but not its tokens. Every verifier
//! therefore also consults a short list of ended session ids (the `sid` claim), each kept
//! only until the last token it could have signed has expired.
//!
//! The users service keeps the list (it ends sessions); in `veche up` every verifier
//! shares it, and a process on its own keeps a copy by following it (the users client's
//! `follow`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use thread_local::ThreadLocal;

/// The ended sessions a verifier refuses. Cheap to clone; every clone is the same list.
#[derive(Clone, Default)]
pub struct RevokedSessions {
    inner: Arc<Shared>,
}

/// Ended session ids, with the time after which each can be forgotten.
type Ended = Arc<HashMap<Box<str>, i64>>;

#[derive(Default)]
struct Shared {
    /// Copied on write: endings are rare, checks are on every request.
    current: RwLock<Ended>,
    /// Bumped on every change; each thread's snapshot follows it at its next check.
    generation: AtomicU64,
    /// How far the feed of this list has read (its source's cursor).
    cursor: AtomicI64,
    /// Each thread's snapshot of `current`, so that a check takes no lock.
    snapshots: ThreadLocal<RefCell<(u64, Ended)>>,
}

impl RevokedSessions {
    /// Whether `sid` names an ended session.
    pub fn contains(&self, sid: &str) -> bool {
        let shared = &*self.inner;
        let generation = shared.generation.load(Ordering::Acquire);
        if generation == 0 {
            return false; // nothing has ever ended
        }
        let snapshot = shared.snapshots.get_or(|| RefCell::new((0, Arc::default())));
        let mut snapshot = snapshot.borrow_mut();
        if snapshot.0 != generation {
            let current = shared.current.read().unwrap_or_else(|p| p.into_inner()).clone();
            *snapshot = (generation, current);
        }
        snapshot.1.contains_key(sid)
    }

    /// Adds ended sessions, forgets those whose tokens have all expired by `now`, and
    /// sets the feed's cursor to `cursor` (the publisher's word: it may go back).
    /// `ended` holds `(session id, until)`: after `until`, no token of the session can
    /// verify anyway.
    pub fn record(&self, ended: impl IntoIterator<Item = (String, i64)>, cursor: i64, now: i64) {
        let shared = &*self.inner;
        let added: Vec<(String, i64)> = ended.into_iter().filter(|(_, until)| *until > now).collect();
        let mut current = shared.current.write().unwrap_or_else(|p| p.into_inner());
        shared.cursor.store(cursor, Ordering::Release);
        // Most reads bring nothing: then the list is not copied unless something expired.
        if added.is_empty() && current.values().all(|until| *until > now) {
            return;
        }
        let mut next: HashMap<Box<str>, i64> =
            current.iter().filter(|(_, until)| **until > now).map(|(k, v)| (k.clone(), *v)).collect();
        next.extend(added.into_iter().map(|(sid, until)| (sid.into_boxed_str(), until)));
        *current = Arc::new(next);
        shared.generation.fetch_add(1, Ordering::Release);
    }

    /// How far the feed has read.
    pub fn cursor(&self) -> i64 {
        self.inner.cursor.load(Ordering::Acquire)
    }

    /// How many ended sessions are remembered.
    pub fn len(&self) -> usize {
        self.inner.current.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for RevokedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokedSessions").field("len", &self.len()).field("cursor", &self.cursor()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(sid: &str, until: i64) -> (String, i64) {
        (sid.into(), until)
    }

    #[test]
    fn an_ended_session_is_refused_until_its_tokens_expire() {
        let list = RevokedSessions::default();
        assert!(!list.contains("s1"));
        list.record([ended("s1", 100)], 7, 50);
        assert!(list.contains("s1"));
        assert!(!list.contains("s2"));
        assert_eq!(list.cursor(), 7);
        // Later feeds forget what can no longer verify.
        list.record([ended("s2", 300)], 9, 150);
        assert!(!list.contains("s1"));
        assert!(list.contains("s2"));
        // An entry that has already expired is not kept at all.
        list.record([ended("s3", 10)], 10, 150);
        assert!(!list.contains("s3"));
        assert_eq!(list.len(), 1);
    }

    /// The publisher's cursor is taken as is: after its list was made anew, a follower
    /// reads it again from where the publisher says.
    #[test]
    fn the_cursor_is_the_publishers() {
        let list = RevokedSessions::default();
        list.record([], 12, 0);
        assert_eq!(list.cursor(), 12);
        list.record([], 3, 0);
        assert_eq!(list.cursor(), 3);
    }

    /// Each thread checks against its own snapshot; a change reaches a thread that
    /// already holds an older one.
    #[test]
    fn every_thread_sees_a_new_ending() {
        let list = RevokedSessions::default();
        list.record([ended("a", i64::MAX)], 1, 0);
        let (ask, questions) = std::sync::mpsc::channel::<&'static str>();
        let (tell, answers) = std::sync::mpsc::channel();
        let other = list.clone();
        let thread =
            std::thread::spawn(move || questions.iter().for_each(|sid| tell.send(other.contains(sid)).unwrap()));
        let seen = |sid| {
            ask.send(sid).unwrap();
            answers.recv().unwrap()
        };
        assert!(seen("a"));
        assert!(!seen("b"));
        list.record([ended("b", i64::MAX)], 2, 0);
        assert!(seen("b"));
        drop(ask);
        thread.join().unwrap();
    }
}
