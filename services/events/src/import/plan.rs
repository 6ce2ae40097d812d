//! What a sync changes: items become event inputs with the source's defaults, and are
//! compared with what earlier syncs imported. Pure: the store applies the [`Plan`].
//!
//! The source owns an imported event's title, description, times, zone, venue and link;
//! the organization owns the rest (category, tags, visibility, capacity, price, cover),
//! which the defaults fill only when the event is created. A detached event is the
//! organization's alone, and an event it deleted is not imported again.

use super::{Item, Moment, SKIPPED_MAX, Window};
use crate::model::source::{SkippedItem, SourceInput, SyncCounts};
use crate::model::{EventInput, Format, Status, Venue, normalize_tag};
use jiff::Timestamp;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 20_000;
const ADDRESS_MAX: usize = 400;
const CITY_MAX: usize = 200;
/// An item without a length (an instant in a calendar) lasts this long here.
const INSTANT_LENGTH_SECS: i64 = 3600;

/// What an earlier sync imported under one external id.
#[derive(Debug, Clone)]
pub struct Imported {
    pub external_id: String,
    /// `None` once the organization deleted the event: it stays out.
    pub event: Option<(Uuid, EventInput, Status)>,
    pub detached: bool,
    pub sequence: i64,
    pub modified: Option<i64>,
}

/// A new event for an item.
#[derive(Debug, Clone, PartialEq)]
pub struct Create {
    pub external_id: String,
    pub input: EventInput,
    pub status: Status,
    pub sequence: i64,
    pub modified: Option<i64>,
}

/// A changed event: its new input and status.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub event_id: Uuid,
    pub input: EventInput,
    pub status: Status,
    /// Cancelled before, published again by a newer version of the item.
    pub revive: bool,
    pub sequence: i64,
    pub modified: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<Create>,
    pub update: Vec<Update>,
    /// Events cancelled in the source, or gone from it before they happened.
    pub cancel: Vec<Uuid>,
    pub counts: SyncCounts,
    pub skipped: Vec<SkippedItem>,
}

impl Plan {
    /// Changes in the plan.
    pub fn len(&self) -> usize {
        self.create.len() + self.update.len() + self.cancel.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes up to `n` changes off the plan (creations first), as a plan of their own:
    /// a big import is written in parts, so other writers wait for one part at a time.
    pub fn take_part(&mut self, n: usize) -> Plan {
        fn take<T>(from: &mut Vec<T>, left: &mut usize) -> Vec<T> {
            let k = (*left).min(from.len());
            *left -= k;
            from.drain(..k).collect()
        }
        let mut left = n;
        Plan {
            create: take(&mut self.create, &mut left),
            update: take(&mut self.update, &mut left),
            cancel: take(&mut self.cancel, &mut left),
            ..Plan::default()
        }
    }

    /// The plan with what reading the source could not take, first.
    pub fn with_skipped(mut self, mut skipped: Vec<SkippedItem>) -> Self {
        self.counts.skipped += skipped.len() as u32;
        skipped.append(&mut self.skipped);
        skipped.truncate(SKIPPED_MAX);
        self.skipped = skipped;
        self
    }
}

/// Cleans a one-line text: control and invisible characters become spaces, runs of
/// blanks one, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let cleaned: String =
        s.chars().map(|c| if kit::validate::has_hidden_chars(c.encode_utf8(&mut [0; 4])) { ' ' } else { c }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(max).collect()
}

fn free_text(s: &str, max: usize) -> String {
    let cleaned: String =
        s.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\t')).collect::<String>().trim().to_owned();
    cleaned.chars().take(max).collect()
}

/// The city of a free-text location: its last comma-separated part that is not a postal
/// code or a country code alone ("Red Square 1, 109012 Moscow, Russia" gives "Russia"
/// unless defaults say otherwise, so sources with addresses should set `defaults.city`).
fn city_of(location: &str) -> String {
    let parts: Vec<&str> = location.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    let city = parts
        .iter()
        .rev()
        .map(|p| p.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-' || c == ' '))
        .find(|p| p.chars().filter(|c| c.is_alphabetic()).count() > 2)
        .unwrap_or(location);
    one_line(city, CITY_MAX)
}

/// An item's event input with the source's defaults, or why it cannot be one.
pub fn input_of(item: &Item, source: &SourceInput, organization_id: Uuid) -> Result<EventInput, String> {
    let d = &source.defaults;
    let zone = item.time_zone.clone().or_else(|| d.time_zone.clone()).unwrap_or_else(|| "UTC".into());
    let tz = jiff::tz::TimeZone::get(&zone).map_err(|_| format!("unknown time zone {zone}"))?;
    let at = |m: Moment| -> Result<Timestamp, String> {
        match m {
            Moment::At(t) => Ok(t),
            Moment::Day(day) => day.to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).map_err(|e| e.to_string()),
        }
    };
    let start = at(item.start)?;
    let mut end = at(item.end)?;
    if end <= start {
        end = start + jiff::SignedDuration::from_secs(INSTANT_LENGTH_SECS);
    }
    let link = item.url.as_deref().and_then(kit::validate::web_url);
    // A meeting link in the location is where the event happens online.
    let location_link = item.location.as_deref().and_then(kit::validate::web_url);
    let place = item.location.as_deref().filter(|_| location_link.is_none()).map(|l| one_line(l, ADDRESS_MAX));
    let place = place.filter(|p| !p.is_empty());
    let venue = match (&place, &d.city) {
        (Some(place), city) => Some(Venue {
            name: None,
            address: Some(place.clone()),
            city: city.clone().unwrap_or_else(|| city_of(place)),
            latitude: None,
            longitude: None,
        }),
        (None, Some(city)) => {
            Some(Venue { name: None, address: None, city: city.clone(), latitude: None, longitude: None })
        }
        (None, None) => None,
    };
    let online_url = location_link.or(link);
    let format = match (d.format, &venue, &online_url) {
        (Some(f), _, _) => f,
        (None, Some(_), _) => Format::Offline,
        (None, None, Some(_)) => Format::Online,
        (None, None, None) => {
            return Err("it has no location or link (a source's defaults.city gives events a place)".into());
        }
    };
    let mut tags: Vec<String> = d.tags.clone();
    for c in &item.categories {
        let tag = normalize_tag(&one_line(c, 50));
        if !tag.is_empty() && !tags.contains(&tag) && tags.len() < 20 {
            tags.push(tag);
        }
    }
    let title = one_line(&item.title, TITLE_MAX);
    let input = EventInput {
        title: if title.is_empty() { "Untitled event".into() } else { title },
        description: free_text(&item.description, DESCRIPTION_MAX),
        start,
        end,
        time_zone: zone,
        format,
        venue,
        online_url,
        tags,
        category: d.category.clone(),
        capacity: None,
        price: None,
        visibility: d.visibility,
        cover_image_url: None,
        organization_id,
        recurrence: None,
    };
    input.validate().map_err(|e| match e {
        kit::ApiError::Validation(fields) => {
            fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    })
}

/// `current` with the fields a source owns taken from `fresh`, validated: the format too
/// when the source's defaults do not fix it (a location that becomes a meeting link makes
/// the event online).
pub fn with_source_fields(
    current: &EventInput,
    fresh: &EventInput,
    source: &SourceInput,
) -> Result<EventInput, String> {
    let merged = EventInput {
        title: fresh.title.clone(),
        description: fresh.description.clone(),
        start: fresh.start,
        end: fresh.end,
        time_zone: fresh.time_zone.clone(),
        venue: fresh.venue.clone(),
        online_url: fresh.online_url.clone(),
        format: if source.defaults.format.is_none() { fresh.format } else { current.format },
        ..current.clone()
    };
    merged.validate().map_err(|e| e.to_string())
}

/// The fields a source owns that differ between two inputs of an event.
pub fn changed_source_fields(a: &EventInput, b: &EventInput) -> Vec<&'static str> {
    [
        ("title", a.title != b.title),
        ("description", a.description != b.description),
        ("start", a.start != b.start),
        ("end", a.end != b.end),
        ("time_zone", a.time_zone != b.time_zone),
        ("venue", a.venue != b.venue),
        ("online_url", a.online_url != b.online_url),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}

/// Plans a sync: `items` read from the source now, `imported` by earlier syncs.
pub fn plan(
    source: &SourceInput,
    organization_id: Uuid,
    items: &[Item],
    imported: Vec<Imported>,
    window: Window,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    let skip = |plan: &mut Plan, external_id: &str, reason: String| {
        plan.counts.skipped += 1;
        if plan.skipped.len() < SKIPPED_MAX {
            plan.skipped.push(SkippedItem { external_id: external_id.to_owned(), reason });
        }
    };
    let mut known: HashMap<&str, &Imported> = imported.iter().map(|i| (i.external_id.as_str(), i)).collect();
    let seen: HashSet<&str> = items.iter().map(|i| i.external_id.as_str()).collect();
    for item in items {
        let status = if item.cancelled { Status::Cancelled } else { Status::Published };
        let Some(before) = known.remove(item.external_id.as_str()) else {
            match input_of(item, source, organization_id) {
                // Something cancelled before we ever saw it is not news to import.
                Ok(_) if item.cancelled => plan.counts.unchanged += 1,
                Ok(input) => {
                    plan.counts.created += 1;
                    plan.create.push(Create {
                        external_id: item.external_id.clone(),
                        input,
                        status,
                        sequence: item.sequence,
                        modified: item.modified,
                    });
                }
                Err(why) => skip(&mut plan, &item.external_id, why),
            }
            continue;
        };
        let Some((event_id, current, current_status)) = &before.event else {
            plan.counts.unchanged += 1;
            continue;
        };
        // An older version of the item (a lower SEQUENCE, or the same one modified earlier)
        // never overwrites a newer one; a version without LAST-MODIFIED is judged by its
        // SEQUENCE alone.
        let earlier = matches!((item.modified, before.modified), (Some(a), Some(b)) if a < b);
        let later = matches!((item.modified, before.modified), (Some(a), Some(b)) if a > b);
        let stale = item.sequence < before.sequence || (item.sequence == before.sequence && earlier);
        let newer = item.sequence > before.sequence || (item.sequence == before.sequence && later);
        if before.detached || stale {
            plan.counts.unchanged += 1;
            continue;
        }
        let fresh = match input_of(item, source, organization_id) {
            Ok(fresh) => fresh,
            Err(why) => {
                skip(&mut plan, &item.external_id, why);
                continue;
            }
        };
        let input = match with_source_fields(current, &fresh, source) {
            Ok(input) => input,
            Err(why) => {
                skip(&mut plan, &item.external_id, why);
                continue;
            }
        };
        // A cancelled event stays so (the organization may have called it off) unless a
        // newer version of the item brings it back.
        let revive = *current_status == Status::Cancelled && status == Status::Published && newer;
        let status = if *current_status == Status::Cancelled && !revive { Status::Cancelled } else { status };
        if input == *current && status == *current_status {
            plan.counts.unchanged += 1;
        } else if input == *current && status == Status::Cancelled {
            plan.counts.cancelled += 1;
            plan.cancel.push(*event_id);
        } else {
            if status == Status::Cancelled && *current_status != Status::Cancelled {
                plan.counts.cancelled += 1;
            } else {
                plan.counts.updated += 1;
            }
            plan.update.push(Update {
                event_id: *event_id,
                input,
                status,
                revive,
                sequence: item.sequence,
                modified: item.modified,
            });
        }
    }
    // Gone from the source: cancelled if it had yet to end and would be in the window
    // (an occurrence past the horizon is merely out of sight).
    for before in known.values() {
        if seen.contains(before.external_id.as_str()) || before.detached {
            continue;
        }
        if let Some((event_id, input, status)) = &before.event
            && *status != Status::Cancelled
            && input.end > now
            && input.start < window.to
        {
            plan.counts.cancelled += 1;
            plan.cancel.push(*event_id);
        }
    }
    plan.cancel.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::SourceDefaults;

    fn source(defaults: SourceDefaults) -> SourceInput {
        SourceInput {
            kind: crate::model::source::SourceKind::Ics,
            url: "https://cal.example.org/a.ics".into(),
            name: None,
            interval_minutes: 60,
            defaults,
            mapping: None,
            enabled: true,
        }
    }

    fn item(id: &str, start: &str, end: &str) -> Item {
        Item {
            external_id: id.into(),
            title: "Talk\u{7}".into(),
            description: "Line one\nline two\u{0}".into(),
            start: Moment::At(start.parse().unwrap()),
            end: Moment::At(end.parse().unwrap()),
            time_zone: Some("Europe/Moscow".into()),
            location: Some("Hall 2, Bauman Street 1, Kazan".into()),
            url: Some("https://club.example.org/talk".into()),
            categories: vec!["Tech Talks".into()],
            cancelled: false,
            sequence: 0,
            modified: None,
        }
    }

    const ORG: Uuid = Uuid::from_u128(7);

    fn window() -> Window {
        Window { from: "2027-01-01T00:00:00Z".parse().unwrap(), to: "2027-07-01T00:00:00Z".parse().unwrap() }
    }

    fn now() -> Timestamp {
        "2027-01-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_item_becomes_an_event_with_the_defaults() {
        let src = source(SourceDefaults {
            tags: vec!["imported".into()],
            category: Some("meetup".into()),
            ..Default::default()
        });
        let input = input_of(&item("a", "2027-02-01T16:00:00Z", "2027-02-01T18:00:00Z"), &src, ORG).unwrap();
        assert_eq!(input.title, "Talk");
        assert_eq!(input.description, "Line one\nline two");
        assert_eq!(input.venue.as_ref().map(|v| v.city.as_str()), Some("Kazan"));
        assert_eq!(input.format, Format::Offline);
        assert_eq!(input.tags, vec!["imported", "tech-talks"]);
        assert_eq!((input.category.as_deref(), input.time_zone.as_str()), (Some("meetup"), "Europe/Moscow"));

        let mut online = item("b", "2027-02-01T16:00:00Z", "2027-02-01T16:00:00Z");
        online.location = Some("https://meet.example.org/abc".into());
        let input = input_of(&online, &src, ORG).unwrap();
        assert_eq!((input.format, input.online_url.as_deref()), (Format::Online, Some("https://meet.example.org/abc")));
        assert_eq!(input.end.as_second() - input.start.as_second(), 3600, "an instant lasts an hour");

        let mut day = item("c", "2027-02-01T00:00:00Z", "2027-02-01T00:00:00Z");
        (day.start, day.end, day.time_zone) =
            (Moment::Day("2027-02-01".parse().unwrap()), Moment::Day("2027-02-02".parse().unwrap()), None);
        let tz = source(SourceDefaults { time_zone: Some("Asia/Tokyo".into()), ..Default::default() });
        let input = input_of(&day, &tz, ORG).unwrap();
        assert_eq!(input.start.to_string(), "2027-01-31T15:00:00Z", "an all-day event starts at midnight where it is");

        let mut nowhere = item("d", "2027-02-01T16:00:00Z", "2027-02-01T17:00:00Z");
        (nowhere.location, nowhere.url) = (None, None);
        assert!(input_of(&nowhere, &src, ORG).unwrap_err().contains("no location or link"));
    }

    #[test]
    fn a_resync_creates_updates_cancels_and_leaves_alone() {
        let src = source(SourceDefaults::default());
        let items = vec![
            item("same", "2027-02-01T16:00:00Z", "2027-02-01T18:00:00Z"),
            item("moved", "2027-02-03T16:00:00Z", "2027-02-03T18:00:00Z"),
            item("new", "2027-02-05T16:00:00Z", "2027-02-05T18:00:00Z"),
            Item { cancelled: true, ..item("called-off", "2027-02-06T16:00:00Z", "2027-02-06T18:00:00Z") },
            item("stale", "2027-02-07T16:00:00Z", "2027-02-07T18:00:00Z"),
            item("deleted-here", "2027-02-08T16:00:00Z", "2027-02-08T18:00:00Z"),
        ];
        let existing = |id: &str, start: &str, end: &str, n: u128| {
            let mut input = input_of(&item(id, start, end), &src, ORG).unwrap();
            input.capacity = Some(50); // the organization's own change
            Imported {
                external_id: id.into(),
                event: Some((Uuid::from_u128(n), input, Status::Published)),
                detached: false,
                sequence: 1,
                modified: None,
            }
        };
        let imported = vec![
            existing("same", "2027-02-01T16:00:00Z", "2027-02-01T18:00:00Z", 1),
            existing("moved", "2027-02-02T16:00:00Z", "2027-02-02T18:00:00Z", 2),
            existing("called-off", "2027-02-06T16:00:00Z", "2027-02-06T18:00:00Z", 3),
            Imported { sequence: 5, ..existing("stale", "2027-02-07T10:00:00Z", "2027-02-07T11:00:00Z", 4) },
            Imported { event: None, ..existing("deleted-here", "2027-02-08T16:00:00Z", "2027-02-08T18:00:00Z", 5) },
            existing("vanished", "2027-02-09T16:00:00Z", "2027-02-09T18:00:00Z", 6),
            existing("past", "2026-12-09T16:00:00Z", "2026-12-09T18:00:00Z", 7),
        ];
        let items: Vec<Item> = items.into_iter().map(|i| Item { sequence: 1, ..i }).collect();
        let plan = plan(&src, ORG, &items, imported, window(), now());
        assert_eq!(plan.counts, SyncCounts { created: 1, updated: 1, cancelled: 2, unchanged: 3, skipped: 0 });
        assert_eq!(plan.create.iter().map(|c| c.external_id.as_str()).collect::<Vec<_>>(), vec!["new"]);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].event_id, Uuid::from_u128(2));
        assert_eq!(plan.update[0].input.start.to_string(), "2027-02-03T16:00:00Z");
        assert_eq!(plan.update[0].input.capacity, Some(50), "what the organization set stays");
        assert_eq!(plan.cancel, vec![Uuid::from_u128(3), Uuid::from_u128(6)]);
    }

    #[test]
    fn a_plan_is_taken_in_parts_creations_first() {
        let src = source(SourceDefaults::default());
        let create = |n: u32| Create {
            external_id: n.to_string(),
            input: input_of(&item("x", "2027-02-01T16:00:00Z", "2027-02-01T18:00:00Z"), &src, ORG).unwrap(),
            status: Status::Published,
            sequence: 0,
            modified: None,
        };
        let mut p = Plan {
            create: (0..3).map(create).collect(),
            cancel: vec![Uuid::from_u128(1), Uuid::from_u128(2)],
            ..Plan::default()
        };
        let first = p.take_part(4);
        assert_eq!((first.create.len(), first.cancel.len()), (3, 1));
        assert_eq!((p.len(), p.cancel[0]), (1, Uuid::from_u128(2)));
        assert!(p.take_part(4).len() == 1 && p.is_empty());
    }

    #[test]
    fn a_cancelled_event_comes_back_only_with_a_newer_version() {
        let src = source(SourceDefaults::default());
        let it = item("x", "2027-02-01T16:00:00Z", "2027-02-01T18:00:00Z");
        let input = input_of(&it, &src, ORG).unwrap();
        let cancelled = |sequence, modified| Imported {
            external_id: "x".into(),
            event: Some((Uuid::from_u128(1), input.clone(), Status::Cancelled)),
            detached: false,
            sequence,
            modified,
        };
        // The organization called it off; the source says nothing new: it stays off.
        let kept = plan(&src, ORG, std::slice::from_ref(&it), vec![cancelled(0, None)], window(), now());
        assert_eq!((kept.counts.unchanged, kept.update.len()), (1, 0));
        // A newer SEQUENCE brings it back.
        let newer = Item { sequence: 1, ..it.clone() };
        let back = plan(&src, ORG, &[newer], vec![cancelled(0, None)], window(), now());
        assert_eq!(back.counts.updated, 1);
        assert!(back.update[0].revive && back.update[0].status == Status::Published);
        // A version without LAST-MODIFIED is not stale for lacking it.
        let plain = Item { title: "Renamed".into(), ..it.clone() };
        let published =
            Imported { event: Some((Uuid::from_u128(1), input.clone(), Status::Published)), ..cancelled(0, Some(5)) };
        assert_eq!(plan(&src, ORG, &[plain], vec![published], window(), now()).counts.updated, 1);
    }

    #[test]
    fn a_location_that_becomes_a_link_makes_the_event_online() {
        let src = source(SourceDefaults::default());
        let it = item("x", "2027-02-01T16:00:00Z", "2027-02-01T18:00:00Z");
        let before = Imported {
            external_id: "x".into(),
            event: Some((Uuid::from_u128(1), input_of(&it, &src, ORG).unwrap(), Status::Published)),
            detached: false,
            sequence: 0,
            modified: None,
        };
        let moved_online = Item { location: Some("https://meet.example.org/x".into()), url: None, ..it };
        let p = plan(&src, ORG, &[moved_online], vec![before], window(), now());
        assert_eq!(p.update[0].input.format, Format::Online);
        assert_eq!(p.update[0].input.venue, None);
    }
}
