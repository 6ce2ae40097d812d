//! Events' domain types and their validation. No I/O here.

pub mod recurrence;
pub mod source;

use jiff::Timestamp;
use kit::validate::{check_free_text, check_len, check_plain, has_hidden_chars, web_url};
use kit::{ApiError, Violations};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 20_000;
const TAGS_MAX: usize = 20;
const TAG_MAX: usize = 50;
const NAME_MAX: usize = 200;
const CAPACITY_MAX: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Offline,
    Online,
    Hybrid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Public,
    Unlisted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Published,
    Cancelled,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
    };
}
// After the macro, which it uses.
pub mod webhook;

str_enum!(Format { Offline => "offline", Online => "online", Hybrid => "hybrid" });
str_enum!(Visibility { Public => "public", Unlisted => "unlisted" });
str_enum!(Status { Draft => "draft", Published => "published", Cancelled => "cancelled" });

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Venue {
    pub name: Option<String>,
    pub address: Option<String>,
    #[schema(schema_with = kit::schemas::one_line::<NAME_MAX>)]
    pub city: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A ticket price; `null` on the event means free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// A decimal string with at most two decimals, e.g. `"500.00"`.
    #[schema(example = "500.00")]
    pub amount: String,
    /// ISO 4217, e.g. `RUB`.
    #[schema(example = "RUB")]
    pub currency: String,
}

/// What an organizer writes: the body of `POST /events`, and the shape a `PATCH` merges into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    #[schema(schema_with = kit::schemas::one_line::<TITLE_MAX>)]
    pub title: String,
    #[serde(default)]
    #[schema(max_length = 20000)]
    pub description: String,
    /// RFC 3339.
    #[schema(schema_with = kit::schemas::date_time)]
    pub start: Timestamp,
    #[schema(schema_with = kit::schemas::date_time)]
    pub end: Timestamp,
    /// IANA time zone of the event's place, e.g. `Europe/Moscow`.
    #[schema(schema_with = kit::schemas::time_zone)]
    pub time_zone: String,
    pub format: Format,
    #[serde(default)]
    pub venue: Option<Venue>,
    #[serde(default)]
    #[schema(schema_with = kit::schemas::optional_web_url)]
    pub online_url: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// Seats; `null` for unlimited.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000000)]
    pub capacity: Option<u32>,
    #[serde(default)]
    pub price: Option<Price>,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    #[schema(schema_with = kit::schemas::optional_web_url)]
    pub cover_image_url: Option<String>,
    pub organization_id: Uuid,
    /// Makes a series of the event (`POST /events`, or `PATCH ...?series=true`): each
    /// occurrence becomes an event of its own; answers show it under `series`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<recurrence::Recurrence>,
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub input: EventInput,
    pub status: Status,
    pub registered: u32,
    pub waitlisted: u32,
    pub created_by: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    pub published_at: Option<i64>,
    /// Set when the event was imported from an outside source.
    pub source: Option<source::EventSource>,
    /// Set when the event is an occurrence of a series.
    pub series: Option<recurrence::SeriesMember>,
}

/// An event as the API shows it: the input's fields plus what the platform adds, in one
/// object (its schema is flat: [`EventInput`] refuses unknown fields, so an `allOf` of it
/// would refuse every view).
#[derive(Debug, Serialize)]
pub struct EventView {
    #[serde(flatten)]
    pub input: EventInput,
    #[serde(flatten)]
    pub facts: EventFacts,
}

/// What the platform adds to an organizer's input.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventFacts {
    pub id: Uuid,
    pub status: Status,
    pub registered_count: u32,
    pub waitlisted_count: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub published_at: Option<String>,
    /// Where an imported event comes from; `null` for the organization's own.
    pub source: Option<source::EventSource>,
    /// The series this event is an occurrence of; `null` for a single event.
    pub series: Option<recurrence::SeriesMember>,
}

impl utoipa::PartialSchema for EventView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        kit::openapi::flat_object([EventInput::schema(), EventFacts::schema()], "An event.")
    }
}

impl ToSchema for EventView {
    fn schemas(out: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <EventInput as ToSchema>::schemas(out);
        <EventFacts as ToSchema>::schemas(out);
    }
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            input: e.input.clone(),
            facts: EventFacts {
                id: e.id,
                status: e.status,
                registered_count: e.registered,
                waitlisted_count: e.waitlisted,
                created_at: kit::rfc3339(e.created_at),
                updated_at: kit::rfc3339(e.updated_at),
                published_at: e.published_at.map(kit::rfc3339),
                source: e.source.clone(),
                series: e.series.clone(),
            },
        }
    }
}

/// `"500"`, `"500.5"`, `"500.00"`: positive, at most two decimals, at most a billion.
pub fn is_amount(s: &str) -> bool {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && whole.len() <= 10
        && digits(whole)
        && digits(frac)
        && frac.len() <= 2
        && s.contains('.') != frac.is_empty()
        && s.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// Cleans a tag: trimmed, lower-case, inner whitespace collapsed to single dashes.
pub fn normalize_tag(tag: &str) -> String {
    tag.split_whitespace().collect::<Vec<_>>().join("-").to_lowercase()
}

impl EventInput {
    /// Normalises (tags, city, currency) and validates, naming every bad field.
    pub fn validate(mut self) -> Result<Self, ApiError> {
        let mut v = Violations::new();
        self.title = self.title.trim().to_owned();
        v.check(!self.title.is_empty(), "title", "must not be empty");
        check_len(&mut v, "title", &self.title, TITLE_MAX);
        check_plain(&mut v, "title", &self.title);
        check_len(&mut v, "description", &self.description, DESCRIPTION_MAX);
        check_free_text(&mut v, "description", &self.description);
        v.check(self.end > self.start, "end", "must be after start");
        if let Some(r) = &mut self.recurrence
            && let Err(why) = r.check(self.start, &self.time_zone)
        {
            v.add("recurrence.rule", why);
        }
        v.check(
            self.end.duration_since(self.start).as_secs() <= 366 * 24 * 3600,
            "end",
            "an event lasts at most a year",
        );
        match kit::validate::time_zone(&self.time_zone) {
            Some(canonical) => self.time_zone = canonical,
            None => v.add("time_zone", "must be an IANA time zone such as `Europe/Moscow`"),
        }
        let needs_venue = matches!(self.format, Format::Offline | Format::Hybrid);
        let needs_url = matches!(self.format, Format::Online | Format::Hybrid);
        match &mut self.venue {
            Some(venue) => {
                venue.city = venue.city.trim().to_owned();
                v.check(!venue.city.is_empty(), "venue.city", "must not be empty");
                check_len(&mut v, "venue.city", &venue.city, NAME_MAX);
                check_plain(&mut v, "venue.city", &venue.city);
                for (field, value) in [("venue.name", &venue.name), ("venue.address", &venue.address)] {
                    if let Some(value) = value {
                        check_len(&mut v, field, value, NAME_MAX * 2);
                        check_plain(&mut v, field, value);
                    }
                }
                match (venue.latitude, venue.longitude) {
                    (Some(lat), Some(lon)) => {
                        v.check((-90.0..=90.0).contains(&lat), "venue.latitude", "must be between -90 and 90");
                        v.check((-180.0..=180.0).contains(&lon), "venue.longitude", "must be between -180 and 180");
                    }
                    (None, None) => {}
                    _ => v.add("venue", "latitude and longitude come together"),
                }
            }
            None if needs_venue => v.add("venue", "is required for offline and hybrid events"),
            None => {}
        }
        // Stored as the parser normalized it: what calendars and pages print is what was checked.
        match self.online_url.as_deref().map(web_url) {
            Some(Some(normalized)) => self.online_url = Some(normalized),
            Some(None) => v.add("online_url", "must be an http or https URL"),
            None if needs_url => v.add("online_url", "is required for online and hybrid events"),
            None => {}
        }
        if self.tags.len() > TAGS_MAX {
            v.add("tags", format!("at most {TAGS_MAX} tags"));
        }
        let mut tags: Vec<String> = Vec::new();
        for (i, t) in self.tags.iter().enumerate() {
            let t = normalize_tag(t);
            if has_hidden_chars(&t) {
                v.add(format!("tags[{i}]"), "must not contain control or invisible characters");
            } else if t.is_empty() || t.chars().count() > TAG_MAX {
                v.add(format!("tags[{i}]"), format!("must be 1 to {TAG_MAX} characters"));
            } else if !tags.contains(&t) {
                tags.push(t);
            }
        }
        self.tags = tags;
        if let Some(c) = &self.category {
            let c = normalize_tag(c);
            v.check(!c.is_empty() && c.chars().count() <= TAG_MAX, "category", "must be 1 to 50 characters");
            check_plain(&mut v, "category", &c);
            self.category = Some(c);
        }
        if let Some(cap) = self.capacity {
            v.check(
                (1..=CAPACITY_MAX).contains(&cap),
                "capacity",
                "must be between 1 and 1000000, or null for unlimited",
            );
        }
        if let Some(price) = &mut self.price {
            price.currency = price.currency.trim().to_uppercase();
            v.check(is_amount(&price.amount), "price.amount", "must be a positive decimal with at most two decimals");
            v.check(
                price.currency.len() == 3 && price.currency.bytes().all(|b| b.is_ascii_uppercase()),
                "price.currency",
                "must be an ISO 4217 code such as RUB",
            );
        }
        match self.cover_image_url.as_deref().map(web_url) {
            Some(Some(normalized)) => self.cover_image_url = Some(normalized),
            Some(None) => v.add("cover_image_url", "must be an http or https URL"),
            None => {}
        }
        v.into_result().map(|_| self)
    }
}

/// A person's place at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationStatus {
    Registered,
    Waitlisted,
    Cancelled,
}
str_enum!(RegistrationStatus { Registered => "registered", Waitlisted => "waitlisted", Cancelled => "cancelled" });

/// Where an attendee stands, as the attendee list filters: a seat held and not yet used
/// (`registered`), used at the door (`checked_in`), waiting, or given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttendeeStatus {
    Registered,
    CheckedIn,
    Waitlisted,
    Cancelled,
}
str_enum!(AttendeeStatus { Registered => "registered", CheckedIn => "checked_in", Waitlisted => "waitlisted", Cancelled => "cancelled" });

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Registration {
    pub event_id: Uuid,
    pub user_id: Uuid,
    pub status: RegistrationStatus,
    /// Place in the waitlist (1 is next), when waitlisted.
    pub waitlist_position: Option<u32>,
    pub created_at: String,
    pub checked_in_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> serde_json::Value {
        json!({"title": "Органный концерт", "description": "…", "start": "2026-12-05T16:00:00Z",
               "end": "2026-12-05T18:00:00Z", "time_zone": "Europe/Moscow", "format": "offline",
               "venue": {"name": "Hall", "address": "Street 1", "city": "Kazan", "latitude": 55.79, "longitude": 49.12},
               "online_url": null, "tags": ["music", " Music ", "Organ Music"], "category": "concert", "capacity": 100,
               "price": null, "visibility": "public", "cover_image_url": null,
               "organization_id": "6f1b8a9e-2c5d-4e3f-8a7b-1c2d3e4f5a6b"})
    }

    #[test]
    fn the_documented_example_is_valid_and_normalised() {
        let input: EventInput = serde_json::from_value(sample()).unwrap();
        let input = input.validate().unwrap();
        assert_eq!(input.tags, vec!["music", "organ-music"]);
        // Calendars get the tz database's spelling of the zone, however it was typed.
        let mut d = sample();
        d["time_zone"] = json!("europe/moscow");
        let input: EventInput = serde_json::from_value(d).unwrap();
        assert_eq!(input.validate().unwrap().time_zone, "Europe/Moscow");
    }

    fn errors(doc: serde_json::Value) -> Vec<String> {
        let input: EventInput = serde_json::from_value(doc).unwrap();
        match input.validate() {
            Err(ApiError::Validation(e)) => e.into_iter().map(|f| f.field).collect(),
            Ok(_) => vec![],
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn validation_names_each_bad_field() {
        let mut d = sample();
        d["end"] = json!("2026-12-05T15:00:00Z");
        d["time_zone"] = json!("Europe/Atlantis");
        d["venue"]["latitude"] = json!(91.0);
        d["price"] = json!({"amount": "5.005", "currency": "rub1"});
        d["capacity"] = json!(0);
        assert_eq!(errors(d), vec!["end", "time_zone", "venue.latitude", "capacity", "price.amount", "price.currency"]);
        let mut d = sample();
        d["format"] = json!("hybrid");
        assert_eq!(errors(d), vec!["online_url"]);
        let mut d = sample();
        d["venue"] = json!(null);
        assert_eq!(errors(d), vec!["venue"]);
    }

    #[test]
    fn amounts() {
        for ok in ["500", "500.00", "0.5", "1.25"] {
            assert!(is_amount(ok), "{ok}");
        }
        for bad in ["", "0", "0.00", "-1", "1.", ".5", "1.234", "1e3", "12345678901"] {
            assert!(!is_amount(bad), "{bad}");
        }
    }
}
