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

/// The relay's cursor, for a service's migrations after [`TABLE`]: the `seq` of the last
/// fact analytics acknowledged. Kept in the service's own database, so a restart resumes
/// where the last acknowledged delivery ended.
pub const DELIVERY_TABLE: &str = "
CREATE TABLE outbox_delivery (
    one            INTEGER PRIMARY KEY CHECK (one = 1),
    delivered_seq  INTEGER NOT NULL
);
INSERT INTO outbox_delivery (one, delivered_seq) VALUES (1, 0);
";

/// Where a relay delivers its batches (the analytics client delivers them to analytics).
pub trait Deliver: Send + Sync + 'static {
    /// Delivers one batch of facts; `Ok` once the receiver has them all.
    fn deliver(&self, facts: Vec<&serde_json::Value>) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// How the relay paces itself.
#[derive(Debug, Clone, Copy)]
pub struct RelayTiming {
    /// Pause when the outbox has nothing new.
    pub idle: std::time::Duration,
    /// First pause after a failed delivery; doubles up to `max_backoff`.
    pub backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
}

impl Default for RelayTiming {
    fn default() -> Self {
        Self {
            idle: std::time::Duration::from_millis(500),
            backoff: std::time::Duration::from_millis(500),
            max_backoff: std::time::Duration::from_secs(30),
        }
    }
}

/// At most this many facts per delivery (analytics takes up to 1,000).
const BATCH_FACTS: usize = 500;
/// At most this many bytes of JSON per delivery: under the platform's default body limit
/// (256 KiB) with room to spare.
const BATCH_BYTES: usize = 192 * 1024;

/// One outbox row, as read for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub seq: i64,
    pub fact: serde_json::Value,
}

/// A row of `SELECT seq, id, kind, payload, occurred_at FROM outbox` as a fact.
pub fn pending(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pending> {
    let payload: String = r.get(3)?;
    let fact = serde_json::json!({
        "id": r.get::<_, String>(1)?,
        "kind": r.get::<_, String>(2)?,
        "occurred_at": crate::rfc3339(r.get(4)?),
        "payload": serde_json::from_str::<serde_json::Value>(&payload).unwrap_or_default(),
    });
    Ok(Pending { seq: r.get(0)?, fact })
}

/// The next facts after the acknowledged cursor, at most [`BATCH_FACTS`] of them and
/// [`BATCH_BYTES`] of JSON (always at least one, whatever its size), and how many wait
/// in all (the lag).
pub fn next_batch(conn: &rusqlite::Connection) -> rusqlite::Result<(Vec<Pending>, i64)> {
    let delivered: i64 = conn.query_row("SELECT delivered_seq FROM outbox_delivery", [], |r| r.get(0))?;
    let lag: i64 = conn.query_row("SELECT count(*) FROM outbox WHERE seq > ?1", [delivered], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, kind, payload, occurred_at FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![delivered, BATCH_FACTS as i64], pending)?;
    let mut batch = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let row = row?;
        let size = row.fact.to_string().len() + 1;
        if !batch.is_empty() && bytes + size > BATCH_BYTES {
            break;
        }
        bytes += size;
        batch.push(row);
    }
    Ok((batch, lag))
}

/// Moves the cursor forward after analytics acknowledged everything up to `seq`.
pub fn acknowledge(tx: &Transaction<'_>, seq: i64) -> rusqlite::Result<()> {
    tx.execute("UPDATE outbox_delivery SET delivered_seq = max(delivered_seq, ?1) WHERE one = 1", [seq])?;
    Ok(())
}

/// Delivers `service`'s outbox to `sink` for ever: read a batch after the cursor,
/// deliver it, move the cursor once the sink has it. A crash between the post and
/// the cursor update sends the batch again, and analytics counts each fact id once:
/// at least once here, exactly once there. A failed delivery is retried with backoff
/// and nothing is skipped.
pub async fn relay(service: &'static str, db: crate::db::Db, sink: impl Deliver, timing: RelayTiming) {
    let mut backoff = timing.backoff;
    // Paced from the start: in one process, analytics may not be listening yet.
    let mut pause = timing.idle;
    loop {
        tokio::time::sleep(pause).await;
        match deliver_once(service, &db, &sink).await {
            Ok((delivered, waiting)) => {
                let lag = waiting.saturating_sub(delivered as i64);
                metrics::gauge!("outbox_relay_lag", "service" => service).set(lag as f64);
                metrics::counter!("outbox_relay_delivered_total", "service" => service).increment(delivered);
                backoff = timing.backoff;
                // More waiting: go on at once; caught up: look again in a while.
                pause = if lag > 0 { std::time::Duration::ZERO } else { timing.idle };
            }
            Err(e) => {
                metrics::counter!("outbox_relay_failures_total", "service" => service).increment(1);
                tracing::warn!(service, error = %e, retry_in = ?backoff, "delivering facts failed");
                pause = backoff;
                backoff = (backoff * 2).min(timing.max_backoff);
            }
        }
    }
}

/// One delivery; returns how many facts were acknowledged and how many were waiting.
async fn deliver_once(service: &'static str, db: &crate::db::Db, sink: &impl Deliver) -> anyhow::Result<(u64, i64)> {
    let (batch, lag) = db.read(|c| next_batch(c).map_err(crate::db::DbError::from)).await?;
    // Told before the delivery is tried: while the sink is away, this is the figure an
    // alert watches rise (a failed delivery must not leave the last good value standing).
    metrics::gauge!("outbox_relay_lag", "service" => service).set(lag as f64);
    let Some(last) = batch.last().map(|p| p.seq) else {
        return Ok((0, lag));
    };
    sink.deliver(batch.iter().map(|p| &p.fact).collect()).await?;
    db.write(move |tx| acknowledge(tx, last).map_err(crate::db::DbError::from)).await?;
    Ok((batch.len() as u64, lag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox_with(payloads: &[serde_json::Value]) -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(TABLE).unwrap();
        conn.execute_batch(DELIVERY_TABLE).unwrap();
        let tx = conn.transaction().unwrap();
        for p in payloads {
            record(&tx, "user.signed_up", p, 1_700_000_000).unwrap();
        }
        tx.commit().unwrap();
        conn
    }

    #[test]
    fn batches_resume_after_the_acknowledged_cursor() {
        let mut conn = outbox_with(&[serde_json::json!({"user_id": 1}), serde_json::json!({"user_id": 2})]);
        let (batch, lag) = next_batch(&conn).unwrap();
        assert_eq!((batch.len(), lag), (2, 2));
        assert_eq!(batch[0].fact["kind"], "user.signed_up");
        assert_eq!(batch[0].fact["occurred_at"], "2023-11-14T22:13:20Z");
        assert_eq!(batch[1].fact["payload"]["user_id"], 2);
        let tx = conn.transaction().unwrap();
        acknowledge(&tx, batch[0].seq).unwrap();
        // An older acknowledgement never moves the cursor back.
        acknowledge(&tx, 0).unwrap();
        tx.commit().unwrap();
        let (rest, lag) = next_batch(&conn).unwrap();
        assert_eq!((rest.len(), lag), (1, 1));
        assert_eq!(rest[0], batch[1]);
    }

    #[test]
    fn a_batch_stays_under_the_byte_limit_but_always_holds_one_fact() {
        let big = serde_json::json!({"note": "x".repeat(BATCH_BYTES / 3)});
        let conn = outbox_with(&[big.clone(), big.clone(), big.clone(), big]);
        let (batch, lag) = next_batch(&conn).unwrap();
        assert_eq!((batch.len(), lag), (2, 4));
        let huge = outbox_with(&[serde_json::json!({"note": "x".repeat(BATCH_BYTES * 2)})]);
        assert_eq!(next_batch(&huge).unwrap().0.len(), 1);
    }
}
