//! Events from outside sources: what a calendar or a feed says, read into [`Item`]s
//! ([`calendar`], [`feed`], [`json`]), turned into our events and compared with what an
//! earlier sync imported ([`plan`]), on a schedule with a lease per source ([`sync`]).
//! Everything but [`sync`] is pure: bytes and a window in, items or a plan out.

pub mod calendar;
pub mod feed;
pub mod json;
pub mod plan;
pub mod sync;
pub mod zone;

use crate::model::source::{SkippedItem, SourceInput, SourceKind};
use jiff::Timestamp;
use jiff::civil::Date;

/// How far ahead occurrences of recurring events are imported.
pub const HORIZON_DAYS: i64 = 180;
/// Most events one source may bring into the window: past it, the source fails with
/// that reason rather than filling the catalogue (and the writer's time) with one feed.
pub const ITEMS_MAX: usize = 20_000;
/// Skipped items a sync's status lists (it counts them all).
pub const SKIPPED_MAX: usize = 20;
/// A feed's or JSON item with a start and no end lasts this long.
const LISTED_LENGTH_SECS: i64 = 3600;
/// Longest external id kept as written; a longer one (or one with control or invisible
/// characters) is kept as its SHA-256.
const EXTERNAL_ID_MAX: usize = 200;

/// An item's id as stored and shown: as the source wrote it when it is short and plain,
/// else `sha256:` and its hash (stable across syncs all the same).
pub fn external_key(raw: &str) -> String {
    if raw.len() <= EXTERNAL_ID_MAX && !kit::validate::has_hidden_chars(raw) {
        return raw.to_owned();
    }
    format!("sha256:{}", kit::secret::token_hash(raw))
}

/// When an item happens: an instant, or a whole day (all-day events, whose day is the
/// same wherever one reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Moment {
    At(Timestamp),
    Day(Date),
}

impl Moment {
    /// The instant, reading a day as its midnight in UTC (for windows and order).
    pub fn utc(self) -> Timestamp {
        match self {
            Self::At(t) => t,
            Self::Day(d) => {
                d.to_zoned_datetime(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or(Timestamp::MIN)
            }
        }
    }

    /// `2027-01-05T07:00:00Z`, or `2027-01-05` for a day: as external ids and tests spell it.
    pub fn to_wire(self) -> String {
        match self {
            Self::At(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Self::Day(d) => d.to_string(),
        }
    }
}

/// One event as a source describes it, before it becomes ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Stable across syncs: an iCalendar UID (and `/` and the occurrence's original start
    /// for an occurrence of a series), a feed item's guid or link, a JSON item's id.
    pub external_id: String,
    pub title: String,
    pub description: String,
    pub start: Moment,
    pub end: Moment,
    /// The IANA zone the source gives the item's times in, if it names one we know.
    pub time_zone: Option<String>,
    pub location: Option<String>,
    pub url: Option<String>,
    pub categories: Vec<String>,
    pub cancelled: bool,
    /// iCalendar's SEQUENCE: a lower one than already imported is an older version.
    pub sequence: i64,
    /// LAST-MODIFIED or a feed item's `updated`, in seconds.
    pub modified: Option<i64>,
}

/// The window occurrences are imported from: whole UTC days, today to [`HORIZON_DAYS`] on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Window {
    pub fn starting(now: Timestamp) -> Self {
        let day = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
        let from = Moment::Day(day).utc();
        Self { from, to: from + jiff::SignedDuration::from_hours(24 * HORIZON_DAYS) }
    }

    /// Whether an item from `start` to `end` overlaps the window (an instant-long one
    /// counts when it falls inside).
    pub fn overlaps(&self, start: Moment, end: Moment) -> bool {
        let (start, end) = (start.utc(), end.utc());
        if end <= start {
            return start >= self.from && start < self.to;
        }
        start < self.to && end > self.from
    }
}

/// What reading a source gave: its items in the window, and what could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub items: Vec<Item>,
    pub skipped: Vec<SkippedItem>,
}

impl Parsed {
    /// Notes an item that cannot be imported, and why (the first [`SKIPPED_MAX`]).
    pub fn skip(&mut self, external_id: &str, reason: impl Into<String>) {
        if self.skipped.len() < SKIPPED_MAX {
            self.skipped.push(SkippedItem { external_id: external_key(external_id), reason: reason.into() });
        }
    }
}

/// The end of a feed's or JSON item: as given, where an end date is the last day
/// (iCalendar's is the day after); without one, an hour after a start time or the whole
/// day of a start date. `None` past the calendar's range.
pub fn listed_end(start: Moment, end: Option<Moment>) -> Option<Moment> {
    match (start, end) {
        (Moment::Day(s), Some(Moment::Day(e))) => Some(Moment::Day(e.max(s).tomorrow().unwrap_or(e))),
        (_, Some(end)) => Some(end),
        (Moment::At(t), None) => {
            t.checked_add(jiff::SignedDuration::from_secs(LISTED_LENGTH_SECS)).ok().map(Moment::At)
        }
        (Moment::Day(d), None) => Some(Moment::Day(d.tomorrow().unwrap_or(d))),
    }
}

/// Why a whole document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Reads a fetched document of a source's kind.
pub fn parse(source: &SourceInput, bytes: &[u8], charset: Option<&str>, window: Window) -> Result<Parsed, ParseError> {
    let floating = source.defaults.time_zone.as_deref().unwrap_or("UTC");
    match source.kind {
        SourceKind::Ics => calendar::parse(&decode(bytes, charset), floating, window),
        SourceKind::Rss | SourceKind::Atom => feed::parse(bytes, floating, window),
        SourceKind::Json => {
            let mapping = source.mapping.as_ref().ok_or_else(|| ParseError("a json source needs a mapping".into()))?;
            json::parse(bytes, mapping, window)
        }
    }
}

/// Text from bytes: the charset the server named, else UTF-8, else Windows-1252 (what
/// older Outlook and Windows tools write, and a superset of Latin-1).
pub fn decode(bytes: &[u8], charset: Option<&str>) -> String {
    let named = charset.and_then(|c| encoding_rs::Encoding::for_label(c.trim().as_bytes()));
    let encoding = match named {
        Some(e) => e,
        None if std::str::from_utf8(bytes).is_ok() => encoding_rs::UTF_8,
        None => encoding_rs::WINDOWS_1252,
    };
    // decode() drops a byte order mark, which some exporters write.
    encoding.decode(bytes).0.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_kept_short_and_plain() {
        assert_eq!(external_key("uid-1@example.org/2027-01-05T07:00:00Z"), "uid-1@example.org/2027-01-05T07:00:00Z");
        let long = external_key(&"x".repeat(10_000));
        assert!(long.starts_with("sha256:") && long.len() == 71, "{long}");
        assert_eq!(long, external_key(&"x".repeat(10_000)), "stable");
        assert!(external_key("evil\u{202e}id").starts_with("sha256:"));
    }

    #[test]
    fn text_is_decoded_as_named_or_as_found() {
        assert_eq!(decode("Café".as_bytes(), None), "Café");
        assert_eq!(decode(b"Caf\xe9 \x96 Z\xfcrich", None), "Café – Zürich");
        assert_eq!(decode(b"\xef\xbb\xbfBEGIN", None), "BEGIN");
        assert_eq!(decode(b"\xcf\xf0\xe8\xe2\xe5\xf2", Some("windows-1251")), "Привет");
        assert_eq!(decode("Привет".as_bytes(), Some("utf-8")), "Привет");
    }

    #[test]
    fn the_window_is_whole_days_and_overlap_is_half_open() {
        let now: Timestamp = "2026-12-06T21:42:00Z".parse().unwrap();
        let w = Window::starting(now);
        assert_eq!(w.from.to_string(), "2026-12-06T00:00:00Z");
        assert_eq!(w.to.to_string(), "2027-06-04T00:00:00Z");
        let at = |s: &str| Moment::At(s.parse().unwrap());
        assert!(w.overlaps(at("2026-12-05T23:00:00Z"), at("2026-12-06T01:00:00Z")));
        assert!(!w.overlaps(at("2026-12-05T23:00:00Z"), at("2026-12-06T00:00:00Z")));
        assert!(w.overlaps(at("2026-12-06T00:00:00Z"), at("2026-12-06T00:00:00Z")));
        assert!(!w.overlaps(at("2027-06-04T00:00:00Z"), at("2027-06-04T01:00:00Z")));
        let day = |s: &str| Moment::Day(s.parse().unwrap());
        assert!(w.overlaps(day("2026-12-06"), day("2026-12-07")));
        assert!(!w.overlaps(day("2026-12-05"), day("2026-12-06")));
        assert_eq!(day("2027-01-05").to_wire(), "2027-01-05");
        assert_eq!(at("2027-01-05T07:00:00Z").to_wire(), "2027-01-05T07:00:00Z");
    }
}
