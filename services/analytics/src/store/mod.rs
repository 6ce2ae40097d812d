//! Where facts and rollups live: the [`AnalyticsStore`] trait, and its embedded SQLite
//! backend.
//!
//! A delivery is one transaction: each fact is inserted keyed by its id, and only a fact
//! that was new bumps its hourly rollup counters. A redelivered fact (the relay retrying
//! after a crash) finds its id taken and changes nothing, so every fact is counted
//! exactly once however often it arrives, and a batch is counted whole or not at all.
//!
//! What the new facts add to the rollups and sketches ([`additions`]) is logged in the
//! same transaction and kept in memory ([`unfolded`]); it is folded into the rollups up to
//! a million facts at a time, and reports add what is not folded yet.
//!
//! Raw facts are pruned after a retention period; rollups and the visitor table stay.
//! Once facts before some time are pruned, a fact from before then can no longer be told
//! apart from a redelivery, so it is answered `expired` and not counted.

mod additions;
mod queue;
mod unfolded;

use crate::model::{Counts, Fact, Ingested, Ranked, Scope, Window, metric};
use crate::sketch;
use additions::{Additions, DAY, Key, ORGANIZATION_PREFIX};
use async_trait::async_trait;
use kit::db::{Db, DbError, Migrations};
use queue::{Answers, Queue};
use rusqlite::{OptionalExtension, params};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use unfolded::{Unfolded, unread};
use uuid::Uuid;

/// Unfolded facts that start a fold: about ten seconds of a busy platform's traffic,
/// tens of megabytes of memory at most (the additions are summed per key, and a sketch's
/// registers kept once each).
const FOLD_FACTS: u64 = 1_000_000;

/// How long ingest stays quiet before what it left unfolded is folded.
const QUIET: std::time::Duration = std::time::Duration::from_secs(5);

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
    r#"
-- What stored facts add that is not folded into the rollups yet, one entry per write
-- (store::unfolded): read back after a restart.
CREATE TABLE unfolded (
    seq        INTEGER PRIMARY KEY,
    additions  BLOB NOT NULL
);
-- The generation of the last fold: a report adds the unfolded parts above it.
CREATE TABLE folds (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    generation  INTEGER NOT NULL
);
INSERT INTO folds (one, generation) VALUES (1, 0);
"#,
];

pub struct SqliteStore {
    db: Db,
    unfolded: Arc<Unfolded>,
    queue: Arc<Queue>,
    top_organizations: Arc<Mutex<Option<TopOrganizations>>>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The quiet fold's task may hold the database a moment longer; it folds nothing
        // from now on (begin_fold runs on the writer's thread, so this is race-free).
        self.unfolded.close();
    }
}

/// Takes a queued batch back when dropped, unless a write took it already.
struct Unclaimed<'a> {
    queue: &'a Queue,
    ticket: u64,
}

impl Drop for Unclaimed<'_> {
    fn drop(&mut self) {
        self.queue.withdraw(self.ticket);
    }
}

/// The platform's registrations per organization over a window, as the rollups of one
/// fold generation hold them: they change only when a fold commits, so every platform
/// report of the same hours until then reads them once.
struct TopOrganizations {
    hours: (i64, i64),
    generation: u64,
    sums: Arc<HashMap<String, i64>>,
}

impl SqliteStore {
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = Db::open(path, MIGRATIONS).await?;
        db.write(fold_visitor_rows).await?;
        // What a stop left unfolded is folded now, before anything reads.
        let folded = db.write(fold_logged).await?;
        let unfolded = Arc::new(Unfolded::new(folded));
        tokio::spawn(fold_when_quiet(db.clone(), Arc::downgrade(&unfolded)));
        Ok(Self { db, unfolded, queue: Arc::default(), top_organizations: Arc::default() })
    }

    /// The events an organization's facts named, as keys.
    async fn events_of(&self, organization: Uuid) -> Result<Vec<Key>> {
        self.db
            .read(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT event_id FROM event_organizations WHERE organization_id = ?1")?;
                let ids = stmt.query_map([organization.to_string()], |r| r.get::<_, String>(0))?;
                let mut keys = Vec::new();
                for id in ids {
                    if let Ok(id) = Uuid::parse_str(&id?) {
                        keys.push(Key::Scope(Scope::Event(id)));
                    }
                }
                Ok(keys)
            })
            .await
    }

    /// Folds the unfolded additions into the rollups, in one transaction.
    pub async fn fold(&self) -> Result<()> {
        fold(&self.db, &self.unfolded).await
    }
}

/// Folds what `unfolded` holds into the rollups, in one transaction. The fold begins and
/// ends on the writer's thread, between two writes, whatever becomes of the caller: the
/// log and the memory stay in step.
async fn fold(db: &Db, unfolded: &Arc<Unfolded>) -> Result<()> {
    let (begin, end) = (unfolded.clone(), unfolded.clone());
    db.write_settled(
        move |tx| {
            let Some((generation, additions)) = begin.begin_fold() else { return Ok(()) };
            additions.write(tx)?;
            tx.execute("DELETE FROM unfolded", [])?;
            tx.execute("UPDATE folds SET generation = ?1", [generation as i64])?;
            Ok(())
        },
        move |outcome| end.end_fold(outcome.is_ok()),
    )
    .await?;
    Ok(())
}

/// Folds what is unfolded once ingest has been quiet for [`QUIET`]: reports then read
/// the rollups alone, and a restart has little to fold. Ends with the store.
async fn fold_when_quiet(db: Db, unfolded: std::sync::Weak<Unfolded>) {
    let mut tick = tokio::time::interval(QUIET / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(unfolded) = unfolded.upgrade() else { return };
        if unfolded.facts() > 0
            && unfolded.quiet_for() >= QUIET
            && let Err(e) = fold(&db, &unfolded).await
        {
            tracing::warn!(error = %e, "folding the rollups failed; will try again");
        }
    }
}

/// Stores batches in one transaction: each fact is inserted keyed by its id and counted
/// only if new; what the new ones add is logged in `unfolded`. Returns each batch's
/// outcome and what they add together.
fn store_batches(tx: &rusqlite::Transaction, batches: Vec<Vec<Fact>>) -> Result<(Vec<Ingested>, Additions), DbError> {
    let pruned_before: i64 = tx.query_row("SELECT pruned_before FROM retention", [], |r| r.get(0))?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO facts (id, kind, occurred_at, event_id, organization_id, user_id, visitor_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut owner =
        tx.prepare_cached("INSERT OR IGNORE INTO event_organizations (event_id, organization_id) VALUES (?1, ?2)")?;
    let mut owners = BTreeSet::new();
    let mut added = Additions::default();
    let mut outcomes = Vec::with_capacity(batches.len());
    for mut facts in batches {
        // In key order: one pass down the facts table instead of a jump per fact.
        facts.sort_unstable_by_key(|f| (f.occurred_at, f.id));
        let mut done = Ingested::default();
        for f in facts {
            if let (Some(event), Some(org)) = (f.event_id, f.organization_id) {
                owners.insert((event, org));
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
        outcomes.push(done);
    }
    for (event, org) in owners {
        owner.execute(params![event.to_string(), org.to_string()])?;
    }
    if !added.is_empty() {
        tx.execute("INSERT INTO unfolded (additions) VALUES (?1)", [added.to_log()])?;
    }
    Ok((outcomes, added))
}

/// The generation of the last fold, as a read snapshot sees it.
fn folded(c: &rusqlite::Connection) -> rusqlite::Result<u64> {
    c.query_row("SELECT generation FROM folds", [], |r| r.get::<_, i64>(0)).map(|g| g as u64)
}

/// Folds what the `unfolded` log holds (what a stop left), as a generation of its own;
/// returns the generation now folded.
fn fold_logged(tx: &rusqlite::Transaction) -> Result<u64, DbError> {
    let mut all = Additions::default();
    {
        let mut rows = tx.prepare("SELECT seq, additions FROM unfolded ORDER BY seq")?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let (seq, entry): (i64, Vec<u8>) = (row.get(0)?, row.get(1)?);
            // An entry this version cannot read (written by a newer one) stops the start
            // rather than lose its counts.
            let added = Additions::from_log(&entry).ok_or_else(|| {
                DbError::Io(std::io::Error::other(format!(
                    "the analytics store's unfolded entry {seq} is unreadable by this version"
                )))
            })?;
            all.merge(added);
        }
    }
    let mut generation = folded(tx)?;
    if !all.is_empty() {
        all.write(tx)?;
        generation += 1;
        tx.execute("UPDATE folds SET generation = ?1", [generation as i64])?;
    }
    tx.execute("DELETE FROM unfolded", [])?;
    Ok(generation)
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
            if let Some(key) = Key::parse(&scope) {
                added.visits.entry((key, hour)).or_default().push(sketch::register_of(&visitor));
            }
        }
    }
    added.write(tx)?;
    tx.execute_batch("DROP TABLE visitors")?;
    Ok(())
}

/// Registrations per organization in `window` (unordered, by scope key): whole days from
/// `organization_days`, the hours of a partial day at either edge from `rollups`. Summed
/// here rather than grouped in SQL, which would sort thirty thousand keys per report.
fn top_organizations(c: &rusqlite::Connection, window: Window) -> rusqlite::Result<HashMap<String, i64>> {
    let (start, end) = (window.start, window.end);
    let whole_from = ((start + DAY - 1).div_euclid(DAY) * DAY).min(end);
    let whole_to = (end.div_euclid(DAY) * DAY).max(whole_from);
    let mut sums: HashMap<String, i64> = HashMap::new();
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
    Ok(sums)
}

/// [`top_organizations`] of the hours `window` covers, from `cache` when the snapshot
/// `c` reads the same fold generation as the cached sums.
fn top_organizations_cached(
    c: &rusqlite::Connection,
    cache: &Mutex<Option<TopOrganizations>>,
    window: Window,
) -> rusqlite::Result<HashMap<String, i64>> {
    // Rollups are hourly: a window counts the hours that start within it, the same as
    // one from the first of them to the end of the hour it ends in.
    let ceil_hour = |t: i64| t + (3600 - t.rem_euclid(3600)) % 3600;
    let hours = (ceil_hour(window.start), ceil_hour(window.end));
    let generation = folded(c)?;
    let lock = || cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cached) = lock().as_ref().filter(|t| t.hours == hours && t.generation == generation) {
        return Ok((*cached.sums).clone());
    }
    let sums = top_organizations(c, Window { start: hours.0, end: hours.1, ..window })?;
    *lock() = Some(TopOrganizations { hours, generation, sums: Arc::new(sums.clone()) });
    Ok(sums)
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
    async fn ingest(&self, facts: Vec<Fact>) -> Result<Ingested> {
        let (ticket, outcome) = self.queue.push(facts);
        // A request dropped before any write took its batch takes it back: a client that
        // retries does not leave copies waiting behind a long fold.
        let unclaimed = Unclaimed { queue: &self.queue, ticket };
        let (queue, unfolded, answers) = (self.queue.clone(), self.unfolded.clone(), Answers::default());
        let taken = answers.clone();
        // The write that runs next takes every batch waiting then, this one among them
        // unless an earlier write took it. Its additions join the memory, and each batch
        // is answered, on the writer's thread right after the commit, even if this
        // request is gone by then.
        let written = self
            .db
            .write_settled(
                move |tx| store_batches(tx, queue.take_all(&taken)),
                move |outcome| match outcome {
                    Ok((done, added)) => {
                        unfolded.add(std::mem::take(added), done.iter().map(|d| d.accepted).sum());
                        answers.answer(Ok(done));
                    }
                    Err(e) => answers.answer(Err(e)),
                },
            )
            .await;
        // A write that never ran leaves the batch waiting: it is taken back.
        if let Err(e) = written
            && self.queue.withdraw(ticket)
        {
            return Err(e.into());
        }
        std::mem::forget(unclaimed);
        let done = outcome.await.map_err(|_| DbError::Task)??;
        if self.unfolded.facts() >= FOLD_FACTS
            && let Err(e) = self.fold().await
        {
            // The batch is stored and counted; its additions stay unfolded until a fold
            // succeeds.
            tracing::warn!(error = %e, "folding the rollups failed; will try again");
        }
        Ok(done)
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
        let cache = self.top_organizations.clone();
        let (prefix, pending) = match organization {
            Some(org) => {
                // Its events, known before the snapshot below: an event new since then
                // has its registrations from the rollups only, this once.
                let events = self.events_of(org).await?;
                ("event:", self.unfolded.pick(|a| a.sums_for(&events, metric::REGISTRATIONS, window)))
            }
            None => (ORGANIZATION_PREFIX, {
                let all = self.unfolded.pick(|a| a.sums_of(Scope::Organization, metric::REGISTRATIONS, window));
                all.into_iter().map(|(g, sums)| (g, sums.into_iter().collect())).collect()
            }),
        };
        self.db
            .read(move |c| {
                let c = c.unchecked_transaction()?;
                let mut sums: HashMap<String, i64> = match organization {
                    Some(org) => {
                        let mut events = c.prepare_cached(
                            "SELECT e.event_id, (SELECT coalesce(sum(r.value), 0) FROM rollups r
                                WHERE r.scope = 'event:' || e.event_id AND r.metric = 'registrations'
                                  AND r.hour >= ?2 AND r.hour < ?3)
                               FROM event_organizations e WHERE e.organization_id = ?1",
                        )?;
                        let rows = events.query_map(params![org.to_string(), window.start, window.end], |r| {
                            Ok((format!("{prefix}{}", r.get::<_, String>(0)?), r.get(1)?))
                        })?;
                        rows.collect::<rusqlite::Result<_>>()?
                    }
                    None => top_organizations_cached(&c, &cache, window)?,
                };
                for part in unread(pending, folded(&c)?) {
                    for (scope, n) in part {
                        // An event's registrations count towards its organization's top
                        // events only once the event is known to be the organization's.
                        if let Some(sum) = sums.get_mut(&scope) {
                            *sum += n;
                        } else if organization.is_none() {
                            sums.insert(scope, n);
                        }
                    }
                }
                let mut ranked: Vec<(String, i64)> = sums
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .filter_map(|(scope, n)| Some((scope.strip_prefix(prefix)?.to_owned(), n)))
                    .collect();
                ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                ranked.truncate(n.max(0) as usize);
                Ok(ranked
                    .into_iter()
                    .filter_map(|(id, registrations)| Some(Ranked { id: Uuid::parse_str(&id).ok()?, registrations }))
                    .collect())
            })
            .await
    }

    async fn active_users(&self, window: Window) -> Result<i64> {
        let pending = self.unfolded.pick(|a| a.visits_of(Key::Users, window));
        self.db
            .read(move |c| {
                let c = c.unchecked_transaction()?;
                let mut all = sketch::Union::default();
                for_each_sketch(&c, &Key::Users.text(), window, |_, stored| all.add(stored))?;
                for (_, registers) in unread(pending, folded(&c)?).flatten() {
                    all.raise(registers);
                }
                Ok(all.count())
            })
            .await
    }

    async fn counts(&self, scope: Scope, window: Window) -> Result<Counts> {
        let key = scope.key();
        let wants_visitors = scope.metrics().contains(&metric::UNIQUE_VISITORS);
        let pending =
            self.unfolded.pick(|a| (a.bumps_of(Key::Scope(scope), window), a.visits_of(Key::Scope(scope), window)));
        self.db
            .read(move |c| {
                let c = c.unchecked_transaction()?;
                let (origin, size) = (window.size.origin(), window.size.seconds());
                // Hours are after 2000 and origins before, so the division never truncates
                // towards zero from below.
                let bucket_of = |hour: i64| ((hour - origin) / size) * size + origin;
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
                let unread: Vec<_> = unread(pending, folded(&c)?).collect();
                for (bumps, _) in &unread {
                    for (metric, hour, n) in bumps {
                        *counts.values.entry(((*metric).to_owned(), bucket_of(*hour))).or_default() += n;
                    }
                }
                if wants_visitors {
                    let mut buckets: BTreeMap<i64, sketch::Union> = BTreeMap::new();
                    let mut all = sketch::Union::default();
                    for_each_sketch(&c, &key, window, |hour, stored| {
                        buckets.entry(bucket_of(hour)).or_default().add(stored);
                        all.add(stored);
                    })?;
                    for (hour, registers) in unread.into_iter().flat_map(|(_, visits)| visits) {
                        buckets.entry(bucket_of(hour)).or_default().raise(registers.iter().copied());
                        all.raise(registers);
                    }
                    counts.visitors = buckets.into_iter().map(|(bucket, union)| (bucket, union.count())).collect();
                    counts.visitors_total = all.count();
                }
                Ok(counts)
            })
            .await
    }

    async fn prune(&self, before: i64) -> Result<u64> {
        // The retention job is also the fold's clock: what a quiet hour left unfolded is
        // folded then. Pruning does not wait for a fold that fails.
        if let Err(e) = self.fold().await {
            tracing::warn!(error = %e, "folding the rollups failed; will try again");
        }
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
        // Some of it folded into the rollups, the rest unfolded: reports add both.
        for (i, chunk) in facts.chunks(97).enumerate() {
            store.ingest(chunk.to_vec()).await.unwrap();
            if i % 3 == 1 {
                store.fold().await.unwrap();
            }
        }
        // Rollups are hourly: a window counts the facts of the hours that start within it.
        let expected = |facts: &[Fact], window: Window| {
            let mut expected: Vec<(Uuid, i64)> = orgs
                .iter()
                .map(|o| {
                    let hours = facts
                        .iter()
                        .filter(|f| f.organization_id == Some(*o))
                        .filter(|f| (window.start..window.end).contains(&crate::model::hour_of(f.occurred_at)));
                    (*o, hours.count() as i64)
                })
                .filter(|(_, n)| *n > 0)
                .collect();
            expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.to_string().cmp(&b.0.to_string())));
            expected
        };
        let top = |window| {
            let store = &store;
            async move {
                let ranked = store.top(None, window, 10).await.unwrap();
                ranked.into_iter().map(|r| (r.id, r.registrations)).collect::<Vec<_>>()
            }
        };
        let hours = [0, 1, 5, 23, 24, 25, 47, 48, 60, 95, 96];
        for &from in &hours {
            for &to in hours.iter().filter(|&&h| h > from) {
                // On the hour, and a second or a half hour off it at either end.
                for (early, late) in [(0, 0), (1, -1), (-1800, 1800)] {
                    let window = Window {
                        size: BucketSize::Hour,
                        start: day0 + from * 3600 + early,
                        end: day0 + to * 3600 + late,
                    };
                    assert_eq!(top(window).await, expected(&facts, window), "hours {from}..{to}, {early}/{late} s");
                }
            }
        }
        // Registrations folded since a report was read count in the next one.
        let window = Window { size: BucketSize::Hour, start: day0 + 3600, end: day0 + 60 * 3600 };
        let before = top(window).await;
        let late = Fact { id: Uuid::new_v4(), occurred_at: day0 + 2 * 3600, ..facts[0].clone() };
        store.ingest(vec![late.clone()]).await.unwrap();
        store.fold().await.unwrap();
        facts.push(late);
        assert_eq!(top(window).await, expected(&facts, window));
        assert_ne!(top(window).await, before);
    }

    async fn logged(store: &SqliteStore) -> i64 {
        let count = |c: &rusqlite::Connection| c.query_row("SELECT count(*) FROM unfolded", [], |r| r.get(0));
        store.db.read(move |c| count(c).map_err(StoreError::from)).await.unwrap()
    }

    #[tokio::test]
    async fn what_is_unfolded_when_the_store_stops_is_counted_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("analytics.db");
        let e = Uuid::new_v4();
        let window =
            Window { size: BucketSize::Hour, start: t("2026-11-24T00:00:00Z"), end: t("2026-11-25T00:00:00Z") };
        let report = |counts: &Counts| {
            let r = assemble(window, Scope::Event(e).metrics(), counts);
            (r.totals[metric::VIEWS], r.totals[metric::UNIQUE_VISITORS])
        };
        let before = {
            let store = SqliteStore::open(&path).await.unwrap();
            store
                .ingest(vec![view(e, "v1", "2026-11-24T10:15:00Z"), view(e, "v2", "2026-11-24T11:15:00Z")])
                .await
                .unwrap();
            store.fold().await.unwrap();
            store
                .ingest(vec![view(e, "v3", "2026-11-24T10:20:00Z"), view(e, "v1", "2026-11-24T12:00:00Z")])
                .await
                .unwrap();
            assert_eq!(logged(&store).await, 1, "the second batch waits in the log");
            store.counts(Scope::Event(e), window).await.unwrap()
        };
        assert_eq!(report(&before), (4, 3));
        let store = SqliteStore::open(&path).await.unwrap();
        let after = store.counts(Scope::Event(e), window).await.unwrap();
        assert_eq!(after.values, before.values);
        assert_eq!((after.visitors.clone(), after.visitors_total), (before.visitors, before.visitors_total));
        assert_eq!(logged(&store).await, 0, "folded when the store opened");
        // Folding again changes nothing a report sees.
        store.fold().await.unwrap();
        assert_eq!(store.counts(Scope::Event(e), window).await.unwrap().values, before.values);
    }

    #[tokio::test(start_paused = true)]
    async fn what_quiet_ingest_left_unfolded_is_folded() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("analytics.db")).await.unwrap();
        let e = Uuid::new_v4();
        store.ingest(vec![view(e, "v1", "2026-11-24T10:15:00Z")]).await.unwrap();
        assert_eq!(logged(&store).await, 1);
        tokio::time::sleep(QUIET * 2).await;
        for _ in 0..100 {
            if logged(&store).await == 0 {
                break;
            }
            tokio::time::sleep(QUIET / 10).await;
        }
        assert_eq!(logged(&store).await, 0, "folded after a quiet spell");
        assert_eq!(store.unfolded.facts(), 0);
        let window = Window { size: BucketSize::Day, start: t("2026-11-24T00:00:00Z"), end: t("2026-11-25T00:00:00Z") };
        let r = assemble(window, Scope::Event(e).metrics(), &store.counts(Scope::Event(e), window).await.unwrap());
        assert_eq!(r.totals[metric::VIEWS], 1, "counted once, from the rollups");
    }

    #[tokio::test]
    async fn concurrent_batches_share_commits_and_each_counts_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("analytics.db")).await.unwrap());
        let e = Uuid::new_v4();
        let batches: Vec<Vec<Fact>> = (0..40)
            .map(|i| (0..25).map(|j| view(e, &format!("v{}", (i * 25 + j) % 97), "2026-11-24T10:15:00Z")).collect())
            .collect();
        // The first ten batches are delivered twice, racing each other.
        let mut deliveries = tokio::task::JoinSet::new();
        for (i, batch) in batches.iter().chain(&batches[..10]).enumerate() {
            let (store, batch) = (store.clone(), batch.clone());
            deliveries.spawn(async move { (i % 40, store.ingest(batch).await.unwrap()) });
        }
        let mut per_batch: BTreeMap<usize, Vec<Ingested>> = BTreeMap::new();
        while let Some(done) = deliveries.join_next().await {
            let (i, done) = done.unwrap();
            per_batch.entry(i).or_default().push(done);
        }
        for (i, outcomes) in per_batch {
            let accepted: u64 = outcomes.iter().map(|d| d.accepted).sum();
            let duplicates: u64 = outcomes.iter().map(|d| d.duplicates).sum();
            assert_eq!((accepted, duplicates), (25, if i < 10 { 25 } else { 0 }), "batch {i}: {outcomes:?}");
            assert!(outcomes.iter().all(|d| d.accepted == 0 || d.duplicates == 0), "a batch is one side of a race");
        }
        assert!(logged(&store).await < 50, "commits were shared");
        let window = Window { size: BucketSize::Day, start: t("2026-11-24T00:00:00Z"), end: t("2026-11-25T00:00:00Z") };
        let r = assemble(window, Scope::Event(e).metrics(), &store.counts(Scope::Event(e), window).await.unwrap());
        assert_eq!((r.totals[metric::VIEWS], r.totals[metric::UNIQUE_VISITORS]), (1000, 97));
        assert_eq!(store.fact_count().await.unwrap(), 1000);
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
