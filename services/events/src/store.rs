//! Where events, their search index and registrations live: the [`EventStore`] trait and
//! its embedded SQLite backend.
//!
//! Every write is one transaction on the single writer connection, so the search index,
//! the seat counts and the outbox change together with the event, and capacity holds
//! exactly however many people register at once.

use crate::model::{Event, EventInput, Registration, RegistrationStatus, Status};
use crate::search::{Cursor, Search, Sort};
use async_trait::async_trait;
use kit::db::row::{json as parse_json, to_json, uuid as parse_uuid};
use kit::db::{Db, DbError, Migrations};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
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
            StoreError::Db(e) => kit::ApiError::internal(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A registration and the event it is for.
#[derive(Debug, Clone)]
pub struct MyRegistration {
    pub registration: Registration,
    pub event: Event,
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
    async fn registrations(&self, event_id: Uuid) -> Result<Vec<Registration>>;
    async fn check_in(&self, event_id: Uuid, user_id: Uuid, now: i64) -> Result<Registration>;
    async fn my_registrations(&self, user_id: Uuid) -> Result<Vec<MyRegistration>>;

    /// Stores the hash of a user's calendar feed token (replacing the old one).
    async fn set_calendar_token(&self, user_id: Uuid, hash: String) -> Result<()>;
    async fn calendar_owner(&self, hash: String) -> Result<Option<Uuid>>;
    /// Records `event.viewed` facts in one transaction.
    async fn record_views(&self, views: Vec<(Uuid, Option<Uuid>, i64)>) -> Result<()>;

    async fn ping(&self) -> Result<()>;
}

const MIGRATIONS: Migrations = &[
    r#"
CREATE TABLE events (
    seq              INTEGER PRIMARY KEY,   -- the search index's rowid; never on the wire
    id               TEXT NOT NULL UNIQUE,
    organization_id  TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    doc              TEXT NOT NULL,         -- the organizer's input, as JSON
    title            TEXT NOT NULL,
    start_at         INTEGER NOT NULL,
    end_at           INTEGER NOT NULL,
    format           TEXT NOT NULL,
    city_key         TEXT,                  -- lower-cased venue city
    latitude         REAL,
    longitude        REAL,
    category         TEXT,
    is_free          INTEGER NOT NULL,
    capacity         INTEGER,
    status           TEXT NOT NULL,
    visibility       TEXT NOT NULL,
    registered_count INTEGER NOT NULL DEFAULT 0,
    waitlisted_count INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    published_at     INTEGER
);
CREATE INDEX events_listed_by_start ON events (status, visibility, start_at);
CREATE INDEX events_by_end ON events (end_at);
CREATE INDEX events_by_city ON events (city_key, start_at);
CREATE INDEX events_by_latitude ON events (latitude);
CREATE INDEX events_by_organization ON events (organization_id, start_at);
CREATE INDEX events_by_category ON events (category, start_at);
CREATE INDEX events_by_popularity ON events (registered_count DESC, seq);

CREATE TABLE event_tags (
    tag       TEXT NOT NULL,
    event_seq INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    PRIMARY KEY (tag, event_seq)
) WITHOUT ROWID;
CREATE INDEX event_tags_by_event ON event_tags (event_seq);

-- Stems of title, description and tags (see search.rs). Contentless: the text lives in
-- `events.doc`; rowid is `events.seq`.
CREATE VIRTUAL TABLE events_fts USING fts5 (terms, content = '', contentless_delete = 1, tokenize = 'unicode61');

CREATE TABLE registrations (
    event_id      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    status        TEXT NOT NULL,
    position      INTEGER NOT NULL,    -- arrival order: the waitlist is served by it
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    checked_in_at INTEGER,
    PRIMARY KEY (event_id, user_id)
);
CREATE INDEX registrations_queue ON registrations (event_id, status, position);
CREATE INDEX registrations_by_user ON registrations (user_id, created_at);

CREATE TABLE calendar_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL UNIQUE
);
"#,
    kit::outbox::TABLE,
    r#"
-- Document frequency of each stem: the search planner's evidence (see `search_sql`).
CREATE VIRTUAL TABLE events_fts_vocab USING fts5vocab (events_fts, 'row');
-- Venues as points in an R*Tree, so a radius search reads only its bounding box.
CREATE VIRTUAL TABLE events_geo USING rtree (seq, min_lat, max_lat, min_lon, max_lon);
INSERT INTO events_geo SELECT seq, latitude, latitude, longitude, longitude FROM events WHERE latitude IS NOT NULL;
-- The longest event ever stored: a window query may skip events starting earlier than
-- `from - max_duration`, which turns "ends after from" into an index range.
CREATE TABLE search_stats (id INTEGER PRIMARY KEY CHECK (id = 1), max_duration INTEGER NOT NULL);
INSERT INTO search_stats SELECT 1, COALESCE(MAX(end_at - start_at), 0) FROM events;
"#,
    kit::outbox::DELIVERY_TABLE,
    r#"
-- The distinct stems of an event's text, space-separated with a space at each end: a
-- search walking an index checks its words on the row (`instr`) instead of probing the
-- text index per row. Filled by the store (stemming is Rust); see `backfill_terms`.
ALTER TABLE events ADD COLUMN terms TEXT;
CREATE INDEX events_without_terms ON events (seq) WHERE terms IS NULL;

-- Search postings of listed (published, public) events: one row per event and value of
-- each equality filter, in start order. A search walks its rarest filter's postings in
-- the order it returns and seeks the others by primary key, so it reads about
-- `limit ÷ selectivity` postings however large the corpus, and the event row only for
-- rows that pass. Kept by the triggers below, so no write path can forget them.
CREATE TABLE event_facets (
    facet    TEXT NOT NULL,      -- 'city:kazan', 'category:concert', 'tag:music', 'free:1', ...
    start_at INTEGER NOT NULL,
    seq      INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    end_at   INTEGER NOT NULL,
    PRIMARY KEY (facet, start_at, seq)
) WITHOUT ROWID;
CREATE INDEX event_facets_by_event ON event_facets (seq);

CREATE VIEW event_facet_values (seq, facet) AS
          SELECT seq, 'city:' || city_key FROM events WHERE city_key IS NOT NULL
UNION ALL SELECT seq, 'category:' || category FROM events WHERE category IS NOT NULL
UNION ALL SELECT seq, 'format:' || format FROM events
UNION ALL SELECT seq, 'free:' || is_free FROM events
UNION ALL SELECT seq, 'organization:' || organization_id FROM events
UNION ALL SELECT event_seq, 'tag:' || tag FROM event_tags;

CREATE TRIGGER event_facets_on_insert AFTER INSERT ON events
WHEN new.status = 'published' AND new.visibility = 'public' BEGIN
    INSERT OR IGNORE INTO event_facets SELECT facet, new.start_at, new.seq, new.end_at
    FROM event_facet_values WHERE seq = new.seq;
END;
CREATE TRIGGER event_facets_on_update
AFTER UPDATE OF status, visibility, start_at, end_at, city_key, category, format, is_free, organization_id ON events
BEGIN
    DELETE FROM event_facets WHERE seq = old.seq;
    INSERT OR IGNORE INTO event_facets SELECT facet, new.start_at, new.seq, new.end_at
    FROM event_facet_values WHERE seq = new.seq AND new.status = 'published' AND new.visibility = 'public';
END;
CREATE TRIGGER event_facets_on_tag AFTER INSERT ON event_tags BEGIN
    INSERT OR IGNORE INTO event_facets SELECT 'tag:' || new.tag, start_at, seq, end_at
    FROM events WHERE seq = new.event_seq AND status = 'published' AND visibility = 'public';
END;
CREATE TRIGGER event_facets_on_untag AFTER DELETE ON event_tags BEGIN
    DELETE FROM event_facets WHERE seq = old.event_seq AND +facet = 'tag:' || old.tag;
END;
INSERT INTO event_facets SELECT v.facet, e.start_at, e.seq, e.end_at
FROM event_facet_values v JOIN events e ON e.seq = v.seq WHERE e.status = 'published' AND e.visibility = 'public';

-- Listed events in start order, with what a walk checks before reading the row: the end
-- (ongoing events) and the coordinates (a radius).
DROP INDEX events_listed_by_start;
CREATE INDEX events_listed ON events (start_at, seq, end_at, latitude, longitude)
WHERE status = 'published' AND visibility = 'public';
"#,
];

/// Segments of the text index (see [`SqliteStore::search_index_segments`]).
const SEGMENTS: &str = "SELECT count(DISTINCT segid) FROM events_fts_idx";

/// The page cache of an import, in SQLite's negative-means-KiB form: 512 MiB.
const IMPORT_CACHE_SIZE: i64 = -512 * 1024;

/// The embedded backend: one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Db,
    counts: Counts,
}

impl SqliteStore {
    /// The database handle, for the outbox relay.
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let store = Self { db: Db::open_with(path, MIGRATIONS, prepare_connection).await?, counts: Counts::default() };
        store.backfill_terms().await?;
        Ok(store)
    }

    /// Fills `events.terms` for events stored before the column existed, in batches of
    /// short write transactions; a database that has them all skips this in one lookup.
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
                let (sql, params) = search_sql(&search, now, &ev);
                let refs: Vec<&dyn ToSql> = params.iter().map(|b| b.as_ref()).collect();
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let plan =
                    stmt.query_map(refs.as_slice(), |r| r.get::<_, String>(3))?.collect::<rusqlite::Result<_>>()?;
                Ok((sql, plan))
            })
            .await
    }
}

const COLUMNS: &str = "e.id, e.doc, e.status, e.registered_count, e.waitlisted_count, e.created_by, e.created_at, \
                       e.updated_at, e.published_at";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    event_from_offset(r, 0)
}

fn get_event(c: &Connection, id: Uuid) -> rusqlite::Result<Option<Event>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM events e WHERE e.id = ?1"))?
        .query_row([id.to_string()], event_from_row)
        .optional()
}

fn require(c: &Connection, id: Uuid) -> Result<Event> {
    get_event(c, id)?.ok_or(StoreError::NotFound)
}

/// The columns derived from an event's input, in the order of [`DERIVED_COLUMNS`].
fn derived(input: &EventInput) -> [rusqlite::types::Value; 13] {
    use rusqlite::types::Value;
    let venue = input.venue.as_ref();
    let text = |s: Option<String>| s.map_or(Value::Null, Value::Text);
    let real = |x: Option<f64>| x.map_or(Value::Null, Value::Real);
    [
        Value::Text(to_json(input)),
        Value::Text(input.title.clone()),
        Value::Integer(input.start.as_second()),
        Value::Integer(input.end.as_second()),
        Value::Text(input.format.as_str().to_owned()),
        text(venue.map(|v| v.city.to_lowercase())),
        real(venue.and_then(|v| v.latitude)),
        real(venue.and_then(|v| v.longitude)),
        text(input.category.clone()),
        Value::Integer(input.price.is_none().into()),
        input.capacity.map_or(Value::Null, |c| Value::Integer(c.into())),
        Value::Text(input.visibility.as_str().to_owned()),
        Value::Text(crate::search::terms(&input.title, &input.description, &input.tags)),
    ]
}

const DERIVED_COLUMNS: [&str; 13] = [
    "doc",
    "title",
    "start_at",
    "end_at",
    "format",
    "city_key",
    "latitude",
    "longitude",
    "category",
    "is_free",
    "capacity",
    "visibility",
    "terms",
];

/// Rewrites the columns derived from the input, the tags and the search indexes of an
/// existing event.
fn reindex(tx: &Transaction<'_>, seq: i64, input: &EventInput) -> rusqlite::Result<()> {
    static UPDATE: LazyLock<String> = LazyLock::new(|| {
        let set: Vec<String> = DERIVED_COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 2)).collect();
        format!("UPDATE events SET {} WHERE seq = ?1", set.join(", "))
    });
    let values = derived(input);
    let params = std::iter::once(&seq as &dyn ToSql).chain(values.iter().map(|v| v as &dyn ToSql)).collect::<Vec<_>>();
    tx.prepare_cached(&UPDATE)?.execute(&params[..])?;
    tx.prepare_cached("DELETE FROM event_tags WHERE event_seq = ?1")?.execute([seq])?;
    tx.prepare_cached("DELETE FROM events_geo WHERE seq = ?1")?.execute([seq])?;
    tx.prepare_cached("DELETE FROM events_fts WHERE rowid = ?1")?.execute([seq])?;
    index_beside(tx, seq, input)
}

/// The tags and the search indexes of one event, kept beside its row. Only for an event
/// with none yet: a delete from a contentless FTS5 table leaves a tombstone even when
/// there was no row, so a fresh event skips the removals of [`reindex`].
fn index_beside(tx: &Transaction<'_>, seq: i64, input: &EventInput) -> rusqlite::Result<()> {
    for tag in &input.tags {
        tx.prepare_cached("INSERT OR IGNORE INTO event_tags (tag, event_seq) VALUES (?1, ?2)")?
            .execute(params![tag, seq])?;
    }
    if let Some((lat, lon)) = input.venue.as_ref().and_then(|v| Some((v.latitude?, v.longitude?))) {
        tx.prepare_cached("INSERT INTO events_geo VALUES (?1, ?2, ?2, ?3, ?3)")?.execute(params![seq, lat, lon])?;
    }
    tx.prepare_cached("UPDATE search_stats SET max_duration = max(max_duration, ?1)")?
        .execute([input.end.as_second() - input.start.as_second()])?;
    let doc = crate::search::document(&input.title, &input.description, &input.tags);
    tx.prepare_cached("INSERT INTO events_fts (rowid, terms) VALUES (?1, ?2)")?.execute(params![seq, doc])?;
    Ok(())
}

/// A new event: its whole row in one insert (each secondary index written once), then
/// what is kept beside it.
fn insert(
    tx: &Transaction<'_>,
    input: &EventInput,
    status: Status,
    created_by: Uuid,
    now: i64,
) -> rusqlite::Result<Uuid> {
    let id = Uuid::new_v4();
    let published_at = (status == Status::Published).then_some(now);
    let (id_text, organization, creator) = (id.to_string(), input.organization_id.to_string(), created_by.to_string());
    let values = derived(input);
    let own: [&dyn ToSql; 6] = [&id_text, &organization, &creator, &status.as_str(), &now, &published_at];
    let params = values.iter().map(|v| v as &dyn ToSql).chain(own).collect::<Vec<_>>();
    static INSERT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO events ({}, id, organization_id, created_by, status, created_at, updated_at, published_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18, ?19)",
            DERIVED_COLUMNS.join(", ")
        )
    });
    tx.prepare_cached(&INSERT)?.execute(&params[..])?;
    index_beside(tx, tx.last_insert_rowid(), input)?;
    Ok(id)
}

fn seq_of(c: &Connection, id: Uuid) -> Result<i64> {
    c.prepare_cached("SELECT seq FROM events WHERE id = ?1")?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)
}

fn registration_from_row(r: &Row<'_>) -> rusqlite::Result<Registration> {
    let status: String = r.get(2)?;
    let status = RegistrationStatus::parse(&status).unwrap_or(RegistrationStatus::Cancelled);
    let ahead: Option<u32> = r.get(5)?;
    Ok(Registration {
        event_id: parse_uuid(r.get(0)?)?,
        user_id: parse_uuid(r.get(1)?)?,
        status,
        waitlist_position: (status == RegistrationStatus::Waitlisted).then(|| ahead.unwrap_or(0) + 1),
        created_at: kit::rfc3339(r.get(3)?),
        checked_in_at: r.get::<_, Option<i64>>(4)?.map(kit::rfc3339),
    })
}

/// Registration columns, with the number of people ahead in the waitlist.
const REGISTRATION_COLUMNS: &str = "r.event_id, r.user_id, r.status, r.created_at, r.checked_in_at,
     (SELECT count(*) FROM registrations w
       WHERE w.event_id = r.event_id AND w.status = 'waitlisted' AND w.position < r.position)";

fn get_registration(c: &Connection, event_id: Uuid, user_id: Uuid) -> rusqlite::Result<Option<Registration>> {
    c.prepare_cached(&format!(
        "SELECT {REGISTRATION_COLUMNS} FROM registrations r WHERE r.event_id = ?1 AND r.user_id = ?2"
    ))?
    .query_row([event_id.to_string(), user_id.to_string()], registration_from_row)
    .optional()
}

/// Records a fact about `event` with its organization (while the event exists), so
/// analytics can count it towards the organization.
fn fact(tx: &Transaction<'_>, kind: &str, event: Uuid, user: Option<Uuid>, now: i64) -> rusqlite::Result<()> {
    let organization = organization_of(tx, event)?;
    fact_of(tx, kind, event, organization.as_deref(), user, now)
}

/// A fact about `event` of a known `organization`.
fn fact_of(
    tx: &Transaction<'_>,
    kind: &str,
    event: Uuid,
    organization: Option<&str>,
    user: Option<Uuid>,
    now: i64,
) -> rusqlite::Result<()> {
    let payload = json!({ "event_id": event, "organization_id": organization, "user_id": user });
    kit::outbox::record(tx, kind, &payload, now)
}

fn organization_of(tx: &Transaction<'_>, event: Uuid) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT organization_id FROM events WHERE id = ?1")?
        .query_row([event.to_string()], |r| r.get(0))
        .optional()
}

/// Whether a set of matching events (the text matches, the venues in a radius's box, the
/// events holding every tag) should drive a search: each fetched by key, then sorted. The
/// alternative walks the requested order and checks each row; it reads about
/// `limit × corpus ÷ matches` rows before a page fills. So the set drives while
/// `matches² ≤ limit × corpus × walked ÷ fetched`, the last factor being what checking a
/// walked row costs against fetching a match (measured with examples/probe.rs: about 1
/// when the walk reads the row, 1/15 when the walked index holds what it checks).
fn drives(matches: f64, corpus: i64, limit: i64, walked_per_fetched: f64) -> bool {
    matches * matches <= limit as f64 * corpus.max(1) as f64 * walked_per_fetched
}

/// A walked index entry that holds the coordinates (`events_listed`) against a venue
/// fetched from the R*Tree and sorted.
const GEO_WALKED_PER_FETCHED: f64 = 1.0 / 15.0;

/// What the planner knows before writing the SQL.
struct Evidence {
    /// Estimated events matching the text query, and the tags (`None`: not asked).
    text: Option<f64>,
    tags: Option<f64>,
    /// Venues in the radius's bounding box, counted up to just past where they stop driving.
    geo: Option<i64>,
    /// The postings of each equality filter of a listed search, rarest first.
    facets: Vec<(String, i64)>,
    corpus: i64,
    max_duration: i64,
}

/// Ranking a very common word by relevance scores only this many of its matches that
/// pass the filters, the most recently created first: scoring every match costs time in
/// proportion to the corpus, and a word in half the corpus barely ranks anything. Search
/// engines do the same (Typesense stops early unless asked to be exhaustive).
pub const RELEVANCE_WINDOW: i64 = 1000;

/// Whether a text query's matches are ranked over [`RELEVANCE_WINDOW`] rather than all of
/// them, with or without other filters: reading a match and its row costs about a
/// microsecond, so the whole set is ranked up to a bound that grows with the square root
/// of the corpus (10,000 matches at 100,000 events).
pub fn ranked_over_window(matches: f64, corpus: i64) -> bool {
    matches > (corpus.max(1) as f64 * 1000.0).sqrt().max(2000.0)
}

/// Matches of several independent conditions, from each one's count: `N · Π(countᵢ / N)`.
fn combined(counts: &[i64], corpus: i64) -> f64 {
    let n = corpus.max(1) as f64;
    counts.iter().fold(n, |acc, &c| acc * (c as f64 / n))
}

/// Counts the planner needs only roughly (a stem's documents, a filter value's postings),
/// remembered for a while: counting a common one walks its whole list, about a
/// millisecond per 50,000 entries.
#[derive(Clone, Debug, Default)]
struct Counts(Arc<Mutex<HashMap<String, (i64, Instant)>>>);

impl Counts {
    const FRESH_FOR: Duration = Duration::from_secs(30);
    const CAPACITY: usize = 10_000;

    fn get(&self, key: String, count: impl FnOnce() -> rusqlite::Result<i64>) -> rusqlite::Result<i64> {
        let remembered = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied();
        if let Some((n, at)) = remembered
            && at.elapsed() < Self::FRESH_FOR
        {
            return Ok(n);
        }
        let n = count()?;
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::CAPACITY {
            map.retain(|_, (_, at)| at.elapsed() < Self::FRESH_FOR);
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
        }
        map.insert(key, (n, Instant::now()));
        Ok(n)
    }

    fn term(&self, c: &Connection, term: &str) -> rusqlite::Result<i64> {
        self.get(format!("term {term}"), || {
            Ok(c.prepare_cached("SELECT doc FROM events_fts_vocab WHERE term = ?1")?
                .query_row([term], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        })
    }

    /// Postings of a filter value, counted up to a bound: past it only "common" matters.
    fn facet(&self, c: &Connection, facet: &str) -> rusqlite::Result<i64> {
        self.get(format!("facet {facet}"), || {
            c.prepare_cached("SELECT count(*) FROM (SELECT 1 FROM event_facets WHERE facet = ?1 LIMIT 200000)")?
                .query_row([facet], |r| r.get(0))
        })
    }
}

/// The equality filters of a search as posting keys (see the `event_facets` table).
fn facets_of(s: &Search) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(s.city.as_ref().map(|c| format!("city:{c}")));
    out.extend(s.category.as_ref().map(|c| format!("category:{c}")));
    out.extend(s.format.map(|f| format!("format:{}", f.as_str())));
    out.extend(s.free.map(|f| format!("free:{}", i64::from(f))));
    out.extend(s.organization_id.map(|o| format!("organization:{o}")));
    out.extend(s.tags.iter().map(|t| format!("tag:{t}")));
    out
}

fn evidence(c: &Connection, s: &Search, counts: &Counts) -> rusqlite::Result<Evidence> {
    let max_duration =
        c.prepare_cached("SELECT max_duration FROM search_stats")?.query_row([], |r| r.get(0)).optional()?;
    // The largest rowid is the corpus size closely enough, and costs one index seek.
    let corpus: i64 = c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?.query_row([], |r| r.get(0))?;
    let limit = s.limit as i64 + 1;
    let text = match &s.fts {
        None => None,
        Some(fts) => {
            let mut n = Vec::new();
            for term in fts.split(' ').map(|t| t.trim_matches('"')) {
                n.push(counts.term(c, term)?);
            }
            Some(combined(&n, corpus))
        }
    };
    let tags = if s.tags.is_empty() {
        None
    } else {
        let mut n = Vec::new();
        for tag in &s.tags {
            n.push(counts.get(format!("tag {tag}"), || {
                c.prepare_cached("SELECT count(*) FROM event_tags WHERE tag = ?1")?.query_row([tag], |r| r.get(0))
            })?);
        }
        Some(combined(&n, corpus))
    };
    let geo = match s.near {
        None => None,
        Some((lat, lon, radius)) => {
            let (lat_lo, lat_hi, lon_lo, lon_hi) = crate::search::bounding_box(lat, lon, radius);
            let enough = (limit as f64 * corpus as f64 * GEO_WALKED_PER_FETCHED).sqrt() as i64 + 1;
            Some(
                c.prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM events_geo \
                     WHERE min_lat >= ?1 AND max_lat <= ?2 AND min_lon >= ?3 AND max_lon <= ?4 LIMIT ?5)",
                )?
                .query_row(params![lat_lo, lat_hi, lon_lo, lon_hi, enough], |r| r.get(0))?,
            )
        }
    };
    let mut facets = Vec::new();
    if s.statuses.is_none() && s.sort != Sort::Relevance {
        for facet in facets_of(s) {
            let n = counts.facet(c, &facet)?;
            facets.push((facet, n));
        }
        facets.sort_by_key(|(_, n)| *n);
    }
    Ok(Evidence { text, tags, geo, facets, corpus, max_duration: max_duration.unwrap_or(0) })
}

/// Where a search's rows come from, cheapest first by the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Few text matches: they are fetched by key and sorted.
    Text,
    /// Few venues in the radius's box: from the R*Tree, fetched and sorted.
    Geo,
    /// Few events hold every tag: the tag index intersects them.
    Tags,
    /// Walk the rarest filter's postings in start order (a listed search by start).
    Facets,
    /// Walk an index of the events table in the requested order (or SQLite's choice).
    Events,
}

fn source(s: &Search, ev: &Evidence) -> Source {
    let limit = s.limit as i64 + 1;
    let rarest_facet = ev.facets.first().map_or(f64::INFINITY, |(_, n)| *n as f64);
    let text = ev.text.filter(|&n| drives(n, ev.corpus, limit, 1.0) && n < rarest_facet);
    let geo =
        ev.geo.map(|n| n as f64).filter(|&n| drives(n, ev.corpus, limit, GEO_WALKED_PER_FETCHED) && n < rarest_facet);
    let tags = ev.tags.filter(|&n| drives(n, ev.corpus, limit, 1.0));
    // In start order the postings are walked in the order asked, however many; for
    // popularity they are read whole and sorted, so only when few.
    let facets = match s.sort {
        Sort::Start => !ev.facets.is_empty(),
        _ => ev.facets.first().is_some_and(|(_, n)| drives(*n as f64, ev.corpus, limit, 1.0)),
    };
    match (text, geo) {
        (Some(t), Some(g)) if g < t => Source::Geo,
        (Some(_), _) => Source::Text,
        (None, Some(_)) => Source::Geo,
        _ if facets => Source::Facets,
        _ if tags.is_some() => Source::Tags,
        _ => Source::Events,
    }
}

/// The SQL and parameters of a search. Filters are ANDed; see [`source`] for where the
/// rows come from. The text index serves relevance (bm25 computed only for rows that pass
/// the other filters; for a very common word, over the newest [`RELEVANCE_WINDOW`] that
/// pass) and rare words (their matches drive); any other text match
/// is checked on the row, against its stems (`events.terms`).
fn search_sql(s: &Search, now: i64, ev: &Evidence) -> (String, Vec<Box<dyn ToSql>>) {
    let mut p: Vec<Box<dyn ToSql>> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let relevance = s.sort == Sort::Relevance;
    let source = if relevance { Source::Events } else { source(s, ev) };
    // `k` holds the sort key: the postings walked, or the event row itself.
    let (mut from, k) = match source {
        Source::Facets => (String::from(" FROM event_facets k CROSS JOIN events e ON e.seq = k.seq"), "k"),
        // Walk by popularity and check each row: a page fills after `limit ÷ selectivity`
        // rows, where SQLite would rather read a filter's whole range and sort it.
        Source::Events if s.sort == Sort::Popularity && s.statuses.is_none() => {
            (String::from(" FROM events e INDEXED BY events_by_popularity"), "e")
        }
        _ => (String::from(" FROM events e"), "e"),
    };
    // Relevance over a window: the filtered, newest matches in a subquery, ranked outside.
    let windowed = relevance && ev.text.is_some_and(|n| ranked_over_window(n, ev.corpus));
    let mut needles = Vec::new();
    if let Some(fts) = &s.fts {
        if relevance {
            from = " FROM events_fts JOIN events e ON e.seq = events_fts.rowid".into();
            conds.push("events_fts MATCH ?".into());
            p.push(Box::new(fts.clone()));
        } else if source == Source::Text {
            conds.push("e.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)".into());
            p.push(Box::new(fts.clone()));
        } else {
            needles = crate::search::term_needles(fts);
        }
    }
    let mut facets: &[(String, i64)] = &[];
    if source == Source::Facets {
        // Postings exist only for listed events: the status needs no check.
        conds.push(format!("{k}.facet = ?"));
        p.push(Box::new(ev.facets[0].0.clone()));
        facets = &ev.facets[1..];
    } else {
        // Popularity walks its own index; the listing index would need a sort of everything.
        let unindexed = if s.sort == Sort::Popularity { "+" } else { "" };
        match &s.statuses {
            None => conds.push(format!("{unindexed}e.status = 'published' AND {unindexed}e.visibility = 'public'")),
            Some(statuses) if !statuses.is_empty() => {
                let list: Vec<String> = statuses.iter().map(|st| format!("'{}'", st.as_str())).collect();
                conds.push(format!("{unindexed}e.status IN ({})", list.join(", ")));
            }
            Some(_) => {}
        }
    }
    // Upcoming and ongoing events unless the caller asks for another window.
    let window_from = s.from.unwrap_or(now);
    conds.push(format!("{k}.end_at >= ? AND {k}.start_at >= ?"));
    p.push(Box::new(window_from));
    p.push(Box::new(window_from.saturating_sub(ev.max_duration)));
    if let Some(to) = s.to {
        conds.push(format!("{k}.start_at < ?"));
        p.push(Box::new(to));
    }
    match s.after {
        Some(Cursor::Start(start, seq)) => {
            conds.push(format!("({k}.start_at, {k}.seq) > (?, ?)"));
            p.push(Box::new(start));
            p.push(Box::new(seq));
        }
        Some(Cursor::Popularity(count, seq)) => {
            conds.push("(e.registered_count < ? OR (e.registered_count = ? AND e.seq > ?))".into());
            p.push(Box::new(count));
            p.push(Box::new(count));
            p.push(Box::new(seq));
        }
        Some(Cursor::Offset(_)) | None => {}
    }
    // The other postings, each one primary-key seek, before the event row is read.
    for (facet, _) in facets {
        conds.push(format!(
            "EXISTS (SELECT 1 FROM event_facets f WHERE f.facet = ? AND f.start_at = {k}.start_at AND f.seq = {k}.seq)"
        ));
        p.push(Box::new(facet.clone()));
    }
    if source != Source::Facets {
        if let Some(city) = &s.city {
            conds.push("e.city_key = ?".into());
            p.push(Box::new(city.clone()));
        }
        if let Some(category) = &s.category {
            conds.push("e.category = ?".into());
            p.push(Box::new(category.clone()));
        }
        if let Some(org) = s.organization_id {
            conds.push("e.organization_id = ?".into());
            p.push(Box::new(org.to_string()));
        }
        if let Some(format) = s.format {
            conds.push("e.format = ?".into());
            p.push(Box::new(format.as_str()));
        }
        if let Some(free) = s.free {
            conds.push("e.is_free = ?".into());
            p.push(Box::new(free));
        }
    }
    if let Some((lat, lon, radius)) = s.near {
        let (lat_lo, lat_hi, lon_lo, lon_hi) = crate::search::bounding_box(lat, lon, radius);
        conds.push(if source == Source::Geo {
            "e.seq IN (SELECT seq FROM events_geo WHERE min_lat >= ? AND max_lat <= ? AND min_lon >= ? AND max_lon <= ?) \
             AND distance_km(e.latitude, e.longitude, ?, ?) <= ?"
                .into()
        } else {
            // Checked on the walked row (`events_listed` holds the coordinates).
            "+e.latitude >= ? AND +e.latitude <= ? AND +e.longitude >= ? AND +e.longitude <= ? \
             AND distance_km(e.latitude, e.longitude, ?, ?) <= ?"
                .into()
        });
        for v in [lat_lo, lat_hi, lon_lo, lon_hi, lat, lon, radius] {
            p.push(Box::new(v));
        }
    }
    if source == Source::Tags {
        let sets = vec!["SELECT event_seq FROM event_tags WHERE tag = ?"; s.tags.len()];
        conds.push(format!("e.seq IN ({})", sets.join(" INTERSECT ")));
        for tag in &s.tags {
            p.push(Box::new(tag.clone()));
        }
    } else if source != Source::Facets {
        for tag in &s.tags {
            conds.push("EXISTS (SELECT 1 FROM event_tags t WHERE t.tag = ? AND t.event_seq = e.seq)".into());
            p.push(Box::new(tag.clone()));
        }
    }
    for needle in needles {
        conds.push("instr(e.terms, ?) > 0".into());
        p.push(Box::new(needle));
    }
    let order = match s.sort {
        Sort::Start => format!("{k}.start_at, {k}.seq"),
        Sort::Popularity => "e.registered_count DESC, e.seq".into(),
        Sort::Relevance => "bm25(events_fts), e.seq".into(),
    };
    let conds = conds.join(" AND ");
    let offset = match s.after {
        Some(Cursor::Offset(n)) => n,
        _ => 0,
    };
    let page = format!("LIMIT {} OFFSET {offset}", s.limit + 1);
    // The sort key columns come first (for the next page's cursor); one row more than
    // asked tells whether there is a next page.
    let sql = if windowed {
        format!(
            "SELECT e.start_at, e.registered_count, e.seq, {COLUMNS} FROM \
             (SELECT events_fts.rowid AS hit, bm25(events_fts) AS score{from} WHERE {conds} \
              ORDER BY events_fts.rowid DESC LIMIT {RELEVANCE_WINDOW}) w \
             JOIN events e ON e.seq = w.hit ORDER BY w.score, e.seq {page}"
        )
    } else {
        format!("SELECT e.start_at, e.registered_count, e.seq, {COLUMNS}{from} WHERE {conds} ORDER BY {order} {page}")
    };
    (sql, p)
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

#[async_trait]
impl EventStore for SqliteStore {
    async fn create(&self, input: EventInput, created_by: Uuid, now: i64) -> Result<Event> {
        self.db
            .write(move |tx| {
                let id = insert(tx, &input, Status::Draft, created_by, now)?;
                require(tx, id)
            })
            .await
    }

    async fn import(&self, events: Vec<(EventInput, Status)>, created_by: Uuid, now: i64) -> Result<Vec<Uuid>> {
        self.db
            .write(move |tx| {
                // Imports touch index pages all over the file (random ids, starts, cities);
                // once those outgrow the page cache every insert waits on a read. A bigger
                // cache for the import only, given back afterwards.
                let cache: i64 = tx.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
                tx.execute_batch(&format!("PRAGMA cache_size = {IMPORT_CACHE_SIZE}"))?;
                let mut ids = Vec::with_capacity(events.len());
                let inserted = events.iter().try_for_each(|(input, status)| {
                    ids.push(insert(tx, input, *status, created_by, now)?);
                    if *status == Status::Published {
                        fact(tx, "event.published", ids[ids.len() - 1], None, now)?;
                    }
                    Ok::<_, StoreError>(())
                });
                tx.execute_batch(&format!("PRAGMA cache_size = {cache}"))?;
                inserted.map(|()| ids)
            })
            .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Event>> {
        self.db.read(move |c| Ok(get_event(c, id)?)).await
    }

    async fn update(&self, id: Uuid, input: EventInput, now: i64) -> Result<Event> {
        self.db
            .write(move |tx| {
                let seq = seq_of(tx, id)?;
                let capacity: Option<u32> = input.capacity;
                let registered: u32 =
                    tx.query_row("SELECT registered_count FROM events WHERE seq = ?1", [seq], |r| r.get(0))?;
                if capacity.is_some_and(|c| c < registered) {
                    return Err(StoreError::Conflict(format!(
                        "{registered} people are registered; capacity cannot go below that"
                    )));
                }
                reindex(tx, seq, &input)?;
                tx.execute("UPDATE events SET updated_at = ?2 WHERE seq = ?1", params![seq, now])?;
                require(tx, id)
            })
            .await
    }

    async fn set_status(&self, id: Uuid, status: Status, now: i64) -> Result<Event> {
        self.db
            .write(move |tx| {
                let event = require(tx, id)?;
                match (event.status, status) {
                    (Status::Draft, Status::Published) => {
                        tx.execute(
                            "UPDATE events SET status = 'published', published_at = ?2, updated_at = ?2 WHERE id = ?1",
                            params![id.to_string(), now],
                        )?;
                        fact(tx, "event.published", id, None, now)?;
                    }
                    (Status::Draft | Status::Published, Status::Cancelled) => {
                        tx.execute(
                            "UPDATE events SET status = 'cancelled', updated_at = ?2 WHERE id = ?1",
                            params![id.to_string(), now],
                        )?;
                        fact(tx, "event.cancelled", id, None, now)?;
                    }
                    (from, to) if from == to => {}
                    (from, to) => {
                        return Err(StoreError::Conflict(format!(
                            "a {} event cannot become {}",
                            from.as_str(),
                            to.as_str()
                        )));
                    }
                }
                require(tx, id)
            })
            .await
    }

    async fn delete(&self, id: Uuid, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                let seq = seq_of(tx, id)?;
                // Before the row goes: the fact names the event's organization.
                fact(tx, "event.deleted", id, None, now)?;
                tx.execute("DELETE FROM events_fts WHERE rowid = ?1", [seq])?;
                tx.execute("DELETE FROM events_geo WHERE seq = ?1", [seq])?;
                tx.execute("DELETE FROM registrations WHERE event_id = ?1", [id.to_string()])?;
                tx.execute("DELETE FROM events WHERE seq = ?1", [seq])?;
                Ok(())
            })
            .await
    }

    async fn search(&self, search: Search, now: i64) -> Result<(Vec<Event>, Option<Cursor>)> {
        let counts = self.counts.clone();
        self.db
            .read(move |c| {
                let ev = evidence(c, &search, &counts)?;
                let (sql, params) = search_sql(&search, now, &ev);
                let mut stmt = c.prepare_cached(&sql)?;
                let refs: Vec<&dyn ToSql> = params.iter().map(|b| b.as_ref()).collect();
                let rows = stmt.query_map(refs.as_slice(), |r| {
                    let key: (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                    // Shift past the three key columns to read the event itself.
                    Ok((key, event_from_offset(r, 3)?))
                })?;
                let mut page = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                let limit = search.limit as usize;
                let next = if page.len() > limit {
                    page.truncate(limit);
                    let (start, registered, seq) = page[limit - 1].0;
                    Some(match search.sort {
                        Sort::Start => Cursor::Start(start, seq),
                        Sort::Popularity => Cursor::Popularity(registered, seq),
                        Sort::Relevance => {
                            let done = match search.after {
                                Some(Cursor::Offset(n)) => n,
                                _ => 0,
                            };
                            Cursor::Offset(done + search.limit)
                        }
                    })
                } else {
                    None
                };
                Ok((page.into_iter().map(|(_, e)| e).collect(), next))
            })
            .await
    }

    async fn register(&self, event_id: Uuid, user_id: Uuid, now: i64) -> Result<Registered> {
        self.db
            .write(move |tx| {
                let (status, capacity, registered, end_at): (String, Option<u32>, u32, i64) = tx
                    .query_row(
                        "SELECT status, capacity, registered_count, end_at FROM events WHERE id = ?1",
                        [event_id.to_string()],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?
                    .ok_or(StoreError::NotFound)?;
                if status != "published" {
                    return Err(StoreError::Conflict("registration is open only for published events".into()));
                }
                if end_at <= now {
                    return Err(StoreError::Conflict("this event is over".into()));
                }
                if let Some(existing) = get_registration(tx, event_id, user_id)?
                    && existing.status != RegistrationStatus::Cancelled
                {
                    return Ok(Registered { registration: existing, created: false });
                }
                let seat = capacity.is_none_or(|c| registered < c);
                let new_status = if seat { RegistrationStatus::Registered } else { RegistrationStatus::Waitlisted };
                let position: i64 = tx.query_row(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM registrations WHERE event_id = ?1",
                    [event_id.to_string()],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO registrations (event_id, user_id, status, position, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT (event_id, user_id) DO UPDATE SET status = ?3, position = ?4, updated_at = ?5,
                                                                   checked_in_at = NULL",
                    params![event_id.to_string(), user_id.to_string(), new_status.as_str(), position, now],
                )?;
                let counter = if seat { "registered_count" } else { "waitlisted_count" };
                tx.execute(
                    &format!("UPDATE events SET {counter} = {counter} + 1 WHERE id = ?1"),
                    [event_id.to_string()],
                )?;
                let kind = if seat { "registration.made" } else { "registration.waitlisted" };
                fact(tx, kind, event_id, Some(user_id), now)?;
                let registration = get_registration(tx, event_id, user_id)?.ok_or(StoreError::NotFound)?;
                Ok(Registered { registration, created: true })
            })
            .await
    }

    async fn cancel_registration(&self, event_id: Uuid, user_id: Uuid, now: i64) -> Result<Registration> {
        self.db
            .write(move |tx| {
                let current = get_registration(tx, event_id, user_id)?
                    .filter(|r| r.status != RegistrationStatus::Cancelled)
                    .ok_or(StoreError::NotFound)?;
                tx.execute(
                    "UPDATE registrations SET status = 'cancelled', updated_at = ?3 WHERE event_id = ?1 AND user_id = ?2",
                    params![event_id.to_string(), user_id.to_string(), now],
                )?;
                fact(tx, "registration.cancelled", event_id, Some(user_id), now)?;
                if current.status == RegistrationStatus::Waitlisted {
                    tx.execute("UPDATE events SET waitlisted_count = waitlisted_count - 1 WHERE id = ?1", [event_id.to_string()])?;
                } else {
                    tx.execute("UPDATE events SET registered_count = registered_count - 1 WHERE id = ?1", [event_id.to_string()])?;
                    // The freed seat goes to whoever has waited longest.
                    let next: Option<String> = tx
                        .query_row(
                            "SELECT user_id FROM registrations WHERE event_id = ?1 AND status = 'waitlisted'
                             ORDER BY position LIMIT 1",
                            [event_id.to_string()],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(next) = next {
                        tx.execute(
                            "UPDATE registrations SET status = 'registered', updated_at = ?3 WHERE event_id = ?1 AND user_id = ?2",
                            params![event_id.to_string(), next, now],
                        )?;
                        tx.execute(
                            "UPDATE events SET registered_count = registered_count + 1, waitlisted_count = waitlisted_count - 1
                             WHERE id = ?1",
                            [event_id.to_string()],
                        )?;
                        fact(tx, "registration.promoted", event_id, Some(parse_uuid(next)?), now)?;
                    }
                }
                get_registration(tx, event_id, user_id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn registrations(&self, event_id: Uuid) -> Result<Vec<Registration>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {REGISTRATION_COLUMNS} FROM registrations r WHERE r.event_id = ?1 ORDER BY r.position"
                ))?;
                let rows = stmt.query_map([event_id.to_string()], registration_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn check_in(&self, event_id: Uuid, user_id: Uuid, now: i64) -> Result<Registration> {
        self.db
            .write(move |tx| {
                let current = get_registration(tx, event_id, user_id)?.ok_or(StoreError::NotFound)?;
                if current.status != RegistrationStatus::Registered {
                    return Err(StoreError::Conflict("only registered attendees can check in".into()));
                }
                if current.checked_in_at.is_none() {
                    tx.execute(
                        "UPDATE registrations SET checked_in_at = ?3, updated_at = ?3 WHERE event_id = ?1 AND user_id = ?2",
                        params![event_id.to_string(), user_id.to_string(), now],
                    )?;
                    fact(tx, "registration.checked_in", event_id, Some(user_id), now)?;
                }
                get_registration(tx, event_id, user_id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn my_registrations(&self, user_id: Uuid) -> Result<Vec<MyRegistration>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {REGISTRATION_COLUMNS}, {COLUMNS} FROM registrations r JOIN events e ON e.id = r.event_id
                     WHERE r.user_id = ?1 AND r.status != 'cancelled' ORDER BY e.start_at"
                ))?;
                let rows = stmt.query_map([user_id.to_string()], |r| {
                    Ok(MyRegistration { registration: registration_from_row(r)?, event: event_from_offset(r, 6)? })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn set_calendar_token(&self, user_id: Uuid, hash: String) -> Result<()> {
        self.db
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO calendar_tokens (token_hash, user_id) VALUES (?1, ?2)
                     ON CONFLICT (user_id) DO UPDATE SET token_hash = ?1",
                    params![hash, user_id.to_string()],
                )?;
                Ok(())
            })
            .await
    }

    async fn calendar_owner(&self, hash: String) -> Result<Option<Uuid>> {
        self.db
            .read(move |c| {
                let id: Option<String> = c
                    .prepare_cached("SELECT user_id FROM calendar_tokens WHERE token_hash = ?1")?
                    .query_row([hash], |r| r.get(0))
                    .optional()?;
                Ok(id.map(parse_uuid).transpose()?)
            })
            .await
    }

    async fn record_views(&self, views: Vec<(Uuid, Option<Uuid>, i64)>) -> Result<()> {
        self.db
            .write(move |tx| {
                // A batch is mostly a few popular events: look each one's organization up once.
                let mut organizations = std::collections::HashMap::new();
                for (event, user, at) in views {
                    let organization = match organizations.entry(event) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => e.insert(organization_of(tx, event)?),
                    };
                    fact_of(tx, "event.viewed", event, organization.as_deref(), user, at)?;
                }
                Ok(())
            })
            .await
    }

    async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }
}

/// Reads an event whose columns start at `offset` of the row.
fn event_from_offset(r: &Row<'_>, offset: usize) -> rusqlite::Result<Event> {
    let status: String = r.get(offset + 2)?;
    Ok(Event {
        id: parse_uuid(r.get(offset)?)?,
        input: parse_json(r.get(offset + 1)?)?,
        status: Status::parse(&status).unwrap_or(Status::Draft),
        registered: r.get(offset + 3)?,
        waitlisted: r.get(offset + 4)?,
        created_by: parse_uuid(r.get(offset + 5)?)?,
        created_at: r.get(offset + 6)?,
        updated_at: r.get(offset + 7)?,
        published_at: r.get(offset + 8)?,
    })
}
