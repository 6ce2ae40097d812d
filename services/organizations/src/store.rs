//! Where organizations, members and invitations live: the [`OrganizationStore`] trait,
//! and its embedded SQLite backend.
//!
//! Each method is one domain operation in one transaction. Operations that change an
//! organization take the acting person ([`Actor`]) and ask [`model::allows`] *inside*
//! that transaction, against the roles as they are at that moment: a request racing a
//! demotion can never act with the role its caller just lost, and "an organization always
//! has an owner" is checked where it cannot be invalidated by a concurrent change.

use crate::model::{
    self, Action, Contacts, Invitation, Member, MyOrganization, NewOrganization, Organization, OrganizationChange,
    Role, SlugChoice,
};
use async_trait::async_trait;
use kit::db::row::{json as parse_json, like_substring, to_json, uuid as parse_uuid};
use kit::db::{Db, DbError, Migrations};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde_json::json;
use std::path::Path;
use uuid::Uuid;

/// How many pending invitations one organization may have: invitations send mail, and
/// this bounds how much mail one organization can make the platform send.
pub const PENDING_INVITATIONS_MAX: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such organization")]
    OrganizationNotFound,
    #[error("no such member")]
    MemberNotFound,
    #[error("no such pending invitation")]
    InvitationNotFound,
    #[error("the slug `{0}` is taken")]
    SlugTaken(String),
    #[error("your role in this organization does not allow this")]
    Forbidden,
    #[error("an organization must keep an owner: make another member an owner or transfer ownership first")]
    LastOwner,
    #[error("you are already a member of this organization")]
    AlreadyMember,
    #[error("the user is not a member of this organization")]
    NotAMember,
    #[error("is you; transfer ownership to another member")]
    SelfTransfer,
    #[error("this invitation link is invalid, used, revoked or expired")]
    InvitationGone,
    #[error("this invitation was sent to another email address")]
    WrongRecipient,
    #[error("this organization has too many pending invitations; revoke some first")]
    TooManyInvitations,
    /// The change is valid alone but not on what is stored (e.g. contacts past their bound).
    #[error("invalid change")]
    Invalid(kit::ApiError),
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
        use kit::ApiError;
        match e {
            StoreError::OrganizationNotFound | StoreError::MemberNotFound | StoreError::InvitationNotFound => {
                ApiError::NotFound(e.to_string())
            }
            StoreError::Forbidden | StoreError::WrongRecipient => ApiError::Forbidden(e.to_string()),
            StoreError::SlugTaken(_)
            | StoreError::LastOwner
            | StoreError::AlreadyMember
            | StoreError::TooManyInvitations => ApiError::Conflict(e.to_string()),
            StoreError::NotAMember | StoreError::SelfTransfer => ApiError::field("user_id", e.to_string()),
            StoreError::InvitationGone => ApiError::Gone(e.to_string()),
            StoreError::Invalid(problem) => problem,
            StoreError::Db(e) => e.into(),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The person doing something, as the policy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    /// The platform-wide `admin` role (from the access token).
    pub platform_admin: bool,
}

/// A search over organizations, by name.
#[derive(Debug, Clone)]
pub struct OrganizationQuery {
    /// Lower-cased text to find in the name or slug.
    pub q: Option<String>,
    /// `(lower-cased name, id)` of the last organization already shown.
    pub after: Option<(String, Uuid)>,
    pub limit: u32,
}

/// An organization a deleted account was taken out of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Departure {
    pub organization_id: Uuid,
    /// The role the account had there.
    pub role: Role,
    /// Who became owner in its place, when it was the last owner and anyone was left.
    pub new_owner: Option<Uuid>,
}

/// A new invitation, its token already hashed.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: String,
    pub role: Role,
    pub token_hash: String,
    pub expires_at: i64,
}

#[async_trait]
pub trait OrganizationStore: Send + Sync + 'static {
    /// Creates an organization with `creator` as its owner, and records
    /// `organization.created` and `member.joined`.
    async fn create(&self, new: NewOrganization, creator: Uuid, now: i64) -> Result<Organization>;
    async fn get(&self, id: Uuid) -> Result<Option<Organization>>;
    async fn get_by_slug(&self, slug: &str) -> Result<Option<Organization>>;
    /// Organizations by name, `limit` at most.
    async fn search(&self, query: OrganizationQuery) -> Result<Vec<Organization>>;
    async fn update(&self, id: Uuid, actor: Actor, change: OrganizationChange, now: i64) -> Result<Organization>;
    /// Deletes an organization with its members and invitations; records
    /// `organization.deleted`.
    async fn delete(&self, id: Uuid, actor: Actor, now: i64) -> Result<()>;

    async fn member(&self, organization: Uuid, user: Uuid) -> Result<Option<Member>>;
    /// Members in the order they joined, after `(joined_at, user_id)`.
    async fn members(&self, organization: Uuid, after: Option<(i64, Uuid)>, limit: u32) -> Result<Vec<Member>>;
    async fn change_role(&self, organization: Uuid, actor: Actor, user: Uuid, role: Role, now: i64) -> Result<Member>;
    /// Removes a member, or lets the actor leave when `user` is the actor; records
    /// `member.left`.
    async fn remove_member(&self, organization: Uuid, actor: Actor, user: Uuid, now: i64) -> Result<()>;
    /// Makes `user` an owner; an owner who hands over becomes an admin.
    async fn transfer(&self, organization: Uuid, actor: Actor, user: Uuid, now: i64) -> Result<()>;
    /// Takes a deleted account out of every organization (recording `member.left`). An
    /// organization it was the last owner of passes to its longest-standing admin, or
    /// failing one its longest-standing member (recording `member.role_changed`).
    async fn forget_user(&self, user: Uuid, now: i64) -> Result<Vec<Departure>>;
    /// The caller's organizations by name, after `(lower-cased name, id)`.
    async fn organizations_of(
        &self,
        user: Uuid,
        after: Option<(String, Uuid)>,
        limit: u32,
    ) -> Result<Vec<MyOrganization>>;

    /// Stores an invitation (replacing a pending one to the same address) and returns it
    /// with its organization, whose name the mail needs.
    async fn invite(
        &self,
        organization: Uuid,
        actor: Actor,
        new: NewInvitation,
        now: i64,
    ) -> Result<(Invitation, Organization)>;
    /// Pending invitations, newest first, after `(created_at, id)`.
    async fn invitations(
        &self,
        organization: Uuid,
        now: i64,
        after: Option<(i64, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Invitation>>;
    async fn revoke_invitation(&self, organization: Uuid, actor: Actor, invitation: Uuid, now: i64) -> Result<()>;
    /// Spends the invitation with this token hash and makes the user a member, when the
    /// invitation is pending and was sent to `email`; records `member.joined`.
    async fn accept_invitation(&self, token_hash: String, user: Uuid, email: String, now: i64) -> Result<Member>;

    async fn ping(&self) -> Result<()>;
}

const MIGRATIONS: Migrations = &[
    r#"
CREATE TABLE organizations (
    id           TEXT PRIMARY KEY,
    slug         TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    -- The lower-cased name: what search matches and lists are ordered by.
    name_key     TEXT NOT NULL,
    description  TEXT,
    logo_url     TEXT,
    website      TEXT,
    contacts     TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX organizations_by_name ON organizations (name_key, id);

-- Keyed by organization first: ids are random, so no key range is hot.
CREATE TABLE members (
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at        INTEGER NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

-- Every invitation ever sent; pending ones have neither accepted_at nor revoked_at and
-- have not expired. Only the SHA-256 of the token is kept.
CREATE TABLE invitations (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash       TEXT NOT NULL UNIQUE,
    invited_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    accepted_at      INTEGER,
    accepted_by      TEXT,
    revoked_at       INTEGER
);
CREATE INDEX invitations_by_organization ON invitations (organization_id, created_at);
"#,
    kit::outbox::TABLE,
    kit::outbox::DELIVERY_TABLE,
    kit::notify::TABLES,
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

const ORG_COLUMNS: &str = "id, slug, name, description, logo_url, website, contacts, created_at, updated_at";
const MEMBER_COLUMNS: &str = "organization_id, user_id, role, joined_at";
const INVITATION_COLUMNS: &str = "id, organization_id, email, role, invited_by, created_at, expires_at";
/// What makes an invitation pending, given `?now` bound by name.
const PENDING: &str = "accepted_at IS NULL AND revoked_at IS NULL AND expires_at > :now";

fn role_from(s: String) -> rusqlite::Result<Role> {
    Role::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("unknown role {s}").into())
    })
}

fn org_from_row(r: &Row<'_>) -> rusqlite::Result<Organization> {
    Ok(Organization {
        id: parse_uuid(r.get(0)?)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        logo_url: r.get(4)?,
        website: r.get(5)?,
        contacts: parse_json::<Contacts>(r.get(6)?)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

fn member_from_row(r: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        organization_id: parse_uuid(r.get(0)?)?,
        user_id: parse_uuid(r.get(1)?)?,
        role: role_from(r.get(2)?)?,
        joined_at: r.get(3)?,
    })
}

fn invitation_from_row(r: &Row<'_>) -> rusqlite::Result<Invitation> {
    Ok(Invitation {
        id: parse_uuid(r.get(0)?)?,
        organization_id: parse_uuid(r.get(1)?)?,
        email: r.get(2)?,
        role: role_from(r.get(3)?)?,
        invited_by: parse_uuid(r.get(4)?)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
    })
}

fn get_org(c: &Connection, id: Uuid) -> rusqlite::Result<Option<Organization>> {
    c.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = ?1"))?
        .query_row([id.to_string()], org_from_row)
        .optional()
}

fn require_org(c: &Connection, id: Uuid) -> Result<Organization> {
    get_org(c, id)?.ok_or(StoreError::OrganizationNotFound)
}

fn get_member(c: &Connection, organization: Uuid, user: Uuid) -> rusqlite::Result<Option<Member>> {
    c.prepare_cached(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE organization_id = ?1 AND user_id = ?2"))?
        .query_row(params![organization.to_string(), user.to_string()], member_from_row)
        .optional()
}

fn slug_taken(c: &Connection, slug: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT EXISTS (SELECT 1 FROM organizations WHERE slug = ?1)")?.query_row([slug], |r| r.get(0))
}

fn owners(c: &Connection, organization: Uuid) -> rusqlite::Result<i64> {
    c.prepare_cached("SELECT count(*) FROM members WHERE organization_id = ?1 AND role = 'owner'")?
        .query_row([organization.to_string()], |r| r.get(0))
}

/// The actor's role in an existing organization, after checking they may do `action`.
fn authorize(c: &Connection, organization: Uuid, actor: Actor, action: Action) -> Result<Option<Role>> {
    require_org(c, organization)?;
    let role = get_member(c, organization, actor.user_id)?.map(|m| m.role);
    if model::allows(role, actor.platform_admin, action) { Ok(role) } else { Err(StoreError::Forbidden) }
}

/// The first free slug for a derived base: `base`, `base-2`, ... `base-99`, then a
/// random suffix (the chance of collision there is negligible, and it is checked too).
fn free_slug(c: &Connection, base: &str) -> Result<String> {
    let usable = |s: &str| -> rusqlite::Result<bool> { Ok(!model::is_reserved_slug(s) && !slug_taken(c, s)?) };
    if usable(base)? {
        return Ok(base.to_owned());
    }
    for n in 2..100 {
        let suffix = format!("-{n}");
        let candidate = format!("{}{suffix}", model::truncate_slug(base, model::SLUG_MAX - suffix.len()));
        if usable(&candidate)? {
            return Ok(candidate);
        }
    }
    loop {
        let suffix = format!("-{}", &Uuid::new_v4().simple().to_string()[..8]);
        let candidate = format!("{}{suffix}", model::truncate_slug(base, model::SLUG_MAX - suffix.len()));
        if usable(&candidate)? {
            return Ok(candidate);
        }
    }
}

/// Adds a member; `via` says how they came (`created`, `invitation`), and an invitation
/// names who sent it (told when it is accepted).
fn insert_member(tx: &Transaction<'_>, member: &Member, via: &str, invited_by: Option<&str>) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO members (organization_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![
            member.organization_id.to_string(),
            member.user_id.to_string(),
            member.role.as_str(),
            member.joined_at
        ])?;
    let fact = json!({
        "organization_id": member.organization_id, "user_id": member.user_id, "role": member.role, "via": via,
        "invited_by": invited_by,
    });
    kit::outbox::record(tx, "member.joined", &fact, member.joined_at)
}

fn set_role(tx: &Transaction<'_>, organization: Uuid, user: Uuid, role: Role) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE members SET role = ?3 WHERE organization_id = ?1 AND user_id = ?2")?.execute(params![
        organization.to_string(),
        user.to_string(),
        role.as_str()
    ])?;
    Ok(())
}

/// Makes the longest-standing admin (else member) of an organization without owners its
/// owner; `None` when nobody is left (platform admins can still invite a new owner).
fn successor(tx: &Transaction<'_>, organization: Uuid, departed: Uuid, now: i64) -> rusqlite::Result<Option<Uuid>> {
    let next: Option<Member> = tx
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE organization_id = ?1
             ORDER BY role = 'admin' DESC, joined_at, user_id LIMIT 1"
        ))?
        .query_row([organization.to_string()], member_from_row)
        .optional()?;
    let Some(next) = next else { return Ok(None) };
    set_role(tx, organization, next.user_id, Role::Owner)?;
    record_role_change(tx, organization, next.user_id, next.role, Role::Owner, departed, now)?;
    Ok(Some(next.user_id))
}

fn record_role_change(
    tx: &Transaction<'_>,
    organization: Uuid,
    user: Uuid,
    from: Role,
    to: Role,
    by: Uuid,
    now: i64,
) -> rusqlite::Result<()> {
    let fact = json!({"organization_id": organization, "user_id": user, "from": from, "to": to, "changed_by": by});
    kit::outbox::record(tx, "member.role_changed", &fact, now)
}

#[async_trait]
impl OrganizationStore for SqliteStore {
    async fn create(&self, new: NewOrganization, creator: Uuid, now: i64) -> Result<Organization> {
        self.db
            .write(move |tx| {
                let slug = match &new.slug {
                    SlugChoice::Exact(s) if slug_taken(tx, s)? => return Err(StoreError::SlugTaken(s.clone())),
                    SlugChoice::Exact(s) => s.clone(),
                    SlugChoice::Derived(base) => free_slug(tx, base)?,
                };
                let org = Organization {
                    id: Uuid::new_v4(),
                    slug,
                    name: new.name,
                    description: new.description,
                    logo_url: new.logo_url,
                    website: new.website,
                    contacts: new.contacts,
                    created_at: now,
                    updated_at: now,
                };
                tx.execute(
                    "INSERT INTO organizations (id, slug, name, name_key, description, logo_url, website, contacts,
                                                created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    params![
                        org.id.to_string(),
                        org.slug,
                        org.name,
                        org.name.to_lowercase(),
                        org.description,
                        org.logo_url,
                        org.website,
                        to_json(&org.contacts),
                        now
                    ],
                )?;
                let fact = json!({"organization_id": org.id, "slug": org.slug, "created_by": creator});
                kit::outbox::record(tx, "organization.created", &fact, now)?;
                let owner = Member { organization_id: org.id, user_id: creator, role: Role::Owner, joined_at: now };
                insert_member(tx, &owner, "created", None)?;
                Ok(org)
            })
            .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Organization>> {
        self.db.read(move |c| Ok(get_org(c, id)?)).await
    }

    async fn get_by_slug(&self, slug: &str) -> Result<Option<Organization>> {
        let slug = slug.to_owned();
        self.db
            .read(move |c| {
                Ok(c.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE slug = ?1"))?
                    .query_row([slug], org_from_row)
                    .optional()?)
            })
            .await
    }

    async fn search(&self, query: OrganizationQuery) -> Result<Vec<Organization>> {
        self.db
            .read(move |c| {
                let pattern = query.q.as_deref().map(like_substring);
                let (after_name, after_id) = match query.after {
                    Some((name, id)) => (Some(name), Some(id.to_string())),
                    None => (None, None),
                };
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {ORG_COLUMNS} FROM organizations
                     WHERE (?1 IS NULL OR name_key LIKE ?1 ESCAPE '\\' OR slug LIKE ?1 ESCAPE '\\')
                       AND (?2 IS NULL OR (name_key, id) > (?2, ?3))
                     ORDER BY name_key, id
                     LIMIT ?4"
                ))?;
                let rows = stmt.query_map(params![pattern, after_name, after_id, query.limit], org_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn update(&self, id: Uuid, actor: Actor, change: OrganizationChange, now: i64) -> Result<Organization> {
        self.db
            .write(move |tx| {
                authorize(tx, id, actor, Action::Edit)?;
                let current = require_org(tx, id)?;
                let next = current.apply(&change, now);
                next.check_contacts_count().map_err(StoreError::Invalid)?;
                if next.slug != current.slug && slug_taken(tx, &next.slug)? {
                    return Err(StoreError::SlugTaken(next.slug));
                }
                tx.execute(
                    "UPDATE organizations SET slug = ?2, name = ?3, name_key = ?4, description = ?5, logo_url = ?6,
                                              website = ?7, contacts = ?8, updated_at = ?9
                     WHERE id = ?1",
                    params![
                        id.to_string(),
                        next.slug,
                        next.name,
                        next.name.to_lowercase(),
                        next.description,
                        next.logo_url,
                        next.website,
                        to_json(&next.contacts),
                        now
                    ],
                )?;
                Ok(next)
            })
            .await
    }

    async fn delete(&self, id: Uuid, actor: Actor, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                authorize(tx, id, actor, Action::Delete)?;
                // Members and invitations go with it (ON DELETE CASCADE).
                tx.execute("DELETE FROM organizations WHERE id = ?1", [id.to_string()])?;
                let fact = json!({"organization_id": id, "deleted_by": actor.user_id});
                kit::outbox::record(tx, "organization.deleted", &fact, now)?;
                Ok(())
            })
            .await
    }

    async fn member(&self, organization: Uuid, user: Uuid) -> Result<Option<Member>> {
        self.db.read(move |c| Ok(get_member(c, organization, user)?)).await
    }

    async fn members(&self, organization: Uuid, after: Option<(i64, Uuid)>, limit: u32) -> Result<Vec<Member>> {
        self.db
            .read(move |c| {
                let (after_t, after_id) = match after {
                    Some((t, id)) => (Some(t), Some(id.to_string())),
                    None => (None, None),
                };
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM members
                     WHERE organization_id = ?1 AND (?2 IS NULL OR (joined_at, user_id) > (?2, ?3))
                     ORDER BY joined_at, user_id
                     LIMIT ?4"
                ))?;
                let rows =
                    stmt.query_map(params![organization.to_string(), after_t, after_id, limit], member_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn change_role(&self, organization: Uuid, actor: Actor, user: Uuid, role: Role, now: i64) -> Result<Member> {
        self.db
            .write(move |tx| {
                // Strangers learn nothing about who is a member.
                authorize(tx, organization, actor, Action::ViewMembers)?;
                let mut member = get_member(tx, organization, user)?.ok_or(StoreError::MemberNotFound)?;
                authorize(tx, organization, actor, Action::ChangeRole { from: member.role, to: role })?;
                if member.role == role {
                    return Ok(member);
                }
                if member.role == Role::Owner && owners(tx, organization)? == 1 {
                    return Err(StoreError::LastOwner);
                }
                set_role(tx, organization, user, role)?;
                record_role_change(tx, organization, user, member.role, role, actor.user_id, now)?;
                member.role = role;
                Ok(member)
            })
            .await
    }

    async fn remove_member(&self, organization: Uuid, actor: Actor, user: Uuid, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                let leaving = user == actor.user_id;
                if !leaving {
                    authorize(tx, organization, actor, Action::ViewMembers)?;
                }
                require_org(tx, organization)?;
                let member = get_member(tx, organization, user)?.ok_or(StoreError::MemberNotFound)?;
                let action = if leaving { Action::Leave } else { Action::Remove(member.role) };
                authorize(tx, organization, actor, action)?;
                if member.role == Role::Owner && owners(tx, organization)? == 1 {
                    return Err(StoreError::LastOwner);
                }
                tx.execute(
                    "DELETE FROM members WHERE organization_id = ?1 AND user_id = ?2",
                    params![organization.to_string(), user.to_string()],
                )?;
                let fact = json!({
                    "organization_id": organization, "user_id": user, "role": member.role, "removed_by": actor.user_id,
                });
                kit::outbox::record(tx, "member.left", &fact, now)?;
                Ok(())
            })
            .await
    }

    async fn transfer(&self, organization: Uuid, actor: Actor, user: Uuid, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                let actor_role = authorize(tx, organization, actor, Action::Transfer)?;
                if user == actor.user_id {
                    return Err(StoreError::SelfTransfer);
                }
                let target = get_member(tx, organization, user)?.ok_or(StoreError::NotAMember)?;
                if target.role != Role::Owner {
                    set_role(tx, organization, user, Role::Owner)?;
                    record_role_change(tx, organization, user, target.role, Role::Owner, actor.user_id, now)?;
                }
                // The owner who hands over steps down to admin. A platform admin who is
                // not an owner only adds one.
                if actor_role == Some(Role::Owner) {
                    set_role(tx, organization, actor.user_id, Role::Admin)?;
                    record_role_change(tx, organization, actor.user_id, Role::Owner, Role::Admin, actor.user_id, now)?;
                }
                Ok(())
            })
            .await
    }

    async fn forget_user(&self, user: Uuid, now: i64) -> Result<Vec<Departure>> {
        self.db
            .write(move |tx| {
                let memberships: Vec<Member> = tx
                    .prepare_cached(&format!("SELECT {MEMBER_COLUMNS} FROM members WHERE user_id = ?1"))?
                    .query_map([user.to_string()], member_from_row)?
                    .collect::<rusqlite::Result<_>>()?;
                let mut departures = Vec::with_capacity(memberships.len());
                for m in memberships {
                    let organization = m.organization_id;
                    tx.execute(
                        "DELETE FROM members WHERE organization_id = ?1 AND user_id = ?2",
                        params![organization.to_string(), user.to_string()],
                    )?;
                    let fact = json!({
                        "organization_id": organization, "user_id": user, "role": m.role, "reason": "account_deleted",
                    });
                    kit::outbox::record(tx, "member.left", &fact, now)?;
                    let new_owner = if m.role == Role::Owner && owners(tx, organization)? == 0 {
                        successor(tx, organization, user, now)?
                    } else {
                        None
                    };
                    departures.push(Departure { organization_id: organization, role: m.role, new_owner });
                }
                Ok(departures)
            })
            .await
    }

    async fn organizations_of(
        &self,
        user: Uuid,
        after: Option<(String, Uuid)>,
        limit: u32,
    ) -> Result<Vec<MyOrganization>> {
        self.db
            .read(move |c| {
                let (after_name, after_id) = match after {
                    Some((name, id)) => (Some(name), Some(id.to_string())),
                    None => (None, None),
                };
                let mut stmt = c.prepare_cached(
                    "SELECT o.id, o.name, o.slug, m.role FROM members m JOIN organizations o ON o.id = m.organization_id
                     WHERE m.user_id = ?1 AND (?2 IS NULL OR (o.name_key, o.id) > (?2, ?3))
                     ORDER BY o.name_key, o.id
                     LIMIT ?4",
                )?;
                let rows = stmt.query_map(params![user.to_string(), after_name, after_id, limit], |r| {
                    Ok(MyOrganization {
                        id: parse_uuid(r.get(0)?)?,
                        name: r.get(1)?,
                        slug: r.get(2)?,
                        role: role_from(r.get(3)?)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn invite(
        &self,
        organization: Uuid,
        actor: Actor,
        new: NewInvitation,
        now: i64,
    ) -> Result<(Invitation, Organization)> {
        self.db
            .write(move |tx| {
                authorize(tx, organization, actor, Action::Invite(new.role))?;
                let org = require_org(tx, organization)?;
                // Inviting the same address again replaces the earlier link: only the
                // newest mail works.
                tx.prepare_cached(&format!(
                    "UPDATE invitations SET revoked_at = :now WHERE organization_id = :org AND email = :email AND {PENDING}"
                ))?
                .execute(rusqlite::named_params! {":now": now, ":org": organization.to_string(), ":email": new.email})?;
                let pending: i64 = tx
                    .prepare_cached(&format!(
                        "SELECT count(*) FROM invitations WHERE organization_id = :org AND {PENDING}"
                    ))?
                    .query_row(rusqlite::named_params! {":now": now, ":org": organization.to_string()}, |r| r.get(0))?;
                if pending >= PENDING_INVITATIONS_MAX {
                    return Err(StoreError::TooManyInvitations);
                }
                let invitation = Invitation {
                    id: Uuid::new_v4(),
                    organization_id: organization,
                    email: new.email,
                    role: new.role,
                    invited_by: actor.user_id,
                    created_at: now,
                    expires_at: new.expires_at,
                };
                tx.execute(
                    "INSERT INTO invitations (id, organization_id, email, role, token_hash, invited_by, created_at,
                                              expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        invitation.id.to_string(),
                        organization.to_string(),
                        invitation.email,
                        invitation.role.as_str(),
                        new.token_hash,
                        actor.user_id.to_string(),
                        now,
                        invitation.expires_at
                    ],
                )?;
                Ok((invitation, org))
            })
            .await
    }

    async fn invitations(
        &self,
        organization: Uuid,
        now: i64,
        after: Option<(i64, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Invitation>> {
        self.db
            .read(move |c| {
                let (after_t, after_id) = match after {
                    Some((t, id)) => (Some(t), Some(id.to_string())),
                    None => (None, None),
                };
                let mut stmt = c.prepare_cached(&format!(
                    "SELECT {INVITATION_COLUMNS} FROM invitations
                     WHERE organization_id = :org AND {PENDING}
                       AND (:after_t IS NULL OR (created_at, id) < (:after_t, :after_id))
                     ORDER BY created_at DESC, id DESC
                     LIMIT :limit"
                ))?;
                let rows = stmt.query_map(
                    rusqlite::named_params! {
                        ":org": organization.to_string(), ":now": now, ":after_t": after_t, ":after_id": after_id,
                        ":limit": limit,
                    },
                    invitation_from_row,
                )?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn revoke_invitation(&self, organization: Uuid, actor: Actor, invitation: Uuid, now: i64) -> Result<()> {
        self.db
            .write(move |tx| {
                authorize(tx, organization, actor, Action::ViewInvitations)?;
                let found: Option<String> = tx
                    .prepare_cached(&format!(
                        "SELECT role FROM invitations WHERE id = :id AND organization_id = :org AND {PENDING}"
                    ))?
                    .query_row(
                        rusqlite::named_params! {":id": invitation.to_string(), ":org": organization.to_string(), ":now": now},
                        |r| r.get(0),
                    )
                    .optional()?;
                let role = role_from(found.ok_or(StoreError::InvitationNotFound)?)?;
                authorize(tx, organization, actor, Action::RevokeInvitation(role))?;
                tx.execute("UPDATE invitations SET revoked_at = ?2 WHERE id = ?1", params![invitation.to_string(), now])?;
                Ok(())
            })
            .await
    }

    async fn accept_invitation(&self, token_hash: String, user: Uuid, email: String, now: i64) -> Result<Member> {
        self.db
            .write(move |tx| {
                let found: Option<(String, String, String, String, String)> = tx
                    .prepare_cached(&format!(
                        "SELECT id, organization_id, email, role, invited_by FROM invitations
                         WHERE token_hash = :hash AND {PENDING}"
                    ))?
                    .query_row(rusqlite::named_params! {":hash": token_hash, ":now": now}, |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .optional()?;
                let (id, organization, invited, role, inviter) = found.ok_or(StoreError::InvitationGone)?;
                // A link forwarded to someone else does not let them in, and is not spent
                // by their attempt: the invited person can still use it.
                if model::normalize_email(&email) != invited {
                    return Err(StoreError::WrongRecipient);
                }
                let organization = parse_uuid(organization)?;
                if get_member(tx, organization, user)?.is_some() {
                    return Err(StoreError::AlreadyMember);
                }
                tx.execute(
                    "UPDATE invitations SET accepted_at = ?2, accepted_by = ?3 WHERE id = ?1",
                    params![id, now, user.to_string()],
                )?;
                let member =
                    Member { organization_id: organization, user_id: user, role: role_from(role)?, joined_at: now };
                insert_member(tx, &member, "invitation", Some(&inviter))?;
                Ok(member)
            })
            .await
    }

    async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path().join("organizations.db")).await.unwrap();
        (dir, s)
    }

    fn new_org(name: &str, slug: Option<&str>) -> NewOrganization {
        NewOrganization {
            name: name.into(),
            slug: match slug {
                Some(s) => SlugChoice::Exact(s.into()),
                None => SlugChoice::Derived(model::slugify(name)),
            },
            description: None,
            logo_url: None,
            website: None,
            contacts: Contacts::new(),
        }
    }

    fn user(id: Uuid) -> Actor {
        Actor { user_id: id, platform_admin: false }
    }

    async fn facts(s: &SqliteStore, kind: &'static str) -> Vec<serde_json::Value> {
        s.db.read(move |c| {
            let mut stmt = c.prepare("SELECT payload FROM outbox WHERE kind = ?1 ORDER BY seq")?;
            let rows = stmt.query_map([kind], |r| r.get::<_, String>(0))?;
            Ok::<_, StoreError>(
                rows.collect::<rusqlite::Result<Vec<_>>>()?.iter().map(|p| serde_json::from_str(p).unwrap()).collect(),
            )
        })
        .await
        .unwrap()
    }

    fn invitation(email: &str, role: Role, hash: &str, expires_at: i64) -> NewInvitation {
        NewInvitation { email: email.into(), role, token_hash: hash.into(), expires_at }
    }

    #[tokio::test]
    async fn creating_makes_the_creator_owner_and_records_both_facts() {
        let (_d, s) = store().await;
        let anna = Uuid::new_v4();
        let org = s.create(new_org("Chess", None), anna, 1).await.unwrap();
        assert_eq!(org.slug, "chess");
        assert_eq!(s.member(org.id, anna).await.unwrap().unwrap().role, Role::Owner);
        assert_eq!(facts(&s, "organization.created").await[0]["organization_id"], org.id.to_string());
        assert_eq!(facts(&s, "member.joined").await[0]["role"], "owner");
    }

    #[tokio::test]
    async fn exact_slugs_conflict_and_derived_ones_get_a_suffix() {
        let (_d, s) = store().await;
        let anna = Uuid::new_v4();
        s.create(new_org("Chess", Some("chess")), anna, 1).await.unwrap();
        assert!(matches!(s.create(new_org("Other", Some("chess")), anna, 2).await, Err(StoreError::SlugTaken(_))));
        assert_eq!(s.create(new_org("Chess", None), anna, 3).await.unwrap().slug, "chess-2");
        assert_eq!(s.create(new_org("Chess!", None), anna, 4).await.unwrap().slug, "chess-3");
        assert_eq!(s.create(new_org("New", None), anna, 4).await.unwrap().slug, "new-2", "reserved");
        let long = "x".repeat(64);
        s.create(new_org("L", Some(&long)), anna, 5).await.unwrap();
        let derived = s.create(new_org(&long, None), anna, 6).await.unwrap().slug;
        assert!(model::is_valid_slug(&derived) && derived.ends_with("-2"), "{derived}");
        // Nothing of the refused attempt was stored.
        assert_eq!(facts(&s, "organization.created").await.len(), 6);
    }

    #[tokio::test]
    async fn the_last_owner_cannot_leave_be_demoted_or_removed() {
        let (_d, s) = store().await;
        let (anna, boris) = (Uuid::new_v4(), Uuid::new_v4());
        let org = s.create(new_org("Chess", None), anna, 1).await.unwrap().id;
        let root = Actor { user_id: Uuid::new_v4(), platform_admin: true };
        assert!(matches!(s.remove_member(org, user(anna), anna, 2).await, Err(StoreError::LastOwner)));
        assert!(matches!(s.change_role(org, user(anna), anna, Role::Admin, 2).await, Err(StoreError::LastOwner)));
        assert!(matches!(s.remove_member(org, root, anna, 2).await, Err(StoreError::LastOwner)));
        // With a second owner, the first may go.
        s.invite(org, user(anna), invitation("b@x.co", Role::Owner, "h", 100), 2).await.unwrap();
        s.accept_invitation("h".into(), boris, "B@x.co".into(), 3).await.unwrap();
        s.remove_member(org, user(anna), anna, 4).await.unwrap();
        assert!(s.member(org, anna).await.unwrap().is_none());
        assert_eq!(facts(&s, "member.left").await[0]["user_id"], anna.to_string());
    }

    /// A deleted account leaves every organization; where it was the last owner, the
    /// longest-standing admin takes over, else the longest-standing member, else nobody.
    #[tokio::test]
    async fn a_deleted_account_hands_its_organizations_on() {
        let (_d, s) = store().await;
        let [anna, boris, vera, gleb, dana] = [(); 5].map(|_| Uuid::new_v4());
        let join = |org: Uuid, who: Uuid, role: Role, at: i64| {
            let s = s.clone();
            async move {
                let hash = format!("{org}{who}");
                s.invite(org, user(anna), invitation("x@x.co", role, &hash, 1000), at).await.unwrap();
                s.accept_invitation(hash, who, "x@x.co".into(), at).await.unwrap();
            }
        };
        // Chess: boris (member) joined before vera (admin) and gleb (admin): vera takes over.
        let chess = s.create(new_org("Chess", None), anna, 1).await.unwrap().id;
        join(chess, boris, Role::Member, 2).await;
        join(chess, vera, Role::Admin, 3).await;
        join(chess, gleb, Role::Admin, 4).await;
        // Go: only members: the first to join takes over.
        let go = s.create(new_org("Go", None), anna, 1).await.unwrap().id;
        join(go, gleb, Role::Member, 5).await;
        join(go, boris, Role::Member, 6).await;
        // Bridge: another owner stays; nobody is promoted.
        let bridge = s.create(new_org("Bridge", None), dana, 1).await.unwrap().id;
        s.invite(bridge, user(dana), invitation("a@x.co", Role::Owner, "b", 1000), 2).await.unwrap();
        s.accept_invitation("b".into(), anna, "a@x.co".into(), 2).await.unwrap();
        // Solo: nobody is left.
        let solo = s.create(new_org("Solo", None), anna, 1).await.unwrap().id;

        let mut gone = s.forget_user(anna, 10).await.unwrap();
        gone.sort_by_key(|d| d.organization_id);
        let mut expected = vec![
            Departure { organization_id: chess, role: Role::Owner, new_owner: Some(vera) },
            Departure { organization_id: go, role: Role::Owner, new_owner: Some(gleb) },
            Departure { organization_id: bridge, role: Role::Owner, new_owner: None },
            Departure { organization_id: solo, role: Role::Owner, new_owner: None },
        ];
        expected.sort_by_key(|d| d.organization_id);
        assert_eq!(gone, expected);
        for org in [chess, go, bridge, solo] {
            assert!(s.member(org, anna).await.unwrap().is_none());
        }
        assert_eq!(s.member(chess, vera).await.unwrap().unwrap().role, Role::Owner);
        assert_eq!(s.member(chess, gleb).await.unwrap().unwrap().role, Role::Admin);
        assert_eq!(s.member(go, gleb).await.unwrap().unwrap().role, Role::Owner);
        assert_eq!(s.member(bridge, dana).await.unwrap().unwrap().role, Role::Owner);
        let left = facts(&s, "member.left").await;
        assert_eq!(left.len(), 4);
        assert!(left.iter().all(|f| f["user_id"] == anna.to_string() && f["reason"] == "account_deleted"));
        let promoted = facts(&s, "member.role_changed").await;
        assert_eq!(promoted.len(), 2, "{promoted:?}");
        // Forgetting again is harmless.
        assert!(s.forget_user(anna, 11).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn admins_cannot_touch_owners_and_members_cannot_manage() {
        let (_d, s) = store().await;
        let (owner, admin, member) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let org = s.create(new_org("Chess", None), owner, 1).await.unwrap().id;
        for (who, role, hash) in [(admin, Role::Admin, "a"), (member, Role::Member, "m")] {
            s.invite(org, user(owner), invitation(&format!("{hash}@x.co"), role, hash, 100), 2).await.unwrap();
            s.accept_invitation(hash.into(), who, format!("{hash}@x.co"), 3).await.unwrap();
        }
        let forbidden = |r: Result<_>| assert!(matches!(r, Err(StoreError::Forbidden)), "{r:?}");
        forbidden(s.change_role(org, user(admin), owner, Role::Member, 4).await.map(|_| ()));
        forbidden(s.change_role(org, user(admin), member, Role::Owner, 4).await.map(|_| ()));
        forbidden(s.remove_member(org, user(admin), owner, 4).await);
        forbidden(s.change_role(org, user(member), admin, Role::Member, 4).await.map(|_| ()));
        forbidden(s.remove_member(org, user(member), admin, 4).await);
        forbidden(s.transfer(org, user(admin), admin, 4).await);
        forbidden(s.delete(org, user(admin), 4).await);
        forbidden(s.invite(org, user(admin), invitation("o@x.co", Role::Owner, "o", 100), 4).await.map(|_| ()));
        let stranger = user(Uuid::new_v4());
        forbidden(s.change_role(org, stranger, Uuid::new_v4(), Role::Member, 4).await.map(|_| ()));
        // What admins may do.
        assert_eq!(s.change_role(org, user(admin), member, Role::Admin, 5).await.unwrap().role, Role::Admin);
        s.remove_member(org, user(admin), member, 6).await.unwrap();
        assert_eq!(facts(&s, "member.role_changed").await.len(), 1);
    }

    #[tokio::test]
    async fn transfer_makes_the_target_owner_and_the_caller_admin() {
        let (_d, s) = store().await;
        let (anna, boris) = (Uuid::new_v4(), Uuid::new_v4());
        let org = s.create(new_org("Chess", None), anna, 1).await.unwrap().id;
        assert!(matches!(s.transfer(org, user(anna), boris, 2).await, Err(StoreError::NotAMember)));
        s.invite(org, user(anna), invitation("b@x.co", Role::Member, "h", 100), 2).await.unwrap();
        s.accept_invitation("h".into(), boris, "b@x.co".into(), 3).await.unwrap();
        s.transfer(org, user(anna), boris, 4).await.unwrap();
        assert_eq!(s.member(org, boris).await.unwrap().unwrap().role, Role::Owner);
        assert_eq!(s.member(org, anna).await.unwrap().unwrap().role, Role::Admin);
    }

    #[tokio::test]
    async fn invitations_are_single_use_expire_and_can_be_revoked() {
        let (_d, s) = store().await;
        let (anna, boris) = (Uuid::new_v4(), Uuid::new_v4());
        let org = s.create(new_org("Chess", None), anna, 1).await.unwrap().id;
        s.invite(org, user(anna), invitation("b@x.co", Role::Member, "t1", 100), 2).await.unwrap();
        assert!(matches!(
            s.accept_invitation("t1".into(), boris, "b@x.co".into(), 100).await,
            Err(StoreError::InvitationGone)
        ));
        // Inviting again replaces the pending link.
        s.invite(org, user(anna), invitation("b@x.co", Role::Member, "t2", 200), 2).await.unwrap();
        let (inv, _) = s.invite(org, user(anna), invitation("b@x.co", Role::Admin, "t3", 200), 3).await.unwrap();
        assert!(matches!(
            s.accept_invitation("t2".into(), boris, "b@x.co".into(), 4).await,
            Err(StoreError::InvitationGone)
        ));
        assert_eq!(s.invitations(org, 4, None, 10).await.unwrap(), vec![inv.clone()]);
        // The wrong person neither gets in nor spends the link.
        assert!(matches!(
            s.accept_invitation("t3".into(), Uuid::new_v4(), "eve@x.co".into(), 4).await,
            Err(StoreError::WrongRecipient)
        ));
        let m = s.accept_invitation("t3".into(), boris, "B@X.CO".into(), 5).await.unwrap();
        assert_eq!(m.role, Role::Admin);
        assert!(matches!(
            s.accept_invitation("t3".into(), boris, "b@x.co".into(), 6).await,
            Err(StoreError::InvitationGone)
        ));
        assert!(s.invitations(org, 6, None, 10).await.unwrap().is_empty());
        // Revoked links are gone too.
        let (inv, _) = s.invite(org, user(anna), invitation("c@x.co", Role::Member, "t4", 200), 7).await.unwrap();
        s.revoke_invitation(org, user(anna), inv.id, 8).await.unwrap();
        assert!(matches!(s.revoke_invitation(org, user(anna), inv.id, 8).await, Err(StoreError::InvitationNotFound)));
        assert!(matches!(
            s.accept_invitation("t4".into(), Uuid::new_v4(), "c@x.co".into(), 9).await,
            Err(StoreError::InvitationGone)
        ));
        assert_eq!(facts(&s, "member.joined").await.len(), 2);
    }

    #[tokio::test]
    async fn deleting_takes_members_and_invitations_along() {
        let (_d, s) = store().await;
        let anna = Uuid::new_v4();
        let org = s.create(new_org("Chess", None), anna, 1).await.unwrap().id;
        s.invite(org, user(anna), invitation("b@x.co", Role::Member, "t", 100), 2).await.unwrap();
        s.delete(org, user(anna), 3).await.unwrap();
        assert!(s.get(org).await.unwrap().is_none());
        assert!(s.organizations_of(anna, None, 10).await.unwrap().is_empty());
        assert!(matches!(
            s.accept_invitation("t".into(), Uuid::new_v4(), "b@x.co".into(), 4).await,
            Err(StoreError::InvitationGone)
        ));
        assert_eq!(facts(&s, "organization.deleted").await[0]["organization_id"], org.to_string());
        assert!(matches!(s.delete(org, user(anna), 5).await, Err(StoreError::OrganizationNotFound)));
    }

    #[tokio::test]
    async fn search_pages_by_name_and_escapes_wildcards() {
        let (_d, s) = store().await;
        let anna = Uuid::new_v4();
        for name in ["Delta Club", "alpha club", "Charlie Club", "Bravo Club", "100% Club", "Шахматы"] {
            s.create(new_org(name, None), anna, 1).await.unwrap();
        }
        let q = |q: Option<&str>, after, limit| OrganizationQuery { q: q.map(str::to_owned), after, limit };
        let first = s.search(q(Some("club"), None, 3)).await.unwrap();
        let names: Vec<&str> = first.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, vec!["100% Club", "alpha club", "Bravo Club"]);
        let last = first.last().unwrap();
        let rest = s.search(q(Some("club"), Some((last.name.to_lowercase(), last.id)), 3)).await.unwrap();
        let names: Vec<&str> = rest.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, vec!["Charlie Club", "Delta Club"]);
        assert_eq!(s.search(q(Some("%"), None, 10)).await.unwrap().len(), 1);
        assert_eq!(s.search(q(Some("шахм"), None, 10)).await.unwrap().len(), 1);
        assert_eq!(s.search(q(Some("shakhm"), None, 10)).await.unwrap().len(), 1, "slugs match too");
        assert_eq!(s.organizations_of(anna, None, 2).await.unwrap().len(), 2);
    }
}
