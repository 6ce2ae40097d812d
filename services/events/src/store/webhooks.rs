//! Webhooks and their deliveries: the [`WebhookStore`] trait on SQLite. A fact becomes
//! one delivery per subscribed webhook in the transaction that moves the webhooks'
//! cursor through the outbox, so each is queued exactly once; a delivery taken for an
//! attempt is leased, so a crash mid-attempt only delays it.

use super::{Result, SqliteStore, StoreError};
use crate::model::webhook::{Delivery, DeliveryStatus, KINDS, Webhook, WebhookInput};
use async_trait::async_trait;
use kit::db::row::{json as parse_json, to_json, uuid as parse_uuid};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use uuid::Uuid;

/// The webhooks' tables, for the events store's migrations. The cursor starts at the
/// newest fact: webhooks hear of what happens after they exist.
pub const TABLES: &str = "
CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    doc              TEXT NOT NULL,   -- the admin's input, as JSON
    secret           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX webhooks_by_organization ON webhooks (organization_id, created_at);
CREATE TABLE webhook_deliveries (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    webhook_id       TEXT NOT NULL,
    fact_id          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    delivered_at     INTEGER,
    UNIQUE (webhook_id, fact_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, seq);
CREATE TABLE webhook_cursor (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO webhook_cursor (one, seq) SELECT 1, coalesce(max(seq), 0) FROM outbox;
";

/// Facts read from the outbox per fan-out.
const FAN_OUT_BATCH: i64 = 200;
/// How long an attempt holds its delivery before another may take it.
const ATTEMPT_LEASE: i64 = 120;

/// A delivery due for an attempt, with what posting it takes.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub kind: String,
    pub url: String,
    pub secret: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Delivered {
        status: u16,
    },
    /// Failed; tried again at `retry_at`, or given up when `None`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<i64>,
    },
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Adds a webhook, unless the organization already has `max` (a conflict).
    async fn create_webhook(
        &self,
        organization_id: Uuid,
        input: WebhookInput,
        secret: String,
        max: usize,
        now: i64,
    ) -> Result<Webhook>;
    async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>>;
    async fn webhooks(&self, organization_id: Uuid) -> Result<Vec<Webhook>>;
    async fn update_webhook(&self, id: Uuid, input: WebhookInput, now: i64) -> Result<Webhook>;
    /// Deletes a webhook and its log.
    async fn delete_webhook(&self, id: Uuid) -> Result<()>;
    /// The log of `webhook`'s deliveries, newest first, after list position `before`
    /// (0: from the newest), at most `limit`; with each one's position.
    async fn deliveries(&self, webhook: Uuid, before: i64, limit: u32) -> Result<Vec<(i64, Delivery)>>;
    /// Queues the facts after the webhooks' cursor for the webhooks subscribed to them;
    /// how many facts were read.
    async fn fan_out(&self, now: i64) -> Result<usize>;
    /// Takes up to `limit` deliveries due at `now` for an attempt (leasing them).
    async fn due_attempts(&self, now: i64, limit: u32) -> Result<Vec<Attempt>>;
    async fn record_attempt(&self, id: Uuid, outcome: AttemptOutcome, now: i64) -> Result<()>;
}

fn webhook_from_row(r: &Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        id: parse_uuid(r.get(0)?)?,
        organization_id: parse_uuid(r.get(1)?)?,
        input: parse_json(r.get(2)?)?,
        secret: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

const WEBHOOK_COLUMNS: &str = "id, organization_id, doc, secret, created_at, updated_at";

fn get_webhook(c: &Connection, id: Uuid) -> rusqlite::Result<Option<Webhook>> {
    c.prepare_cached(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"))?
        .query_row([id.to_string()], webhook_from_row)
        .optional()
}

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<(i64, Delivery)> {
    let status: String = r.get(5)?;
    let time = |i: usize| -> rusqlite::Result<Option<String>> { Ok(r.get::<_, Option<i64>>(i)?.map(kit::rfc3339)) };
    let delivery = Delivery {
        id: parse_uuid(r.get(1)?)?,
        webhook_id: parse_uuid(r.get(2)?)?,
        event: r.get(3)?,
        payload: parse_json(r.get(4)?)?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Failed),
        attempts: r.get(6)?,
        last_status_code: r.get(7)?,
        last_error: r.get(8)?,
        created_at: kit::rfc3339(r.get(9)?),
        next_attempt_at: time(10)?,
        delivered_at: time(11)?,
    };
    Ok((r.get(0)?, delivery))
}

/// What a receiver gets for a fact: its id (the same for every webhook and attempt),
/// kind, time, organization, and its data (the ids it is about, and for `event.changed`
/// what changed).
fn delivery_body(fact: &serde_json::Value) -> serde_json::Value {
    let mut data = fact["payload"].clone();
    if let Some(data) = data.as_object_mut() {
        data.remove("organization_id");
        data.retain(|_, v| !v.is_null());
    }
    serde_json::json!({
        "id": fact["id"],
        "type": fact["kind"],
        "created_at": fact["occurred_at"],
        "organization_id": fact["payload"]["organization_id"],
        "data": data,
    })
}

fn fan_out(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<usize> {
    let cursor: i64 = tx.query_row("SELECT seq FROM webhook_cursor", [], |r| r.get(0))?;
    let facts: Vec<kit::outbox::Pending> = tx
        .prepare_cached(
            "SELECT seq, id, kind, payload, occurred_at FROM outbox
             WHERE seq > ?1 AND kind IN (SELECT value FROM json_each(?2)) ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![cursor, to_json(&KINDS), FAN_OUT_BATCH], kit::outbox::pending)?
        .collect::<rusqlite::Result<_>>()?;
    let Some(last) = facts.last().map(|f| f.seq) else {
        // Nothing for webhooks: pass what was read (other facts, views mostly), so the
        // next look starts after it. One writer: no fact can commit behind this read.
        tx.execute("UPDATE webhook_cursor SET seq = (SELECT coalesce(max(seq), 0) FROM outbox)", [])?;
        return Ok(0);
    };
    let mut subscribed = tx.prepare_cached(
        "SELECT id FROM webhooks WHERE organization_id = ?1 AND json_extract(doc, '$.active')
           AND EXISTS (SELECT 1 FROM json_each(doc, '$.events') WHERE value = ?2)",
    )?;
    let mut queue = tx.prepare_cached(
        "INSERT OR IGNORE INTO webhook_deliveries (id, webhook_id, fact_id, kind, payload, status, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
    )?;
    for fact in &facts {
        let Some(organization) = fact.fact["payload"]["organization_id"].as_str() else { continue };
        let kind = fact.fact["kind"].as_str().unwrap_or_default();
        let hooks: Vec<String> =
            subscribed.query_map(params![organization, kind], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        let body = delivery_body(&fact.fact).to_string();
        for hook in hooks {
            let fact_id = fact.fact["id"].as_str().unwrap_or_default();
            queue.execute(params![Uuid::new_v4().to_string(), hook, fact_id, kind, body, now])?;
        }
    }
    tx.execute("UPDATE webhook_cursor SET seq = ?1", [last])?;
    Ok(facts.len())
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(
        &self,
        organization_id: Uuid,
        input: WebhookInput,
        secret: String,
        max: usize,
        now: i64,
    ) -> Result<Webhook> {
        self.db
            .write(move |tx| {
                let count: i64 = tx.query_row(
                    "SELECT count(*) FROM webhooks WHERE organization_id = ?1",
                    [organization_id.to_string()],
                    |r| r.get(0),
                )?;
                if count as usize >= max {
                    return Err(StoreError::Conflict(format!("an organization has at most {max} webhooks")));
                }
                let id = Uuid::new_v4();
                tx.execute(
                    "INSERT INTO webhooks (id, organization_id, doc, secret, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![id.to_string(), organization_id.to_string(), to_json(&input), secret, now],
                )?;
                get_webhook(tx, id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<Webhook>> {
        self.db.read(move |c| Ok(get_webhook(c, id)?)).await
    }

    async fn webhooks(&self, organization_id: Uuid) -> Result<Vec<Webhook>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE organization_id = ?1 ORDER BY created_at, id"
                ))?;
                let rows = stmt.query_map([organization_id.to_string()], webhook_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn update_webhook(&self, id: Uuid, input: WebhookInput, now: i64) -> Result<Webhook> {
        self.db
            .write(move |tx| {
                let changed = tx.execute(
                    "UPDATE webhooks SET doc = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id.to_string(), to_json(&input), now],
                )?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                get_webhook(tx, id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<()> {
        self.db
            .write(move |tx| {
                tx.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?1", [id.to_string()])?;
                match tx.execute("DELETE FROM webhooks WHERE id = ?1", [id.to_string()])? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
    }

    async fn deliveries(&self, webhook: Uuid, before: i64, limit: u32) -> Result<Vec<(i64, Delivery)>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT seq, id, webhook_id, kind, payload, status, attempts, last_status_code, last_error,
                            created_at, next_attempt_at, delivered_at
                     FROM webhook_deliveries WHERE webhook_id = ?1 AND (?2 = 0 OR seq < ?2)
                     ORDER BY seq DESC LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![webhook.to_string(), before, limit], delivery_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn fan_out(&self, now: i64) -> Result<usize> {
        // The dispatcher asks twice a second: the one writer is taken only when a fact
        // has come since (a reader says so).
        let behind: bool = self
            .db
            .read(|c| {
                Ok::<_, StoreError>(c.query_row(
                    "SELECT (SELECT seq FROM webhook_cursor) < (SELECT coalesce(max(seq), 0) FROM outbox)",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await?;
        if !behind {
            return Ok(0);
        }
        self.db.write(move |tx| Ok(fan_out(tx, now)?)).await
    }

    async fn due_attempts(&self, now: i64, limit: u32) -> Result<Vec<Attempt>> {
        // Likewise: the writer (which leases what it takes) only when something is due.
        let due: bool = self
            .db
            .read(move |c| {
                Ok::<_, StoreError>(c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1)",
                    [now],
                    |r| r.get(0),
                )?)
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.db
            .write(move |tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT d.id, d.webhook_id, d.kind, w.doc, w.secret, d.payload, d.attempts
                     FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 AND json_extract(w.doc, '$.active')
                     ORDER BY d.next_attempt_at LIMIT ?2",
                )?;
                let due = stmt
                    .query_map(params![now, limit], |r| {
                        let input: WebhookInput = parse_json(r.get(3)?)?;
                        Ok(Attempt {
                            id: parse_uuid(r.get(0)?)?,
                            webhook_id: parse_uuid(r.get(1)?)?,
                            kind: r.get(2)?,
                            url: input.url,
                            secret: r.get(4)?,
                            payload: r.get(5)?,
                            attempts: r.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut lease =
                    tx.prepare_cached("UPDATE webhook_deliveries SET next_attempt_at = ?2 WHERE id = ?1")?;
                for attempt in &due {
                    lease.execute(params![attempt.id.to_string(), now + ATTEMPT_LEASE])?;
                }
                Ok(due)
            })
            .await
    }

    async fn record_attempt(&self, id: Uuid, outcome: AttemptOutcome, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                match outcome {
                    AttemptOutcome::Delivered { status } => tx.execute(
                        "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                                last_status_code = ?2, last_error = NULL, next_attempt_at = NULL, delivered_at = ?3
                         WHERE id = ?1",
                        params![id.to_string(), status, now],
                    )?,
                    AttemptOutcome::Failed { status, error, retry_at } => tx.execute(
                        "UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1,
                                last_status_code = ?3, last_error = ?4, next_attempt_at = ?5
                         WHERE id = ?1",
                        params![
                            id.to_string(),
                            if retry_at.is_some() { "pending" } else { "failed" },
                            status,
                            error,
                            retry_at
                        ],
                    )?,
                };
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_carries_the_fact_without_empty_fields() {
        let fact = serde_json::json!({"id": "f1", "kind": "registration.made", "occurred_at": "2027-01-01T00:00:00Z",
            "payload": {"event_id": "e1", "organization_id": "o1", "user_id": "u1", "source_id": null}});
        assert_eq!(
            delivery_body(&fact),
            serde_json::json!({"id": "f1", "type": "registration.made", "created_at": "2027-01-01T00:00:00Z",
                "organization_id": "o1", "data": {"event_id": "e1", "user_id": "u1"}})
        );
    }
}
