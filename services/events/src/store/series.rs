//! Series of events: the [`SeriesStore`] trait on SQLite. A series keeps its template
//! (the organizer's input with its rule) and its members, each an event of its own with
//! the rule's start it stands for (its RECURRENCE-ID). Making, changing or extending a
//! series is one transaction that brings its members in line with the rule: members the
//! rule still gives follow the template (unless edited on their own), new ones are made,
//! upcoming ones it no longer gives are cancelled, past ones stay as they happened.

use super::crud::{COLUMNS, changed, event_from_row, fact, get_event, insert, reindex, require, seq_of};
use super::{Result, SqliteStore, StoreError};
use crate::model::recurrence::{HORIZON, shifted};
use crate::model::{Event, EventInput, Status};
use async_trait::async_trait;
use kit::db::row::{json as parse_json, to_json, uuid as parse_uuid};
use rusqlite::{OptionalExtension, Transaction, params};
use std::collections::HashMap;
use uuid::Uuid;

/// The series' tables, for the events store's migrations.
pub const TABLES: &str = "
CREATE TABLE event_series (
    id               TEXT PRIMARY KEY,
    doc              TEXT NOT NULL,      -- the template: the organizer's input with its rule
    published        INTEGER NOT NULL DEFAULT 0,
    cancelled        INTEGER NOT NULL DEFAULT 0,
    created_by       TEXT NOT NULL,
    expanded_until   INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX event_series_to_extend ON event_series (expanded_until);
CREATE TABLE series_members (
    event_id    TEXT PRIMARY KEY,
    series_id   TEXT NOT NULL,
    occurrence  INTEGER NOT NULL,        -- the rule's start this event stands for
    edited      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX series_members_by_occurrence ON series_members (series_id, occurrence);
";

/// Series extended per scan.
const EXTEND_BATCH: i64 = 50;

#[async_trait]
pub trait SeriesStore: Send + Sync + 'static {
    /// Makes a series from `input` (with its `recurrence`), its occurrences drafts;
    /// answers the first.
    async fn create_series(&self, input: EventInput, created_by: Uuid, now: i64) -> Result<Event>;
    /// The series' template.
    async fn series(&self, id: Uuid) -> Result<Option<EventInput>>;
    /// Replaces the template and brings the members in line with it.
    async fn update_series(&self, id: Uuid, template: EventInput, now: i64) -> Result<()>;
    /// Publishes every draft, or cancels every upcoming occurrence, of the series.
    async fn set_series_status(&self, id: Uuid, status: Status, now: i64) -> Result<()>;
    /// The series' members by start.
    async fn occurrences(&self, id: Uuid) -> Result<Vec<Event>>;
    /// Expands series whose horizon is less than a year ahead; how many.
    async fn extend_series(&self, now: i64) -> Result<usize>;
}

struct Member {
    event_id: Uuid,
    occurrence: i64,
    edited: bool,
}

fn members(tx: &Transaction<'_>, series: Uuid) -> rusqlite::Result<Vec<Member>> {
    tx.prepare_cached("SELECT event_id, occurrence, edited FROM series_members WHERE series_id = ?1")?
        .query_map([series.to_string()], |r| {
            Ok(Member { event_id: parse_uuid(r.get(0)?)?, occurrence: r.get(1)?, edited: r.get(2)? })
        })?
        .collect()
}

/// The occurrence `at` of `template`: its fields, its own times, no rule of its own.
fn occurrence(template: &EventInput, at: i64) -> EventInput {
    let length = template.end.as_second() - template.start.as_second();
    EventInput {
        start: jiff::Timestamp::from_second(at).unwrap_or(template.start),
        end: jiff::Timestamp::from_second(at + length).unwrap_or(template.end),
        recurrence: None,
        ..template.clone()
    }
}

/// Brings the members of `series` in line with `template`. `moved` says where a member's
/// rule start lands now (members follow a moved series); members that started before
/// `now` stay as they happened, and no occurrence before `now` is made.
fn sync(
    tx: &Transaction<'_>,
    series: Uuid,
    template: &EventInput,
    moved: &dyn Fn(i64) -> Option<i64>,
    now: i64,
) -> Result<()> {
    let rule = template.recurrence.as_ref().ok_or_else(|| StoreError::Conflict("a series needs a rule".into()))?;
    let at = |s: i64| jiff::Timestamp::from_second(s).map_err(|e| StoreError::Conflict(e.to_string()));
    let until = at(now.max(template.start.as_second()).saturating_add(HORIZON))?;
    let wanted =
        rule.occurrences(template.start, &template.time_zone, at(now)?, until).map_err(StoreError::Conflict)?;
    let (published, cancelled, created_by): (bool, bool, String) = tx.query_row(
        "SELECT published, cancelled, created_by FROM event_series WHERE id = ?1",
        [series.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    // Upcoming members give up their rule starts while they are matched again, so two
    // of them may trade places (a series moved by a week).
    let mut by_start: HashMap<i64, Member> = HashMap::new();
    for m in members(tx, series)? {
        if require(tx, m.event_id)?.input.start.as_second() < now {
            continue;
        }
        tx.execute(
            "UPDATE series_members SET occurrence = -occurrence - 1 WHERE event_id = ?1",
            [m.event_id.to_string()],
        )?;
        let slot = moved(m.occurrence).unwrap_or(-m.occurrence - 1);
        by_start.insert(slot, m);
    }
    let take = |event: Uuid, slot: i64| -> rusqlite::Result<()> {
        // A past member standing for the slot (moved there on its own) leaves the series.
        tx.execute(
            "DELETE FROM series_members WHERE series_id = ?1 AND occurrence = ?2 AND event_id != ?3",
            params![series.to_string(), slot, event.to_string()],
        )?;
        tx.execute("UPDATE series_members SET occurrence = ?2 WHERE event_id = ?1", params![event.to_string(), slot])?;
        Ok(())
    };
    for slot in wanted.iter().map(|t| t.as_second()) {
        match by_start.remove(&slot) {
            Some(m) => {
                take(m.event_id, slot)?;
                if m.edited {
                    continue;
                }
                let before = require(tx, m.event_id)?;
                let mut input = occurrence(template, slot);
                // Seats already taken stay seats.
                if input.capacity.is_some_and(|c| c < before.registered) {
                    input.capacity = before.input.capacity;
                }
                if input == before.input {
                    continue;
                }
                let seq = seq_of(tx, m.event_id)?;
                reindex(tx, seq, &input)?;
                tx.execute("UPDATE events SET updated_at = ?2 WHERE seq = ?1", params![seq, now])?;
                if before.status == Status::Published {
                    changed(tx, &before, &require(tx, m.event_id)?, now)?;
                }
            }
            // A cancelled series makes nothing new.
            None if !cancelled => {
                let status = if published { Status::Published } else { Status::Draft };
                let id = insert(tx, &occurrence(template, slot), status, parse_uuid(created_by.clone())?, now)?;
                tx.execute(
                    "INSERT INTO series_members (event_id, series_id, occurrence) VALUES (?1, ?2, ?3)",
                    params![id.to_string(), series.to_string(), i64::MIN],
                )?;
                take(id, slot)?;
                if published {
                    fact(tx, "event.published", id, None, now)?;
                }
            }
            None => {}
        }
    }
    // What the rule no longer gives: upcoming ones are cancelled and leave the series.
    for m in by_start.into_values() {
        let event = require(tx, m.event_id)?;
        if event.status != Status::Cancelled {
            tx.execute(
                "UPDATE events SET status = 'cancelled', updated_at = ?2 WHERE id = ?1",
                params![m.event_id.to_string(), now],
            )?;
            if event.status == Status::Published {
                fact(tx, "event.cancelled", m.event_id, None, now)?;
            }
        }
        tx.execute("DELETE FROM series_members WHERE event_id = ?1", [m.event_id.to_string()])?;
    }
    tx.execute(
        "UPDATE event_series SET doc = ?2, expanded_until = ?3, updated_at = ?4 WHERE id = ?1",
        params![series.to_string(), to_json(template), until.as_second(), now],
    )?;
    Ok(())
}

fn template(tx: &rusqlite::Connection, id: Uuid) -> rusqlite::Result<Option<EventInput>> {
    tx.query_row("SELECT doc FROM event_series WHERE id = ?1", [id.to_string()], |r| parse_json(r.get(0)?)).optional()
}

/// What a change to one member means for its series: an edit of its own (`edited`), or
/// its deletion (its start becomes an exception, so the rule does not bring it back).
pub(super) fn member_edited(tx: &Transaction<'_>, event: Uuid) -> rusqlite::Result<()> {
    tx.execute("UPDATE series_members SET edited = 1 WHERE event_id = ?1", [event.to_string()])?;
    Ok(())
}

pub(super) fn member_deleted(tx: &Transaction<'_>, event: Uuid, now: i64) -> rusqlite::Result<()> {
    let found: Option<(String, i64)> = tx
        .query_row("SELECT series_id, occurrence FROM series_members WHERE event_id = ?1", [event.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((series, at)) = found else { return Ok(()) };
    let series = parse_uuid(series)?;
    if let Some(mut input) = template(tx, series)?
        && let Some(rule) = &mut input.recurrence
    {
        rule.exceptions.push(jiff::Timestamp::from_second(at).unwrap_or_default());
        rule.exceptions.sort();
        tx.execute(
            "UPDATE event_series SET doc = ?2, updated_at = ?3 WHERE id = ?1",
            params![series.to_string(), to_json(&input), now],
        )?;
    }
    tx.execute("DELETE FROM series_members WHERE event_id = ?1", [event.to_string()])?;
    Ok(())
}

#[async_trait]
impl SeriesStore for SqliteStore {
    async fn create_series(&self, input: EventInput, created_by: Uuid, now: i64) -> Result<Event> {
        self.db
            .write(move |tx| {
                let id = Uuid::new_v4();
                tx.execute(
                    "INSERT INTO event_series (id, doc, created_by, expanded_until, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 0, ?4, ?4)",
                    params![id.to_string(), to_json(&input), created_by.to_string(), now],
                )?;
                // Every occurrence from the first, even one already past (a series
                // entered late keeps its history).
                sync(tx, id, &input, &Some, input.start.as_second().min(now))?;
                let first: String = tx.query_row(
                    "SELECT event_id FROM series_members WHERE series_id = ?1 ORDER BY occurrence LIMIT 1",
                    [id.to_string()],
                    |r| r.get(0),
                )?;
                require(tx, parse_uuid(first)?)
            })
            .await
    }

    async fn series(&self, id: Uuid) -> Result<Option<EventInput>> {
        self.db.read(move |c| Ok(template(c, id)?)).await
    }

    async fn update_series(&self, id: Uuid, input: EventInput, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                let old = template(tx, id)?.ok_or(StoreError::NotFound)?;
                let zone = input.time_zone.clone();
                let move_to = |at: jiff::Timestamp| shifted(at, old.start, input.start, &zone);
                let mut moved_input = input.clone();
                // Exceptions left as they were move with the series, as in calendars.
                if let (Some(new), Some(was)) = (&mut moved_input.recurrence, &old.recurrence)
                    && new.exceptions == was.exceptions
                {
                    let out_of_range =
                        || StoreError::Conflict("the move takes the series' exceptions out of range".into());
                    new.exceptions =
                        was.exceptions.iter().map(|at| move_to(*at).ok_or_else(out_of_range)).collect::<Result<_>>()?;
                }
                let moved = |key: i64| jiff::Timestamp::from_second(key).ok().and_then(move_to).map(|t| t.as_second());
                sync(tx, id, &moved_input, &moved, now)
            })
            .await
    }

    async fn set_series_status(&self, id: Uuid, status: Status, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                let members = members(tx, id)?;
                // Later occurrences follow: published, or (cancelled) none made at all.
                let (published, cancelled) = (status == Status::Published, status == Status::Cancelled);
                tx.execute(
                    "UPDATE event_series SET published = ?2, cancelled = ?3, updated_at = ?4 WHERE id = ?1",
                    params![id.to_string(), published, cancelled, now],
                )?;
                for m in members {
                    let Some(event) = get_event(tx, m.event_id)? else { continue };
                    let (from, to) = match status {
                        Status::Published if event.status == Status::Draft => ("published", "event.published"),
                        Status::Cancelled
                            if event.status != Status::Cancelled && event.input.start.as_second() >= now =>
                        {
                            ("cancelled", "event.cancelled")
                        }
                        _ => continue,
                    };
                    tx.execute(
                        "UPDATE events SET status = ?2, updated_at = ?3,
                                published_at = CASE WHEN ?2 = 'published' THEN ?3 ELSE published_at END
                         WHERE id = ?1",
                        params![m.event_id.to_string(), from, now],
                    )?;
                    if to == "event.published" || event.status == Status::Published {
                        fact(tx, to, m.event_id, None, now)?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn occurrences(&self, id: Uuid) -> Result<Vec<Event>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM series_members m JOIN events e ON e.id = m.event_id
                     WHERE m.series_id = ?1 ORDER BY e.start_at, e.id"
                ))?;
                let events = stmt.query_map([id.to_string()], event_from_row)?;
                Ok(events.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn extend_series(&self, now: i64) -> Result<usize> {
        self.db
            .write(move |tx| {
                let due: Vec<String> = tx
                    .prepare_cached("SELECT id FROM event_series WHERE expanded_until < ?1 LIMIT ?2")?
                    .query_map(params![now + HORIZON - 86_400, EXTEND_BATCH], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for id in &due {
                    let id = parse_uuid(id.clone())?;
                    if let Some(input) = template(tx, id)? {
                        sync(tx, id, &input, &Some, now)?;
                    }
                }
                Ok(due.len())
            })
            .await
    }
}
