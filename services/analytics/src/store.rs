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
use crate::sketch;
use async_trait::async_trait;
use kit::db::{Db, DbError, Migrations};
use rusqlite::{OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet};
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
            StoreError::Db(e) => e.into(),
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
-- Raw facts, keyed by their id: the key that makes redelivery harmless (migration 3
-- puts their time in front).
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

-- Who viewed what in which hour (migration 4 replaces it with sketches).
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
    r#"
-- Facts keyed by when they happened, then by id. Keyed by the random id alone, every new
-- fact landed anywhere in the table, and a batch rewrote pages in proportion to the
-- table's size; now new facts land at its end, and pruning reads the key's front. A
-- redelivered fact carries the same time and id, so it still finds its key taken.
CREATE TABLE facts_v2 (
    occurred_at      INTEGER NOT NULL,
    id               TEXT NOT NULL,
    kind             TEXT NOT NULL,
    event_id         TEXT,
    organization_id  TEXT,
    user_id          TEXT,
    visitor_id       TEXT,
    PRIMARY KEY (occurred_at, id)
) WITHOUT ROWID;
INSERT INTO facts_v2 (occurred_at, id, kind, event_id, organization_id, user_id, visitor_id)
    SELECT occurred_at, id, kind, event_id, organization_id, user_id, visitor_id FROM facts;
DROP TABLE facts;
ALTER TABLE facts_v2 RENAME TO facts;
"#,
    r#"
-- Who was seen in which scope and hour, as a HyperLogLog sketch (crate::sketch): a
-- report merges a few hundred small blobs instead of counting distinct rows by the
-- hundred thousand. `SqliteStore::open` folds the rows of `visitors` into it once.
CREATE TABLE visitor_sketches (
    scope   TEXT NOT NULL,
    hour    INTEGER NOT NULL,
    sketch  BLOB NOT NULL,
    PRIMARY KEY (scope, hour)
) WITHOUT ROWID;
"#,
    r#"
-- The organizations' counters per UTC day, metric first: the platform's top organizations
-- over 30 days read 30 rows per organization of one metric, not 720 hours of every
-- metric. A window's partial days at its edges come from `rollups`.
CREATE TABLE organization_days (
    metric  TEXT NOT NULL,
    day     INTEGER NOT NULL,
    scope   TEXT NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (metric, day, scope)
) WITHOUT ROWID;
INSERT INTO organization_days (metric, day, scope, value)
    SELECT metric, hour - hour % 86400, scope, sum(value) FROM rollups
     WHERE scope >= 'organization:' AND scope < 'organization;' GROUP BY 1, 2, 3;
"#,
];

/// Seconds in a (UTC) day, the unit of `organization_days`.
const DAY: i64 = 86_400;

/// The start of every organization's scope key.
const ORGANIZATION_PREFIX: &str = "organization:";

/// The visitor scope that holds who did anything, for active users.
const ACTIVE_USERS: &str = "users";

pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Db::open(path, MIGRATIONS).await?;
        db.write(fold_visitor_rows).await?;
        Ok(Self { db })
    }
}

/// Folds the exact visitor rows of stores made before sketches into sketches, once,
/// and drops their table.
fn fold_visitor_rows(tx: &rusqlite::Transaction) -> Result<(), DbError> {
    let exists: i64 =
        tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'visitors'", [], |r| {
            r.get(0)
        })?;
    if exists == 0 {
        return Ok(());
    }
    let mut added = Additions::default();
    {
        let mut rows = tx.prepare("SELECT scope, hour, visitor FROM visitors")?;
        let rows = rows.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))?;
        for row in rows {
            let (scope, hour, visitor) = row?;
            added.visits.entry((scope, hour)).or_default().push(sketch::register_of(&visitor));
        }
    }
    added.write(tx)?;
    tx.execute_batch("DROP TABLE visitors")?;
    Ok(())
}

/// What one batch's new facts add to the rollups, the visitor sketches and the event
/// owners, before it is written.
#[derive(Default)]
struct Additions {
    /// (scope, metric, hour) → how many.
    bumps: BTreeMap<(String, &'static str, i64), i64>,
    /// (scope, hour) → the sketch registers its visitors set.
    visits: BTreeMap<(String, i64), Vec<(u16, u8)>>,
    /// (event, organization).
    owners: BTreeSet<(String, String)>,
}

impl Additions {
    fn count(&mut self, f: &Fact) {
        let hour = hour_of(f.occurred_at);
        for (scope, metric) in f.counters() {
            *self.bumps.entry((scope, metric, hour)).or_default() += 1;
        }
        if let Some(user) = f.user_id {
            let register = sketch::register_of(&user.to_string());
            self.visits.entry((ACTIVE_USERS.to_owned(), hour)).or_default().push(register);
        }
        if let Some(visitor) = f.visitor() {
            let register = sketch::register_of(&visitor);
            for scope in f.visitor_scopes() {
                self.visits.entry((scope, hour)).or_default().push(register);
            }
        }
    }

    fn write(self, tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
        let mut bump = tx.prepare_cached(
            "INSERT INTO rollups (scope, metric, hour, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (scope, metric, hour) DO UPDATE SET value = value + excluded.value",
        )?;
        let mut days: BTreeMap<(&'static str, i64, String), i64> = BTreeMap::new();
        for ((scope, metric, hour), n) in self.bumps {
            bump.execute(params![scope, metric, hour, n])?;
            if scope.starts_with(ORGANIZATION_PREFIX) {
                *days.entry((metric, hour - hour.rem_euclid(DAY), scope)).or_default() += n;
            }
        }
        let mut day = tx.prepare_cached(
            "INSERT INTO organization_days (metric, day, scope, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (metric, day, scope) DO UPDATE SET value = value + excluded.value",
        )?;
        for ((metric, d, scope), n) in days {
            day.execute(params![metric, d, scope, n])?;
        }
        let mut stored = tx.prepare_cached("SELECT sketch FROM visitor_sketches WHERE scope = ?1 AND hour = ?2")?;
        let mut store = tx.prepare_cached(
            "INSERT INTO visitor_sketches (scope, hour, sketch) VALUES (?1, ?2, ?3)
             ON CONFLICT (scope, hour) DO UPDATE SET sketch = excluded.sketch",
        )?;
        for ((scope, hour), registers) in self.visits {
            let old: Option<Vec<u8>> = stored.query_row(params![scope, hour], |r| r.get(0)).optional()?;
            store.execute(params![scope, hour, sketch::raise(old.as_deref(), registers)])?;
        }
        let mut owner =
            tx.prepare_cached("INSERT OR IGNORE INTO event_organizations (event_id, organization_id) VALUES (?1, ?2)")?;
        for (event, organization) in self.owners {
            owner.execute(params![event, organization])?;
        }
        Ok(())
    }
}

/// Registrations per organization in `window` (unordered): whole days from
/// `organization_days`, the hours of a partial day at either edge from `rollups`. Summed
/// here rather than grouped in SQL, which would sort thirty thousand keys per report.
fn top_organizations(c: &rusqlite::Connection, window: Window) -> rusqlite::Result<Vec<(String, i64)>> {
    let (start, end) = (window.start, window.end);
    let whole_from = ((start + DAY - 1).div_euclid(DAY) * DAY).min(end);
    let whole_to = (end.div_euclid(DAY) * DAY).max(whole_from);
    let mut sums: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut partial: BTreeSet<String> = BTreeSet::new();
    let mut days = c.prepare_cached(
        "SELECT scope, day, value FROM organization_days WHERE metric = 'registrations' AND day >= ?1 AND day < ?2",
    )?;
    let mut rows = days.query(params![start.div_euclid(DAY) * DAY, end + DAY - 1])?;
    while let Some(row) = rows.next()? {
        let (scope, day, value): (String, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        if day >= whole_from && day < whole_to {
            *sums.entry(scope).or_default() += value;
        } else {
            partial.insert(scope);
        }
    }
    let mut hours = c.prepare_cached(
        "SELECT coalesce(sum(value), 0) FROM rollups
          WHERE scope = ?1 AND metric = 'registrations' AND hour >= ?2 AND hour < ?3",
    )?;
    for scope in partial {
        let mut n = 0;
        for (from, to) in [(start, whole_from), (whole_to, end)].into_iter().filter(|(from, to)| from < to) {
            n += hours.query_row(params![scope, from, to], |r| r.get::<_, i64>(0))?;
        }
        *sums.entry(scope).or_default() += n;
    }
    Ok(sums
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .filter_map(|(scope, n)| Some((scope.strip_prefix(ORGANIZATION_PREFIX)?.to_owned(), n)))
        .collect())
}

/// Calls `f` with the hour and stored sketch of every hour of `scope` in `window`.
fn for_each_sketch(
    c: &rusqlite::Connection,
    scope: &str,
    window: Window,
    mut f: impl FnMut(i64, &[u8]),
) -> rusqlite::Result<()> {
    let mut stmt =
        c.prepare_cached("SELECT hour, sketch FROM visitor_sketches WHERE scope = ?1 AND hour >= ?2 AND hour < ?3")?;
    let mut rows = stmt.query(params![scope, window.start, window.end])?;
    while let Some(row) = rows.next()? {
        f(row.get(0)?, row.get_ref(1)?.as_blob()?);
    }
    Ok(())
}

fn opt_text<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

#[async_trait]
impl AnalyticsStore for SqliteStore {
    async fn ingest(&self, mut facts: Vec<Fact>) -> Result<Ingested> {
        // In key order: one pass down the facts table instead of a jump per fact.
        facts.sort_unstable_by_key(|f| (f.occurred_at, f.id));
        self.db
            .write(move |tx| {
                let pruned_before: i64 = tx.query_row("SELECT pruned_before FROM retention", [], |r| r.get(0))?;
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO facts (id, kind, occurred_at, event_id, organization_id, user_id, visitor_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                // What the new facts add is summed here first, and written once per key in
                // key order: a batch of views of one event in one hour is one row update,
                // not one per fact, and neighbouring keys share their pages.
                let mut added = Additions::default();
                let mut done = Ingested::default();
                for f in facts {
                    if let (Some(event), Some(org)) = (f.event_id, f.organization_id) {
                        added.owners.insert((event.to_string(), org.to_string()));
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
                    added.count(&f);
                }
                added.write(tx)?;
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
                    None => {
                        let mut all = top_organizations(c, window)?;
                        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                        all.truncate(n.max(0) as usize);
                        all
                    }
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
                let mut all = sketch::Union::default();
                for_each_sketch(c, ACTIVE_USERS, window, |_, stored| all.add(stored))?;
                Ok(all.count())
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
                    let mut buckets: BTreeMap<i64, sketch::Union> = BTreeMap::new();
                    let mut all = sketch::Union::default();
                    for_each_sketch(c, &key, window, |hour, stored| {
                        buckets.entry(((hour - origin) / size) * size + origin).or_default().add(stored);
                        all.add(stored);
                    })?;
                    counts.visitors = buckets.into_iter().map(|(bucket, union)| (bucket, union.count())).collect();
                    counts.visitors_total = all.count();
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
            imported: false,
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
    async fn a_store_from_before_sketches_keeps_its_visitors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("analytics.db");
        let e = Uuid::new_v4();
        let hour = t("2026-11-24T10:00:00Z");
        {
            let old = Db::open(&path, &MIGRATIONS[..3]).await.unwrap();
            let scope = Scope::Event(e).key();
            old.write(move |tx| {
                for v in ["v:a", "v:b", "v:c"] {
                    tx.execute(
                        "INSERT INTO visitors (scope, hour, visitor) VALUES (?1, ?2, ?3)",
                        params![scope, hour, v],
                    )?;
                }
                tx.execute(
                    "INSERT INTO visitors (scope, hour, visitor) VALUES (?1, ?2, 'v:a')",
                    params![scope, hour + 3600],
                )?;
                Ok::<_, DbError>(())
            })
            .await
            .unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        // New views after the fold join the folded sketches.
        store.ingest(vec![view(e, "d", "2026-11-24T10:30:00Z"), view(e, "a", "2026-11-24T11:30:00Z")]).await.unwrap();
        let window = Window { size: BucketSize::Day, start: t("2026-11-24T00:00:00Z"), end: t("2026-11-25T00:00:00Z") };
        let counts = store.counts(Scope::Event(e), window).await.unwrap();
        assert_eq!(counts.visitors_total, 4, "a, b, c and d");
        // Opening again finds nothing left to fold.
        drop(store);
        let again = SqliteStore::open(&path).await.unwrap();
        assert_eq!(again.counts(Scope::Event(e), window).await.unwrap().visitors_total, 4);
    }

    #[tokio::test]
    async fn top_organizations_over_any_window_match_a_brute_force_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("analytics.db")).await.unwrap();
        let day0 = t("2026-11-20T00:00:00Z");
        let orgs: Vec<Uuid> = (1..=5).map(Uuid::from_u128).collect();
        // Registrations over four days, spread unevenly across organizations and hours.
        let mut facts = Vec::new();
        let mut state = 7u64;
        for _ in 0..600 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let org = orgs[((state >> 33) % 5) as usize % (1 + ((state >> 40) % 5) as usize)];
            let at = day0 + ((state >> 20) % (4 * 86_400)) as i64;
            facts.push(Fact {
                id: Uuid::new_v4(),
                kind: FactKind::RegistrationMade,
                occurred_at: at,
                event_id: Some(Uuid::new_v4()),
                organization_id: Some(org),
                user_id: Some(Uuid::new_v4()),
                visitor_id: None,
                imported: false,
            });
        }
        for chunk in facts.chunks(97) {
            store.ingest(chunk.to_vec()).await.unwrap();
        }
        let hours = [0, 1, 5, 23, 24, 25, 47, 48, 60, 95, 96];
        for &from in &hours {
            for &to in hours.iter().filter(|&&h| h > from) {
                let window = Window { size: BucketSize::Hour, start: day0 + from * 3600, end: day0 + to * 3600 };
                let mut expected: Vec<(Uuid, i64)> = orgs
                    .iter()
                    .map(|o| {
                        let n = facts
                            .iter()
                            .filter(|f| f.organization_id == Some(*o))
                            .filter(|f| f.occurred_at >= window.start && f.occurred_at < window.end)
                            .count() as i64;
                        (*o, n)
                    })
                    .filter(|(_, n)| *n > 0)
                    .collect();
                expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.to_string().cmp(&b.0.to_string())));
                let got: Vec<(Uuid, i64)> =
                    store.top(None, window, 10).await.unwrap().into_iter().map(|r| (r.id, r.registrations)).collect();
                assert_eq!(got, expected, "hours {from}..{to}");
            }
        }
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
