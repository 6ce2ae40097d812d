//! Where events, their search index and registrations live: the [`EventStore`] trait and
//! its embedded SQLite backend.
//!
//! Every write is one transaction on the single writer connection, so the search index,
//! the seat counts and the outbox change together with the event, and capacity holds
//! exactly however many people register at once.
//!
//! Rooms: [`migrations`] (the schema), [`crud`] (the trait's SQLite implementation and
//! its rows), [`plan`] (what a search's evidence says about where its rows come from),
//! [`sql`] (a search's SQL from its plan), [`sources`] (outside sources and what they imported),
//! [`series`] (repeating events), [`webhooks`] (subscriptions and their deliveries).

mod crud;
mod migrations;
mod plan;
mod rank;
mod series;
mod sources;
mod sql;
mod webhooks;

pub use series::SeriesStore;
pub use sources::{Outcome, SourceStore};
pub use webhooks::{Attempt, AttemptOutcome, WebhookStore};

use crate::model::{AttendeeStatus, Event, EventInput, Registration, Status};
use crate::search::{Cursor, Search};
use async_trait::async_trait;
use kit::db::row::json as parse_json;
use kit::db::{Db, DbError};
use migrations::MIGRATIONS;
use plan::{Counts, evidence};
use rusqlite::types::ToSql;
use rusqlite::{Connection, params};
use sql::search_sql;
use std::path::Path;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// Too much of this kind of work is in hand already: try again shortly.
    #[error("{0}")]
    Busy(String),
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
            StoreError::NotFound => kit::ApiError::NotFound("no such event".into()),
            StoreError::Conflict(m) => kit::ApiError::Conflict(m),
            StoreError::Busy(m) => kit::ApiError::Unavailable(m),
            StoreError::Db(e) => e.into(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A registration and the event it is for.
#[derive(Debug, Clone)]
pub struct MyRegistration {
    pub registration: Registration,
    pub event: Event,
    /// Its ticket code, once issued.
    pub ticket: Option<String>,
}

/// Which of an event's registrations to list: arrival positions after `after`, at most
/// `limit`, of one status when given.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationFilter {
    pub status: Option<AttendeeStatus>,
    pub after: i64,
    pub limit: u32,
}

/// A registration as listed, with its arrival position (the list's order and cursor).
#[derive(Debug, Clone)]
pub struct Listed {
    pub position: i64,
    pub registration: Registration,
}

/// A reminder due: whose seat, at which event, starting when.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    pub event_id: Uuid,
    pub user_id: Uuid,
    pub start_at: i64,
}

impl Reminder {
    /// The notice's key: one reminder per seat and start (a moved event reminds again).
    pub fn key(&self) -> String {
        format!("reminder:{}:{}:{}", self.event_id, self.user_id, self.start_at)
    }
}

/// A check-in at the door.
#[derive(Debug, Clone)]
pub struct CheckedIn {
    pub registration: Registration,
    /// True when the registration had been checked in before (the call is idempotent).
    pub already: bool,
}

/// What registering led to.
#[derive(Debug, Clone)]
pub struct Registered {
    pub registration: Registration,
    /// False when the caller already held this place (the call is idempotent).
    pub created: bool,
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    async fn create(&self, input: EventInput, created_by: Uuid, now: i64) -> Result<Event>;
    /// Creates many events in one transaction (imports from outside sources, fixtures).
    async fn import(&self, events: Vec<(EventInput, Status)>, created_by: Uuid, now: i64) -> Result<Vec<Uuid>>;
    async fn get(&self, id: Uuid) -> Result<Option<Event>>;
    async fn update(&self, id: Uuid, input: EventInput, now: i64) -> Result<Event>;
    /// Publishes or cancels, recording the fact.
    async fn set_status(&self, id: Uuid, status: Status, now: i64) -> Result<Event>;
    async fn delete(&self, id: Uuid, now: i64) -> Result<()>;
    /// One page of a search, and the cursor of the next.
    async fn search(&self, search: Search, now: i64) -> Result<(Vec<Event>, Option<Cursor>)>;

    async fn register(&self, event_id: Uuid, user_id: Uuid, now: i64) -> Result<Registered>;
    /// Cancels the caller's place; a freed seat goes to the first of the waitlist.
    async fn cancel_registration(&self, event_id: Uuid, user_id: Uuid, now: i64) -> Result<Registration>;
    /// A page of the event's registrations, in arrival order.
    async fn registrations(&self, event_id: Uuid, filter: RegistrationFilter) -> Result<Vec<Listed>>;
    /// Marks a registered attendee present; a waitlisted or cancelled one is a conflict.
    async fn check_in(&self, event_id: Uuid, user_id: Uuid, now: i64) -> Result<CheckedIn>;
    /// The same, for whoever holds the ticket `code` (normalized) to this event.
    async fn check_in_by_ticket(&self, event_id: Uuid, code: String, now: i64) -> Result<CheckedIn>;
    /// The user's registration to the event, if they ever made one.
    async fn registration(&self, event_id: Uuid, user_id: Uuid) -> Result<Option<Registration>>;
    /// The user's registration and its ticket code (issued now for a registration from
    /// before tickets).
    async fn ticket(&self, event_id: Uuid, user_id: Uuid) -> Result<Option<(Registration, String)>>;
    /// The user's live registrations by the events' start, after `after` (start, event id),
    /// at most `limit` (all when `None`).
    async fn my_registrations(
        &self,
        user_id: Uuid,
        after: Option<(i64, Uuid)>,
        limit: Option<u32>,
    ) -> Result<Vec<MyRegistration>>;

    /// Stores the hash of a user's calendar feed token (replacing the old one).
    async fn set_calendar_token(&self, user_id: Uuid, hash: String) -> Result<()>;
    async fn calendar_owner(&self, hash: String) -> Result<Option<Uuid>>;
    /// Records `event.viewed` facts in one transaction.
    async fn record_views(&self, views: Vec<(Uuid, Option<Uuid>, i64)>) -> Result<()>;

    /// Seats to remind of their event: registered, not checked in, at published events
    /// starting in (`from`, `to`], taken before that window opened a day ahead, and not
    /// yet reminded of this start ([`Reminder::key`]). At most `limit`.
    async fn due_reminders(&self, from: i64, to: i64, limit: u32) -> Result<Vec<Reminder>>;

    async fn ping(&self) -> Result<()>;
}

/// Segments of the text index (see [`SqliteStore::search_index_segments`]).
const SEGMENTS: &str = "SELECT count(DISTINCT segid) FROM events_fts_idx";

/// The embedded backend: one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Db,
    counts: Counts,
    expensive: std::sync::Arc<plan::ExpensiveSearches>,
}

impl SqliteStore {
    /// The database handle, for the outbox relay.
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let store = Self {
            db: Db::open_with(path, MIGRATIONS, prepare_connection).await?,
            counts: Counts::default(),
            expensive: Default::default(),
        };
        store.backfill_terms().await?;
        Ok(store)
    }

    /// Fills `events.terms` and the relevance postings for events stored before they
    /// existed (or before the stems had counts), in batches of short write transactions;
    /// a database that has them all skips this in one lookup.
    async fn backfill_terms(&self) -> Result<()> {
        const BATCH: i64 = 2000;
        let mut after = 0;
        let mut filled = 0;
        loop {
            let (last, n) = self
                .db
                .write(move |tx| {
                    let rows: Vec<(i64, String)> = tx
                        // Named: left to itself SQLite walks the whole table by key (30 ms at
                        // 100,000 events, on every start) rather than the empty partial index.
                        .prepare_cached(
                            "SELECT seq, doc FROM events INDEXED BY events_without_terms \
                             WHERE terms IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
                        )?
                        .query_map([after, BATCH], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?;
                    for (seq, doc) in &rows {
                        let input: EventInput = parse_json(doc.clone())?;
                        let terms = crate::search::terms(&input.title, &input.description, &input.tags);
                        tx.prepare_cached("UPDATE events SET terms = ?2 WHERE seq = ?1")?
                            .execute(params![seq, terms])?;
                        crud::post_terms(tx, *seq, &terms)?;
                    }
                    Ok::<_, StoreError>((rows.last().map(|(seq, _)| *seq), rows.len()))
                })
                .await?;
            filled += n;
            match last {
                Some(seq) => after = seq,
                None => break,
            }
        }
        // Recounted after a refill, and when a refill ended before its recount did.
        let uncounted: bool = self
            .db
            .read(|c| {
                c.query_row(
                    "SELECT documents = 0 AND EXISTS (SELECT 1 FROM events WHERE terms IS NOT NULL) FROM search_stats",
                    [],
                    |r| r.get(0),
                )
                .map_err(StoreError::from)
            })
            .await?;
        if filled > 0 || uncounted {
            self.db.write(|tx| Ok::<_, StoreError>(crud::recount_terms(tx)?)).await?;
        }
        if filled > 0 {
            tracing::info!(events = filled, "filled the search terms of events stored before they existed");
        }
        Ok(())
    }

    /// Segments of the text index. Each search probe seeks once per segment, so their
    /// number, not the index size, sets what a probe costs (bench/search.sh).
    pub async fn search_index_segments(&self) -> Result<i64> {
        self.db.read(|c| Ok(c.query_row(SEGMENTS, [], |r| r.get(0))?)).await
    }

    /// Merges the text index toward one segment, writing about `pages` pages in one short
    /// write transaction, so writes wait only that long. Returns the segments left.
    pub async fn merge_search_index(&self, pages: i64) -> Result<i64> {
        // A negative budget merges across levels too: the incremental form of `optimize`.
        self.db
            .write(move |tx| {
                tx.execute("INSERT INTO events_fts (events_fts, rank) VALUES ('merge', ?1)", [-pages.max(1)])?;
                Ok(tx.query_row(SEGMENTS, [], |r| r.get(0))?)
            })
            .await
    }

    /// Merges the whole text index into one segment: after a bulk import.
    pub async fn optimize_search_index(&self) -> Result<()> {
        self.db
            .write(|tx| Ok(tx.execute("INSERT INTO events_fts (events_fts) VALUES ('optimize')", []).map(drop)?))
            .await
    }

    /// The SQL and SQLite's plan for a search: for tuning (`examples/probe.rs`).
    pub async fn explain(&self, search: Search, now: i64) -> Result<(String, Vec<String>)> {
        let counts = self.counts.clone();
        self.db
            .read(move |c| {
                let ev = evidence(c, &search, &counts)?;
                let (sql, params) = match search.sort {
                    crate::search::Sort::Relevance => rank::candidates(&search, now, &ev),
                    _ => search_sql(&search, now, &ev),
                };
                let refs: Vec<&dyn ToSql> = params.iter().map(|b| b.as_ref()).collect();
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let plan =
                    stmt.query_map(refs.as_slice(), |r| r.get::<_, String>(3))?.collect::<rusqlite::Result<_>>()?;
                Ok((sql, plan))
            })
            .await
    }
}

/// Each connection: the planner's stability guarantee and the distance function.
fn prepare_connection(c: &Connection) -> rusqlite::Result<()> {
    // A search's SQL is already shaped by its own evidence (`search_sql`). Without the
    // guarantee SQLite plans again from the bound values on every run of a statement whose
    // range parameters its statistics sample, a tenth of a search's time.
    c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    use rusqlite::functions::FunctionFlags;
    c.create_scalar_function(
        "distance_km",
        4,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let get = |i| ctx.get::<Option<f64>>(i);
            match (get(0)?, get(1)?, get(2)?, get(3)?) {
                (Some(a), Some(b), Some(c), Some(d)) => Ok(Some(crate::search::distance_km(a, b, c, d))),
                _ => Ok(None),
            }
        },
    )
}
