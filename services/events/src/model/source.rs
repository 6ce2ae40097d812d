//! Outside sources an organization imports events from (iCalendar, RSS, Atom, JSON), and
//! their validation. No I/O here.

use super::{Format, Visibility, normalize_tag};
use kit::validate::{check_len, check_plain, web_url};
use kit::{ApiError, Violations};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Syncing more often than this burdens the sites we fetch from.
pub const INTERVAL_MIN: u32 = 5;
/// A week.
pub const INTERVAL_MAX: u32 = 7 * 24 * 60;
const NAME_MAX: usize = 200;
const POINTER_MAX: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An iCalendar file (RFC 5545): Google, Outlook, Apple, Thunderbird, Nextcloud exports.
    Ics,
    /// RSS 2.0 (or 1.0), items with the RSS event module's `ev:startdate`.
    Rss,
    /// Atom 1.0, entries with the RSS event module's `ev:startdate`.
    Atom,
    /// Any JSON document, read through a [`JsonMapping`].
    Json,
}

/// What imported events get that a source does not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceDefaults {
    #[serde(default)]
    pub category: Option<String>,
    /// Added to the categories an item carries.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `public` (listed in search) unless set to `unlisted`.
    #[serde(default)]
    pub visibility: Visibility,
    /// When unset: offline where an item has a location, online where it has only a link.
    #[serde(default)]
    pub format: Option<Format>,
    /// IANA zone for items whose times float (no zone of their own); UTC when unset.
    #[serde(default)]
    #[schema(schema_with = kit::schemas::optional_time_zone)]
    pub time_zone: Option<String>,
    /// The venue's city for items with a location (otherwise the location's last part).
    #[serde(default)]
    pub city: Option<String>,
}

/// Where a JSON source keeps its events: JSON Pointers (RFC 6901), `items` into the
/// document, the rest into each item. Times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonMapping {
    /// The array of items; `""` when the document is the array.
    #[serde(default)]
    pub items: String,
    #[schema(example = "/id")]
    pub id: String,
    #[schema(example = "/name")]
    pub title: String,
    #[schema(example = "/starts_at")]
    pub start: String,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// A field that says the item is cancelled when it is `true` or `"cancelled"`.
    #[serde(default)]
    pub cancelled: Option<String>,
}

impl JsonMapping {
    fn pointers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("items", Some(&self.items)),
            ("id", Some(&self.id)),
            ("title", Some(&self.title)),
            ("start", Some(&self.start)),
        ]
        .into_iter()
        .chain([
            ("end", self.end.as_ref()),
            ("description", self.description.as_ref()),
            ("location", self.location.as_ref()),
            ("url", self.url.as_ref()),
            ("cancelled", self.cancelled.as_ref()),
        ])
        .filter_map(|(k, v)| Some((k, v?.as_str())))
    }
}

fn default_interval() -> u32 {
    60
}

fn default_enabled() -> bool {
    true
}

/// What an organization's admin writes: the body of `POST .../sources`, and the shape a
/// `PATCH` merges into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceInput {
    pub kind: SourceKind,
    /// An http or https URL.
    #[schema(schema_with = kit::schemas::web_url)]
    #[schema(example = "https://calendar.example.org/public/basic.ics")]
    pub url: String,
    /// A name for people; the URL's host when unset.
    #[serde(default)]
    #[schema(schema_with = kit::schemas::optional_one_line::<NAME_MAX>)]
    pub name: Option<String>,
    /// Minutes between syncs: 5 to 10080 (a week).
    #[serde(default = "default_interval")]
    #[schema(minimum = 5, maximum = 10080, default = 60)]
    pub interval_minutes: u32,
    #[serde(default)]
    pub defaults: SourceDefaults,
    /// Only for `json` sources, and required there.
    #[serde(default)]
    pub mapping: Option<JsonMapping>,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

impl SourceInput {
    /// Normalises and validates, naming every bad field. The URL's address is checked
    /// when it is fetched (names resolve differently over time).
    pub fn validate(mut self) -> Result<Self, ApiError> {
        let mut v = Violations::new();
        match web_url(self.url.trim()) {
            Some(url) => self.url = url,
            None => v.add("url", "must be an http or https URL"),
        }
        if let Some(name) = &mut self.name {
            *name = name.trim().to_owned();
            v.check(!name.is_empty(), "name", "must not be empty");
            check_len(&mut v, "name", name, NAME_MAX);
            check_plain(&mut v, "name", name);
        }
        v.check(
            (INTERVAL_MIN..=INTERVAL_MAX).contains(&self.interval_minutes),
            "interval_minutes",
            "must be between 5 and 10080 (a week)",
        );
        let d = &mut self.defaults;
        if let Some(c) = &mut d.category {
            *c = normalize_tag(c);
            v.check(!c.is_empty() && c.chars().count() <= 50, "defaults.category", "must be 1 to 50 characters");
            check_plain(&mut v, "defaults.category", c);
        }
        v.check(d.tags.len() <= 20, "defaults.tags", "at most 20 tags");
        d.tags = d.tags.iter().map(|t| normalize_tag(t)).collect();
        for (i, t) in d.tags.iter().enumerate() {
            v.check(
                !t.is_empty() && t.chars().count() <= 50,
                &format!("defaults.tags[{i}]"),
                "must be 1 to 50 characters",
            );
            check_plain(&mut v, &format!("defaults.tags[{i}]"), t);
        }
        d.tags.dedup();
        if let Some(tz) = &d.time_zone {
            match kit::validate::time_zone(tz) {
                Some(canonical) => d.time_zone = Some(canonical),
                None => v.add("defaults.time_zone", "must be an IANA time zone such as `Europe/Moscow`"),
            }
        }
        if let Some(city) = &mut d.city {
            *city = city.trim().to_owned();
            v.check(!city.is_empty(), "defaults.city", "must not be empty");
            check_len(&mut v, "defaults.city", city, NAME_MAX);
            check_plain(&mut v, "defaults.city", city);
        }
        match (&self.kind, &self.mapping) {
            (SourceKind::Json, None) => v.add("mapping", "a json source needs a mapping of its fields"),
            (SourceKind::Json, Some(m)) => {
                for (field, pointer) in m.pointers() {
                    let ok = (pointer.is_empty() && field == "items") || pointer.starts_with('/');
                    v.check(ok, &format!("mapping.{field}"), "must be a JSON Pointer such as `/name`");
                    check_len(&mut v, &format!("mapping.{field}"), pointer, POINTER_MAX);
                }
            }
            (_, Some(_)) => v.add("mapping", "only json sources have a mapping"),
            (_, None) => {}
        }
        v.into_result().map(|_| self)
    }

    /// The name people see: the one given, or the URL's host (cut to the longest name
    /// allowed, since a host may have 253 characters).
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let host = url::Url::parse(&self.url).ok().and_then(|u| u.host_str().map(str::to_owned));
            host.unwrap_or_default().chars().take(NAME_MAX).collect()
        })
    }
}

/// How many events a sync created, changed, cancelled, left alone and could not take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SyncCounts {
    pub created: u32,
    pub updated: u32,
    pub cancelled: u32,
    pub unchanged: u32,
    /// Items that could not become events (see `skipped_items`).
    pub skipped: u32,
}

/// An item a sync could not import, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SkippedItem {
    pub external_id: String,
    pub reason: String,
}

/// Where a source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Never synced yet.
    Pending,
    /// The last sync succeeded.
    Ok,
    /// The last sync failed: see `last_error`.
    Failed,
    /// Not synced until enabled again.
    Disabled,
    /// A sync is under way.
    Syncing,
}

/// What the last syncs did: the source's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    #[schema(format = DateTime)]
    pub last_run_at: Option<String>,
    #[schema(format = DateTime)]
    pub next_run_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    /// What the last successful sync did.
    pub counts: SyncCounts,
    /// The first few items the last sync could not import.
    pub skipped_items: Vec<SkippedItem>,
    /// True when the server said the source had not changed (HTTP 304).
    pub not_modified: bool,
    /// Occurrences of recurring events are imported from this instant …
    #[schema(format = DateTime)]
    pub window_from: Option<String>,
    /// … to this one.
    #[schema(format = DateTime)]
    pub window_to: Option<String>,
}

/// A stored source.
#[derive(Debug, Clone)]
pub struct Source {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub input: SourceInput,
    pub status: SyncStatus,
    /// Whether the last sync failed (kept apart: a failure leaves the counts as they were).
    pub failed: bool,
    pub created_by: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    /// What the last fetch said about the resource, for a conditional request.
    pub validators: kit::fetch::Validators,
    /// While a sync holds the source: until when.
    pub leased_until: Option<i64>,
}

impl Source {
    pub fn state(&self, now: i64) -> SourceState {
        match () {
            _ if self.leased_until.is_some_and(|t| t > now) => SourceState::Syncing,
            _ if !self.input.enabled => SourceState::Disabled,
            _ if self.failed => SourceState::Failed,
            _ if self.status.last_success_at.is_some() => SourceState::Ok,
            _ => SourceState::Pending,
        }
    }
}

/// A source as the API shows it.
#[derive(Debug, Serialize)]
pub struct SourceView {
    #[serde(flatten)]
    pub input: SourceInput,
    #[serde(flatten)]
    pub facts: SourceFacts,
}

/// What the platform adds to a source's input.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceFacts {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub state: SourceState,
    pub status: SyncStatus,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl utoipa::PartialSchema for SourceView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        kit::openapi::flat_object([SourceInput::schema(), SourceFacts::schema()], "An outside source of events.")
    }
}

impl ToSchema for SourceView {
    fn schemas(out: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <SourceInput as ToSchema>::schemas(out);
        <SourceFacts as ToSchema>::schemas(out);
    }
}

impl From<&Source> for SourceView {
    fn from(s: &Source) -> Self {
        let mut input = s.input.clone();
        input.name = Some(s.input.display_name());
        Self {
            input,
            facts: SourceFacts {
                id: s.id,
                organization_id: s.organization_id,
                state: s.state(kit::now_unix()),
                status: s.status.clone(),
                created_at: kit::rfc3339(s.created_at),
                updated_at: kit::rfc3339(s.updated_at),
            },
        }
    }
}

/// Where an imported event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventSource {
    pub source_id: Uuid,
    /// The item's id in the source: an iCalendar UID (with the occurrence's
    /// RECURRENCE-ID), a feed item's guid or link.
    pub external_id: String,
    /// A detached event is the organization's own: syncs no longer change it.
    pub detached: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(doc: serde_json::Value) -> Vec<String> {
        let input: SourceInput = serde_json::from_value(doc).unwrap();
        match input.validate() {
            Err(ApiError::Validation(e)) => e.into_iter().map(|f| f.field).collect(),
            Ok(_) => vec![],
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_source_takes_defaults_and_is_normalised() {
        let input: SourceInput =
            serde_json::from_value(json!({"kind": "ics", "url": "https://cal.example.org/a.ics"})).unwrap();
        let input = input.validate().unwrap();
        assert_eq!((input.interval_minutes, input.enabled), (60, true));
        assert_eq!(input.defaults.visibility, Visibility::Public);
        assert_eq!(input.display_name(), "cal.example.org");
        // A host longer than a name may be (schemathesis found one) is cut to fit.
        let host = vec!["a".repeat(63); 4].join(".");
        let input: SourceInput =
            serde_json::from_value(json!({"kind": "ics", "url": format!("https://{host}/")})).unwrap();
        let name = input.validate().unwrap().display_name();
        assert_eq!((name.len(), host.starts_with(&name)), (NAME_MAX, true));
        let input: SourceInput = serde_json::from_value(json!({"kind": "rss", "url": "https://x.example/feed",
            "defaults": {"tags": ["Jazz Club", "jazz-club"], "time_zone": "europe/moscow", "category": "Music"}}))
        .unwrap();
        let d = input.validate().unwrap().defaults;
        assert_eq!(
            (d.tags, d.time_zone.as_deref(), d.category.as_deref()),
            (vec!["jazz-club".to_owned()], Some("Europe/Moscow"), Some("music"))
        );
    }

    #[test]
    fn validation_names_each_bad_field() {
        assert_eq!(
            errors(
                json!({"kind": "ics", "url": "ftp://x/", "interval_minutes": 1, "mapping": {"id": "/id", "title": "/t", "start": "/s"},
                          "defaults": {"time_zone": "Mars/Olympus", "city": " "}})
            ),
            vec!["url", "interval_minutes", "defaults.time_zone", "defaults.city", "mapping"]
        );
        assert_eq!(errors(json!({"kind": "json", "url": "https://x.example/"})), vec!["mapping"]);
        assert_eq!(
            errors(
                json!({"kind": "json", "url": "https://x.example/", "mapping": {"items": "events", "id": "/id", "title": "name", "start": "/s"}})
            ),
            vec!["mapping.items", "mapping.title"]
        );
        assert!(errors(json!({"kind": "json", "url": "https://x.example/", "mapping": {"id": "/id", "title": "/name", "start": "/s"}})).is_empty());
        assert_eq!(
            errors(json!({"kind": "atom", "url": "https://x.example/", "interval_minutes": 10081})),
            vec!["interval_minutes"]
        );
    }
}
