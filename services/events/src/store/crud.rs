//! The [`EventStore`] trait on SQLite: events, registrations, calendars and views, each
//! write one transaction.

use super::plan::evidence;
use super::sql::search_sql;
use super::{
    CheckedIn, EventStore, Listed, MyRegistration, Registered, RegistrationFilter, Reminder, Result, SqliteStore,
    StoreError,
};
use crate::model::recurrence::{Recurrence, SeriesMember};
use crate::model::source::EventSource;
use crate::model::{AttendeeStatus, Event, EventInput, Registration, RegistrationStatus, Status};
use crate::search::{Cursor, Search, Sort};
use crate::ticket;
use async_trait::async_trait;
use kit::db::row::{json as parse_json, to_json, uuid as parse_uuid};
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::json;
use std::sync::LazyLock;
use uuid::Uuid;

/// The page cache of an import, in SQLite's negative-means-KiB form: 512 MiB.
const IMPORT_CACHE_SIZE: i64 = -512 * 1024;

pub(super) const COLUMNS: &str = "e.id, e.doc, e.status, e.registered_count, e.waitlisted_count, e.created_by, e.created_at, \
                       e.updated_at, e.published_at, \
                       (SELECT json_array(i.source_id, i.external_id, i.detached) FROM imported_events i WHERE i.event_id = e.id), \
                       (SELECT json_array(m.series_id, m.occurrence, m.edited, json_extract(s.doc, '$.recurrence')) \
                        FROM series_members m JOIN event_series s ON s.id = m.series_id WHERE m.event_id = e.id)";

pub(super) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    event_from_offset(r, 0)
}

pub(super) fn get_event(c: &Connection, id: Uuid) -> rusqlite::Result<Option<Event>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM events e WHERE e.id = ?1"))?
        .query_row([id.to_string()], event_from_row)
        .optional()
}

pub(super) fn require(c: &Connection, id: Uuid) -> Result<Event> {
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

/// The `terms` of [`derived`] values.
fn terms_of(values: &[rusqlite::types::Value; 13]) -> &str {
    match &values[12] {
        rusqlite::types::Value::Text(terms) => terms,
        _ => "",
    }
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
pub(super) fn reindex(tx: &Transaction<'_>, seq: i64, input: &EventInput) -> rusqlite::Result<()> {
    static UPDATE: LazyLock<String> = LazyLock::new(|| {
        let set: Vec<String> = DERIVED_COLUMNS.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 2)).collect();
        format!("UPDATE events SET {} WHERE seq = ?1", set.join(", "))
    });
    let values = derived(input);
    let old_terms = stored_terms(tx, seq)?;
    let params = std::iter::once(&seq as &dyn ToSql).chain(values.iter().map(|v| v as &dyn ToSql)).collect::<Vec<_>>();
    tx.prepare_cached(&UPDATE)?.execute(&params[..])?;
    index_terms(tx, seq, old_terms.as_deref(), Some(terms_of(&values)))?;
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

/// The stems an event's row holds (`None` before they were filled).
pub(super) fn stored_terms(tx: &Transaction<'_>, seq: i64) -> rusqlite::Result<Option<String>> {
    Ok(tx
        .prepare_cached("SELECT terms FROM events WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?
        .flatten())
}

/// Moves an event's relevance postings (`event_terms`) and its share of the corpus
/// statistics from the stems it had to the stems it has; `None` on either side is an
/// event without any (a new one, or a deleted one).
pub(super) fn index_terms(
    tx: &Transaction<'_>,
    seq: i64,
    old: Option<&str>,
    new: Option<&str>,
) -> rusqlite::Result<()> {
    let mut documents = 0;
    let mut words = 0;
    if let Some(old) = old {
        let len = crate::search::terms_len(old);
        for (term, tf) in crate::search::term_counts(old) {
            tx.prepare_cached("DELETE FROM event_terms WHERE term = ?1 AND tf = ?2 AND len = ?3 AND seq = ?4")?
                .execute(params![term, tf, len, seq])?;
        }
        documents -= 1;
        words -= i64::from(len);
    }
    if let Some(new) = new {
        post_terms(tx, seq, new)?;
        documents += 1;
        words += i64::from(crate::search::terms_len(new));
    }
    tx.prepare_cached("UPDATE search_stats SET documents = documents + ?1, words = words + ?2")?
        .execute([documents, words])?;
    Ok(())
}

/// Writes the relevance postings of an event's stems (the statistics are the caller's).
pub(super) fn post_terms(tx: &Transaction<'_>, seq: i64, terms: &str) -> rusqlite::Result<()> {
    let len = crate::search::terms_len(terms);
    for (term, tf) in crate::search::term_counts(terms) {
        tx.prepare_cached("INSERT OR IGNORE INTO event_terms (term, tf, len, seq) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![term, tf, len, seq])?;
    }
    Ok(())
}

/// Counts BM25's corpus statistics afresh from the events and their postings.
pub(super) fn recount_terms(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE search_stats SET documents = (SELECT count(*) FROM events WHERE terms IS NOT NULL), \
         words = (SELECT COALESCE(sum(tf), 0) FROM event_terms)",
        [],
    )
    .map(drop)
}

/// A new event: its whole row in one insert (each secondary index written once), then
/// what is kept beside it.
pub(super) fn insert(
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
    let seq = tx.last_insert_rowid();
    index_beside(tx, seq, input)?;
    index_terms(tx, seq, None, Some(terms_of(&values)))?;
    Ok(id)
}

/// A row of a page: the sort key columns (for the next page's cursor), then the event.
fn page_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<((i64, i64, i64), Event)> {
    let key: (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
    // Shift past the three key columns to read the event itself.
    Ok((key, event_from_offset(r, 3)?))
}

pub(super) fn seq_of(c: &Connection, id: Uuid) -> Result<i64> {
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

/// Marks a registered attendee present, once.
fn check_in(tx: &Transaction<'_>, event_id: Uuid, user_id: Uuid, now: i64) -> Result<CheckedIn> {
    let current = get_registration(tx, event_id, user_id)?.ok_or(StoreError::NotFound)?;
    if current.status != RegistrationStatus::Registered {
        return Err(StoreError::Conflict(format!(
            "only registered attendees can check in; this one is {}",
            current.status.as_str()
        )));
    }
    let already = current.checked_in_at.is_some();
    if !already {
        tx.execute(
            "UPDATE registrations SET checked_in_at = ?3, updated_at = ?3 WHERE event_id = ?1 AND user_id = ?2",
            params![event_id.to_string(), user_id.to_string(), now],
        )?;
        fact(tx, "registration.checked_in", event_id, Some(user_id), now)?;
    }
    let registration = get_registration(tx, event_id, user_id)?.ok_or(StoreError::NotFound)?;
    Ok(CheckedIn { registration, already })
}

/// Records a fact about `event` with its organization (while the event exists), so
/// analytics can count it towards the organization.
pub(super) fn fact(
    tx: &Transaction<'_>,
    kind: &str,
    event: Uuid,
    user: Option<Uuid>,
    now: i64,
) -> rusqlite::Result<()> {
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

/// Records `event.changed` when an event people may be registered for moved in time or
/// place (what its attendees are told about); other edits are not news to them.
pub(super) fn changed(tx: &Transaction<'_>, before: &Event, after: &Event, now: i64) -> rusqlite::Result<()> {
    let (was, is) = (&before.input, &after.input);
    let time_changed = (was.start, was.end) != (is.start, is.end);
    let place_changed = was.venue != is.venue || was.online_url != is.online_url;
    if !time_changed && !place_changed {
        return Ok(());
    }
    let payload = json!({
        "event_id": after.id, "organization_id": is.organization_id, "user_id": null,
        "time_changed": time_changed, "place_changed": place_changed,
    });
    kit::outbox::record(tx, "event.changed", &payload, now)
}

fn organization_of(tx: &Transaction<'_>, event: Uuid) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT organization_id FROM events WHERE id = ?1")?
        .query_row([event.to_string()], |r| r.get(0))
        .optional()
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
                let before = require(tx, id)?;
                reindex(tx, seq, &input)?;
                tx.execute("UPDATE events SET updated_at = ?2 WHERE seq = ?1", params![seq, now])?;
                super::series::member_edited(tx, id)?;
                let after = require(tx, id)?;
                if after.status == Status::Published {
                    changed(tx, &before, &after, now)?;
                }
                Ok(after)
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
                super::series::member_deleted(tx, id, now)?;
                tx.execute("DELETE FROM events_fts WHERE rowid = ?1", [seq])?;
                index_terms(tx, seq, stored_terms(tx, seq)?.as_deref(), None)?;
                tx.execute("DELETE FROM events_geo WHERE seq = ?1", [seq])?;
                tx.execute("DELETE FROM registrations WHERE event_id = ?1", [id.to_string()])?;
                // An imported event the organization deleted stays out of later syncs.
                tx.execute("UPDATE imported_events SET event_id = NULL WHERE event_id = ?1", [id.to_string()])?;
                tx.execute("DELETE FROM events WHERE seq = ?1", [seq])?;
                Ok(())
            })
            .await
    }

    async fn search(&self, search: Search, now: i64) -> Result<(Vec<Event>, Option<Cursor>)> {
        let (counts, asked) = (self.counts.clone(), search.clone());
        let ev = self.db.read(move |c| Ok::<_, StoreError>(evidence(c, &asked, &counts)?)).await?;
        // An expensive plan waits for its turn, holding no reader while it waits.
        let turn = match ev.is_expensive(&search) {
            true => Some(self.expensive.turn().await.ok_or_else(|| {
                StoreError::Busy("too many searches for very common words are running; try again shortly".into())
            })?),
            false => None,
        };
        self.db
            .read(move |c| {
                // Held until the query is done, even if the request is given up meanwhile.
                let _turn = turn;
                // One snapshot for every statement of the search: a ranking reads postings,
                // batches and rows in turns, and an event deleted or moved between them
                // must not fail the search or show twice.
                let snapshot = c.unchecked_transaction()?;
                let c: &Connection = &snapshot;
                let mut page = match search.sort {
                    Sort::Relevance => {
                        static BY_SEQ: LazyLock<String> = LazyLock::new(|| {
                            format!(
                                "SELECT e.start_at, e.registered_count, e.seq, {COLUMNS} FROM events e WHERE e.seq = ?1"
                            )
                        });
                        let seqs = super::rank::page(c, &search, now, &ev)?;
                        let mut stmt = c.prepare_cached(&BY_SEQ)?;
                        let mut page = Vec::with_capacity(seqs.len());
                        for seq in seqs {
                            page.push(stmt.query_row([seq], page_row)?);
                        }
                        page
                    }
                    _ => {
                        let (sql, params) = search_sql(&search, now, &ev);
                        let mut stmt = c.prepare_cached(&sql)?;
                        let refs: Vec<&dyn ToSql> = params.iter().map(|b| b.as_ref()).collect();
                        stmt.query_map(refs.as_slice(), page_row)?.collect::<rusqlite::Result<Vec<_>>>()?
                    }
                };
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
                // Coming back after cancelling keeps the ticket already printed.
                tx.execute(
                    "INSERT INTO registrations (event_id, user_id, status, position, created_at, updated_at, ticket)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
                     ON CONFLICT (event_id, user_id) DO UPDATE SET status = ?3, position = ?4, created_at = ?5,
                                                                   updated_at = ?5, checked_in_at = NULL,
                                                                   ticket = COALESCE(ticket, ?6)",
                    params![
                        event_id.to_string(),
                        user_id.to_string(),
                        new_status.as_str(),
                        position,
                        now,
                        ticket::new_code()
                    ],
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
                if current.checked_in_at.is_some() {
                    return Err(StoreError::Conflict("a registration checked in at the door cannot be cancelled".into()));
                }
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

    async fn registrations(&self, event_id: Uuid, filter: RegistrationFilter) -> Result<Vec<Listed>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {REGISTRATION_COLUMNS}, r.position FROM registrations r
                     WHERE r.event_id = ?1 AND r.position > ?2
                       AND (?3 IS NULL OR (CASE WHEN r.status = 'registered' AND r.checked_in_at IS NOT NULL
                                                THEN 'checked_in' ELSE r.status END) = ?3)
                     ORDER BY r.position LIMIT ?4"
                ))?;
                let status = filter.status.map(AttendeeStatus::as_str);
                let rows = stmt.query_map(params![event_id.to_string(), filter.after, status, filter.limit], |r| {
                    Ok(Listed { registration: registration_from_row(r)?, position: r.get(6)? })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn check_in(&self, event_id: Uuid, user_id: Uuid, now: i64) -> Result<CheckedIn> {
        self.db.write(move |tx| check_in(tx, event_id, user_id, now)).await
    }

    async fn check_in_by_ticket(&self, event_id: Uuid, code: String, now: i64) -> Result<CheckedIn> {
        self.db
            .write(move |tx| {
                let holder: String = tx
                    .query_row(
                        "SELECT user_id FROM registrations WHERE ticket = ?1 AND event_id = ?2",
                        [code, event_id.to_string()],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or(StoreError::NotFound)?;
                check_in(tx, event_id, parse_uuid(holder)?, now)
            })
            .await
    }

    async fn registration(&self, event_id: Uuid, user_id: Uuid) -> Result<Option<Registration>> {
        self.db.read(move |c| Ok(get_registration(c, event_id, user_id)?)).await
    }

    async fn ticket(&self, event_id: Uuid, user_id: Uuid) -> Result<Option<(Registration, String)>> {
        self.db
            .write(move |tx| {
                let Some(registration) = get_registration(tx, event_id, user_id)? else { return Ok(None) };
                tx.execute(
                    "UPDATE registrations SET ticket = ?3 WHERE event_id = ?1 AND user_id = ?2 AND ticket IS NULL",
                    params![event_id.to_string(), user_id.to_string(), ticket::new_code()],
                )?;
                let code: String = tx.query_row(
                    "SELECT ticket FROM registrations WHERE event_id = ?1 AND user_id = ?2",
                    [event_id.to_string(), user_id.to_string()],
                    |r| r.get(0),
                )?;
                Ok(Some((registration, code)))
            })
            .await
    }

    async fn due_reminders(&self, from: i64, to: i64, limit: u32) -> Result<Vec<Reminder>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT r.event_id, r.user_id, e.start_at FROM events e JOIN registrations r ON r.event_id = e.id
                     WHERE e.status = 'published' AND e.start_at > ?1 AND e.start_at <= ?2
                       AND r.status = 'registered' AND r.checked_in_at IS NULL AND r.created_at <= e.start_at - 86400
                       AND NOT EXISTS (SELECT 1 FROM notices_sent n
                                       WHERE n.key = 'reminder:' || r.event_id || ':' || r.user_id || ':' || e.start_at)
                     ORDER BY e.start_at LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![from, to, limit], |r| {
                    Ok(Reminder {
                        event_id: parse_uuid(r.get(0)?)?,
                        user_id: parse_uuid(r.get(1)?)?,
                        start_at: r.get(2)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn my_registrations(
        &self,
        user_id: Uuid,
        after: Option<(i64, Uuid)>,
        limit: Option<u32>,
    ) -> Result<Vec<MyRegistration>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {REGISTRATION_COLUMNS}, r.ticket, {COLUMNS} FROM registrations r JOIN events e ON e.id = r.event_id
                     WHERE r.user_id = ?1 AND r.status != 'cancelled'
                       AND (?2 IS NULL OR (e.start_at, e.id) > (?2, ?3))
                     ORDER BY e.start_at, e.id LIMIT ?4"
                ))?;
                let (after_start, after_id) = after.map(|(t, id)| (t, id.to_string())).unzip();
                let limit = limit.map_or(-1, i64::from);
                let rows = stmt.query_map(params![user_id.to_string(), after_start, after_id, limit], |r| {
                    Ok(MyRegistration {
                        registration: registration_from_row(r)?,
                        ticket: r.get(6)?,
                        event: event_from_offset(r, 7)?,
                    })
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
/// `[source_id, external_id, detached]`, as [`COLUMNS`] reads it.
fn imported_from(json: String) -> rusqlite::Result<EventSource> {
    let (source_id, external_id, detached): (Uuid, String, i64) = parse_json(json)?;
    Ok(EventSource { source_id, external_id, detached: detached != 0 })
}

fn series_member(json: String) -> rusqlite::Result<SeriesMember> {
    let (series_id, occurrence, edited, recurrence): (Uuid, i64, i64, Recurrence) = parse_json(json)?;
    Ok(SeriesMember { series_id, occurrence: kit::rfc3339(occurrence), edited: edited != 0, recurrence })
}

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
        source: r.get::<_, Option<String>>(offset + 9)?.map(imported_from).transpose()?,
        series: r.get::<_, Option<String>>(offset + 10)?.map(series_member).transpose()?,
    })
}
