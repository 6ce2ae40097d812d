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
];

/// Segments of the text index (see [`SqliteStore::search_index_segments`]).
const SEGMENTS: &str = "SELECT count(DISTINCT segid) FROM events_fts_idx";

/// The page cache of an import, in SQLite's negative-means-KiB form: 512 MiB.
const IMPORT_CACHE_SIZE: i64 = -512 * 1024;

/// The embedded backend: one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Db,
    frequencies: TermFrequencies,
}

impl SqliteStore {
    /// The database handle, for the outbox relay.
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            db: Db::open_with(path, MIGRATIONS, register_distance_function).await?,
            frequencies: TermFrequencies::default(),
        })
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
        let frequencies = self.frequencies.clone();
        self.db
            .read(move |c| {
                let ev = evidence(c, &search, &frequencies)?;
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
fn derived(input: &EventInput) -> [rusqlite::types::Value; 12] {
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
    ]
}

const DERIVED_COLUMNS: [&str; 12] = [
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17, ?18)",
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

/// Above this many matching events, a set (text or tag matches) is checked row by row while
/// walking the requested order; below it, the matches are fetched and sorted. Walking
/// costs about `limit / selectivity` probes, fetching about `matches` lookups, so the
/// crossover grows with the square root of the corpus (measured: bench/search.sh).
fn walk_threshold(corpus: i64) -> i64 {
    ((corpus.max(1) as f64 * 1000.0).sqrt() as i64).max(2000)
}

/// What the planner knows before writing the SQL.
struct Evidence {
    /// Estimated events matching the text query, and the tags (`None`: not asked).
    text: Option<f64>,
    tags: Option<f64>,
    /// Venues in the radius's bounding box, counted up to just past the walk threshold.
    geo: Option<i64>,
    corpus: i64,
    max_duration: i64,
}

/// How a set of matching events (from the text index or the tag index) joins a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetPlan {
    /// Few matches: they drive (each looked up by key, then sorted).
    Drive,
    /// Many matches, and another filter's index to walk: the matches become a set that
    /// each walked row is checked against (`+` keeps SQLite from driving by it).
    Filter,
    /// Many matches: walk the requested order (or another filter's index) and probe the
    /// set per row; a page fills after about `limit ÷ share of matches` probes, long
    /// before the matches run out. A probe is one seek per index segment, microseconds
    /// while background merging keeps the segments few.
    Probe,
}

fn set_plan(estimate: f64, corpus: i64) -> SetPlan {
    if estimate <= walk_threshold(corpus) as f64 { SetPlan::Drive } else { SetPlan::Probe }
}

/// For text matches next to another selective filter: probing costs about
/// `limit · corpus ÷ matches` seeks of ~6.5 µs, building the set `matches` reads of
/// ~0.1 µs; the set wins below `√(65 · limit · corpus)` matches (bench/search.sh).
fn filtered_text_plan(estimate: f64, corpus: i64, limit: i64) -> SetPlan {
    match set_plan(estimate, corpus) {
        SetPlan::Probe if estimate * estimate <= 65.0 * limit as f64 * corpus as f64 => SetPlan::Filter,
        plan => plan,
    }
}

/// Ranking a very common word by relevance scores only this many of its matches that
/// pass the filters, the most recently created first: scoring every match costs time in
/// proportion to the corpus, and a word in half the corpus barely ranks anything. Search
/// engines do the same (Typesense stops early unless asked to be exhaustive).
pub const RELEVANCE_WINDOW: i64 = 1000;

/// Matches of several independent conditions, from each one's count: `N · Π(countᵢ / N)`.
fn combined(counts: &[i64], corpus: i64) -> f64 {
    let n = corpus.max(1) as f64;
    counts.iter().fold(n, |acc, &c| acc * (c as f64 / n))
}

/// Document frequencies of stems, remembered for a while: counting a common stem's
/// documents walks its whole posting list (about a millisecond per 50,000), and the
/// planner needs only an estimate.
#[derive(Clone, Debug, Default)]
struct TermFrequencies(Arc<Mutex<HashMap<String, (i64, Instant)>>>);

impl TermFrequencies {
    const FRESH_FOR: Duration = Duration::from_secs(30);
    const CAPACITY: usize = 10_000;

    fn get(&self, c: &Connection, term: &str) -> rusqlite::Result<i64> {
        let remembered = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(term).copied();
        if let Some((df, at)) = remembered
            && at.elapsed() < Self::FRESH_FOR
        {
            return Ok(df);
        }
        let df: i64 = c
            .prepare_cached("SELECT doc FROM events_fts_vocab WHERE term = ?1")?
            .query_row([term], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= Self::CAPACITY {
            map.retain(|_, (_, at)| at.elapsed() < Self::FRESH_FOR);
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
        }
        map.insert(term.to_owned(), (df, Instant::now()));
        Ok(df)
    }
}

fn evidence(c: &Connection, s: &Search, frequencies: &TermFrequencies) -> rusqlite::Result<Evidence> {
    let max_duration =
        c.prepare_cached("SELECT max_duration FROM search_stats")?.query_row([], |r| r.get(0)).optional()?;
    // The largest rowid is the corpus size closely enough, and costs one index seek.
    let corpus: i64 = c.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?.query_row([], |r| r.get(0))?;
    let text = match &s.fts {
        None => None,
        Some(fts) => {
            let mut counts = Vec::new();
            for term in fts.split(' ').map(|t| t.trim_matches('"')) {
                counts.push(frequencies.get(c, term)?);
            }
            Some(combined(&counts, corpus))
        }
    };
    let tag_counts = if s.tags.is_empty() {
        None
    } else {
        let mut counts = Vec::new();
        for tag in &s.tags {
            counts.push(
                c.prepare_cached("SELECT count(*) FROM event_tags WHERE tag = ?1")?.query_row([tag], |r| r.get(0))?,
            );
        }
        Some(counts)
    };
    let geo = match s.near {
        None => None,
        Some((lat, lon, radius)) => {
            let (lat_lo, lat_hi, lon_lo, lon_hi) = crate::search::bounding_box(lat, lon, radius);
            Some(
                c.prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM events_geo \
                     WHERE min_lat >= ?1 AND max_lat <= ?2 AND min_lon >= ?3 AND max_lon <= ?4 LIMIT ?5)",
                )?
                .query_row(params![lat_lo, lat_hi, lon_lo, lon_hi, walk_threshold(corpus) + 1], |r| r.get(0))?,
            )
        }
    };
    Ok(Evidence {
        text,
        tags: tag_counts.map(|counts| combined(&counts, corpus)),
        geo,
        corpus,
        max_duration: max_duration.unwrap_or(0),
    })
}

/// The SQL and parameters of a search. Filters are ANDed. The text index is used one of
/// four ways, by what the evidence says is cheapest:
/// - relevance: joined, so bm25 is computed only for rows that pass the other filters;
///   for a very common word with nothing else selective, over [`RELEVANCE_WINDOW`] rows;
/// - a rare word: its matches drive (each looked up by key, then sorted);
/// - a common word: walk the requested order, or the index of another filter, and probe
///   the text index per row; a page fills long before the matches run out.
fn search_sql(s: &Search, now: i64, ev: &Evidence) -> (String, Vec<Box<dyn ToSql>>) {
    let mut p: Vec<Box<dyn ToSql>> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let mut from = String::from(" FROM events e");
    // Per-row checks against another index go last, cheapest first (a tag is one primary
    // key seek, a text probe one seek per segment), so most rows fail a column filter
    // before paying for them.
    let mut tag_probes: &[String] = &[];
    let mut text_probe: Option<&String> = None;
    let selective =
        s.city.is_some() || s.near.is_some() || s.category.is_some() || s.organization_id.is_some() || s.to.is_some();
    let text_plan = s.fts.as_ref().map(|_| match selective {
        true => filtered_text_plan(ev.text.unwrap_or(0.0), ev.corpus, s.limit as i64),
        false => set_plan(ev.text.unwrap_or(0.0), ev.corpus),
    });
    // Relevance over a window: the filtered, newest matches in a subquery, ranked outside.
    let windowed = s.sort == Sort::Relevance && text_plan == Some(SetPlan::Probe) && !selective && s.tags.is_empty();
    if let Some(fts) = &s.fts {
        let cond = match text_plan {
            _ if s.sort == Sort::Relevance => {
                from = " FROM events_fts JOIN events e ON e.seq = events_fts.rowid".into();
                Some("events_fts MATCH ?")
            }
            Some(SetPlan::Filter) => Some("+e.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"),
            Some(SetPlan::Drive) => Some("e.seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)"),
            _ => None,
        };
        match cond {
            Some(cond) => {
                conds.push(cond.into());
                p.push(Box::new(fts.clone()));
            }
            None => text_probe = Some(fts),
        }
    }
    // Popularity walks its own index; the status index would need a sort of everything.
    let unindexed = if s.sort == Sort::Popularity { "+" } else { "" };
    match &s.statuses {
        None => conds.push(format!("{unindexed}e.status = 'published' AND {unindexed}e.visibility = 'public'")),
        Some(statuses) if !statuses.is_empty() => {
            let list: Vec<String> = statuses.iter().map(|st| format!("'{}'", st.as_str())).collect();
            conds.push(format!("{unindexed}e.status IN ({})", list.join(", ")));
        }
        Some(_) => {}
    }
    // Upcoming and ongoing events unless the caller asks for another window.
    let window_from = s.from.unwrap_or(now);
    conds.push("e.end_at >= ? AND e.start_at >= ?".into());
    p.push(Box::new(window_from));
    p.push(Box::new(window_from.saturating_sub(ev.max_duration)));
    if let Some(to) = s.to {
        conds.push("e.start_at < ?".into());
        p.push(Box::new(to));
    }
    if let Some(city) = &s.city {
        conds.push("e.city_key = ?".into());
        p.push(Box::new(city.clone()));
    }
    if let Some((lat, lon, radius)) = s.near {
        let (lat_lo, lat_hi, lon_lo, lon_hi) = crate::search::bounding_box(lat, lon, radius);
        // Few venues in the box: they drive, from the R*Tree. Many (a city centre): walk
        // the requested order and check each row's coordinates, which fills a page sooner.
        conds.push(if ev.geo.unwrap_or(0) <= walk_threshold(ev.corpus) {
            "e.seq IN (SELECT seq FROM events_geo WHERE min_lat >= ? AND max_lat <= ? AND min_lon >= ? AND max_lon <= ?) \
             AND distance_km(e.latitude, e.longitude, ?, ?) <= ?"
                .into()
        } else {
            "+e.latitude >= ? AND +e.latitude <= ? AND +e.longitude >= ? AND +e.longitude <= ? \
             AND distance_km(e.latitude, e.longitude, ?, ?) <= ?"
                .into()
        });
        for v in [lat_lo, lat_hi, lon_lo, lon_hi, lat, lon, radius] {
            p.push(Box::new(v));
        }
    }
    if !s.tags.is_empty() {
        let text_drives = s.sort == Sort::Relevance || text_plan == Some(SetPlan::Drive);
        // Few events hold every tag (by independent counts): the tag index intersects
        // them (a merge of sorted ranges) and that set drives. Otherwise, or when rows come
        // from elsewhere, each row's tags are checked.
        let few = ev.tags.is_some_and(|n| set_plan(n, ev.corpus) == SetPlan::Drive);
        if few && !text_drives {
            let sets = vec!["SELECT event_seq FROM event_tags WHERE tag = ?"; s.tags.len()];
            conds.push(format!("e.seq IN ({})", sets.join(" INTERSECT ")));
            for tag in &s.tags {
                p.push(Box::new(tag.clone()));
            }
        } else {
            tag_probes = &s.tags;
        }
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
    let mut offset = 0;
    match s.after {
        Some(Cursor::Start(start, seq)) => {
            conds.push("(e.start_at, e.seq) > (?, ?)".into());
            p.push(Box::new(start));
            p.push(Box::new(seq));
        }
        Some(Cursor::Popularity(count, seq)) => {
            conds.push("(e.registered_count < ? OR (e.registered_count = ? AND e.seq > ?))".into());
            p.push(Box::new(count));
            p.push(Box::new(count));
            p.push(Box::new(seq));
        }
        Some(Cursor::Offset(n)) => offset = n,
        None => {}
    }
    for tag in tag_probes {
        conds.push("EXISTS (SELECT 1 FROM event_tags t WHERE t.tag = ? AND t.event_seq = e.seq)".into());
        p.push(Box::new(tag.clone()));
    }
    if let Some(fts) = text_probe {
        conds.push("EXISTS (SELECT 1 FROM events_fts WHERE events_fts MATCH ? AND rowid = e.seq)".into());
        p.push(Box::new(fts.clone()));
    }
    let order = match s.sort {
        Sort::Start => "e.start_at, e.seq",
        Sort::Popularity => "e.registered_count DESC, e.seq",
        Sort::Relevance => "bm25(events_fts), e.seq",
    };
    let conds = conds.join(" AND ");
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

fn register_distance_function(c: &Connection) -> rusqlite::Result<()> {
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
        let frequencies = self.frequencies.clone();
        self.db
            .read(move |c| {
                let ev = evidence(c, &search, &frequencies)?;
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
