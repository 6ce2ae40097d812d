//! Mail about what happened, read from the outbox: a second reader of a service's facts
//! with its own cursor (beside the analytics relay's), which asks the service what each
//! fact means to whom ([`Compose`]) and sends it. Never in a request's way: the change
//! is committed with its fact, the mail follows.
//!
//! At least once: the cursor passes a fact only after its mail is sent (or refused for
//! good). Not twice, but for a crash between the server taking a message and its key
//! being recorded: each message has a key, and a retry skips what is recorded.

use crate::db::{Db, DbError};
use crate::mail::{Mail, Mailer};
use crate::outbox::{Pending, RelayTiming, pending};
use rusqlite::{OptionalExtension, params};
use std::time::Duration;

/// The notifier's tables, for a service's migrations after the outbox. The cursor starts
/// at the newest fact: a service that gains the notifier does not mail its history.
pub const TABLES: &str = "
CREATE TABLE notice_cursor (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    seq  INTEGER NOT NULL
);
INSERT INTO notice_cursor (one, seq) SELECT 1, coalesce(max(seq), 0) FROM outbox;
CREATE TABLE notices_sent (
    key      TEXT PRIMARY KEY,
    sent_at  INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Facts read at once.
const BATCH: i64 = 50;
/// How long a sent key is kept: longer than any retry, and than a reminder's window.
const KEEP_SENT: i64 = 30 * 86_400;

/// One message the notifier may send, once: `key` names it across retries.
#[derive(Debug, Clone)]
pub struct Notice {
    pub key: String,
    pub mail: Mail,
}

/// What a service mails about its facts.
pub trait Compose: Send + Sync + 'static {
    /// The kinds of fact that may call for mail; the notifier reads no others.
    const KINDS: &'static [&'static str];

    /// The messages `fact` calls for: none when nobody is to be told (or wants to be).
    /// An error (a service that cannot be reached) is retried with backoff.
    fn compose(&self, fact: &serde_json::Value) -> impl Future<Output = anyhow::Result<Vec<Notice>>> + Send;
}

/// Reads `service`'s outbox for ever and sends what `composer` writes for each fact.
pub async fn run<C: Compose>(service: &'static str, db: Db, mailer: Mailer, composer: C, timing: RelayTiming) {
    let mut backoff = timing.backoff;
    let mut last_pruned = 0;
    loop {
        let pause = match notify_once(&db, &mailer, &composer).await {
            Ok(0) => {
                let now = crate::now_unix();
                if now - last_pruned > 3600 {
                    last_pruned = now;
                    if let Err(e) = prune(&db, now - KEEP_SENT).await {
                        tracing::warn!(service, error = %e, "could not forget old notices");
                    }
                }
                backoff = timing.backoff;
                timing.idle
            }
            Ok(_) => {
                backoff = timing.backoff;
                Duration::ZERO
            }
            Err(e) => {
                metrics::counter!("notices_failures_total", "service" => service).increment(1);
                tracing::warn!(service, error = %e, retry_in = ?backoff, "sending notices failed");
                let pause = backoff;
                backoff = (backoff * 2).min(timing.max_backoff);
                pause
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// One batch: the facts after the cursor, each composed and sent, the cursor moved past
/// each as it is done. Returns how many facts were done.
async fn notify_once<C: Compose>(db: &Db, mailer: &Mailer, composer: &C) -> anyhow::Result<usize> {
    let kinds = serde_json::to_string(C::KINDS)?;
    let (facts, cursor, newest): (Vec<Pending>, i64, i64) = db
        .read(move |c| {
            let cursor: i64 = c.query_row("SELECT seq FROM notice_cursor", [], |r| r.get(0))?;
            let newest: i64 = c.query_row("SELECT coalesce(max(seq), 0) FROM outbox", [], |r| r.get(0))?;
            let mut stmt = c.prepare_cached(
                "SELECT seq, id, kind, payload, occurred_at FROM outbox
                 WHERE seq > ?1 AND kind IN (SELECT value FROM json_each(?2)) ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![cursor, kinds, BATCH], pending)?;
            Ok::<_, DbError>((rows.collect::<rusqlite::Result<Vec<_>>>()?, cursor, newest))
        })
        .await?;
    if facts.is_empty() && newest > cursor {
        // Nothing to mail up to the newest fact this read saw (views, mostly): start after
        // it next time. A fact committed since has a higher seq, so none is skipped.
        db.write(move |tx| {
            tx.execute("UPDATE notice_cursor SET seq = max(seq, ?1)", [newest])?;
            Ok::<_, DbError>(())
        })
        .await?;
    }
    for fact in &facts {
        let notices = composer.compose(&fact.fact).await?;
        send_once(db, mailer, notices).await?;
        let seq = fact.seq;
        db.write(move |tx| {
            tx.execute("UPDATE notice_cursor SET seq = max(seq, ?1)", [seq])?;
            Ok::<_, DbError>(())
        })
        .await?;
    }
    Ok(facts.len())
}

/// Sends each notice not sent before and records it. A message the server refuses for
/// good (an address that does not exist) is recorded too, and logged: trying it again
/// would only hold up everyone else's mail. Any other failure stops here, to be retried.
pub async fn send_once(db: &Db, mailer: &Mailer, notices: Vec<Notice>) -> anyhow::Result<()> {
    for notice in notices {
        let key = notice.key.clone();
        let sent = db
            .read(move |c| {
                let found = c
                    .prepare_cached("SELECT 1 FROM notices_sent WHERE key = ?1")?
                    .query_row([key], |_| Ok(()))
                    .optional()?;
                Ok::<_, DbError>(found.is_some())
            })
            .await?;
        if sent {
            continue;
        }
        match mailer.deliver(&notice.mail).await {
            Ok(()) => metrics::counter!("notices_sent_total").increment(1),
            Err(e) if e.permanent => {
                metrics::counter!("notices_refused_total").increment(1);
                // The address is personal data: the key names the fact and the account.
                tracing::warn!(notice = %notice.key, error = %e, "the mail server refused a notice for good");
            }
            Err(e) => return Err(e.into()),
        }
        record(db, vec![notice.key]).await?;
    }
    Ok(())
}

/// Records `keys` as done without sending anything: a person who does not want such
/// mail is not asked again about the same thing.
pub async fn record(db: &Db, keys: Vec<String>) -> Result<(), DbError> {
    db.write(move |tx| {
        let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO notices_sent (key, sent_at) VALUES (?1, ?2)")?;
        let now = crate::now_unix();
        for key in keys {
            insert.execute(params![key, now])?;
        }
        Ok(())
    })
    .await
}

async fn prune(db: &Db, before: i64) -> Result<usize, DbError> {
    db.write(move |tx| Ok(tx.execute("DELETE FROM notices_sent WHERE sent_at < ?1", [before])?)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::Letter;
    use std::sync::Mutex;

    struct Echo {
        composed: Mutex<Vec<String>>,
    }

    impl Compose for Echo {
        const KINDS: &'static [&'static str] = &["registration.made"];

        async fn compose(&self, fact: &serde_json::Value) -> anyhow::Result<Vec<Notice>> {
            let id = fact["id"].as_str().unwrap().to_owned();
            self.composed.lock().unwrap().push(fact["kind"].as_str().unwrap().to_owned());
            let letter = Letter { subject: "s".into(), text: "t".into(), html: None };
            Ok(vec![Notice { key: id, mail: Mail::new("ann@example.com", letter) }])
        }
    }

    async fn db_with(kinds: &[&str]) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db"), &[crate::outbox::TABLE, TABLES]).await.unwrap();
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        db.write(move |tx| {
            for kind in &kinds {
                crate::outbox::record(tx, kind, &serde_json::json!({}), 1)?;
            }
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();
        (dir, db)
    }

    fn mails(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().unwrap() == "txt").count()
    }

    #[tokio::test]
    async fn each_fact_of_a_known_kind_is_mailed_once() {
        let (dir, db) = db_with(&["registration.made", "event.viewed", "registration.made"]).await;
        let mailer = Mailer::new(None, dir.path().join("mail"), "v@example.com").unwrap();
        let echo = Echo { composed: Mutex::default() };
        assert_eq!(notify_once(&db, &mailer, &echo).await.unwrap(), 2);
        assert_eq!(notify_once(&db, &mailer, &echo).await.unwrap(), 0);
        assert_eq!(*echo.composed.lock().unwrap(), ["registration.made", "registration.made"]);
        assert_eq!(mails(&dir.path().join("mail")), 2);
        // A crash before the cursor moved: the fact is composed again, and not mailed again.
        db.write(|tx| Ok::<_, DbError>(tx.execute("UPDATE notice_cursor SET seq = 0", [])?)).await.unwrap();
        assert_eq!(notify_once(&db, &mailer, &echo).await.unwrap(), 2);
        assert_eq!(mails(&dir.path().join("mail")), 2);
    }

    #[tokio::test]
    async fn history_before_the_notifier_is_not_mailed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let old = Db::open(&path, &[crate::outbox::TABLE]).await.unwrap();
        old.write(|tx| Ok::<_, DbError>(crate::outbox::record(tx, "registration.made", &serde_json::json!({}), 1)?))
            .await
            .unwrap();
        drop(old);
        let db = Db::open(&path, &[crate::outbox::TABLE, TABLES]).await.unwrap();
        let mailer = Mailer::new(None, dir.path().join("mail"), "v@example.com").unwrap();
        assert_eq!(notify_once(&db, &mailer, &Echo { composed: Mutex::default() }).await.unwrap(), 0);
    }
}
