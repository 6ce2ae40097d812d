//! The events schema, one migration per step; a migration once released never changes.

use kit::db::Migrations;

pub(super) const MIGRATIONS: Migrations = &[
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
    r#"
-- Outside sources an organization imports events from (see import/). `doc` is the
-- admin's input as JSON, `status` what the last syncs did; the lease keeps one sync of a
-- source at a time however many replicas run.
CREATE TABLE sources (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    doc             TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    status          TEXT NOT NULL,
    failed          INTEGER NOT NULL DEFAULT 0,
    etag            TEXT,
    last_modified   TEXT,
    next_run_at     INTEGER NOT NULL,
    lease_holder    TEXT,
    lease_until     INTEGER,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX sources_by_organization ON sources (organization_id, created_at);
CREATE INDEX sources_due ON sources (next_run_at) WHERE enabled = 1;

-- What each source imported, by the item's id in the source. `event_id` is NULL once the
-- organization deleted the event (it is not imported again); a detached event is the
-- organization's own and syncs leave it alone.
CREATE TABLE imported_events (
    source_id   TEXT NOT NULL,
    external_id TEXT NOT NULL,
    event_id    TEXT,
    detached    INTEGER NOT NULL DEFAULT 0,
    sequence    INTEGER NOT NULL DEFAULT 0,
    modified    INTEGER,
    PRIMARY KEY (source_id, external_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX imported_events_by_event ON imported_events (event_id) WHERE event_id IS NOT NULL;
"#,
    r#"
-- Tickets: an unguessable code per registration, shown at the door. Rows from before
-- tickets get theirs when the attendee first asks for it.
ALTER TABLE registrations ADD COLUMN ticket TEXT;
CREATE UNIQUE INDEX registrations_by_ticket ON registrations (ticket) WHERE ticket IS NOT NULL;
-- The attendee list, page by page in arrival order.
CREATE INDEX registrations_in_order ON registrations (event_id, position);
"#,
    kit::notify::TABLES,
    super::webhooks::TABLES,
    super::series::TABLES,
    r#"
-- Relevance postings: each event's stems with how often each occurs (tf) and the event's
-- length in words (len), in key order. Within one stem and one tf, an event's BM25 share
-- falls as len grows, so merging a stem's few tf runs, each walked by len, yields its
-- events best first, and a ranked page reads about `limit ÷ selectivity` postings
-- however common the stem. Kept by the store (stemming is Rust), from `events.terms`.
CREATE TABLE event_terms (
    term TEXT NOT NULL,
    tf   INTEGER NOT NULL,
    len  INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (term, tf, len, seq)
) WITHOUT ROWID;
-- The corpus statistics of BM25: events with stems, and their words in all.
ALTER TABLE search_stats ADD COLUMN documents INTEGER NOT NULL DEFAULT 0;
ALTER TABLE search_stats ADD COLUMN words INTEGER NOT NULL DEFAULT 0;
-- `terms` gains counts (` stem:count `): refilled by the store on open, with the postings.
UPDATE events SET terms = NULL;

-- Postings of the commonest pair of filters, a category in a city ("concerts in Kazan"):
-- walked alone, they spare a probe of the other filter's postings for every walked event.
DROP VIEW event_facet_values;
CREATE VIEW event_facet_values (seq, facet) AS
          SELECT seq, 'city:' || city_key FROM events WHERE city_key IS NOT NULL
UNION ALL SELECT seq, 'category:' || category FROM events WHERE category IS NOT NULL
UNION ALL SELECT seq, 'category+city:' || json_array(category, city_key) FROM events
          WHERE category IS NOT NULL AND city_key IS NOT NULL
UNION ALL SELECT seq, 'format:' || format FROM events
UNION ALL SELECT seq, 'free:' || is_free FROM events
UNION ALL SELECT seq, 'organization:' || organization_id FROM events
UNION ALL SELECT event_seq, 'tag:' || tag FROM event_tags;
INSERT OR IGNORE INTO event_facets SELECT 'category+city:' || json_array(category, city_key), start_at, seq, end_at
FROM events WHERE category IS NOT NULL AND city_key IS NOT NULL AND status = 'published' AND visibility = 'public';
"#,
];
