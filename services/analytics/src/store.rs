//! Where facts and rollups live: the [`AnalyticsStore`] trait, and its embedded SQLite
//! backend.
//!
//! A delivery is one transaction: each fact is inserted keyed by its id, and only a fact
//! that was new bumps its hourly rollup counters. A redelivered fact (the relay retrying
//! after a crash) finds its id taken and changes nothing, so every fact is counted
//! exactly once however often it arrives, and a batch is counted whole or not at all.
//!
//! Raw facts are pruned after a retention period; rollups and the visitor table stay.
//! Once facts before some time are pruned, a fact from before then can no longer be told
//! apart from a redelivery, so it is answered `expired` and not counted.

use crate::model::{Counts, Fact, Ingested, Ranked, Scope, Window, hour_of, metric};
use async_trait::async_trait;
use kit::db::{Db, DbError, Migrations};
use rusqlite::{OptionalExtension, params};
use std::path::Path;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(DbError::Sqlite(e))
    }
}

impl From<StoreError> for kit::ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e) => kit::ApiError::internal(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait AnalyticsStore: Send + Sync + 'static {
    /// Stores a batch in one transaction; counts the facts not seen before.
    async fn ingest(&self, facts: Vec<Fact>) -> Result<Ingested>;
    /// The organization an event belongs to, as its facts said.
    async fn organization_of(&self, event: Uuid) -> Result<Option<Uuid>>;
    /// An organization's events (or, with `None`, all organizations) with the most
    /// registrations in `window`, at most `n`.
    async fn top(&self, organization: Option<Uuid>, window: Window, n: i64) -> Result<Vec<Ranked>>;
    /// Distinct users seen in any fact during `window`.
    async fn active_users(&self, window: Window) -> Result<i64>;
    /// The counters of `scope` over `window`, grouped into its buckets.
    async fn counts(&self, scope: Scope, window: Window) -> Result<Counts>;
    /// Deletes raw facts that occurred before `before`; returns how many. Rollups stay.
    async fn prune(&self, before: i64) -> Result<u64>;
    /// How many raw facts are stored (for tests and the operator's curiosity).
    async fn fact_count(&self) -> Result<u64>;
    async fn ping(&self) -> Result<()>;
}

const MIGRATIONS: Migrations = &[
    r#"
-- Raw facts, keyed by their id: the key that makes redelivery harmless. Ids are random
-- UUIDs, so no key range is hot.
CREATE TABLE facts (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    occurred_at      INTEGER NOT NULL,
    event_id         TEXT,
    organization_id  TEXT,
    user_id          TEXT,
    visitor_id       TEXT
) WITHOUT ROWID;
CREATE INDEX facts_by_time ON facts (occurred_at);

-- Counters per scope (`event:<id>`, `organization:<id>`, `platform`), metric and hour.
-- Keyed by scope first, so one report reads one contiguous range.
CREATE TABLE rollups (
    scope   TEXT NOT NULL,
    metric  TEXT NOT NULL,
    hour    INTEGER NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (scope, metric, hour)
) WITHOUT ROWID;

-- Who viewed what in which hour: distinct visitors over any window are a count here.
CREATE TABLE visitors (
    scope    TEXT NOT NULL,
    hour     INTEGER NOT NULL,
    visitor  TEXT NOT NULL,
    PRIMARY KEY (scope, hour, visitor)
) WITHOUT ROWID;

-- Facts before `pruned_before` were deleted: such a fact arriving now may be a
-- redelivery, and is not counted.
CREATE TABLE retention (
    one            INTEGER PRIMARY KEY CHECK (one = 1),
    pruned_before  INTEGER NOT NULL
);
INSERT INTO retention (one, pruned_before) VALUES (1, 0);
"#,
    r#"
-- Which organization an event belongs to, from the facts that name both: who may read
-- the event's report. Kept when raw facts are pruned.
CREATE TABLE event_organizations (
    event_id         TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_organizations
    SELECT event_id, organization_id FROM facts WHERE event_id IS NOT NULL AND organization_id IS NOT NULL;
"#,
];

/// The `visitors` scope that holds who did anything, for active users.
const ACTIVE_USERS: &str = "users";

pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self { db: Db::open(path, MIGRATIONS).await? })
    }
}

fn opt_text<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

#[async_trait]
impl AnalyticsStore for SqliteStore {
    async fn ingest(&self, facts: Vec<Fact>) -> Result<Ingested> {
        self.db
            .write(move |tx| {
                let pruned_before: i64 = tx.query_row("SELECT pruned_before FROM retention", [], |r| r.get(0))?;
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO facts (id, kind, occurred_at, event_id, organization_id, user_id, visitor_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                let mut bump = tx.prepare_cached(
                    "INSERT INTO rollups (scope, metric, hour, value) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT (scope, metric, hour) DO UPDATE SET value = value + 1",
                )?;
                let mut owner = tx.prepare_cached(
                    "INSERT OR IGNORE INTO event_organizations (event_id, organization_id) VALUES (?1, ?2)",
                )?;
                let mut visit =
                    tx.prepare_cached("INSERT OR IGNORE INTO visitors (scope, hour, visitor) VALUES (?1, ?2, ?3)")?;
                let mut done = Ingested::default();
                for f in facts {
                    if let (Some(event), Some(org)) = (f.event_id, f.organization_id) {
                        owner.execute(params![event.to_string(), org.to_string()])?;
                    }
                    if f.occurred_at < pruned_before {
                        done.expired += 1;
                        continue;
                    }
                    let new = insert.execute(params![
                        f.id.to_string(),
                        f.kind.as_str(),
                        f.occurred_at,
                        opt_text(&f.event_id),
                        opt_text(&f.organization_id),
                        opt_text(&f.user_id),
                        f.visitor_id,
                    ])? == 1;
                    if !new {
                        done.duplicates += 1;
                        continue;
                    }
                    done.accepted += 1;
                    let hour = hour_of(f.occurred_at);
                    for (scope, metric) in f.counters() {
                        bump.execute(params![scope, metric, hour])?;
                    }
                    if let Some(user) = f.user_id {
                        visit.execute(params![ACTIVE_USERS, hour, user.to_string()])?;
                    }
                    if let Some(visitor) = f.visitor() {
                        for scope in f.visitor_scopes() {
                            visit.execute(params![scope, hour, visitor])?;
                        }
                    }
                }
                Ok(done)
            })
            .await
    }

    async fn organization_of(&self, event: Uuid) -> Result<Option<Uuid>> {
        self.db
            .read(move |c| {
                let org: Option<String> = c
                    .prepare_cached("SELECT organization_id FROM event_organizations WHERE event_id = ?1")?
                    .query_row([event.to_string()], |r| r.get(0))
                    .optional()?;
                Ok(org.and_then(|o| Uuid::parse_str(&o).ok()))
            })
            .await
    }

    async fn top(&self, organization: Option<Uuid>, window: Window, n: i64) -> Result<Vec<Ranked>> {
        self.db
            .read(move |c| {
                let rows: Vec<(String, i64)> = match organization {
                    Some(org) => c
                        .prepare_cached(
                            "SELECT e.event_id, sum(r.value) FROM event_organizations e
                               JOIN rollups r ON r.scope = 'event:' || e.event_id
                              WHERE e.organization_id = ?1 AND r.metric = 'registrations'
                                AND r.hour >= ?2 AND r.hour < ?3
                              GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?4",
                        )?
                        .query_map(params![org.to_string(), window.start, window.end, n], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?
                        .collect::<rusqlite::Result<_>>()?,
                    None => c
                        .prepare_cached(
                            "SELECT substr(scope, 14), sum(value) FROM rollups
                              WHERE scope >= 'organization:' AND scope < 'organization;'
                                AND metric = 'registrations' AND hour >= ?1 AND hour < ?2
                              GROUP BY scope ORDER BY 2 DESC, 1 LIMIT ?3",
                        )?
                        .query_map(params![window.start, window.end, n], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?,
                };
                Ok(rows
                    .into_iter()
                    .filter_map(|(id, registrations)| Some(Ranked { id: Uuid::parse_str(&id).ok()?, registrations }))
                    .collect())
            })
            .await
    }

    async fn active_users(&self, window: Window) -> Result<i64> {
        self.db
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT count(DISTINCT visitor) FROM visitors WHERE scope = ?1 AND hour >= ?2 AND hour < ?3",
                )?
                .query_row(params![ACTIVE_USERS, window.start, window.end], |r| r.get(0))?)
            })
            .await
    }

    async fn counts(&self, scope: Scope, window: Window) -> Result<Counts> {
        let key = scope.key();
        let wants_visitors = scope.metrics().contains(&metric::UNIQUE_VISITORS);
        self.db
            .read(move |c| {
                let (origin, size) = (window.size.origin(), window.size.seconds());
                // Hours are after 2000 and origins before, so the division never truncates
                // towards zero from below.
                let bucket = "((hour - ?4) / ?5) * ?5 + ?4";
                let mut counts = Counts::default();
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT metric, {bucket}, sum(value) FROM rollups
                      WHERE scope = ?1 AND hour >= ?2 AND hour < ?3 GROUP BY 1, 2"
                ))?;
                let rows = stmt.query_map(params![key, window.start, window.end, origin, size], |r| {
                    Ok(((r.get::<_, String>(0)?, r.get::<_, i64>(1)?), r.get::<_, i64>(2)?))
                })?;
                for row in rows {
                    let (k, v) = row?;
                    counts.values.insert(k, v);
                }
                if wants_visitors {
                    let mut stmt = c.prepare_cached(&format!(
                        "SELECT {bucket}, count(DISTINCT visitor) FROM visitors
                          WHERE scope = ?1 AND hour >= ?2 AND hour < ?3 GROUP BY 1"
                    ))?;
                    let rows = stmt.query_map(params![key, window.start, window.end, origin, size], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })?;
                    for row in rows {
                        let (k, v) = row?;
                        counts.visitors.insert(k, v);
                    }
                    counts.visitors_total = c
                        .prepare_cached(
                            "SELECT count(DISTINCT visitor) FROM visitors WHERE scope = ?1 AND hour >= ?2 AND hour < ?3",
                        )?
                        .query_row(params![key, window.start, window.end], |r| r.get(0))?;
                }
                Ok(counts)
            })
            .await
    }

    async fn prune(&self, before: i64) -> Result<u64> {
        self.db
            .write(move |tx| {
                let deleted = tx.execute("DELETE FROM facts WHERE occurred_at < ?1", [before])?;
                tx.execute("UPDATE retention SET pruned_before = max(pruned_before, ?1)", [before])?;
                Ok(deleted as u64)
            })
            .await
    }

    async fn fact_count(&self) -> Result<u64> {
        self.db
            .read(|c| {
                let n: i64 = c.query_row("SELECT count(*) FROM facts", [], |r| r.get(0))?;
                Ok(n as u64)
            })
            .await
    }

    async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BucketSize, FactKind, assemble, parse_time};
    use uuid::Uuid;

    fn t(s: &str) -> i64 {
        parse_time(s).unwrap()
    }

    fn view(event: Uuid, visitor: &str, at: &str) -> Fact {
        Fact {
            id: Uuid::new_v4(),
            kind: FactKind::EventViewed,
            occurred_at: t(at),
            event_id: Some(event),
            organization_id: None,
            user_id: None,
            visitor_id: Some(visitor.to_owned()),
        }
    }

    #[tokio::test]
    async fn redelivery_and_repeats_within_a_batch_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("analytics.db")).await.unwrap();
        let e = Uuid::new_v4();
        let a = view(e, "v1", "2026-11-24T10:15:00Z");
        let b = view(e, "v1", "2026-11-24T10:45:00Z");
        let done = store.ingest(vec![a.clone(), b.clone(), a.clone()]).await.unwrap();
        assert_eq!(done, Ingested { accepted: 2, duplicates: 1, expired: 0 });
        let again = store.ingest(vec![b, a]).await.unwrap();
        assert_eq!(again, Ingested { accepted: 0, duplicates: 2, expired: 0 });
        let window = Window { size: BucketSize::Day, start: t("2026-11-24T00:00:00Z"), end: t("2026-11-25T00:00:00Z") };
        let scope = Scope::Event(e);
        let r = assemble(window, scope.metrics(), &store.counts(scope, window).await.unwrap());
        assert_eq!(r.totals[metric::VIEWS], 2);
        assert_eq!(r.totals[metric::UNIQUE_VISITORS], 1);
        assert_eq!(store.fact_count().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn pruning_keeps_rollups_and_refuses_to_recount_old_facts() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("analytics.db")).await.unwrap();
        let e = Uuid::new_v4();
        let old = view(e, "v1", "2026-01-01T10:00:00Z");
        let recent = view(e, "v2", "2026-11-01T10:00:00Z");
        store.ingest(vec![old.clone(), recent]).await.unwrap();
        assert_eq!(store.prune(t("2026-06-01T00:00:00Z")).await.unwrap(), 1);
        assert_eq!(store.fact_count().await.unwrap(), 1);
        let again = store.ingest(vec![old]).await.unwrap();
        assert_eq!(again, Ingested { accepted: 0, duplicates: 0, expired: 1 });
        let window =
            Window { size: BucketSize::Week, start: t("2025-12-29T00:00:00Z"), end: t("2026-11-02T00:00:00Z") };
        let r = assemble(window, Scope::Event(e).metrics(), &store.counts(Scope::Event(e), window).await.unwrap());
        assert_eq!(r.totals[metric::VIEWS], 2, "rollups outlive raw facts");
        assert_eq!(r.totals[metric::UNIQUE_VISITORS], 2);
    }
}
