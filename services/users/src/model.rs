//! Users' domain types and their validation. No I/O here.

use kit::Violations;
use kit::validate::{check_free_text, check_plain, web_url};
pub use kit::validate::{check_len, is_valid_email, is_web_url, normalize_email};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// OWASP: allow long passphrases, but bound the work one request can ask of argon2.
pub const PASSWORD_MAX: usize = 128;
const NAME_MAX: usize = 100;
const BIO_MAX: usize = 2000;
const CITY_MAX: usize = 100;
const INTERESTS_MAX: usize = 30;
const INTEREST_MAX: usize = 50;

/// Platform roles. `admin` may manage every user.
pub const ROLE_ADMIN: &str = "admin";
pub const KNOWN_ROLES: [&str; 1] = [ROLE_ADMIN];

/// A stored account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: Option<String>,
    pub email_verified: bool,
    pub disabled: bool,
    pub roles: Vec<String>,
    pub profile: Profile,
    pub preferences: Preferences,
    pub created_at: i64,
    pub updated_at: i64,
    /// Whether logging in takes a code from an authenticator app (or a recovery code).
    pub second_factor: bool,
}

impl User {
    /// The language the account's mail is written in (its preference).
    pub fn language(&self) -> kit::mail::Language {
        kit::mail::Language::of_tag(&self.preferences.language)
    }
}

/// The display name of an account made by signing in through a provider: the name it
/// shares, made plain and short enough, else the email's local part.
pub fn display_name_from(shared: Option<&str>, email: &str) -> String {
    let plain = |s: &str| -> String {
        let words: Vec<&str> =
            s.split(|c: char| c.is_control() || c.is_whitespace()).filter(|w| !w.is_empty()).collect();
        words.join(" ").chars().take(NAME_MAX).collect()
    };
    let name = shared.map(plain).unwrap_or_default();
    if name.is_empty() { plain(email.split('@').next().unwrap_or("someone")) } else { name }
}

/// What a person shows of themselves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Profile {
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub city: Option<String>,
    #[serde(default)]
    pub interests: Vec<String>,
}

/// How a person wants the platform to behave. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// BCP 47 language tag, e.g. `ru` or `en-GB`.
    #[serde(default = "default_language")]
    pub language: String,
    /// IANA time zone name.
    #[serde(default = "default_time_zone")]
    #[schema(schema_with = kit::schemas::time_zone)]
    pub time_zone: String,
    #[serde(default)]
    pub notifications: Notifications,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    #[serde(default = "yes")]
    pub email: bool,
    #[serde(default = "yes")]
    pub event_reminders: bool,
    #[serde(default)]
    pub marketing: bool,
}

fn yes() -> bool {
    true
}
pub(crate) fn default_language() -> String {
    "en".into()
}
fn default_time_zone() -> String {
    "UTC".into()
}

impl Default for Notifications {
    fn default() -> Self {
        Self { email: true, event_reminders: true, marketing: false }
    }
}

impl Default for Preferences {
    fn default() -> Self {
        Self { language: default_language(), time_zone: default_time_zone(), notifications: Notifications::default() }
    }
}

impl Preferences {
    /// Checks the preferences, with the time zone spelled as the tz database spells it.
    pub fn validate(mut self) -> Result<Self, kit::ApiError> {
        let mut v = Violations::new();
        v.check(is_language_tag(&self.language), "language", "must be a BCP 47 language tag such as `ru` or `en-GB`");
        match kit::validate::time_zone(&self.time_zone) {
            Some(canonical) => self.time_zone = canonical,
            None => v.add("time_zone", "must be an IANA time zone such as `Europe/Moscow`"),
        }
        v.into_result()?;
        Ok(self)
    }
}

/// `ru`, `en-GB`, `zh-Hant-TW`: letters and digits in dash-separated subtags.
fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && s.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Checks a new password. No composition rules (OWASP, NIST 800-63B): length is what counts.
pub fn check_password(v: &mut Violations, field: &str, password: &str, min_len: usize, email: &str) {
    let n = password.chars().count();
    if n < min_len {
        v.add(field, format!("must be at least {min_len} characters"));
    } else if n > PASSWORD_MAX {
        v.add(field, format!("must be at most {PASSWORD_MAX} characters"));
    } else if !email.is_empty() && normalize_email(password) == normalize_email(email) {
        v.add(field, "must not be your email address");
    }
}

pub fn check_display_name(v: &mut Violations, name: &str) {
    if name.trim().is_empty() {
        v.add("display_name", "must not be empty");
    }
    check_len(v, "display_name", name, NAME_MAX);
    check_plain(v, "display_name", name);
}

/// A change to a profile: absent fields stay as they are, `null` clears an optional one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// Absent keeps the name; `null` is refused (everyone has a name).
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "kit::patch::nullable")]
    #[schema(value_type = Option<String>)]
    pub city: Option<Option<String>>,
    pub interests: Option<Vec<String>>,
}

impl ProfilePatch {
    /// Applies the patch to a profile, validating the result.
    pub fn apply(self, profile: &Profile) -> Result<Profile, kit::ApiError> {
        let mut next = profile.clone();
        let mut v = Violations::new();
        match self.display_name {
            Some(Some(name)) => {
                check_display_name(&mut v, &name);
                next.display_name = name.trim().to_owned();
            }
            Some(None) => v.add("display_name", "must not be null"),
            None => {}
        }
        if let Some(url) = self.avatar_url {
            next.avatar_url = match url.as_deref().map(|u| (u, web_url(u))) {
                Some((_, Some(normalized))) => Some(normalized),
                Some((raw, None)) => {
                    v.add("avatar_url", "must be an http or https URL");
                    Some(raw.to_owned())
                }
                None => None,
            };
        }
        if let Some(bio) = self.bio {
            if let Some(b) = &bio {
                check_len(&mut v, "bio", b, BIO_MAX);
                check_free_text(&mut v, "bio", b);
            }
            next.bio = bio;
        }
        if let Some(city) = self.city {
            if let Some(c) = &city {
                check_len(&mut v, "city", c, CITY_MAX);
                check_plain(&mut v, "city", c);
            }
            next.city = city.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
        }
        if let Some(interests) = self.interests {
            next.interests = normalize_interests(&mut v, interests);
        }
        v.into_result().map(|_| next)
    }
}

/// Trims, drops empties and duplicates, and bounds the list.
fn normalize_interests(v: &mut Violations, interests: Vec<String>) -> Vec<String> {
    if interests.len() > INTERESTS_MAX {
        v.add("interests", format!("at most {INTERESTS_MAX} interests"));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, raw) in interests.into_iter().enumerate() {
        let item = raw.trim().to_owned();
        if item.chars().count() > INTEREST_MAX {
            v.add(format!("interests[{i}]"), format!("must be at most {INTEREST_MAX} characters"));
        } else if kit::validate::has_hidden_chars(&item) {
            v.add(format!("interests[{i}]"), "must not contain control or invisible characters");
        } else if !item.is_empty() && !out.iter().any(|x| x.eq_ignore_ascii_case(&item)) {
            out.push(item);
        }
    }
    out
}

/// The user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub city: Option<String>,
    pub interests: Vec<String>,
    pub roles: Vec<String>,
    pub disabled: bool,
    /// Whether logging in takes a second factor (see `/users/me/second-factor`).
    pub second_factor: bool,
    /// Accounts at identity providers linked to this one (in `/users/me` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<IdentityView>>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            email_verified: u.email_verified,
            display_name: u.profile.display_name.clone(),
            avatar_url: u.profile.avatar_url.clone(),
            bio: u.profile.bio.clone(),
            city: u.profile.city.clone(),
            interests: u.profile.interests.clone(),
            roles: u.roles.clone(),
            disabled: u.disabled,
            second_factor: u.second_factor,
            identities: None,
            created_at: kit::rfc3339(u.created_at),
            updated_at: kit::rfc3339(u.updated_at),
        }
    }
}

/// An account at an identity provider, linked.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    /// The provider's id (`GET /auth/providers`).
    pub provider: String,
    /// The email the provider gave when it was linked.
    pub email: Option<String>,
    pub linked_at: String,
}

/// A signed-in device or browser.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether the token used for this request belongs to this session.
    pub current: bool,
}

/// What single-use tokens are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    /// The code a provider's callback hands the frontend, for `/auth/oauth/exchange`.
    SignIn,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::SignIn => "sign_in",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_need_length_not_composition() {
        let mut v = Violations::new();
        check_password(&mut v, "password", "correct horse battery", 12, "a@b.co");
        assert!(v.is_empty());
        let mut v = Violations::new();
        check_password(&mut v, "password", "short", 12, "a@b.co");
        assert!(!v.is_empty());
        let mut v = Violations::new();
        check_password(&mut v, "password", &"x".repeat(PASSWORD_MAX + 1), 12, "a@b.co");
        assert!(!v.is_empty());
        let mut v = Violations::new();
        check_password(&mut v, "password", "Anna@Example.org", 12, "anna@example.org");
        assert!(!v.is_empty());
    }

    #[test]
    fn preferences_fill_defaults_and_reject_unknown_zones() {
        let p: Preferences = serde_json::from_str(r#"{"language":"ru"}"#).unwrap();
        assert_eq!(p.time_zone, "UTC");
        assert!(p.notifications.email);
        assert!(p.validate().is_ok());
        let p: Preferences = serde_json::from_str(r#"{"time_zone":"Mars/Olympus"}"#).unwrap();
        assert!(p.validate().is_err());
        let p: Preferences = serde_json::from_str(r#"{"language":"english!"}"#).unwrap();
        assert!(p.validate().is_err());
        // The tz database's lookup ignores case; what is kept is its own spelling.
        let p: Preferences = serde_json::from_str(r#"{"time_zone":"europe/MOSCOW"}"#).unwrap();
        assert_eq!(p.validate().unwrap().time_zone, "Europe/Moscow");
    }

    #[test]
    fn profile_patch_keeps_absent_and_clears_null() {
        let profile = Profile { display_name: "Anna".into(), city: Some("Kazan".into()), ..Default::default() };
        let patch: ProfilePatch = serde_json::from_str(r#"{"bio":"hi","city":null}"#).unwrap();
        let next = patch.apply(&profile).unwrap();
        assert_eq!(next.display_name, "Anna");
        assert_eq!(next.bio.as_deref(), Some("hi"));
        assert_eq!(next.city, None);
    }

    #[test]
    fn profile_patch_validates() {
        let profile = Profile { display_name: "Anna".into(), ..Default::default() };
        let patch: ProfilePatch =
            serde_json::from_str(r#"{"display_name":" ","avatar_url":"javascript:alert(1)"}"#).unwrap();
        match patch.apply(&profile) {
            Err(kit::ApiError::Validation(errors)) => assert_eq!(errors.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn interests_are_trimmed_and_deduplicated() {
        let mut v = Violations::new();
        let out = normalize_interests(&mut v, vec![" Music ".into(), "music".into(), "".into(), "Chess".into()]);
        assert_eq!(out, vec!["Music", "Chess"]);
        assert!(v.is_empty());
    }
}
