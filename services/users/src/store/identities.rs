//! Accounts at outside identity providers linked to ours, and sign-in flows in progress.
//!
//! A flow is kept from the redirect to the provider until its callback, keyed by the hash
//! of its `state`, and taken (deleted) exactly once, so a replayed callback finds
//! nothing. A link the callback makes is held until the account's owner confirms it. The one-time code the callback hands the frontend is a one-time token of the
//! users store (`Purpose::SignIn`).

use super::{CachedStore, NewUser, Result, SqliteStore, StoreError, get_user, insert_user, require_user};
use crate::model::{Purpose, User};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

pub(super) const TABLES: &str = r#"
CREATE TABLE identities (
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
) WITHOUT ROWID;
CREATE INDEX identities_by_user ON identities (user_id);

-- Sign-ins waiting for their provider's callback (minutes at most).
CREATE TABLE sign_in_flows (
    state_hash     TEXT PRIMARY KEY,
    provider       TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    return_to      TEXT NOT NULL,
    client_state   TEXT,
    link_user      TEXT REFERENCES users (id) ON DELETE CASCADE,
    expires_at     INTEGER NOT NULL
) WITHOUT ROWID;
"#;

pub(super) const PENDING_LINKS: &str = r#"
-- Links a provider's return made, waiting for the account's owner to confirm them with
-- their own token (minutes at most).
CREATE TABLE pending_links (
    code_hash   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    email       TEXT,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// A sign-in in progress.
#[derive(Clone, PartialEq, Eq)]
pub struct Flow {
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The frontend page to send the browser back to.
    pub return_to: String,
    /// The frontend's own `state`, handed back untouched.
    pub client_state: Option<String>,
    /// Set when a signed-in person links a provider to their account.
    pub link_user: Option<Uuid>,
    pub expires_at: i64,
}

/// The nonce and PKCE verifier stay out of logs.
impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("provider", &self.provider)
            .field("return_to", &self.return_to)
            .field("link_user", &self.link_user)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An account at a provider, linked to ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: i64,
}

/// What unlinking a provider did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlink {
    Done,
    NotLinked,
    /// It is the account's last way in (no password, no other provider).
    LastWayIn,
}

#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    async fn begin_flow(&self, state_hash: String, flow: Flow) -> Result<()>;
    /// The flow of this state, once: it is deleted as it is read. Expired flows are gone.
    async fn take_flow(&self, state_hash: String, now: i64) -> Result<Option<Flow>>;
    async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>>;
    /// Links an identity; `IdentityTaken` when another account has it.
    async fn link_identity(&self, user_id: Uuid, identity: Identity) -> Result<()>;
    /// A new account signed in through a provider (no password), in one transaction.
    async fn create_user_with_identity(&self, new: NewUser, identity: Identity, now: i64) -> Result<User>;
    async fn identities(&self, user_id: Uuid) -> Result<Vec<Identity>>;
    async fn unlink_identity(&self, user_id: Uuid, provider: &str) -> Result<Unlink>;
    /// The account a live sign-in code belongs to, without spending it.
    async fn sign_in_code_owner(&self, hash: String, now: i64) -> Result<Option<Uuid>>;
    /// Spends a sign-in code; false when it was spent meanwhile.
    async fn spend_sign_in_code(&self, hash: String, now: i64) -> Result<bool>;
    /// Keeps a link for its owner to confirm.
    async fn hold_link(&self, code_hash: String, user_id: Uuid, identity: Identity, expires_at: i64) -> Result<()>;
    /// The held link of this code, once; expired ones are gone.
    async fn take_link(&self, code_hash: String, now: i64) -> Result<Option<(Uuid, Identity)>>;
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn begin_flow(&self, state_hash: String, flow: Flow) -> Result<()> {
        self.db
            .write(move |tx| {
                tx.execute("DELETE FROM sign_in_flows WHERE expires_at <= ?1", [flow.expires_at - 3600])?;
                tx.execute(
                    "INSERT INTO sign_in_flows
                     (state_hash, provider, nonce, pkce_verifier, return_to, client_state, link_user, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        state_hash,
                        flow.provider,
                        flow.nonce,
                        flow.pkce_verifier,
                        flow.return_to,
                        flow.client_state,
                        flow.link_user.map(|u| u.to_string()),
                        flow.expires_at
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn take_flow(&self, state_hash: String, now: i64) -> Result<Option<Flow>> {
        self.db
            .write(move |tx| {
                let flow = tx
                    .query_row(
                        "DELETE FROM sign_in_flows WHERE state_hash = ?1
                         RETURNING provider, nonce, pkce_verifier, return_to, client_state, link_user, expires_at",
                        [&state_hash],
                        |r| {
                            Ok(Flow {
                                provider: r.get(0)?,
                                nonce: r.get(1)?,
                                pkce_verifier: r.get(2)?,
                                return_to: r.get(3)?,
                                client_state: r.get(4)?,
                                link_user: r.get::<_, Option<String>>(5)?.map(kit::db::row::uuid).transpose()?,
                                expires_at: r.get(6)?,
                            })
                        },
                    )
                    .optional()?;
                Ok(flow.filter(|f| f.expires_at > now))
            })
            .await
    }

    async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>> {
        let (provider, subject) = (provider.to_owned(), subject.to_owned());
        self.db
            .read(move |c| {
                let user: Option<String> = c
                    .query_row(
                        "SELECT user_id FROM identities WHERE provider = ?1 AND subject = ?2",
                        [&provider, &subject],
                        |r| r.get(0),
                    )
                    .optional()?;
                match user {
                    Some(id) => Ok(get_user(c, kit::db::row::uuid(id)?)?),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn link_identity(&self, user_id: Uuid, identity: Identity) -> Result<()> {
        self.db
            .write(move |tx| {
                require_user(tx, user_id)?;
                let owner: Option<String> = tx
                    .query_row(
                        "SELECT user_id FROM identities WHERE provider = ?1 AND subject = ?2",
                        [&identity.provider, &identity.subject],
                        |r| r.get(0),
                    )
                    .optional()?;
                match owner {
                    Some(owner) if owner == user_id.to_string() => Ok(()),
                    Some(_) => Err(StoreError::IdentityTaken),
                    None => {
                        tx.execute(
                            "INSERT INTO identities (provider, subject, user_id, email, created_at)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![
                                identity.provider,
                                identity.subject,
                                user_id.to_string(),
                                identity.email,
                                identity.created_at
                            ],
                        )?;
                        Ok(())
                    }
                }
            })
            .await
    }

    async fn create_user_with_identity(&self, new: NewUser, identity: Identity, now: i64) -> Result<User> {
        self.db
            .write(move |tx| {
                let user = insert_user(tx, new, now)?;
                tx.execute(
                    "INSERT INTO identities (provider, subject, user_id, email, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![identity.provider, identity.subject, user.id.to_string(), identity.email, now],
                )?;
                Ok(user)
            })
            .await
    }

    async fn identities(&self, user_id: Uuid) -> Result<Vec<Identity>> {
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT provider, subject, email, created_at FROM identities WHERE user_id = ?1 ORDER BY created_at, provider",
                )?;
                let rows = stmt.query_map([user_id.to_string()], |r| {
                    Ok(Identity { provider: r.get(0)?, subject: r.get(1)?, email: r.get(2)?, created_at: r.get(3)? })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn unlink_identity(&self, user_id: Uuid, provider: &str) -> Result<Unlink> {
        let provider = provider.to_owned();
        self.db
            .write(move |tx| {
                let id = user_id.to_string();
                let (linked, others, password): (bool, i64, bool) = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM identities WHERE user_id = ?1 AND provider = ?2),
                            (SELECT count(*) FROM identities WHERE user_id = ?1 AND provider != ?2),
                            EXISTS (SELECT 1 FROM users WHERE id = ?1 AND password_hash IS NOT NULL)",
                    params![id, provider],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                if !linked {
                    return Ok(Unlink::NotLinked);
                }
                if others == 0 && !password {
                    return Ok(Unlink::LastWayIn);
                }
                tx.execute("DELETE FROM identities WHERE user_id = ?1 AND provider = ?2", params![id, provider])?;
                Ok(Unlink::Done)
            })
            .await
    }

    async fn sign_in_code_owner(&self, hash: String, now: i64) -> Result<Option<Uuid>> {
        self.db
            .read(move |c| {
                let owner: Option<String> = c
                    .query_row(
                        "SELECT user_id FROM one_time_tokens
                         WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3",
                        params![hash, Purpose::SignIn.as_str(), now],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(owner.map(kit::db::row::uuid).transpose()?)
            })
            .await
    }

    async fn spend_sign_in_code(&self, hash: String, now: i64) -> Result<bool> {
        self.db.write(move |tx| Ok(super::spend_one_time(tx, &hash, Purpose::SignIn, now)?.is_some())).await
    }

    async fn hold_link(&self, code_hash: String, user_id: Uuid, identity: Identity, expires_at: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                tx.execute("DELETE FROM pending_links WHERE expires_at <= ?1", [expires_at - 3600])?;
                tx.execute(
                    "INSERT INTO pending_links (code_hash, user_id, provider, subject, email, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        code_hash,
                        user_id.to_string(),
                        identity.provider,
                        identity.subject,
                        identity.email,
                        expires_at
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn take_link(&self, code_hash: String, now: i64) -> Result<Option<(Uuid, Identity)>> {
        self.db
            .write(move |tx| {
                let held: Option<(String, Identity, i64)> = tx
                    .query_row(
                        "DELETE FROM pending_links WHERE code_hash = ?1
                         RETURNING user_id, provider, subject, email, expires_at",
                        [&code_hash],
                        |r| {
                            let identity =
                                Identity { provider: r.get(1)?, subject: r.get(2)?, email: r.get(3)?, created_at: now };
                            Ok((r.get(0)?, identity, r.get(4)?))
                        },
                    )
                    .optional()?;
                match held.filter(|(_, _, expires)| *expires > now) {
                    Some((user, identity, _)) => Ok(Some((kit::db::row::uuid(user)?, identity))),
                    None => Ok(None),
                }
            })
            .await
    }
}

#[async_trait]
impl<S: IdentityStore> IdentityStore for CachedStore<S> {
    async fn begin_flow(&self, state_hash: String, flow: Flow) -> Result<()> {
        self.inner.begin_flow(state_hash, flow).await
    }
    async fn take_flow(&self, state_hash: String, now: i64) -> Result<Option<Flow>> {
        self.inner.take_flow(state_hash, now).await
    }
    async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>> {
        self.inner.user_by_identity(provider, subject).await
    }
    async fn link_identity(&self, user_id: Uuid, identity: Identity) -> Result<()> {
        self.inner.link_identity(user_id, identity).await
    }
    async fn create_user_with_identity(&self, new: NewUser, identity: Identity, now: i64) -> Result<User> {
        self.inner.create_user_with_identity(new, identity, now).await
    }
    async fn identities(&self, user_id: Uuid) -> Result<Vec<Identity>> {
        self.inner.identities(user_id).await
    }
    async fn unlink_identity(&self, user_id: Uuid, provider: &str) -> Result<Unlink> {
        self.inner.unlink_identity(user_id, provider).await
    }
    async fn sign_in_code_owner(&self, hash: String, now: i64) -> Result<Option<Uuid>> {
        self.inner.sign_in_code_owner(hash, now).await
    }
    async fn spend_sign_in_code(&self, hash: String, now: i64) -> Result<bool> {
        self.inner.spend_sign_in_code(hash, now).await
    }
    async fn hold_link(&self, code_hash: String, user_id: Uuid, identity: Identity, expires_at: i64) -> Result<()> {
        self.inner.hold_link(code_hash, user_id, identity, expires_at).await
    }
    async fn take_link(&self, code_hash: String, now: i64) -> Result<Option<(Uuid, Identity)>> {
        self.inner.take_link(code_hash, now).await
    }
}
