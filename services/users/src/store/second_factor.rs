//! Second factors in the store: a sealed TOTP secret per account (pending until a first
//! code confirms it), the last time step used, and hashed recovery codes. Spending a step
//! or a code is one conditional write, so two logins racing with the same code cannot
//! both pass.

use super::{CachedStore, Result, SqliteStore};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

pub(super) const TABLES: &str = r#"
-- An account's authenticator: the TOTP secret, sealed by the service (see second_factor.rs);
-- pending while confirmed_at is NULL. last_step is the newest time step accepted: a code
-- of that step or an earlier one is refused (RFC 6238 §5.2).
CREATE TABLE second_factors (
    user_id        TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret  BLOB NOT NULL,
    confirmed_at   INTEGER,
    last_step      INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

-- Single-use recovery codes, as SHA-256 hashes.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;
"#;

/// Wrong codes in a row before an account's codes wait, and how long they wait.
pub const CODE_FAILURES_MAX: i64 = 10;
pub const CODE_LOCK_SECONDS: i64 = 900;

pub(super) const LOCKOUT: &str = r#"
-- Wrong codes in a row, and until when the account's codes wait after too many.
ALTER TABLE second_factors ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE second_factors ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;
"#;

/// An account's second factor as stored.
#[derive(Clone)]
pub struct SecondFactor {
    pub sealed_secret: Vec<u8>,
    pub confirmed: bool,
    pub recovery_codes_left: u32,
    /// Codes wait until then (Unix seconds) after too many wrong ones.
    pub locked_until: i64,
}

/// The sealed secret stays out of logs.
impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactor")
            .field("confirmed", &self.confirmed)
            .field("recovery_codes_left", &self.recovery_codes_left)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait SecondFactorStore: Send + Sync + 'static {
    async fn second_factor(&self, user_id: Uuid) -> Result<Option<SecondFactor>>;
    /// Starts (or restarts) enrolment with a new sealed secret; false when a confirmed
    /// factor exists (it must be turned off first).
    async fn begin_second_factor(&self, user_id: Uuid, sealed_secret: Vec<u8>, now: i64) -> Result<bool>;
    /// Confirms a pending factor with the step of its first code, and stores the first
    /// recovery codes; false when nothing was pending.
    async fn confirm_second_factor(&self, user_id: Uuid, step: i64, recovery: Vec<String>, now: i64) -> Result<bool>;
    /// Spends a time step of a confirmed factor: false when it, or a later one, was used.
    async fn spend_step(&self, user_id: Uuid, step: i64) -> Result<bool>;
    /// Spends a recovery code: false when unknown or used.
    async fn spend_recovery_code(&self, user_id: Uuid, hash: String, now: i64) -> Result<bool>;
    /// Replaces every recovery code of a confirmed factor; false without one.
    async fn replace_recovery_codes(&self, user_id: Uuid, recovery: Vec<String>) -> Result<bool>;
    /// Turns the factor off and forgets its codes; false when there was none.
    async fn remove_second_factor(&self, user_id: Uuid) -> Result<bool>;
    /// Counts a wrong code; true when it made the account's codes wait.
    async fn code_failed(&self, user_id: Uuid, now: i64) -> Result<bool>;
    /// A right code: the count starts again.
    async fn code_passed(&self, user_id: Uuid) -> Result<()>;
    /// Whether any account has a second factor (its sealing key must not be lost).
    async fn any_second_factor(&self) -> Result<bool>;
}

fn insert_codes(tx: &Transaction<'_>, user_id: &str, recovery: &[String]) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
    let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)")?;
    for hash in recovery {
        insert.execute(params![user_id, hash])?;
    }
    Ok(())
}

#[async_trait]
impl SecondFactorStore for SqliteStore {
    async fn second_factor(&self, user_id: Uuid) -> Result<Option<SecondFactor>> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT sealed_secret, confirmed_at IS NOT NULL,
                            (SELECT count(*) FROM recovery_codes r WHERE r.user_id = f.user_id AND r.used_at IS NULL),
                            locked_until
                     FROM second_factors f WHERE user_id = ?1",
                    [user_id.to_string()],
                    |r| {
                        Ok(SecondFactor {
                            sealed_secret: r.get(0)?,
                            confirmed: r.get(1)?,
                            recovery_codes_left: r.get(2)?,
                            locked_until: r.get(3)?,
                        })
                    },
                )
                .optional()?)
            })
            .await
    }

    async fn begin_second_factor(&self, user_id: Uuid, sealed_secret: Vec<u8>, now: i64) -> Result<bool> {
        self.db
            .write(move |tx| {
                let n = tx.execute(
                    "INSERT INTO second_factors (user_id, sealed_secret, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
                         created_at = excluded.created_at, last_step = 0
                     WHERE confirmed_at IS NULL",
                    params![user_id.to_string(), sealed_secret, now],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn confirm_second_factor(&self, user_id: Uuid, step: i64, recovery: Vec<String>, now: i64) -> Result<bool> {
        self.db
            .write(move |tx| {
                let id = user_id.to_string();
                let n = tx.execute(
                    "UPDATE second_factors SET confirmed_at = ?2, last_step = ?3
                     WHERE user_id = ?1 AND confirmed_at IS NULL",
                    params![id, now, step],
                )?;
                if n == 1 {
                    insert_codes(tx, &id, &recovery)?;
                }
                Ok(n == 1)
            })
            .await
    }

    async fn spend_step(&self, user_id: Uuid, step: i64) -> Result<bool> {
        self.db
            .write(move |tx| {
                let n = tx.execute(
                    "UPDATE second_factors SET last_step = ?2
                     WHERE user_id = ?1 AND confirmed_at IS NOT NULL AND last_step < ?2",
                    params![user_id.to_string(), step],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn spend_recovery_code(&self, user_id: Uuid, hash: String, now: i64) -> Result<bool> {
        self.db
            .write(move |tx| {
                let n = tx.execute(
                    "UPDATE recovery_codes SET used_at = ?3
                     WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
                    params![user_id.to_string(), hash, now],
                )?;
                Ok(n == 1)
            })
            .await
    }

    async fn replace_recovery_codes(&self, user_id: Uuid, recovery: Vec<String>) -> Result<bool> {
        self.db
            .write(move |tx| {
                let id = user_id.to_string();
                let confirmed: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM second_factors WHERE user_id = ?1 AND confirmed_at IS NOT NULL)",
                    [&id],
                    |r| r.get(0),
                )?;
                if confirmed {
                    insert_codes(tx, &id, &recovery)?;
                }
                Ok(confirmed)
            })
            .await
    }

    async fn remove_second_factor(&self, user_id: Uuid) -> Result<bool> {
        self.db
            .write(move |tx| {
                let id = user_id.to_string();
                tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [&id])?;
                Ok(tx.execute("DELETE FROM second_factors WHERE user_id = ?1", [&id])? == 1)
            })
            .await
    }

    async fn code_failed(&self, user_id: Uuid, now: i64) -> Result<bool> {
        self.db
            .write(move |tx| {
                let id = user_id.to_string();
                tx.execute("UPDATE second_factors SET failures = failures + 1 WHERE user_id = ?1", [&id])?;
                let locked = tx.execute(
                    "UPDATE second_factors SET failures = 0, locked_until = ?2 WHERE user_id = ?1 AND failures >= ?3",
                    params![id, now + CODE_LOCK_SECONDS, CODE_FAILURES_MAX],
                )?;
                Ok(locked == 1)
            })
            .await
    }

    async fn code_passed(&self, user_id: Uuid) -> Result<()> {
        self.db
            .write(move |tx| {
                tx.execute(
                    "UPDATE second_factors SET failures = 0 WHERE user_id = ?1 AND failures > 0",
                    [user_id.to_string()],
                )?;
                Ok(())
            })
            .await
    }

    async fn any_second_factor(&self) -> Result<bool> {
        self.db.read(|c| Ok(c.query_row("SELECT EXISTS (SELECT 1 FROM second_factors)", [], |r| r.get(0))?)).await
    }
}

/// Turning a factor on or off changes the account (`User::second_factor`): the cached
/// copy is forgotten.
#[async_trait]
impl<S: SecondFactorStore> SecondFactorStore for CachedStore<S> {
    async fn second_factor(&self, user_id: Uuid) -> Result<Option<SecondFactor>> {
        self.inner.second_factor(user_id).await
    }
    async fn begin_second_factor(&self, user_id: Uuid, sealed_secret: Vec<u8>, now: i64) -> Result<bool> {
        self.inner.begin_second_factor(user_id, sealed_secret, now).await
    }
    async fn confirm_second_factor(&self, user_id: Uuid, step: i64, recovery: Vec<String>, now: i64) -> Result<bool> {
        let confirmed = self.inner.confirm_second_factor(user_id, step, recovery, now).await;
        self.forget(user_id);
        confirmed
    }
    async fn spend_step(&self, user_id: Uuid, step: i64) -> Result<bool> {
        self.inner.spend_step(user_id, step).await
    }
    async fn spend_recovery_code(&self, user_id: Uuid, hash: String, now: i64) -> Result<bool> {
        self.inner.spend_recovery_code(user_id, hash, now).await
    }
    async fn replace_recovery_codes(&self, user_id: Uuid, recovery: Vec<String>) -> Result<bool> {
        self.inner.replace_recovery_codes(user_id, recovery).await
    }
    async fn remove_second_factor(&self, user_id: Uuid) -> Result<bool> {
        let removed = self.inner.remove_second_factor(user_id).await;
        self.forget(user_id);
        removed
    }
    async fn code_failed(&self, user_id: Uuid, now: i64) -> Result<bool> {
        self.inner.code_failed(user_id, now).await
    }
    async fn code_passed(&self, user_id: Uuid) -> Result<()> {
        self.inner.code_passed(user_id).await
    }
    async fn any_second_factor(&self) -> Result<bool> {
        self.inner.any_second_factor().await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NewUser, UserStore};
    use super::*;
    use crate::model::User;

    async fn one_account() -> (tempfile::TempDir, SqliteStore, User) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path().join("users.db")).await.unwrap();
        let new = NewUser {
            email: "a@b.co".into(),
            password_hash: None,
            display_name: "A".into(),
            roles: vec![],
            email_verified: true,
        };
        let u = s.create_user(new, 1).await.unwrap();
        (dir, s, u)
    }

    #[tokio::test]
    async fn a_factor_is_confirmed_once_and_each_step_and_code_spent_once() {
        let (_dir, s, u) = one_account().await;
        assert!(!u.second_factor);
        assert!(s.begin_second_factor(u.id, vec![1], 2).await.unwrap());
        assert!(s.begin_second_factor(u.id, vec![2], 3).await.unwrap(), "a pending enrolment restarts");
        assert!(!s.user_by_id(u.id).await.unwrap().unwrap().second_factor, "pending is not on");
        assert!(!s.spend_step(u.id, 10).await.unwrap(), "no step of a pending factor counts");
        assert!(s.confirm_second_factor(u.id, 10, vec!["h1".into(), "h2".into()], 4).await.unwrap());
        assert!(!s.confirm_second_factor(u.id, 11, vec![], 5).await.unwrap());
        assert!(!s.begin_second_factor(u.id, vec![3], 6).await.unwrap(), "a confirmed factor stays");
        let f = s.second_factor(u.id).await.unwrap().unwrap();
        assert_eq!((f.sealed_secret, f.confirmed, f.recovery_codes_left), (vec![2], true, 2));
        assert!(s.user_by_id(u.id).await.unwrap().unwrap().second_factor);

        assert!(!s.spend_step(u.id, 10).await.unwrap(), "the confirming code's step is spent");
        assert!(s.spend_step(u.id, 11).await.unwrap());
        assert!(!s.spend_step(u.id, 11).await.unwrap(), "replayed");
        assert!(!s.spend_step(u.id, 9).await.unwrap(), "older");
        assert!(s.spend_recovery_code(u.id, "h1".into(), 7).await.unwrap());
        assert!(!s.spend_recovery_code(u.id, "h1".into(), 8).await.unwrap(), "single use");
        assert!(!s.spend_recovery_code(u.id, "nope".into(), 8).await.unwrap());
        assert_eq!(s.second_factor(u.id).await.unwrap().unwrap().recovery_codes_left, 1);
        assert!(s.replace_recovery_codes(u.id, vec!["h3".into()]).await.unwrap());
        assert!(!s.spend_recovery_code(u.id, "h2".into(), 9).await.unwrap(), "old codes die with a new set");
        assert!(s.remove_second_factor(u.id).await.unwrap());
        assert!(s.second_factor(u.id).await.unwrap().is_none());
        assert!(!s.replace_recovery_codes(u.id, vec!["h4".into()]).await.unwrap());
    }

    #[tokio::test]
    async fn wrong_codes_make_the_account_wait_whatever_their_address() {
        let (_dir, s, u) = one_account().await;
        s.begin_second_factor(u.id, vec![1], 2).await.unwrap();
        s.confirm_second_factor(u.id, 1, vec![], 3).await.unwrap();
        for _ in 1..CODE_FAILURES_MAX {
            assert!(!s.code_failed(u.id, 100).await.unwrap());
        }
        s.code_passed(u.id).await.unwrap();
        for _ in 1..CODE_FAILURES_MAX {
            assert!(!s.code_failed(u.id, 100).await.unwrap(), "a right code started the count again");
        }
        assert!(s.code_failed(u.id, 100).await.unwrap());
        assert_eq!(s.second_factor(u.id).await.unwrap().unwrap().locked_until, 100 + CODE_LOCK_SECONDS);
        assert!(s.any_second_factor().await.unwrap());
    }
}
