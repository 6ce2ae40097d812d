//! Organizations' domain types, their validation, and the one policy that says who may do
//! what. No I/O here.

use clients::people::Person;
use kit::validate::{check_free_text, has_hidden_chars, web_url};
pub use kit::validate::{is_valid_email, is_web_url, normalize_email};
use kit::{ApiError, Violations};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

const NAME_MAX: usize = 120;
const DESCRIPTION_MAX: usize = 5000;
pub const SLUG_MIN: usize = 3;
pub const SLUG_MAX: usize = 64;
/// Contacts are a small open map (`email`, `phone`, `telegram`, `vk`, ...): bounded so a
/// profile cannot become a document store.
const CONTACTS_MAX: usize = 10;
const CONTACT_KEY_MAX: usize = 32;
const CONTACT_VALUE_MAX: usize = 200;
/// Search text is bounded before it becomes a `LIKE` pattern.
pub const QUERY_MAX: usize = 100;

/// Slugs a frontend is likely to want as a path of its own (`/o/new`, `/o/settings`).
const RESERVED_SLUGS: [&str; 8] = ["new", "me", "admin", "api", "invitations", "settings", "search", "edit"];

/// A person's role in one organization. Declared from least to most powerful, so the
/// derived order ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Member, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Everything someone may try to do to an organization, named for the policy.
///
/// Actions that touch another person carry that person's role (and the role they would
/// get), because "admins manage members but cannot touch owners" depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the member list, or look up someone's membership.
    ViewMembers,
    /// Change the organization's profile (name, slug, description, links, contacts).
    Edit,
    /// Delete the organization with its members and invitations.
    Delete,
    /// Hand ownership to another member.
    Transfer,
    /// See the pending invitations.
    ViewInvitations,
    /// See members' email addresses beside their names.
    ViewMemberEmails,
    /// Invite someone by email to join with this role.
    Invite(Role),
    /// Revoke a pending invitation that would grant this role.
    RevokeInvitation(Role),
    /// Change another member's role `from` one `to` another.
    ChangeRole { from: Role, to: Role },
    /// Remove another member who holds this role.
    Remove(Role),
    /// Leave the organization oneself.
    Leave,
    /// Create and manage the organization's events (asked by the events service through
    /// the membership lookup; listed here so the whole policy is in one place).
    ManageEvents,
}

/// Who may do what: the whole access policy of organizations, in one pure function.
///
/// `role` is the caller's role in the organization (`None` for non-members);
/// `platform_admin` is the platform-wide `admin` role, which may do anything. Invariants
/// that depend on the data rather than on who asks (an organization keeps an owner) are
/// the store's business, not this function's.
pub fn allows(role: Option<Role>, platform_admin: bool, action: Action) -> bool {
    if platform_admin {
        return true;
    }
    let Some(role) = role else { return false };
    match action {
        Action::ViewMembers | Action::Leave => true,
        Action::Edit | Action::ViewInvitations | Action::ViewMemberEmails | Action::ManageEvents => role >= Role::Admin,
        Action::Delete | Action::Transfer => role == Role::Owner,
        // Admins handle members and admins; anything that makes or touches an owner is
        // for owners.
        Action::Invite(granted) | Action::RevokeInvitation(granted) => match role {
            Role::Owner => true,
            Role::Admin => granted != Role::Owner,
            Role::Member => false,
        },
        Action::ChangeRole { from, to } => match role {
            Role::Owner => true,
            Role::Admin => from != Role::Owner && to != Role::Owner,
            Role::Member => false,
        },
        Action::Remove(target) => match role {
            Role::Owner => true,
            Role::Admin => target != Role::Owner,
            Role::Member => false,
        },
    }
}

/// Contacts of an organization: a small map of named strings.
pub type Contacts = BTreeMap<String, String>;

/// A stored organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub website: Option<String>,
    pub contacts: Contacts,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A membership: one person in one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub joined_at: i64,
}

/// An invitation as stored (the token itself never is, only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: Uuid,
    pub organization_id: Uuid,
    /// Normalized (trimmed, lower-cased): compared with the accepting person's email.
    pub email: String,
    pub role: Role,
    pub invited_by: Uuid,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One of the caller's organizations, with their role in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MyOrganization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub role: Role,
}

/// How the slug of a new organization is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlugChoice {
    /// Asked for by the caller: taken means 409.
    Exact(String),
    /// Made from the name: taken means the store tries `base-2`, `base-3`, ...
    Derived(String),
}

/// A validated new organization.
#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub name: String,
    pub slug: SlugChoice,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub website: Option<String>,
    pub contacts: Contacts,
}

/// A validated change: `None` keeps a field; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct OrganizationChange {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<Option<String>>,
    pub logo_url: Option<Option<String>>,
    pub website: Option<Option<String>>,
    pub contacts: Option<ContactsChange>,
}

/// A merge patch of the contacts (RFC 7396): `null` clears them all; in an object, a
/// contact set to a value is added or replaced and one set to `null` is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactsChange {
    Clear,
    Merge(BTreeMap<String, Option<String>>),
}

impl Organization {
    /// The organization after `change` (validated already; see [`Self::check_contacts_count`]).
    pub fn apply(&self, change: &OrganizationChange, now: i64) -> Organization {
        let mut next = self.clone();
        if let Some(name) = &change.name {
            next.name = name.clone();
        }
        if let Some(slug) = &change.slug {
            next.slug = slug.clone();
        }
        if let Some(d) = &change.description {
            next.description = d.clone();
        }
        if let Some(u) = &change.logo_url {
            next.logo_url = u.clone();
        }
        if let Some(u) = &change.website {
            next.website = u.clone();
        }
        match &change.contacts {
            Some(ContactsChange::Clear) => next.contacts.clear(),
            Some(ContactsChange::Merge(entries)) => {
                for (key, value) in entries {
                    match value {
                        Some(value) => next.contacts.insert(key.clone(), value.clone()),
                        None => next.contacts.remove(key),
                    };
                }
            }
            None => {}
        }
        next.updated_at = now;
        next
    }

    /// Whether the contacts are within their bound (a merge may add past it).
    pub fn check_contacts_count(&self) -> Result<(), ApiError> {
        if self.contacts.len() > CONTACTS_MAX {
            return Err(ApiError::field("contacts", format!("at most {CONTACTS_MAX} contacts")));
        }
        Ok(())
    }
}

/// The body of `POST /organizations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    #[schema(schema_with = kit::schemas::one_line::<NAME_MAX>, example = "Kazan Chess Club")]
    pub name: String,
    /// Lowercase letters, digits and hyphens, 3 to 64 characters; made from the name when
    /// left out.
    #[schema(example = "kazan-chess-club", min_length = 3, max_length = 64, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub slug: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    #[schema(schema_with = kit::schemas::optional_web_url)]
    pub logo_url: Option<String>,
    #[schema(schema_with = kit::schemas::optional_web_url)]
    pub website: Option<String>,
    /// `email`, `phone`, `telegram`, or any other short name: short strings.
    #[schema(example = json!({"email": "hello@chess.example", "telegram": "@kazanchess"}))]
    pub contacts: Option<BTreeMap<String, String>>,
}

impl CreateOrganization {
    pub fn validate(self) -> Result<NewOrganization, ApiError> {
        let mut v = Violations::new();
        let name = check_name(&mut v, &self.name);
        let slug = match self.slug.as_deref().map(str::trim) {
            Some(s) => {
                check_slug(&mut v, s);
                SlugChoice::Exact(s.to_owned())
            }
            None => SlugChoice::Derived(slugify(&name)),
        };
        let description = optional_text(&mut v, "description", self.description, DESCRIPTION_MAX);
        let logo_url = optional_url(&mut v, "logo_url", self.logo_url);
        let website = optional_url(&mut v, "website", self.website);
        let contacts = check_contacts(&mut v, self.contacts.unwrap_or_default());
        v.into_result()?;
        Ok(NewOrganization { name, slug, description, logo_url, website, contacts })
    }
}

/// The body of `PATCH /organizations/{id}`: absent fields stay, `null` clears optional ones.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchOrganization {
    /// Absent keeps the name; `null` is refused.
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// Absent keeps the slug; `null` is refused.
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub slug: Option<Option<String>>,
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub logo_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub website: Option<Option<String>>,
    /// Merged: a contact set to `null` is removed, others are added or replaced; `null`
    /// for the whole member clears them all.
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub contacts: Option<Option<BTreeMap<String, Option<String>>>>,
}

impl PatchOrganization {
    pub fn validate(self) -> Result<OrganizationChange, ApiError> {
        let mut v = Violations::new();
        let mut change = OrganizationChange::default();
        match self.name {
            Some(Some(name)) => change.name = Some(check_name(&mut v, &name)),
            Some(None) => v.add("name", "must not be null"),
            None => {}
        }
        match self.slug {
            Some(Some(slug)) => {
                let slug = slug.trim();
                check_slug(&mut v, slug);
                change.slug = Some(slug.to_owned());
            }
            Some(None) => v.add("slug", "must not be null"),
            None => {}
        }
        if let Some(d) = self.description {
            change.description = Some(optional_text(&mut v, "description", d, DESCRIPTION_MAX));
        }
        if let Some(u) = self.logo_url {
            change.logo_url = Some(optional_url(&mut v, "logo_url", u));
        }
        if let Some(u) = self.website {
            change.website = Some(optional_url(&mut v, "website", u));
        }
        change.contacts = match self.contacts {
            None => None,
            Some(None) => Some(ContactsChange::Clear),
            Some(Some(entries)) => {
                // Removals pass as they are; the contacts set are checked like new ones.
                let mut set = Contacts::new();
                let mut merged = BTreeMap::new();
                for (key, value) in entries {
                    match value {
                        Some(value) => drop(set.insert(key, value)),
                        None => drop(merged.insert(key, None)),
                    }
                }
                merged.extend(check_contacts(&mut v, set).into_iter().map(|(key, value)| (key, Some(value))));
                Some(ContactsChange::Merge(merged))
            }
        };
        v.into_result().map(|_| change)
    }
}

/// The body of `PATCH /organizations/{id}/members/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: Role,
}

/// The body of `POST /organizations/{id}/transfer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    /// A member of the organization, who becomes an owner.
    pub user_id: Uuid,
}

/// The body of `POST /organizations/{id}/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    #[schema(schema_with = kit::schemas::email)]
    pub email: String,
    /// `member` when left out.
    pub role: Option<Role>,
}

impl CreateInvitation {
    /// The normalized email and the role.
    pub fn validate(self) -> Result<(String, Role), ApiError> {
        let email = normalize_email(&self.email);
        if !is_valid_email(&email) {
            return Err(ApiError::field("email", "is not an email address"));
        }
        Ok((email, self.role.unwrap_or(Role::Member)))
    }
}

/// The body of `POST /organizations/invitations/accept`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The token from the invitation link.
    pub token: String,
}

/// Trims and checks a name; returns the trimmed name.
fn check_name(v: &mut Violations, name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        v.add("name", "must not be empty");
    } else if name.chars().count() > NAME_MAX {
        v.add("name", format!("must be at most {NAME_MAX} characters"));
    } else if has_hidden_chars(name) {
        v.add("name", "must not contain control or invisible characters");
    }
    name.to_owned()
}

/// Lowercase ASCII letters, digits and single hyphens between them, 3 to 64 long.
pub fn is_valid_slug(s: &str) -> bool {
    (SLUG_MIN..=SLUG_MAX).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

pub fn is_reserved_slug(s: &str) -> bool {
    RESERVED_SLUGS.contains(&s)
}

fn check_slug(v: &mut Violations, slug: &str) {
    if !is_valid_slug(slug) {
        v.add(
            "slug",
            format!(
                "must be {SLUG_MIN} to {SLUG_MAX} lowercase letters, digits and single hyphens, \
                 starting and ending with a letter or digit"
            ),
        );
    } else if is_reserved_slug(slug) {
        v.add("slug", "is reserved");
    }
}

/// Makes a slug from a name: Cyrillic transliterated, everything that is not a letter or
/// digit a hyphen, at most 64 long. Always a valid slug (names of emoji become `org`).
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if let Some(latin) = transliterate(c) {
            out.push_str(latin);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    // Soft and hard signs vanish, which can leave a hyphen doubled or trailing.
    let mut slug = out.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
    if slug.len() < SLUG_MIN {
        slug = if slug.is_empty() { "org".to_owned() } else { format!("org-{slug}") };
    }
    truncate_slug(&slug, SLUG_MAX)
}

/// Cuts a slug to at most `max` bytes (it is ASCII) without leaving a trailing hyphen.
pub fn truncate_slug(slug: &str, max: usize) -> String {
    let cut = &slug[..slug.len().min(max)];
    cut.trim_end_matches('-').to_owned()
}

/// Russian, Ukrainian and Belarusian letters in the common passport-style Latin spelling.
fn transliterate(c: char) -> Option<&'static str> {
    Some(match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' => "g",
        'д' => "d",
        'е' => "e",
        'ё' => "yo",
        'ж' => "zh",
        'з' => "z",
        'и' => "i",
        'й' => "y",
        'к' => "k",
        'л' => "l",
        'м' => "m",
        'н' => "n",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' => "u",
        'ф' => "f",
        'х' => "kh",
        'ц' => "ts",
        'ч' => "ch",
        'ш' => "sh",
        'щ' => "shch",
        'ъ' | 'ь' => "",
        'ы' => "y",
        'э' => "e",
        'ю' => "yu",
        'я' => "ya",
        'і' => "i",
        'ї' => "yi",
        'є' => "ye",
        'ґ' => "g",
        'ў' => "u",
        _ => return None,
    })
}

/// Trims optional text; empty means absent.
fn optional_text(v: &mut Violations, field: &str, value: Option<String>, max: usize) -> Option<String> {
    let value = value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())?;
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
    check_free_text(v, field, &value);
    Some(value)
}

fn optional_url(v: &mut Violations, field: &str, value: Option<String>) -> Option<String> {
    let value = value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())?;
    match web_url(&value) {
        Some(normalized) => Some(normalized),
        None => {
            v.add(field, "must be an http or https URL");
            Some(value)
        }
    }
}

/// A phone number as people write it: digits with `+`, spaces, hyphens, dots, brackets.
fn is_phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    s.len() <= 32 && (5..=20).contains(&digits) && s.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

/// A Telegram username (`@name` or `name`, 5 to 32 of letters, digits, underscores) or
/// a `t.me` link.
fn is_telegram(s: &str) -> bool {
    let handle = s.strip_prefix('@').unwrap_or(s);
    let is_handle = (5..=32).contains(&handle.len()) && handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    is_handle || (is_web_url(s) && url::Url::parse(s).is_ok_and(|u| u.host_str() == Some("t.me")))
}

/// Checks contacts loosely: short keys, short values; `email`, `phone` and `telegram`
/// must look like what they say. Values are trimmed.
fn check_contacts(v: &mut Violations, contacts: Contacts) -> Contacts {
    if contacts.len() > CONTACTS_MAX {
        v.add("contacts", format!("at most {CONTACTS_MAX} contacts"));
        return Contacts::new();
    }
    let mut out = Contacts::new();
    for (key, value) in contacts {
        let field = format!("contacts.{key}");
        let key_ok = (1..=CONTACT_KEY_MAX).contains(&key.len())
            && key.starts_with(|c: char| c.is_ascii_lowercase())
            && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            let shown: String = key.chars().take(CONTACT_KEY_MAX).collect();
            v.add(
                format!("contacts.{shown}"),
                format!(
                    "contact names are 1 to {CONTACT_KEY_MAX} lowercase letters, digits and underscores, \
                     starting with a letter"
                ),
            );
            continue;
        }
        let value = value.trim().to_owned();
        let ok = match key.as_str() {
            _ if value.is_empty() => Err("must not be empty".to_owned()),
            _ if value.chars().count() > CONTACT_VALUE_MAX => {
                Err(format!("must be at most {CONTACT_VALUE_MAX} characters"))
            }
            _ if has_hidden_chars(&value) => Err("must not contain control or invisible characters".to_owned()),
            "email" if !is_valid_email(&normalize_email(&value)) => Err("is not an email address".to_owned()),
            "phone" if !is_phone(&value) => Err("is not a phone number".to_owned()),
            "telegram" if !is_telegram(&value) => Err("is not a Telegram username or t.me link".to_owned()),
            _ => Ok(()),
        };
        match ok {
            Ok(()) => {
                out.insert(key, value);
            }
            Err(message) => v.add(field, message),
        }
    }
    out
}

/// The organization as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub website: Option<String>,
    pub contacts: BTreeMap<String, String>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Organization> for OrganizationView {
    fn from(o: &Organization) -> Self {
        Self {
            id: o.id,
            slug: o.slug.clone(),
            name: o.name.clone(),
            description: o.description.clone(),
            logo_url: o.logo_url.clone(),
            website: o.website.clone(),
            contacts: o.contacts.clone(),
            created_at: kit::rfc3339(o.created_at),
            updated_at: kit::rfc3339(o.updated_at),
        }
    }
}

/// A member as the member list shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    /// RFC 3339.
    pub joined_at: String,
    /// Absent when the account has since been deleted.
    pub display_name: Option<String>,
    /// Shown to the organization's admins and owners only.
    pub email: Option<String>,
}

impl MemberView {
    /// The member with what the viewer may see of the person: the name always, the
    /// address when `show_email`.
    pub fn new(m: &Member, person: Option<&Person>, show_email: bool) -> Self {
        Self {
            organization_id: m.organization_id,
            user_id: m.user_id,
            role: m.role,
            joined_at: kit::rfc3339(m.joined_at),
            display_name: person.map(|p| p.display_name.clone()),
            email: person.filter(|_| show_email).map(|p| p.email.clone()),
        }
    }
}

/// The answer of the membership lookup other services rely on: keep its shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
}

impl From<&Member> for MembershipView {
    fn from(m: &Member) -> Self {
        Self { organization_id: m.organization_id, user_id: m.user_id, role: m.role }
    }
}

/// A pending invitation as admins see it (never with its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Uuid,
    /// RFC 3339.
    pub created_at: String,
    pub expires_at: String,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        Self {
            id: i.id,
            organization_id: i.organization_id,
            email: i.email.clone(),
            role: i.role,
            invited_by: i.invited_by,
            created_at: kit::rfc3339(i.created_at),
            expires_at: kit::rfc3339(i.expires_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action the policy knows, with every role an action can carry.
    fn all_actions() -> Vec<Action> {
        let mut actions = vec![
            Action::ViewMembers,
            Action::Edit,
            Action::Delete,
            Action::Transfer,
            Action::ViewInvitations,
            Action::ViewMemberEmails,
            Action::Leave,
            Action::ManageEvents,
        ];
        for r in Role::ALL {
            actions.push(Action::Invite(r));
            actions.push(Action::RevokeInvitation(r));
            actions.push(Action::Remove(r));
            for to in Role::ALL {
                actions.push(Action::ChangeRole { from: r, to });
            }
        }
        actions
    }

    /// The policy restated as a table, independently of how `allows` is written: the
    /// lowest role that may do each action, or `None` when it depends on the target.
    fn expected(role: Option<Role>, action: Action) -> bool {
        use Role::*;
        let Some(role) = role else { return false };
        let touches_owner = match action {
            Action::Invite(r) | Action::RevokeInvitation(r) | Action::Remove(r) => r == Owner,
            Action::ChangeRole { from, to } => from == Owner || to == Owner,
            _ => false,
        };
        let lowest = match action {
            Action::ViewMembers | Action::Leave => Member,
            Action::Edit | Action::ViewInvitations | Action::ViewMemberEmails | Action::ManageEvents => Admin,
            Action::Delete | Action::Transfer => Owner,
            Action::Invite(_) | Action::RevokeInvitation(_) | Action::ChangeRole { .. } | Action::Remove(_) => {
                if touches_owner {
                    Owner
                } else {
                    Admin
                }
            }
        };
        role >= lowest
    }

    #[test]
    fn policy_matches_the_table_for_every_role_and_action() {
        let mut checked = 0;
        for action in all_actions() {
            for role in [None, Some(Role::Member), Some(Role::Admin), Some(Role::Owner)] {
                assert_eq!(allows(role, false, action), expected(role, action), "{role:?} {action:?}");
                assert!(allows(role, true, action), "platform admins may do anything: {role:?} {action:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, (8 + 3 * 3 + 9) * 4);
    }

    #[test]
    fn policy_spot_checks() {
        use Role::*;
        // Members read, and nothing else but leave.
        assert!(allows(Some(Member), false, Action::ViewMembers));
        assert!(!allows(Some(Member), false, Action::Edit));
        assert!(!allows(Some(Member), false, Action::ViewInvitations));
        assert!(!allows(Some(Member), false, Action::Invite(Member)));
        // Admins manage members and admins, never owners.
        assert!(allows(Some(Admin), false, Action::ChangeRole { from: Member, to: Admin }));
        assert!(allows(Some(Admin), false, Action::Remove(Admin)));
        assert!(!allows(Some(Admin), false, Action::ChangeRole { from: Member, to: Owner }));
        assert!(!allows(Some(Admin), false, Action::ChangeRole { from: Owner, to: Member }));
        assert!(!allows(Some(Admin), false, Action::Remove(Owner)));
        assert!(!allows(Some(Admin), false, Action::Invite(Owner)));
        assert!(!allows(Some(Admin), false, Action::Delete));
        assert!(!allows(Some(Admin), false, Action::Transfer));
        // Owners do everything; strangers nothing; platform admins everything.
        assert!(allows(Some(Owner), false, Action::Delete));
        assert!(!allows(None, false, Action::ViewMembers));
        assert!(allows(None, true, Action::Delete));
    }

    #[test]
    fn slugs_are_checked() {
        for good in ["abc", "kazan-chess-club", "a1-b2", &"x".repeat(64)] {
            assert!(is_valid_slug(good), "{good}");
        }
        for bad in ["", "ab", "Abc", "a_b", "-abc", "abc-", "a--b", "a b c", "клуб", &"x".repeat(65)] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn slugs_are_derived_from_names() {
        assert_eq!(slugify("Kazan Chess Club"), "kazan-chess-club");
        assert_eq!(slugify("Шахматный клуб «Казань»"), "shakhmatnyy-klub-kazan");
        assert_eq!(slugify("Объявления & Съезды"), "obyavleniya-sezdy");
        assert_eq!(slugify("  --Hello,   World!!  "), "hello-world");
        assert_eq!(slugify("Я"), "org-ya");
        assert_eq!(slugify("🎉🎉"), "org");
        let long = slugify(&"слово ".repeat(40));
        assert!(long.len() <= SLUG_MAX && is_valid_slug(&long), "{long}");
        for name in ["x", "a b", "---", "Ёж", "Über Café", "北京"] {
            assert!(is_valid_slug(&slugify(name)), "{name} -> {}", slugify(name));
        }
    }

    fn create(json: &str) -> Result<NewOrganization, ApiError> {
        serde_json::from_str::<CreateOrganization>(json).unwrap().validate()
    }

    fn fields(e: ApiError) -> Vec<String> {
        match e {
            ApiError::Validation(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn new_organizations_are_validated_field_by_field() {
        let ok = create(
            r#"{"name":" Chess ","description":"","website":"https://chess.example",
                "contacts":{"email":"Hi@Chess.example","phone":"+7 (843) 123-45-67","telegram":"@kazanchess","vk":"vk.com/chess"}}"#,
        )
        .unwrap();
        assert_eq!(ok.name, "Chess");
        assert_eq!(ok.slug, SlugChoice::Derived("chess".into()));
        assert_eq!(ok.description, None, "empty text is absent");
        assert_eq!(ok.contacts.len(), 4);

        let bad = create(
            r#"{"name":"","slug":"Bad Slug","logo_url":"javascript:alert(1)","website":"ftp://x.example",
                "contacts":{"email":"nope","phone":"call me","telegram":"@ab","Bad-Key":"x","fax":""}}"#,
        )
        .unwrap_err();
        assert_eq!(
            fields(bad),
            vec![
                "name",
                "slug",
                "logo_url",
                "website",
                "contacts.Bad-Key",
                "contacts.email",
                "contacts.fax",
                "contacts.phone",
                "contacts.telegram"
            ]
        );
        assert_eq!(fields(create(r#"{"name":"A","slug":"admin"}"#).unwrap_err()), vec!["slug"]);
        let long = format!(r#"{{"name":"{}","description":"{}"}}"#, "n".repeat(121), "d".repeat(5001));
        assert_eq!(fields(create(&long).unwrap_err()), vec!["name", "description"]);
        let many: Contacts = (0..11).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let body = serde_json::json!({"name": "A", "contacts": many}).to_string();
        assert_eq!(fields(create(&body).unwrap_err()), vec!["contacts"]);
    }

    #[test]
    fn patch_keeps_absent_clears_null_and_refuses_null_name() {
        let org = Organization {
            id: Uuid::new_v4(),
            slug: "chess".into(),
            name: "Chess".into(),
            description: Some("d".into()),
            logo_url: None,
            website: Some("https://a.example".into()),
            contacts: Contacts::from([("email".into(), "a@b.co".into())]),
            created_at: 1,
            updated_at: 1,
        };
        let change: PatchOrganization =
            serde_json::from_str(r#"{"description":null,"name":"Chess Club","contacts":null}"#).unwrap();
        let next = org.apply(&change.validate().unwrap(), 5);
        assert_eq!(next.name, "Chess Club");
        assert_eq!(next.description, None);
        assert_eq!(next.website, org.website);
        assert!(next.contacts.is_empty());
        assert_eq!(next.updated_at, 5);
        // Contacts merge member by member (RFC 7396).
        let change: PatchOrganization =
            serde_json::from_str(r#"{"contacts":{"email":null,"telegram":"@chess"}}"#).unwrap();
        let next = org.apply(&change.validate().unwrap(), 6);
        assert_eq!(next.contacts, Contacts::from([("telegram".into(), "@chess".into())]));
        let many: BTreeMap<String, Option<String>> =
            (0..CONTACTS_MAX).map(|i| (format!("site{i}"), Some("x".to_owned()))).collect();
        let change = PatchOrganization { contacts: Some(Some(many)), ..Default::default() };
        let next = org.apply(&change.validate().unwrap(), 7);
        assert!(next.check_contacts_count().is_err(), "eleven contacts after the merge");
        let bad: PatchOrganization = serde_json::from_str(r#"{"name":null,"slug":null}"#).unwrap();
        assert_eq!(fields(bad.validate().unwrap_err()), vec!["name", "slug"]);
    }

    #[test]
    fn invitations_need_an_email_and_default_to_member() {
        let ok: CreateInvitation = serde_json::from_str(r#"{"email":" Boris@Example.ORG "}"#).unwrap();
        assert_eq!(ok.validate().unwrap(), ("boris@example.org".to_owned(), Role::Member));
        let bad: CreateInvitation = serde_json::from_str(r#"{"email":"boris","role":"admin"}"#).unwrap();
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<CreateInvitation>(r#"{"email":"a@b.co","role":"boss"}"#).is_err());
    }
}
