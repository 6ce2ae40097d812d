//! The transactional outbox: domain facts (user signed up, event published, ...) are
//! written in the same transaction as the change they describe, so a fact exists if and
//! only if its change committed. A relay delivers them to analytics at least once;
//! analytics deduplicates by `id`.

use rusqlite::{Transaction, params};
use uuid::Uuid;

/// The outbox table, for a service's first migration. `seq` orders delivery; `id` is
/// the fact's identity across retries.
pub const TABLE: &str = "
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    occurred_at INTEGER NOT NULL
);
";

/// Records a fact inside the caller's transaction.
pub fn record(tx: &Transaction<'_>, kind: &str, payload: &serde_json::Value, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO outbox (id, kind, payload, occurred_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![Uuid::new_v4().to_string(), kind, payload.to_string(), now])?;
    Ok(())
}
