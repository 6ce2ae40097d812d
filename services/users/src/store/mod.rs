//! Where users, sessions and single-use tokens live: the [`UserStore`] trait, and its
//! embedded SQLite backend.
//!
//! Each method is one domain operation in one transaction, so invariants (a rotated
//! refresh token is spent, a reset password ends every session) hold even if the
//! process dies between two statements.

mod identities;
mod second_factor;

pub use identities::{Flow, Identity, IdentityStore, Unlink};
pub use second_factor::{SecondFactor, SecondFactorStore};

use crate::model::{Preferences, Profile, Purpose, User};
use async_trait::async_trait;
use clients::people::Person;
use kit::db::row::{json as parse_json, like_substring as like_pattern, to_json, uuid as parse_uuid};
use kit::db::{Db, DbError, Migrations};
use rusqlite::{OptionalExtension, Row, Transaction, params};
use std::path::Path;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("not found")]
    NotFound,
    #[error("this account at the provider is linked to another account")]
    IdentityTaken,
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
            StoreError::EmailTaken => kit::ApiError::Conflict(e.to_string()),
            StoreError::NotFound => kit::ApiError::NotFound("no such user".into()),
            StoreError::IdentityTaken => kit::ApiError::Conflict(e.to_string()),
            StoreError::Db(e) => e.into(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A new account, already validated and hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password_hash: Option<String>,
    pub display_name: String,
    pub roles: Vec<String>,
    pub email_verified: bool,
}

/// A stored session (one signed-in device).
#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Where a session starts.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: Uuid,
    pub refresh_hash: String,
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Refresh {
    /// The token was current: it is now spent and `new_hash` is the session's token.
    Rotated { session: Session, user: Box<User> },
    /// The token had already been spent: someone replayed it, so the session is revoked.
    Reused,
    /// Unknown token, or its session is revoked, expired, or its user disabled.
    Invalid,
}

/// A session as it was listed on ending (`seq` orders the list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedSession {
    pub seq: i64,
    pub session_id: String,
    pub ended_at: i64,
}

/// Administrative changes to an account.
#[derive(Debug, Default, Clone)]
pub struct AdminChange {
    pub disabled: Option<bool>,
    pub roles: Option<Vec<String>>,
    pub email_verified: Option<bool>,
}

/// A search over accounts, newest first.
#[derive(Debug, Clone)]
pub struct UserQuery {
    pub q: Option<String>,
    /// `(created_at, id)` of the last user already shown.
    pub after: Option<(i64, Uuid)>,
    pub limit: u32,
}

#[async_trait]
pub trait UserStore: SecondFactorStore + IdentityStore + Send + Sync + 'static {
    /// Creates an account and records the `user.signed_up` fact with it.
    async fn create_user(&self, new: NewUser, now: i64) -> Result<User>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    async fn update_profile(&self, id: Uuid, profile: Profile, now: i64) -> Result<User>;
    async fn set_preferences(&self, id: Uuid, preferences: Preferences, now: i64) -> Result<User>;
    /// Applies an admin change; disabling an account also ends its sessions.
    async fn admin_update(&self, id: Uuid, change: AdminChange, now: i64) -> Result<User>;
    async fn delete_user(&self, id: Uuid, now: i64) -> Result<()>;
    async fn search_users(&self, query: UserQuery) -> Result<Vec<User>>;
    /// The people behind `ids` (unknown ones left out), for the other services.
    async fn people(&self, ids: Vec<Uuid>) -> Result<Vec<Person>>;
    async fn has_admin(&self) -> Result<bool>;
    /// Whether an enabled administrator other than `id` exists (the platform keeps one).
    async fn has_admin_other_than(&self, id: Uuid) -> Result<bool>;

    async fn create_session(&self, new: NewSession, now: i64) -> Result<Session>;
    /// Spends `presented_hash` and makes `new_hash` the session's refresh token.
    async fn rotate_refresh(
        &self,
        presented_hash: String,
        new_hash: String,
        now: i64,
        expires_at: i64,
    ) -> Result<Refresh>;
    /// Ends the session a refresh token belongs to; `false` when there was none.
    async fn end_session_by_refresh(&self, hash: String, now: i64) -> Result<bool>;
    async fn end_session(&self, user_id: Uuid, session_id: Uuid, now: i64) -> Result<bool>;
    async fn sessions(&self, user_id: Uuid, now: i64) -> Result<Vec<Session>>;
    /// Whether a session exists and is live.
    async fn session_is_live(&self, session_id: Uuid, now: i64) -> Result<bool>;
    /// Sessions ended after list position `after` and at or after `since`, in order, at
    /// most `limit`.
    async fn ended_sessions(&self, after: i64, since: i64, limit: usize) -> Result<Vec<EndedSession>>;
    /// Forgets sessions ended before `before` (their tokens have all expired).
    async fn forget_ended_sessions(&self, before: i64) -> Result<usize>;
    /// The list position of the latest ending ever made (0: none).
    async fn last_ended_seq(&self) -> Result<i64>;

    /// Stores a single-use token, replacing any unused one of the same purpose.
    async fn create_one_time(
        &self,
        user_id: Uuid,
        purpose: Purpose,
        hash: String,
        expires_at: i64,
        now: i64,
    ) -> Result<()>;
    /// Whether a single-use token is live (unspent, unexpired) without spending it: the
    /// cheap check before work that a dead token would waste, such as hashing.
    async fn one_time_is_live(&self, hash: String, purpose: Purpose, now: i64) -> Result<bool>;
    /// Spends a verification token and marks the email verified.
    async fn verify_email(&self, hash: String, now: i64) -> Result<Option<Uuid>>;
    /// Spends a reset token, sets the new password and ends every session of the user.
    async fn reset_password(&self, hash: String, password_hash: String, now: i64) -> Result<Option<Uuid>>;

    async fn ping(&self) -> Result<()>;
}

const MIGRATIONS: Migrations = &[
    r#"
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    password_hash   TEXT,
    display_name    TEXT NOT NULL,
    avatar_url      TEXT,
    bio             TEXT,
    city            TEXT,
    interests       TEXT NOT NULL DEFAULT '[]',
    preferences     TEXT NOT NULL DEFAULT '{}',
    roles           TEXT NOT NULL DEFAULT '[]',
    email_verified  INTEGER NOT NULL DEFAULT 0,
    disabled        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX users_by_created ON users (created_at DESC, id DESC);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    user_agent    TEXT,
    ip            TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Every refresh token a session ever had; only the unused one is current. Spent ones
-- are kept so a replay can be recognised (and punished) rather than just refused.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE one_time_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX one_time_tokens_by_user ON one_time_tokens (user_id, purpose);

"#,
    kit::outbox::TABLE,
    kit::outbox::DELIVERY_TABLE,
    r#"
-- Sessions as they end, in order: verifiers refuse their access tokens until those expire.
-- Kept apart from `sessions`, whose rows go with a deleted account.
CREATE TABLE ended_sessions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  TEXT NOT NULL,
    ended_at    INTEGER NOT NULL
);
CREATE INDEX ended_sessions_by_time ON ended_sessions (ended_at);
"#,
    second_factor::TABLES,
    identities::TABLES,
    second_factor::LOCKOUT,
    identities::PENDING_LINKS,
];

/// The embedded backend: one SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    /// The database handle, for the outbox relay.
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self { db: Db::open(path, MIGRATIONS).await? })
    }
}

const USER_COLUMNS: &str = "id, email, password_hash, display_name, avatar_url, bio, city, interests, \
     preferences, roles, email_verified, disabled, created_at, updated_at, \
     EXISTS (SELECT 1 FROM second_factors f WHERE f.user_id = users.id AND f.confirmed_at IS NOT NULL)";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: parse_uuid(r.get(0)?)?,
        email: r.get(1)?,
        password_hash: r.get(2)?,
        profile: Profile {
            display_name: r.get(3)?,
            avatar_url: r.get(4)?,
            bio: r.get(5)?,
            city: r.get(6)?,
            interests: parse_json(r.get(7)?)?,
        },
        preferences: parse_json(r.get(8)?)?,
        roles: parse_json(r.get(9)?)?,
        email_verified: r.get(10)?,
        disabled: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        second_factor: r.get(14)?,
    })
}

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: parse_uuid(r.get(0)?)?,
        user_id: parse_uuid(r.get(1)?)?,
        created_at: r.get(2)?,
        last_used_at: r.get(3)?,
        expires_at: r.get(4)?,
        user_agent: r.get(5)?,
        ip: r.get(6)?,
    })
}

const SESSION_COLUMNS: &str = "id, user_id, created_at, last_used_at, expires_at, user_agent, ip";

fn get_user(tx: &rusqlite::Connection, id: Uuid) -> rusqlite::Result<Option<User>> {
    tx.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id.to_string()], user_from_row)
        .optional()
}

fn require_user(tx: &rusqlite::Connection, id: Uuid) -> Result<User> {
    get_user(tx, id)?.ok_or(StoreError::NotFound)
}

fn end_all_sessions(tx: &Transaction<'_>, user_id: Uuid, now: i64) -> rusqlite::Result<usize> {
    end_sessions(tx, "user_id = ?1", [user_id.to_string()], now)
}

/// Ends the live sessions that `filter` (an SQL condition on `sessions`) selects, and
/// lists them as ended for the verifiers. Every ending goes through here.
fn end_sessions(
    tx: &Transaction<'_>,
    filter: &'static str,
    params: impl rusqlite::Params,
    now: i64,
) -> rusqlite::Result<usize> {
    let sessions: Vec<(String, i64)> = tx
        .prepare_cached(&format!("SELECT id, expires_at FROM sessions WHERE revoked_at IS NULL AND ({filter})"))?
        .query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut end = tx.prepare_cached("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1")?;
    let mut list = tx.prepare_cached("INSERT INTO ended_sessions (session_id, ended_at) VALUES (?1, ?2)")?;
    for (id, expires_at) in &sessions {
        end.execute(params![id, now])?;
        // A session already past its end has no live token (refresh tokens outlive access
        // tokens): nothing for the verifiers.
        if *expires_at > now {
            list.execute(params![id, now])?;
        }
    }
    Ok(sessions.len())
}

/// Inserts an account and records the `user.signed_up` fact with it.
fn insert_user(tx: &Transaction<'_>, new: NewUser, now: i64) -> Result<User> {
    let id = Uuid::new_v4();
    let inserted = tx.execute(
        "INSERT INTO users (id, email, password_hash, display_name, preferences, roles,
                            email_verified, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (email) DO NOTHING",
        params![
            id.to_string(),
            new.email,
            new.password_hash,
            new.display_name,
            to_json(&Preferences::default()),
            to_json(&new.roles),
            new.email_verified,
            now
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::EmailTaken);
    }
    kit::outbox::record(tx, "user.signed_up", &serde_json::json!({ "user_id": id }), now)?;
    require_user(tx, id)
}

/// Spends a single-use token of `purpose`; returns its user when it was live.
fn spend_one_time(tx: &Transaction<'_>, hash: &str, purpose: Purpose, now: i64) -> rusqlite::Result<Option<Uuid>> {
    let user: Option<String> = tx
        .query_row(
            "UPDATE one_time_tokens SET used_at = ?3
             WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3
             RETURNING user_id",
            params![hash, purpose.as_str(), now],
            |r| r.get(0),
        )
        .optional()?;
    user.map(parse_uuid).transpose()
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, new: NewUser, now: i64) -> Result<User> {
        self.db.write(move |tx| insert_user(tx, new, now)).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>> {
        self.db.read(move |c| Ok(get_user(c, id)?)).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = email.to_owned();
        self.db
            .read(move |c| {
                Ok(c.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1"))?
                    .query_row([email], user_from_row)
                    .optional()?)
            })
            .await
    }

    async fn update_profile(&self, id: Uuid, p: Profile, now: i64) -> Result<User> {
        self.db
            .write(move |tx| {
                let n = tx.execute(
                    "UPDATE users SET display_name = ?2, avatar_url = ?3, bio = ?4, city = ?5, interests = ?6,
                                      updated_at = ?7 WHERE id = ?1",
                    params![id.to_string(), p.display_name, p.avatar_url, p.bio, p.city, to_json(&p.interests), now],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                require_user(tx, id)
            })
            .await
    }

    async fn set_preferences(&self, id: Uuid, preferences: Preferences, now: i64) -> Result<User> {
        self.db
            .write(move |tx| {
                let n = tx.execute(
                    "UPDATE users SET preferences = ?2, updated_at = ?3 WHERE id = ?1",
                    params![id.to_string(), to_json(&preferences), now],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                require_user(tx, id)
            })
            .await
    }

    async fn admin_update(&self, id: Uuid, change: AdminChange, now: i64) -> Result<User> {
        self.db
            .write(move |tx| {
                let mut user = require_user(tx, id)?;
                if let Some(disabled) = change.disabled {
                    user.disabled = disabled;
                    if disabled {
                        end_all_sessions(tx, id, now)?;
                    }
                }
                if let Some(roles) = change.roles {
                    // Tokens carry roles: one taken away must not live on in them.
                    if user.roles.iter().any(|r| !roles.contains(r)) {
                        end_all_sessions(tx, id, now)?;
                    }
                    user.roles = roles;
                }
                if let Some(verified) = change.email_verified {
                    user.email_verified = verified;
                }
                tx.execute(
                    "UPDATE users SET disabled = ?2, roles = ?3, email_verified = ?4, updated_at = ?5 WHERE id = ?1",
                    params![id.to_string(), user.disabled, to_json(&user.roles), user.email_verified, now],
                )?;
                require_user(tx, id)
            })
            .await
    }

    async fn delete_user(&self, id: Uuid, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                end_all_sessions(tx, id, now)?;
                let n = tx.execute("DELETE FROM users WHERE id = ?1", [id.to_string()])?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                let fact = serde_json::json!({ "user_id": id });
                kit::outbox::record(tx, "user.deleted", &fact, now)?;
                Ok(())
            })
            .await
    }

    async fn people(&self, ids: Vec<Uuid>) -> Result<Vec<Person>> {
        let ids = to_json(&ids);
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, display_name, email, json_extract(preferences, '$.language'),
                            json_extract(preferences, '$.time_zone'),
                            coalesce(json_extract(preferences, '$.notifications.email'), 1),
                            coalesce(json_extract(preferences, '$.notifications.event_reminders'), 1)
                     FROM users WHERE id IN (SELECT value FROM json_each(?1))",
                )?;
                let rows = stmt.query_map([ids], |r| {
                    Ok(Person {
                        id: parse_uuid(r.get(0)?)?,
                        display_name: r.get(1)?,
                        email: r.get(2)?,
                        language: r.get::<_, Option<String>>(3)?.unwrap_or_else(crate::model::default_language),
                        time_zone: r.get::<_, Option<String>>(4)?.unwrap_or_else(|| "UTC".to_owned()),
                        event_updates: r.get(5)?,
                        event_reminders: r.get(6)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn search_users(&self, query: UserQuery) -> Result<Vec<User>> {
        self.db
            .read(move |c| {
                let pattern = query.q.as_deref().map(like_pattern);
                let (after_t, after_id) = match query.after {
                    Some((t, id)) => (Some(t), Some(id.to_string())),
                    None => (None, None),
                };
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users
                     WHERE (?1 IS NULL OR email LIKE ?1 ESCAPE '\\' OR display_name LIKE ?1 ESCAPE '\\')
                       AND (?2 IS NULL OR (created_at, id) < (?2, ?3))
                     ORDER BY created_at DESC, id DESC
                     LIMIT ?4"
                ))?;
                let rows = stmt.query_map(params![pattern, after_t, after_id, query.limit], user_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn has_admin(&self) -> Result<bool> {
        self.db
            .read(|c| {
                Ok(c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM users, json_each(users.roles) r WHERE r.value = 'admin')",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    async fn has_admin_other_than(&self, id: Uuid) -> Result<bool> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM users, json_each(users.roles) r
                                    WHERE r.value = 'admin' AND users.disabled = 0 AND users.id != ?1)",
                    [id.to_string()],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    async fn create_session(&self, new: NewSession, now: i64) -> Result<Session> {
        self.db
            .write(move |tx| {
                let id = Uuid::new_v4();
                tx.execute(
                    "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
                    params![id.to_string(), new.user_id.to_string(), now, new.expires_at, new.user_agent, new.ip],
                )?;
                tx.execute(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?1, ?2, ?3)",
                    params![new.refresh_hash, id.to_string(), now],
                )?;
                Ok(Session {
                    id,
                    user_id: new.user_id,
                    created_at: now,
                    last_used_at: now,
                    expires_at: new.expires_at,
                    user_agent: new.user_agent,
                    ip: new.ip,
                })
            })
            .await
    }

    async fn rotate_refresh(&self, presented: String, new_hash: String, now: i64, expires_at: i64) -> Result<Refresh> {
        self.db
            .write(move |tx| {
                let found: Option<(String, Option<i64>)> = tx
                    .query_row(
                        "SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = ?1",
                        [&presented],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((session_id, used_at)) = found else { return Ok(Refresh::Invalid) };
                if used_at.is_some() {
                    // Replay of a spent token: the token family is compromised. End it.
                    end_sessions(tx, "id = ?1", [&session_id], now)?;
                    return Ok(Refresh::Reused);
                }
                let session: Option<Session> = tx
                    .query_row(
                        &format!(
                            "SELECT {SESSION_COLUMNS} FROM sessions
                             WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2"
                        ),
                        params![session_id, now],
                        session_from_row,
                    )
                    .optional()?;
                let Some(mut session) = session else { return Ok(Refresh::Invalid) };
                let user = match get_user(tx, session.user_id)? {
                    Some(u) if !u.disabled => u,
                    _ => return Ok(Refresh::Invalid),
                };
                tx.execute("UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1", params![presented, now])?;
                tx.execute(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?1, ?2, ?3)",
                    params![new_hash, session_id, now],
                )?;
                tx.execute(
                    "UPDATE sessions SET last_used_at = ?2, expires_at = ?3 WHERE id = ?1",
                    params![session_id, now, expires_at],
                )?;
                session.last_used_at = now;
                session.expires_at = expires_at;
                Ok(Refresh::Rotated { session, user: Box::new(user) })
            })
            .await
    }

    async fn end_session_by_refresh(&self, hash: String, now: i64) -> Result<bool> {
        self.db
            .write(move |tx| {
                let filter = "id = (SELECT session_id FROM refresh_tokens WHERE token_hash = ?1)";
                Ok(end_sessions(tx, filter, [hash], now)? > 0)
            })
            .await
    }

    async fn end_session(&self, user_id: Uuid, session_id: Uuid, now: i64) -> Result<bool> {
        self.db
            .write(move |tx| {
                let filter = "id = ?1 AND user_id = ?2";
                Ok(end_sessions(tx, filter, [session_id.to_string(), user_id.to_string()], now)? > 0)
            })
            .await
    }

    async fn sessions(&self, user_id: Uuid, now: i64) -> Result<Vec<Session>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions
                     WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
                     ORDER BY last_used_at DESC"
                ))?;
                let rows = stmt.query_map(params![user_id.to_string(), now], session_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn session_is_live(&self, session_id: Uuid, now: i64) -> Result<bool> {
        self.db
            .read(move |c| {
                Ok(c.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2)",
                )?
                .query_row(params![session_id.to_string(), now], |r| r.get(0))?)
            })
            .await
    }

    async fn ended_sessions(&self, after: i64, since: i64, limit: usize) -> Result<Vec<EndedSession>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT seq, session_id, ended_at FROM ended_sessions
                     WHERE seq > ?1 AND ended_at >= ?2 ORDER BY seq LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![after, since, limit as i64], |r| {
                    Ok(EndedSession { seq: r.get(0)?, session_id: r.get(1)?, ended_at: r.get(2)? })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn forget_ended_sessions(&self, before: i64) -> Result<usize> {
        self.db.write(move |tx| Ok(tx.execute("DELETE FROM ended_sessions WHERE ended_at < ?1", [before])?)).await
    }

    async fn last_ended_seq(&self) -> Result<i64> {
        // AUTOINCREMENT keeps the highest position ever given out, pruned rows included.
        self.db
            .read(|c| {
                let seq: Option<i64> = c
                    .query_row("SELECT seq FROM sqlite_sequence WHERE name = 'ended_sessions'", [], |r| r.get(0))
                    .optional()?;
                Ok(seq.unwrap_or(0))
            })
            .await
    }

    async fn create_one_time(
        &self,
        user_id: Uuid,
        purpose: Purpose,
        hash: String,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        self.db
            .write(move |tx| {
                // Only the newest link works: asking again invalidates the previous mail.
                tx.execute(
                    "DELETE FROM one_time_tokens WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL",
                    params![user_id.to_string(), purpose.as_str()],
                )?;
                tx.execute(
                    "INSERT INTO one_time_tokens (token_hash, user_id, purpose, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![hash, user_id.to_string(), purpose.as_str(), now, expires_at],
                )?;
                Ok(())
            })
            .await
    }

    async fn one_time_is_live(&self, hash: String, purpose: Purpose, now: i64) -> Result<bool> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM one_time_tokens
                                    WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3)",
                    params![hash, purpose.as_str(), now],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    async fn verify_email(&self, hash: String, now: i64) -> Result<Option<Uuid>> {
        self.db
            .write(move |tx| {
                let Some(user_id) = spend_one_time(tx, &hash, Purpose::VerifyEmail, now)? else {
                    return Ok(None);
                };
                tx.execute(
                    "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1",
                    params![user_id.to_string(), now],
                )?;
                Ok(Some(user_id))
            })
            .await
    }

    async fn reset_password(&self, hash: String, password_hash: String, now: i64) -> Result<Option<Uuid>> {
        self.db
            .write(move |tx| {
                let Some(user_id) = spend_one_time(tx, &hash, Purpose::ResetPassword, now)? else { return Ok(None) };
                // Receiving the mail proves the address, too.
                tx.execute(
                    "UPDATE users SET password_hash = ?2, email_verified = 1, updated_at = ?3 WHERE id = ?1",
                    params![user_id.to_string(), password_hash, now],
                )?;
                end_all_sessions(tx, user_id, now)?;
                Ok(Some(user_id))
            })
            .await
    }

    async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }
}

/// A read-through cache of accounts by id in front of another store: `GET /users/me`
/// and every check of "is this account still enabled" read the same row over and over.
/// Writes through this store forget the account at once; other replicas' writes are
/// seen within `ttl`.
pub struct CachedStore<S> {
    inner: S,
    ttl: std::time::Duration,
    users: std::sync::Mutex<std::collections::HashMap<Uuid, (User, std::time::Instant)>>,
}

impl<S> CachedStore<S> {
    pub fn new(inner: S, ttl: std::time::Duration) -> Self {
        Self { inner, ttl, users: Default::default() }
    }

    fn forget(&self, id: Uuid) {
        self.users.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    fn remember(&self, user: &User) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if users.len() >= 100_000 {
            users.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        users.insert(user.id, (user.clone(), std::time::Instant::now()));
    }
}

#[async_trait]
impl<S: UserStore> UserStore for CachedStore<S> {
    async fn create_user(&self, new: NewUser, now: i64) -> Result<User> {
        self.inner.create_user(new, now).await
    }
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>> {
        if let Some((user, at)) = self.users.lock().unwrap_or_else(|p| p.into_inner()).get(&id)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(user.clone()));
        }
        let user = self.inner.user_by_id(id).await?;
        if let Some(u) = &user {
            self.remember(u);
        }
        Ok(user)
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.inner.user_by_email(email).await
    }
    async fn update_profile(&self, id: Uuid, profile: Profile, now: i64) -> Result<User> {
        self.forget(id);
        self.inner.update_profile(id, profile, now).await
    }
    async fn set_preferences(&self, id: Uuid, preferences: Preferences, now: i64) -> Result<User> {
        self.forget(id);
        self.inner.set_preferences(id, preferences, now).await
    }
    async fn admin_update(&self, id: Uuid, change: AdminChange, now: i64) -> Result<User> {
        self.forget(id);
        self.inner.admin_update(id, change, now).await
    }
    async fn delete_user(&self, id: Uuid, now: i64) -> Result<()> {
        self.forget(id);
        self.inner.delete_user(id, now).await
    }
    async fn search_users(&self, query: UserQuery) -> Result<Vec<User>> {
        self.inner.search_users(query).await
    }
    async fn people(&self, ids: Vec<Uuid>) -> Result<Vec<Person>> {
        self.inner.people(ids).await
    }
    async fn has_admin(&self) -> Result<bool> {
        self.inner.has_admin().await
    }
    async fn has_admin_other_than(&self, id: Uuid) -> Result<bool> {
        self.inner.has_admin_other_than(id).await
    }
    async fn create_session(&self, new: NewSession, now: i64) -> Result<Session> {
        self.inner.create_session(new, now).await
    }
    async fn rotate_refresh(&self, presented: String, new_hash: String, now: i64, expires_at: i64) -> Result<Refresh> {
        self.inner.rotate_refresh(presented, new_hash, now, expires_at).await
    }
    async fn end_session_by_refresh(&self, hash: String, now: i64) -> Result<bool> {
        self.inner.end_session_by_refresh(hash, now).await
    }
    async fn end_session(&self, user_id: Uuid, session_id: Uuid, now: i64) -> Result<bool> {
        self.inner.end_session(user_id, session_id, now).await
    }
    async fn sessions(&self, user_id: Uuid, now: i64) -> Result<Vec<Session>> {
        self.inner.sessions(user_id, now).await
    }
    async fn session_is_live(&self, session_id: Uuid, now: i64) -> Result<bool> {
        self.inner.session_is_live(session_id, now).await
    }
    async fn ended_sessions(&self, after: i64, since: i64, limit: usize) -> Result<Vec<EndedSession>> {
        self.inner.ended_sessions(after, since, limit).await
    }
    async fn forget_ended_sessions(&self, before: i64) -> Result<usize> {
        self.inner.forget_ended_sessions(before).await
    }
    async fn last_ended_seq(&self) -> Result<i64> {
        self.inner.last_ended_seq().await
    }
    async fn create_one_time(
        &self,
        user_id: Uuid,
        purpose: Purpose,
        hash: String,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        self.inner.create_one_time(user_id, purpose, hash, expires_at, now).await
    }
    async fn one_time_is_live(&self, hash: String, purpose: Purpose, now: i64) -> Result<bool> {
        self.inner.one_time_is_live(hash, purpose, now).await
    }
    async fn verify_email(&self, hash: String, now: i64) -> Result<Option<Uuid>> {
        let id = self.inner.verify_email(hash, now).await?;
        if let Some(id) = id {
            self.forget(id);
        }
        Ok(id)
    }
    async fn reset_password(&self, hash: String, password_hash: String, now: i64) -> Result<Option<Uuid>> {
        let id = self.inner.reset_password(hash, password_hash, now).await?;
        if let Some(id) = id {
            self.forget(id);
        }
        Ok(id)
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path().join("users.db")).await.unwrap();
        (dir, s)
    }

    fn new_user(email: &str) -> NewUser {
        NewUser {
            email: email.into(),
            password_hash: Some("h".into()),
            display_name: "A".into(),
            roles: vec![],
            email_verified: false,
        }
    }

    #[tokio::test]
    async fn duplicate_email_is_refused() {
        let (_d, s) = store().await;
        s.create_user(new_user("a@b.co"), 1).await.unwrap();
        assert!(matches!(s.create_user(new_user("a@b.co"), 2).await, Err(StoreError::EmailTaken)));
    }

    #[tokio::test]
    async fn reused_refresh_token_revokes_the_session() {
        let (_d, s) = store().await;
        let u = s.create_user(new_user("a@b.co"), 1).await.unwrap();
        let session = s
            .create_session(
                NewSession { user_id: u.id, refresh_hash: "r1".into(), expires_at: 1000, user_agent: None, ip: None },
                1,
            )
            .await
            .unwrap();
        assert!(matches!(s.rotate_refresh("r1".into(), "r2".into(), 2, 1000).await.unwrap(), Refresh::Rotated { .. }));
        assert!(matches!(s.rotate_refresh("r1".into(), "r3".into(), 3, 1000).await.unwrap(), Refresh::Reused));
        // The thief's replay also ended the legitimate holder's current token.
        assert!(matches!(s.rotate_refresh("r2".into(), "r4".into(), 4, 1000).await.unwrap(), Refresh::Invalid));
        assert!(!s.session_is_live(session.id, 5).await.unwrap());
    }

    /// Every way a session ends lists it once, in order, deleted accounts included.
    #[tokio::test]
    async fn every_ending_is_listed_for_the_verifiers() {
        let (_d, s) = store().await;
        let u = s.create_user(new_user("a@b.co"), 1).await.unwrap();
        let session = |hash: &str| NewSession {
            user_id: u.id,
            refresh_hash: hash.into(),
            expires_at: 1_000_000,
            user_agent: None,
            ip: None,
        };
        let logged_out = s.create_session(session("r1"), 1).await.unwrap();
        let ended_by_hand = s.create_session(session("r2"), 1).await.unwrap();
        let replayed = s.create_session(session("r3"), 1).await.unwrap();
        let deleted = s.create_session(session("r4"), 1).await.unwrap();
        assert!(s.end_session_by_refresh("r1".into(), 10).await.unwrap());
        assert!(!s.end_session_by_refresh("r1".into(), 11).await.unwrap(), "an ended session is listed once");
        assert!(s.end_session(u.id, ended_by_hand.id, 20).await.unwrap());
        s.rotate_refresh("r3".into(), "r3b".into(), 30, 1_000_000).await.unwrap();
        assert!(matches!(s.rotate_refresh("r3".into(), "r3c".into(), 31, 1_000_000).await.unwrap(), Refresh::Reused));
        s.delete_user(u.id, 40).await.unwrap();

        let listed = s.ended_sessions(0, 0, 100).await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|e| e.session_id.as_str()).collect();
        let expected: Vec<String> =
            [logged_out.id, ended_by_hand.id, replayed.id, deleted.id].map(|i| i.to_string()).into();
        assert_eq!(ids, expected);
        assert!(listed.windows(2).all(|w| w[0].seq < w[1].seq));
        // Read on from a position, or from a time.
        assert_eq!(s.ended_sessions(listed[1].seq, 0, 100).await.unwrap(), listed[2..].to_vec());
        assert_eq!(s.ended_sessions(0, 25, 100).await.unwrap(), listed[2..].to_vec());
        assert_eq!(s.ended_sessions(0, 0, 1).await.unwrap(), listed[..1].to_vec());
        assert_eq!(s.forget_ended_sessions(25).await.unwrap(), 2);
        assert_eq!(s.ended_sessions(0, 0, 100).await.unwrap(), listed[2..].to_vec());
        assert_eq!(s.last_ended_seq().await.unwrap(), listed[3].seq, "pruning keeps the position");

        // A session already past its end is ended but not listed: it has no live token.
        let u = s.create_user(new_user("b@b.co"), 1).await.unwrap();
        let new = NewSession { user_id: u.id, refresh_hash: "old".into(), expires_at: 50, user_agent: None, ip: None };
        s.create_session(new, 1).await.unwrap();
        s.delete_user(u.id, 60).await.unwrap();
        assert_eq!(s.last_ended_seq().await.unwrap(), listed[3].seq);
    }

    /// Roles travel in tokens: taking one away ends the sessions that carry it.
    #[tokio::test]
    async fn a_role_taken_away_ends_the_sessions() {
        let (_d, s) = store().await;
        let u = s.create_user(NewUser { roles: vec!["admin".into()], ..new_user("a@b.co") }, 1).await.unwrap();
        let new = NewSession { user_id: u.id, refresh_hash: "r".into(), expires_at: 1000, user_agent: None, ip: None };
        s.create_session(new, 1).await.unwrap();
        let verify = AdminChange { email_verified: Some(true), ..AdminChange::default() };
        s.admin_update(u.id, verify, 2).await.unwrap();
        assert!(s.ended_sessions(0, 0, 10).await.unwrap().is_empty(), "other changes keep the session");
        let demote = AdminChange { roles: Some(vec![]), ..AdminChange::default() };
        s.admin_update(u.id, demote, 3).await.unwrap();
        assert_eq!(s.ended_sessions(0, 0, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn one_time_tokens_are_single_use_and_expire() {
        let (_d, s) = store().await;
        let u = s.create_user(new_user("a@b.co"), 1).await.unwrap();
        s.create_one_time(u.id, Purpose::VerifyEmail, "t".into(), 100, 1).await.unwrap();
        assert_eq!(s.verify_email("t".into(), 101).await.unwrap(), None, "expired");
        s.create_one_time(u.id, Purpose::VerifyEmail, "t2".into(), 100, 1).await.unwrap();
        assert_eq!(s.reset_password("t2".into(), "x".into(), 2).await.unwrap(), None, "wrong purpose");
        assert_eq!(s.verify_email("t2".into(), 2).await.unwrap(), Some(u.id));
        assert_eq!(s.verify_email("t2".into(), 3).await.unwrap(), None, "spent");
        assert!(s.user_by_id(u.id).await.unwrap().unwrap().email_verified);
    }

    #[tokio::test]
    async fn the_cache_forgets_an_account_when_it_changes() {
        let (_d, s) = store().await;
        let cached = CachedStore::new(s.clone(), std::time::Duration::from_secs(3600));
        let u = cached.create_user(new_user("a@b.co"), 1).await.unwrap();
        assert!(!cached.user_by_id(u.id).await.unwrap().unwrap().disabled);
        // A write behind the cache's back is not seen within the TTL...
        s.admin_update(u.id, AdminChange { disabled: Some(true), ..Default::default() }, 2).await.unwrap();
        assert!(!cached.user_by_id(u.id).await.unwrap().unwrap().disabled);
        // ...a write through it is seen at once.
        cached.admin_update(u.id, AdminChange { disabled: Some(false), ..Default::default() }, 3).await.unwrap();
        assert!(!cached.user_by_id(u.id).await.unwrap().unwrap().disabled);
        cached.admin_update(u.id, AdminChange { disabled: Some(true), ..Default::default() }, 4).await.unwrap();
        assert!(cached.user_by_id(u.id).await.unwrap().unwrap().disabled);
        cached.delete_user(u.id, 1).await.unwrap();
        assert!(cached.user_by_id(u.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn search_pages_newest_first_and_escapes_wildcards() {
        let (_d, s) = store().await;
        for i in 0..5 {
            s.create_user(new_user(&format!("u{i}@x.co")), i).await.unwrap();
        }
        s.create_user(new_user("percent%@x.co"), 10).await.unwrap();
        let page = s.search_users(UserQuery { q: None, after: None, limit: 4 }).await.unwrap();
        assert_eq!(page[0].email, "percent%@x.co");
        let last = page.last().unwrap();
        let rest =
            s.search_users(UserQuery { q: None, after: Some((last.created_at, last.id)), limit: 4 }).await.unwrap();
        assert_eq!(page.len() + rest.len(), 6);
        let hits = s.search_users(UserQuery { q: Some("%".into()), after: None, limit: 10 }).await.unwrap();
        assert_eq!(hits.len(), 1);
    }
}
