//! What stored facts add that is not yet folded into the rollups: kept in memory for
//! reports, and in the `unfolded` log for a restart.
//!
//! Folding a batch's additions into the rollups as it arrives rewrote a page per key it
//! touched: a relay batch of 500 facts over as many events rewrote about a thousand
//! pages, and ingest ran at thousands of facts a second. Folded up to a million facts at
//! a time, each key's page is rewritten once for all of them.
//!
//! Reports add the unfolded part to what they read. A fold commits under a new
//! generation number, stored beside the rollups: a report adds a part only when its
//! generation is above the one its read snapshot saw, so a fold committing while a report
//! runs is counted once, either way.

use super::additions::Additions;
use std::sync::{Arc, Mutex};
use std::time::Duration;
// Tokio's clock, which tests may pause and advance.
use tokio::time::Instant;

/// The additions not yet folded, each tagged with the generation it will be folded as.
#[derive(Debug)]
pub struct Unfolded {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The generation `active` will be folded as.
    next: u64,
    active: Additions,
    /// New facts in `active`.
    facts: u64,
    /// When the last batch was added.
    added_at: Instant,
    /// The part being folded, while its transaction runs.
    folding: Option<(u64, Arc<Additions>, u64)>,
    /// The store is gone: a fold still under way elsewhere (the quiet fold's task) must
    /// not write what a reopened store folds from the log itself.
    closed: bool,
}

impl Unfolded {
    /// Nothing unfolded, after the fold of generation `folded`.
    pub fn new(folded: u64) -> Self {
        let inner = Inner {
            next: folded + 1,
            active: Additions::default(),
            facts: 0,
            added_at: Instant::now(),
            folding: None,
            closed: false,
        };
        Self { inner: Mutex::new(inner) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a committed batch: `facts` new facts adding `added`. Returns the new facts
    /// not yet folded.
    pub fn add(&self, added: Additions, facts: u64) -> u64 {
        let mut inner = self.lock();
        inner.active.merge(added);
        inner.facts += facts;
        inner.added_at = Instant::now();
        inner.facts
    }

    /// How long since the last batch was added.
    pub fn quiet_for(&self) -> Duration {
        self.lock().added_at.elapsed()
    }

    /// New facts not yet folded.
    pub fn facts(&self) -> u64 {
        self.lock().facts
    }

    /// Hands the unfolded additions to a fold, with the generation to commit them as;
    /// `None` when there is nothing to fold.
    pub fn begin_fold(&self) -> Option<(u64, Arc<Additions>)> {
        let mut inner = self.lock();
        if inner.active.is_empty() || inner.folding.is_some() || inner.closed {
            return None;
        }
        let generation = inner.next;
        let additions = Arc::new(std::mem::take(&mut inner.active));
        inner.folding = Some((generation, additions.clone(), std::mem::take(&mut inner.facts)));
        inner.next += 1;
        Some((generation, additions))
    }

    /// No fold begins any more: the store is closed.
    pub fn close(&self) {
        self.lock().closed = true;
    }

    /// Ends the fold begun last: committed, or (its transaction failed) its additions
    /// are unfolded again.
    pub fn end_fold(&self, committed: bool) {
        let mut inner = self.lock();
        let Some((_, additions, facts)) = inner.folding.take() else { return };
        if committed {
            return;
        }
        let newer = std::mem::take(&mut inner.active);
        let mut back = Arc::try_unwrap(additions).unwrap_or_else(|shared| (*shared).clone());
        back.merge(newer);
        inner.active = back;
        inner.facts += facts;
    }

    /// What `pick` takes from each unfolded part, with the part's generation: a report
    /// adds the parts whose generation is above the one its snapshot saw folded.
    pub fn pick<T>(&self, pick: impl Fn(&Additions) -> T) -> Vec<(u64, T)> {
        let inner = self.lock();
        let mut parts = vec![(inner.next, pick(&inner.active))];
        if let Some((generation, additions, _)) = &inner.folding {
            parts.push((*generation, pick(additions)));
        }
        parts
    }
}

/// The parts of `parts` a read snapshot that saw generation `folded` has not read.
pub fn unread<T>(parts: Vec<(u64, T)>, folded: u64) -> impl Iterator<Item = T> {
    parts.into_iter().filter(move |(generation, _)| *generation > folded).map(|(_, part)| part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Scope;
    use crate::store::additions::Key;

    fn one(n: u128) -> Additions {
        let mut a = Additions::default();
        a.bumps.insert((Key::Scope(Scope::Event(uuid::Uuid::from_u128(n))), "views", 0), 1);
        a
    }

    fn seen(u: &Unfolded, folded: u64) -> usize {
        unread(u.pick(|a| a.bumps.len()), folded).sum()
    }

    #[test]
    fn a_part_is_read_from_memory_until_its_fold_is_seen() {
        let u = Unfolded::new(4);
        assert_eq!(u.add(one(1), 1), 1);
        assert_eq!(u.add(one(2), 2), 3);
        let (generation, folding) = u.begin_fold().expect("something to fold");
        assert_eq!((generation, folding.bumps.len()), (5, 2));
        u.add(one(3), 1);
        assert!(u.begin_fold().is_none(), "one fold at a time");
        assert_eq!(seen(&u, 4), 3, "a snapshot from before the fold reads all three in memory");
        assert_eq!(seen(&u, 5), 1, "one after it reads a and b from the rollups");
        u.end_fold(true);
        assert_eq!(seen(&u, 5), 1);
        assert_eq!(u.begin_fold().map(|(g, a)| (g, a.bumps.len())), Some((6, 1)));
    }

    #[test]
    fn a_closed_store_folds_nothing() {
        let u = Unfolded::new(0);
        u.add(one(1), 1);
        u.close();
        assert!(u.begin_fold().is_none());
        assert_eq!(seen(&u, 0), 1, "still read from memory");
    }

    #[test]
    fn a_failed_fold_leaves_its_part_unfolded() {
        let u = Unfolded::new(0);
        u.add(one(1), 1);
        let (generation, _) = u.begin_fold().unwrap();
        u.add(one(2), 1);
        u.end_fold(false);
        assert_eq!(seen(&u, generation - 1), 2);
        assert_eq!(u.add(Additions::default(), 0), 2, "both facts are unfolded again");
        let (again, all) = u.begin_fold().unwrap();
        assert!(again > generation);
        assert_eq!(all.bumps.len(), 2);
    }
}
