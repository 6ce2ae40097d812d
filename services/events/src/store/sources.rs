//! Outside sources and what they imported: the [`SourceStore`] trait on SQLite. A sync's
//! whole outcome (events created, changed, cancelled, the source's status, the facts)
//! is one transaction, taken only while the syncing replica still holds the lease.

use super::crud::{changed, fact, get_event, insert, reindex, require, seq_of};
use super::{Result, SqliteStore, StoreError};
use crate::import::plan::{Imported, Plan, with_source_fields};
use crate::model::source::{Source, SourceInput, SyncCounts, SyncStatus};
use crate::model::{Event, EventInput, Status};
use async_trait::async_trait;
use kit::db::row::{json as parse_json, to_json, uuid as parse_uuid};
use kit::fetch::Validators;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::json;
use uuid::Uuid;

/// How a sync ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The source was read: apply the plan. `validators` are `None` after a 304.
    Synced {
        plan: Plan,
        validators: Option<Validators>,
        window: (i64, i64),
    },
    Failed {
        error: String,
    },
}

#[async_trait]
pub trait SourceStore: Send + Sync + 'static {
    /// Adds a source, unless the organization already has `max` (a conflict).
    async fn create_source(
        &self,
        organization_id: Uuid,
        input: SourceInput,
        created_by: Uuid,
        max: usize,
        now: i64,
    ) -> Result<Source>;
    async fn source(&self, id: Uuid) -> Result<Option<Source>>;
    async fn sources(&self, organization_id: Uuid) -> Result<Vec<Source>>;
    /// Changes a source; a changed source is fetched in full at its next sync, soon.
    async fn update_source(&self, id: Uuid, input: SourceInput, now: i64) -> Result<Source>;
    /// Deletes a source; its events stay, detached (the organization's own).
    async fn delete_source(&self, id: Uuid, now: i64) -> Result<()>;
    /// Takes the lease of `id` (or of the source most overdue, when `None`) for `holder`
    /// until `until`. `None` when it is leased by another, or nothing is due.
    async fn lease_source(&self, id: Option<Uuid>, holder: Uuid, now: i64, until: i64) -> Result<Option<Source>>;
    /// What a source imported so far, with the events' current inputs.
    async fn imported(&self, source_id: Uuid) -> Result<Vec<Imported>>;
    /// How many of a source's events its syncs still keep (not deleted, not detached).
    async fn imported_count(&self, source_id: Uuid) -> Result<u32>;
    /// Records a sync's outcome and releases the lease; refused (conflict) if the lease
    /// was lost meanwhile. `next_run_at` is when to sync again. A source changed since
    /// its lease was taken (`seen` was its `updated_at` then) only has its lease released:
    /// the sync read what it no longer describes, and the next one comes soon.
    async fn finish_sync(
        &self,
        source_id: Uuid,
        holder: Uuid,
        seen: i64,
        outcome: Outcome,
        now: i64,
        next_run_at: i64,
    ) -> Result<Source>;
    /// Applies part of a sync's plan while `holder` holds the lease: `false` (nothing
    /// applied) when the source changed since `seen`, a conflict when the lease was lost.
    async fn apply_part(&self, source_id: Uuid, holder: Uuid, seen: i64, part: Plan, now: i64) -> Result<bool>;
    /// Gives a lease back without recording anything (a sync that could not finish).
    async fn release_lease(&self, source_id: Uuid, holder: Uuid) -> Result<()>;
    /// Makes an imported event the organization's own.
    async fn detach(&self, event_id: Uuid, now: i64) -> Result<Event>;
}

const SOURCE_COLUMNS: &str =
    "id, organization_id, doc, status, failed, etag, last_modified, created_by, created_at, updated_at, lease_until";

fn source_from_row(r: &Row<'_>) -> rusqlite::Result<Source> {
    Ok(Source {
        id: parse_uuid(r.get(0)?)?,
        organization_id: parse_uuid(r.get(1)?)?,
        input: parse_json(r.get(2)?)?,
        status: parse_json(r.get(3)?)?,
        failed: r.get(4)?,
        validators: Validators { etag: r.get(5)?, last_modified: r.get(6)? },
        created_by: parse_uuid(r.get(7)?)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        leased_until: r.get(10)?,
    })
}

fn get_source(c: &Connection, id: Uuid) -> rusqlite::Result<Option<Source>> {
    c.prepare_cached(&format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE id = ?1"))?
        .query_row([id.to_string()], source_from_row)
        .optional()
}

fn require_source(c: &Connection, id: Uuid) -> Result<Source> {
    get_source(c, id)?.ok_or(StoreError::NotFound)
}

/// The source, if `holder` still holds its lease.
fn leased(c: &Connection, id: Uuid, holder: Uuid) -> Result<Source> {
    let held: Option<String> = c
        .query_row("SELECT lease_holder FROM sources WHERE id = ?1", [id.to_string()], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    if held.as_deref() != Some(holder.to_string().as_str()) {
        return Err(StoreError::Conflict("another sync of this source took over".into()));
    }
    require_source(c, id)
}

/// Stores a source's status, with its next run.
fn set_status(
    tx: &Transaction<'_>,
    id: Uuid,
    status: &SyncStatus,
    failed: bool,
    next_run_at: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE sources SET status = ?2, failed = ?3, next_run_at = ?4 WHERE id = ?1")?
        .execute(params![id.to_string(), to_json(status), failed, next_run_at])?;
    Ok(())
}

/// A source fact for analytics: what a sync did, per organization.
fn source_fact(
    tx: &Transaction<'_>,
    kind: &str,
    source: &Source,
    counts: Option<SyncCounts>,
    now: i64,
) -> rusqlite::Result<()> {
    let payload = json!({ "source_id": source.id, "organization_id": source.organization_id, "kind": source.input.kind, "counts": counts });
    kit::outbox::record(tx, kind, &payload, now)
}

/// An `event.published` of an imported event, naming its source: analytics tells
/// imported events from native ones.
fn imported_published(tx: &Transaction<'_>, source: &Source, event: Uuid, now: i64) -> rusqlite::Result<()> {
    let payload = json!({ "event_id": event, "organization_id": source.organization_id, "source_id": source.id });
    kit::outbox::record(tx, "event.published", &payload, now)
}

/// Applies a plan's changes to the events. The plan was made from a snapshot: each
/// change is merged again onto the event as it is now (the organization may have edited,
/// detached or deleted it meanwhile), and skipped where it no longer applies.
fn apply(tx: &Transaction<'_>, source: &Source, plan: &Plan, now: i64) -> Result<()> {
    for create in &plan.create {
        let id = insert(tx, &create.input, create.status, source.created_by, now)?;
        if create.status == Status::Published {
            imported_published(tx, source, id, now)?;
        }
        tx.prepare_cached(
            "INSERT INTO imported_events (source_id, external_id, event_id, sequence, modified) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (source_id, external_id) DO UPDATE SET event_id = excluded.event_id, sequence = excluded.sequence,
             modified = excluded.modified, detached = 0",
        )?
        .execute(params![source.id.to_string(), create.external_id, id.to_string(), create.sequence, create.modified])?;
    }
    for update in &plan.update {
        let Some(event) = get_event(tx, update.event_id)? else { continue };
        if event.source.as_ref().is_none_or(|s| s.detached) {
            continue;
        }
        let Ok(input) = with_source_fields(&event.input, &update.input, &source.input) else { continue };
        let seq = seq_of(tx, update.event_id)?;
        if input.capacity.is_some_and(|c| c < event.registered) {
            continue;
        }
        reindex(tx, seq, &input)?;
        tx.prepare_cached("UPDATE events SET updated_at = ?2 WHERE seq = ?1")?.execute(params![seq, now])?;
        match (event.status, update.status) {
            (Status::Cancelled, Status::Published) if update.revive => {
                tx.prepare_cached("UPDATE events SET status = 'published', published_at = ?2 WHERE seq = ?1")?
                    .execute(params![seq, now])?;
                imported_published(tx, source, update.event_id, now)?;
            }
            (Status::Published | Status::Draft, Status::Cancelled) => {
                tx.prepare_cached("UPDATE events SET status = 'cancelled' WHERE seq = ?1")?.execute([seq])?;
                fact(tx, "event.cancelled", update.event_id, None, now)?;
            }
            (Status::Published, Status::Published) => changed(tx, &event, &require(tx, update.event_id)?, now)?,
            _ => {}
        }
        tx.prepare_cached("UPDATE imported_events SET sequence = ?2, modified = ?3 WHERE event_id = ?1")?
            .execute(params![update.event_id.to_string(), update.sequence, update.modified])?;
    }
    for id in &plan.cancel {
        let changed = tx
            .prepare_cached(
                "UPDATE events SET status = 'cancelled', updated_at = ?2 WHERE id = ?1 AND status != 'cancelled'
                 AND id IN (SELECT event_id FROM imported_events WHERE event_id = ?1 AND detached = 0)",
            )?
            .execute(params![id.to_string(), now])?;
        if changed > 0 {
            fact(tx, "event.cancelled", *id, None, now)?;
        }
    }
    Ok(())
}

#[async_trait]
impl SourceStore for SqliteStore {
    async fn create_source(
        &self,
        organization_id: Uuid,
        input: SourceInput,
        created_by: Uuid,
        max: usize,
        now: i64,
    ) -> Result<Source> {
        self.db
            .write(move |tx| {
                // Counted in the writing transaction: two creations at once cannot both pass.
                let count: i64 = tx.query_row(
                    "SELECT count(*) FROM sources WHERE organization_id = ?1",
                    [organization_id.to_string()],
                    |r| r.get(0),
                )?;
                if count >= max as i64 {
                    return Err(StoreError::Conflict(format!("an organization has at most {max} sources")));
                }
                let id = Uuid::new_v4();
                let status = SyncStatus { next_run_at: Some(kit::rfc3339(now)), ..SyncStatus::default() };
                tx.execute(
                    "INSERT INTO sources (id, organization_id, doc, enabled, status, next_run_at, created_by, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6, ?6)",
                    params![
                        id.to_string(),
                        organization_id.to_string(),
                        to_json(&input),
                        input.enabled,
                        to_json(&status),
                        now,
                        created_by.to_string()
                    ],
                )?;
                require_source(tx, id)
            })
            .await
    }

    async fn source(&self, id: Uuid) -> Result<Option<Source>> {
        self.db.read(move |c| Ok(get_source(c, id)?)).await
    }

    async fn sources(&self, organization_id: Uuid) -> Result<Vec<Source>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {SOURCE_COLUMNS} FROM sources WHERE organization_id = ?1 ORDER BY created_at, id"
                ))?;
                let rows = stmt.query_map([organization_id.to_string()], source_from_row)?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await
    }

    async fn update_source(&self, id: Uuid, input: SourceInput, now: i64) -> Result<Source> {
        self.db
            .write(move |tx| {
                let before = require_source(tx, id)?;
                let mut status = before.status.clone();
                status.next_run_at = Some(kit::rfc3339(now));
                // A changed URL or mapping reads a different document: no conditional request.
                tx.execute(
                    "UPDATE sources SET doc = ?2, enabled = ?3, status = ?4, etag = NULL, last_modified = NULL,
                     next_run_at = ?5, updated_at = ?5 WHERE id = ?1",
                    params![id.to_string(), to_json(&input), input.enabled, to_json(&status), now],
                )?;
                require_source(tx, id)
            })
            .await
    }

    async fn delete_source(&self, id: Uuid, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                let source = require_source(tx, id)?;
                tx.execute("DELETE FROM imported_events WHERE source_id = ?1 AND event_id IS NULL", [id.to_string()])?;
                tx.execute("UPDATE imported_events SET detached = 1 WHERE source_id = ?1", [id.to_string()])?;
                tx.execute("DELETE FROM sources WHERE id = ?1", [id.to_string()])?;
                source_fact(tx, "source.deleted", &source, None, now)?;
                Ok(())
            })
            .await
    }

    async fn lease_source(&self, id: Option<Uuid>, holder: Uuid, now: i64, until: i64) -> Result<Option<Source>> {
        self.db
            .write(move |tx| {
                let target: Option<String> = match id {
                    Some(id) => Some(id.to_string()),
                    None => tx
                        .prepare_cached(
                            "SELECT id FROM sources INDEXED BY sources_due WHERE enabled = 1 AND next_run_at <= ?1
                             AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY next_run_at LIMIT 1",
                        )?
                        .query_row([now], |r| r.get(0))
                        .optional()?,
                };
                let Some(target) = target else { return Ok(None) };
                let taken = tx
                    .prepare_cached(
                        "UPDATE sources SET lease_holder = ?2, lease_until = ?3
                         WHERE id = ?1 AND (lease_until IS NULL OR lease_until <= ?4)",
                    )?
                    .execute(params![target, holder.to_string(), until, now])?;
                if taken == 0 {
                    return Ok(None);
                }
                Ok(get_source(tx, parse_uuid(target)?)?)
            })
            .await
    }

    async fn imported(&self, source_id: Uuid) -> Result<Vec<Imported>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT i.external_id, i.event_id, i.detached, i.sequence, i.modified, e.doc, e.status
                     FROM imported_events i LEFT JOIN events e ON e.id = i.event_id WHERE i.source_id = ?1",
                )?;
                let rows = stmt.query_map([source_id.to_string()], |r| {
                    let event = match (r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(5)?) {
                        (Some(id), Some(doc)) => {
                            let input: EventInput = parse_json(doc)?;
                            let status = Status::parse(&r.get::<_, String>(6)?).unwrap_or(Status::Draft);
                            Some((parse_uuid(id)?, input, status))
                        }
                        _ => None,
                    };
                    Ok(Imported {
                        external_id: r.get(0)?,
                        event,
                        detached: r.get(2)?,
                        sequence: r.get(3)?,
                        modified: r.get(4)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await
    }

    async fn imported_count(&self, source_id: Uuid) -> Result<u32> {
        self.db
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT count(*) FROM imported_events WHERE source_id = ?1 AND event_id IS NOT NULL AND detached = 0",
                )?
                .query_row([source_id.to_string()], |r| r.get(0))?)
            })
            .await
    }

    async fn apply_part(&self, source_id: Uuid, holder: Uuid, seen: i64, part: Plan, now: i64) -> Result<bool> {
        self.db
            .write(move |tx| {
                let source = leased(tx, source_id, holder)?;
                if source.updated_at != seen {
                    return Ok(false);
                }
                apply(tx, &source, &part, now)?;
                Ok(true)
            })
            .await
    }

    async fn release_lease(&self, source_id: Uuid, holder: Uuid) -> Result<()> {
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE sources SET lease_holder = NULL, lease_until = NULL WHERE id = ?1 AND lease_holder = ?2",
                    params![source_id.to_string(), holder.to_string()],
                )?;
                Ok(())
            })
            .await
    }

    async fn finish_sync(
        &self,
        source_id: Uuid,
        holder: Uuid,
        seen: i64,
        outcome: Outcome,
        now: i64,
        next_run_at: i64,
    ) -> Result<Source> {
        self.db
            .write(move |tx| {
                let source = leased(tx, source_id, holder)?;
                let release = "UPDATE sources SET lease_holder = NULL, lease_until = NULL WHERE id = ?1";
                if source.updated_at != seen {
                    tx.execute(release, [source_id.to_string()])?;
                    return require_source(tx, source_id);
                }
                let mut status = source.status.clone();
                status.last_run_at = Some(kit::rfc3339(now));
                status.next_run_at = source.input.enabled.then(|| kit::rfc3339(next_run_at));
                match outcome {
                    Outcome::Synced { plan, validators, window } => {
                        apply(tx, &source, &plan, now)?;
                        status.last_success_at = status.last_run_at.clone();
                        status.last_error = None;
                        status.not_modified = validators.is_none();
                        if status.not_modified {
                            // Unchanged: what could not be imported still cannot.
                            status.counts = SyncCounts { skipped: status.counts.skipped, ..plan.counts };
                        } else {
                            status.counts = plan.counts;
                            status.skipped_items = plan.skipped.clone();
                        }
                        status.window_from = Some(kit::rfc3339(window.0));
                        status.window_to = Some(kit::rfc3339(window.1));
                        if let Some(v) = validators {
                            tx.execute(
                                "UPDATE sources SET etag = ?2, last_modified = ?3 WHERE id = ?1",
                                params![source_id.to_string(), v.etag, v.last_modified],
                            )?;
                        }
                        set_status(tx, source_id, &status, false, next_run_at)?;
                        source_fact(tx, "source.synced", &source, Some(plan.counts), now)?;
                    }
                    Outcome::Failed { error } => {
                        status.last_error = Some(error);
                        set_status(tx, source_id, &status, true, next_run_at)?;
                        source_fact(tx, "source.failed", &source, None, now)?;
                    }
                }
                tx.execute(release, [source_id.to_string()])?;
                require_source(tx, source_id)
            })
            .await
    }

    async fn detach(&self, event_id: Uuid, now: i64) -> Result<Event> {
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE imported_events SET detached = 1 WHERE event_id = ?1 AND detached = 0",
                    [event_id.to_string()],
                )?;
                if changed == 0 && get_event(tx, event_id)?.is_some_and(|e| e.source.is_none()) {
                    return Err(StoreError::Conflict(
                        "this event was not imported: it is already the organization's own".into(),
                    ));
                }
                tx.execute("UPDATE events SET updated_at = ?2 WHERE id = ?1", params![event_id.to_string(), now])?;
                require(tx, event_id)
            })
            .await
    }
}
