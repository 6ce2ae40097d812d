//! Syncing sources: on demand, and on a schedule that spreads them out. Each sync holds
//! the source's lease in the database, so one replica at a time syncs a source; a sync
//! that fails marks its source failed with a readable error, and nothing else.

use super::{Window, parse, plan};
use crate::model::source::{Source, SyncCounts};
use crate::store::{Outcome, SourceStore, StoreError};
use jiff::Timestamp;
use kit::fetch::{Fetched, Fetcher, Validators};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How often the scheduler looks for sources that are due.
const TICK: Duration = Duration::from_secs(15);
/// A sync that has not finished this long after it began has died: its lease lapses.
const LEASE_SECS: i64 = 300;
/// Changes written per transaction: a part of a big import takes the writer for about a
/// tenth of a second (bench/import.sh), so registrations never wait long behind one.
const PART: usize = 500;
/// Syncs one replica runs at once.
const SYNCS_AT_ONCE: usize = 2;
/// A failed source is tried again sooner than its interval, but not sooner than this.
const RETRY_MIN_SECS: i64 = 5 * 60;

/// Runs syncs for this replica.
#[derive(Clone)]
pub struct Importer {
    store: Arc<dyn SourceStore>,
    fetcher: Fetcher,
    /// Syncs running at once on this replica: each holds a body of up to 10 MiB and its
    /// parse, and the scheduler and every "sync now" share these.
    running: Arc<tokio::sync::Semaphore>,
    /// Wakes the scheduler early (a new source is due at once).
    wake: Arc<tokio::sync::Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("a sync of this source is under way")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// When to sync again: the interval, spread by up to a tenth of it (at most five
/// minutes) so sources created together do not fetch together. A failure retries
/// after a quarter of the interval (at least five minutes).
pub fn next_run(now: i64, interval_minutes: u32, failed: bool, spread: u64) -> i64 {
    let interval = i64::from(interval_minutes) * 60;
    let base = if failed { (interval / 4).max(RETRY_MIN_SECS).min(interval) } else { interval };
    let jitter_max = (base / 10).min(300);
    let jitter = if jitter_max > 0 { (spread % (jitter_max as u64 + 1)) as i64 } else { 0 };
    now + base + jitter
}

impl Importer {
    pub fn new(store: Arc<dyn SourceStore>, fetcher: Fetcher) -> Self {
        Self {
            store,
            fetcher,
            running: Arc::new(tokio::sync::Semaphore::new(SYNCS_AT_ONCE)),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Has the scheduler look for due sources now rather than at its next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// Syncs one source now; if a sync of it is under way, after that one (waiting up
    /// to `patience`).
    pub async fn sync(&self, id: Uuid, patience: Duration) -> Result<Source, SyncError> {
        let deadline = tokio::time::Instant::now() + patience;
        let _turn = self.running.acquire().await.map_err(|_| SyncError::Busy)?;
        loop {
            let now = Timestamp::now().as_second();
            // A lease names one sync, not the replica: a sync that outlived its lease can
            // never record over the one that took it.
            let holder = Uuid::new_v4();
            if let Some(source) = self.store.lease_source(Some(id), holder, now, now + LEASE_SECS).await? {
                return Ok(self.run(source, holder).await?);
            }
            if self.store.source(id).await?.is_none() {
                return Err(SyncError::Store(StoreError::NotFound));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SyncError::Busy);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Syncs every source that is due, one after another; returns how many.
    pub async fn sync_due(&self) -> Result<usize, StoreError> {
        let mut done = 0;
        loop {
            let _turn = self.running.acquire().await.map_err(|_| StoreError::Conflict("shutting down".into()))?;
            let now = Timestamp::now().as_second();
            let holder = Uuid::new_v4();
            let Some(source) = self.store.lease_source(None, holder, now, now + LEASE_SECS).await? else {
                return Ok(done);
            };
            // Its lease is given back and its next run unchanged: the next tick tries again.
            if let Err(e) = self.run(source, holder).await {
                tracing::warn!(error = %e, "could not record a source's sync");
                return Ok(done);
            }
            done += 1;
        }
    }

    /// Syncs due sources until the process ends.
    pub fn start(self) {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.sync_due().await {
                    tracing::warn!(error = %e, "could not sync the sources that are due");
                }
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    () = self.wake.notified() => {}
                }
            }
        });
    }

    /// Fetches, reads, plans and records a sync of a leased source; gives the lease back
    /// if the outcome cannot be recorded.
    async fn run(&self, source: Source, holder: Uuid) -> Result<Source, StoreError> {
        let id = source.id;
        let result = self.sync_leased(source, holder).await;
        if let Err(e) = &result
            && !matches!(e, StoreError::Conflict(_))
        {
            let _ = self.store.release_lease(id, holder).await;
        }
        result
    }

    async fn sync_leased(&self, source: Source, holder: Uuid) -> Result<Source, StoreError> {
        let started = Timestamp::now();
        let window = Window::starting(started);
        let outcome = match self.read(&source, window, started).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Failed { error },
        };
        let failed = matches!(outcome, Outcome::Failed { .. });
        if let Outcome::Failed { error } = &outcome {
            // The URL stays out of logs: private calendar links carry their secret in it.
            tracing::info!(source = %source.id, organization = %source.organization_id, %error, "source sync failed");
        }
        // A big plan goes in parts first; the last part is written with the status.
        let outcome = match outcome {
            Outcome::Synced { mut plan, validators, window } => {
                while plan.len() > PART {
                    let part = plan.take_part(PART);
                    let applied = self
                        .store
                        .apply_part(source.id, holder, source.updated_at, part, Timestamp::now().as_second())
                        .await?;
                    if !applied {
                        break;
                    }
                }
                Outcome::Synced { plan, validators, window }
            }
            failed => failed,
        };
        let now = Timestamp::now().as_second();
        let next = next_run(now, source.input.interval_minutes, failed, Uuid::new_v4().as_u64_pair().0);
        let finished = self.store.finish_sync(source.id, holder, source.updated_at, outcome, now, next).await?;
        if !failed {
            let c = finished.status.counts;
            tracing::info!(source = %source.id, created = c.created, updated = c.updated, cancelled = c.cancelled,
                unchanged = c.unchanged, skipped = c.skipped, not_modified = finished.status.not_modified, "source synced");
        }
        Ok(finished)
    }

    async fn read(&self, source: &Source, window: Window, now: Timestamp) -> Result<Outcome, String> {
        // A conditional request only within the same window: a new day brings occurrences
        // into the horizon that an unchanged file still has to give.
        let same_window = source.status.window_from.as_deref() == Some(kit::rfc3339(window.from.as_second()).as_str());
        let validators = if same_window && !source.failed { source.validators.clone() } else { Validators::default() };
        let span = (window.from.as_second(), window.to.as_second());
        let body = match self.fetcher.get(&source.input.url, &validators).await.map_err(|e| e.to_string())? {
            Fetched::NotModified => {
                let live = self.store.imported_count(source.id).await.map_err(|e| e.to_string())?;
                let counts = SyncCounts { unchanged: live, ..SyncCounts::default() };
                let plan = plan::Plan { counts, ..plan::Plan::default() };
                return Ok(Outcome::Synced { plan, validators: None, window: span });
            }
            Fetched::Body(body) => body,
        };
        let input = source.input.clone();
        let parsed = tokio::task::spawn_blocking(move || {
            parse(&input, &body.bytes, body.charset(), window).map(|p| (p, body.validators))
        })
        .await
        .map_err(|e| format!("reading the source failed: {e}"))?;
        let (parsed, validators) = parsed.map_err(|e| e.to_string())?;
        let imported = self.store.imported(source.id).await.map_err(|e| e.to_string())?;
        let (input, org) = (source.input.clone(), source.organization_id);
        let mut plan = tokio::task::spawn_blocking(move || {
            plan::plan(&input, org, &parsed.items, imported, window, now).with_skipped(parsed.skipped)
        })
        .await
        .map_err(|e| format!("planning the sync failed: {e}"))?;
        plan.skipped.truncate(20);
        Ok(Outcome::Synced { plan, validators: Some(validators), window: span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_run_is_the_interval_spread_by_a_tenth_and_failures_retry_sooner() {
        assert_eq!(next_run(1000, 60, false, 0), 1000 + 3600);
        assert_eq!(next_run(1000, 60, false, 300), 1000 + 3600 + 300);
        assert_eq!(next_run(1000, 60, false, 301), 1000 + 3600);
        let spread: Vec<i64> = (0..1000).map(|s| next_run(0, 60, false, s * 7919)).collect();
        assert!(spread.iter().all(|t| (3600..=3900).contains(t)));
        assert!(spread.iter().min() < Some(&3630) && spread.iter().max() > Some(&3870), "spread over the range");
        assert_eq!(next_run(0, 60, true, 0), 900, "a quarter of the interval");
        assert_eq!(next_run(0, 5, true, 0), 300, "never sooner than five minutes");
        assert_eq!(next_run(0, 5, false, 0), 300);
        assert_eq!(next_run(0, 5, false, 30), 330, "a tenth of five minutes at most");
    }
}
