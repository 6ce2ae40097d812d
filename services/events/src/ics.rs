//! iCalendar (RFC 5545) rendering: one event, or a person's calendar feed. Pure.
//!
//! Times are written in the event's own zone (`DTSTART;TZID=Europe/Moscow:...`) with a
//! `VTIMEZONE` built from the tz database's transitions around the events, so calendar
//! programs show local times even for zones they do not know.

use crate::model::{Event, Status};
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use std::collections::BTreeMap;
use uuid::Uuid;

const PRODID: &str = "-//Veche//Events//EN";

/// One event of a calendar, with the reader's ticket to it when they hold one.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub event: &'a Event,
    pub ticket: Option<&'a str>,
}

impl<'a> From<&'a Event> for Entry<'a> {
    fn from(event: &'a Event) -> Self {
        Self { event, ticket: None }
    }
}

/// A calendar's opening lines, named `name`.
fn begin(name: &str) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, &format!("PRODID:{PRODID}"));
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(&mut out, &format!("X-WR-CALNAME:{}", text(name)));
    out
}

/// Renders a calendar of `events`. `base_url` makes each event's `URL`.
pub fn calendar(name: &str, events: &[Entry<'_>], base_url: &str, now: Timestamp) -> String {
    let mut out = begin(name);
    let mut zones: BTreeMap<&str, (Timestamp, Timestamp)> = BTreeMap::new();
    for e in events.iter().map(|e| e.event) {
        let span = zones.entry(e.input.time_zone.as_str()).or_insert((e.input.start, e.input.end));
        span.0 = span.0.min(e.input.start);
        span.1 = span.1.max(e.input.end);
    }
    for (name, (from, to)) in &zones {
        if let Ok(tz) = TimeZone::get(name) {
            vtimezone(&mut out, name, &tz, *from, *to);
        }
    }
    for e in events {
        vevent(&mut out, e.event, e.ticket, base_url, now, &Recurring::None);
    }
    line(&mut out, "END:VCALENDAR");
    out
}

/// What ties a VEVENT to a series (RFC 5545 3.8.4.4 and 3.8.5).
enum Recurring<'a> {
    None,
    /// The series itself: its rule and the starts it leaves out.
    Rule {
        series: Uuid,
        lines: Vec<String>,
    },
    /// An occurrence edited on its own, standing for the rule's `occurrence`.
    Override {
        series: Uuid,
        occurrence: &'a str,
    },
}

/// A series as one calendar item: the first occurrence with the series' RRULE and
/// EXDATEs (its exceptions, and occurrences cancelled one by one), and each occurrence
/// edited on its own as an override (`RECURRENCE-ID`), as calendar programs expect.
pub fn series_calendar(template: &Event, members: &[Event], base_url: &str, now: Timestamp) -> String {
    let zone = &template.input.time_zone;
    let Some(rule) = &template.input.recurrence else {
        return calendar(&template.input.title, &[Entry::from(template)], base_url, now);
    };
    let mut rule = rule.clone();
    let occurrence_of = |e: &Event| e.series.as_ref().and_then(|m| m.occurrence.parse::<Timestamp>().ok());
    rule.exceptions.extend(members.iter().filter(|e| e.status == Status::Cancelled).filter_map(occurrence_of));
    rule.exceptions.sort();
    let series = template.series.as_ref().map(|m| m.series_id).unwrap_or(template.id);
    let mut out = begin(&template.input.title);
    if let Ok(tz) = TimeZone::get(zone) {
        let last = members.iter().map(|e| e.input.end).max().unwrap_or(template.input.end);
        vtimezone(&mut out, zone, &tz, template.input.start, last.max(template.input.end));
    }
    vevent(&mut out, template, None, base_url, now, &Recurring::Rule { series, lines: rule.ics_lines(zone) });
    for e in members.iter().filter(|e| e.status != Status::Cancelled && e.series.as_ref().is_some_and(|m| m.edited)) {
        let occurrence = e.series.as_ref().map(|m| m.occurrence.as_str()).unwrap_or_default();
        vevent(&mut out, e, None, base_url, now, &Recurring::Override { series, occurrence });
    }
    line(&mut out, "END:VCALENDAR");
    out
}

fn vevent(
    out: &mut String,
    e: &Event,
    ticket: Option<&str>,
    base_url: &str,
    now: Timestamp,
    recurring: &Recurring<'_>,
) {
    let input = &e.input;
    line(out, "BEGIN:VEVENT");
    match recurring {
        Recurring::None => line(out, &format!("UID:{}@veche", e.id)),
        Recurring::Rule { series, .. } | Recurring::Override { series, .. } => {
            line(out, &format!("UID:{series}@veche"))
        }
    }
    line(out, &format!("DTSTAMP:{}", utc(now)));
    match TimeZone::get(&input.time_zone) {
        Ok(tz) => {
            line(out, &format!("DTSTART;TZID={}:{}", input.time_zone, local(&tz, input.start)));
            line(out, &format!("DTEND;TZID={}:{}", input.time_zone, local(&tz, input.end)));
        }
        Err(_) => {
            line(out, &format!("DTSTART:{}", utc(input.start)));
            line(out, &format!("DTEND:{}", utc(input.end)));
        }
    }
    match recurring {
        Recurring::None => {}
        Recurring::Rule { lines, .. } => lines.iter().for_each(|l| line(out, l)),
        Recurring::Override { occurrence, .. } => {
            if let (Ok(at), Ok(tz)) = (occurrence.parse::<Timestamp>(), TimeZone::get(&input.time_zone)) {
                line(out, &format!("RECURRENCE-ID;TZID={}:{}", input.time_zone, local(&tz, at)));
            }
        }
    }
    line(out, &format!("SUMMARY:{}", text(&input.title)));
    let description = match ticket {
        Some(code) if input.description.is_empty() => format!("Ticket: {code}"),
        Some(code) => format!("Ticket: {code}\n\n{}", input.description),
        None => input.description.clone(),
    };
    if !description.is_empty() {
        line(out, &format!("DESCRIPTION:{}", text(&description)));
    }
    if let Some(venue) = &input.venue {
        let place: Vec<&str> = [venue.name.as_deref(), venue.address.as_deref(), Some(venue.city.as_str())]
            .into_iter()
            .flatten()
            .collect();
        line(out, &format!("LOCATION:{}", text(&place.join(", "))));
        if let (Some(lat), Some(lon)) = (venue.latitude, venue.longitude) {
            line(out, &format!("GEO:{lat:.6};{lon:.6}"));
        }
    }
    let url = input.online_url.clone().unwrap_or_else(|| format!("{base_url}/api/v1/events/{}", e.id));
    line(out, &format!("URL:{url}"));
    if !input.tags.is_empty() {
        let tags: Vec<String> = input.tags.iter().map(|t| text(t)).collect();
        line(out, &format!("CATEGORIES:{}", tags.join(",")));
    }
    line(out, &format!("STATUS:{}", if e.status == Status::Cancelled { "CANCELLED" } else { "CONFIRMED" }));
    line(out, &format!("LAST-MODIFIED:{}", utc(Timestamp::from_second(e.updated_at).unwrap_or(now))));
    line(out, "END:VEVENT");
}

/// A `VTIMEZONE` with every transition from a year before `from` to a year after `to`,
/// or one fixed offset when the zone has none in that window.
fn vtimezone(out: &mut String, name: &str, tz: &TimeZone, from: Timestamp, to: Timestamp) {
    const YEAR: i64 = 366 * 24 * 3600;
    let start = Timestamp::from_second(from.as_second() - YEAR).unwrap_or(from);
    let end = Timestamp::from_second(to.as_second() + YEAR).unwrap_or(to);
    line(out, "BEGIN:VTIMEZONE");
    line(out, &format!("TZID:{name}"));
    let mut any = false;
    for t in tz.following(start).take_while(|t| t.timestamp() <= end).take(16) {
        let before = tz.to_offset(Timestamp::from_second(t.timestamp().as_second() - 1).unwrap_or(t.timestamp()));
        let kind = if t.dst().is_dst() { "DAYLIGHT" } else { "STANDARD" };
        line(out, &format!("BEGIN:{kind}"));
        // DTSTART of a transition is the local time as it was just before it.
        line(out, &format!("DTSTART:{}", before.to_datetime(t.timestamp()).strftime("%Y%m%dT%H%M%S")));
        line(out, &format!("TZOFFSETFROM:{}", offset(before)));
        line(out, &format!("TZOFFSETTO:{}", offset(t.offset())));
        line(out, &format!("TZNAME:{}", text(t.abbreviation())));
        line(out, &format!("END:{kind}"));
        any = true;
    }
    if !any {
        let fixed = tz.to_offset(from);
        line(out, "BEGIN:STANDARD");
        line(out, "DTSTART:19700101T000000");
        line(out, &format!("TZOFFSETFROM:{}", offset(fixed)));
        line(out, &format!("TZOFFSETTO:{}", offset(fixed)));
        line(out, "END:STANDARD");
    }
    line(out, "END:VTIMEZONE");
}

fn offset(o: Offset) -> String {
    let s = o.seconds();
    let sign = if s < 0 { '-' } else { '+' };
    let a = s.unsigned_abs();
    let (h, m, sec) = (a / 3600, a % 3600 / 60, a % 60);
    if sec == 0 { format!("{sign}{h:02}{m:02}") } else { format!("{sign}{h:02}{m:02}{sec:02}") }
}

fn local(tz: &TimeZone, t: Timestamp) -> String {
    tz.to_offset(t).to_datetime(t).strftime("%Y%m%dT%H%M%S").to_string()
}

fn utc(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Escapes a TEXT value (RFC 5545 §3.3.11): every line break (CRLF, lone CR, lone LF)
/// becomes `\\n`, other control characters but TAB are dropped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\\n");
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Writes a content line folded at 75 octets, never inside a UTF-8 character (§3.1).
/// The last guard against injection: no value, escaped or not (a URI is not TEXT), can
/// end the line early, since every control character but TAB is dropped here.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars().filter(|&c| c == '\t' || !c.is_control()) {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fold_at_75_octets_without_splitting_characters() {
        let mut out = String::new();
        line(&mut out, &format!("SUMMARY:{}", "Ж".repeat(60)));
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets", l.len());
        }
        assert_eq!(out.replace("\r\n ", ""), format!("SUMMARY:{}\r\n", "Ж".repeat(60)));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(text("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
        assert_eq!(text("a\r\nb\rc\nd\te\0f"), "a\\nb\\nc\\nd\te".to_owned() + "f");
    }

    /// Whatever a stored value holds (rows written before input was checked included), no
    /// property can start a line of its own: every VEVENT in the output is one we wrote.
    #[test]
    fn no_value_can_forge_a_line() {
        let forged = "BEGIN:VEVENT\r\nUID:someone-else@veche\r\nSUMMARY:forged\r\nEND:VEVENT";
        for sep in ["\r\n", "\r", "\n", "\t", "\0"] {
            let evil = format!("https://a.example/x{sep}{forged}");
            let input: crate::model::EventInput = serde_json::from_value(serde_json::json!({
                "title": format!("t{sep}UID:x"), "description": format!("d{sep}END:VCALENDAR"),
                "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T11:00:00Z", "time_zone": "UTC",
                "format": "online", "online_url": evil, "tags": [format!("a{sep}b")],
                "organization_id": "00000000-0000-4000-8000-000000000001"
            }))
            .unwrap();
            let e = Event {
                id: uuid::Uuid::nil(),
                input,
                status: Status::Published,
                registered: 0,
                waitlisted: 0,
                created_by: uuid::Uuid::nil(),
                created_at: 0,
                updated_at: 0,
                published_at: Some(0),
                source: None,
                series: None,
            };
            let ics = calendar("c", &[Entry::from(&e)], "https://veche.example", Timestamp::UNIX_EPOCH);
            let unfolded = ics.replace("\r\n ", "");
            let lines: Vec<&str> = unfolded.split("\r\n").collect();
            assert_eq!(lines.iter().filter(|l| l.starts_with("BEGIN:VEVENT")).count(), 1, "{sep:?}: {ics}");
            assert_eq!(lines.iter().filter(|l| l.starts_with("UID:")).count(), 1, "{sep:?}: {ics}");
            assert!(!unfolded.replace("\r\n", "").contains(['\r', '\n', '\0']), "{sep:?}: {ics}");
        }
    }

    #[test]
    fn offsets_are_signed_hhmm() {
        assert_eq!(offset(Offset::from_seconds(3 * 3600).unwrap()), "+0300");
        assert_eq!(offset(Offset::from_seconds(-(5 * 3600 + 1800)).unwrap()), "-0530");
    }

    #[test]
    fn a_zone_with_daylight_saving_gets_both_kinds() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let mut out = String::new();
        let t: Timestamp = "2026-12-05T16:00:00Z".parse().unwrap();
        vtimezone(&mut out, "America/New_York", &tz, t, t);
        assert!(out.contains("BEGIN:DAYLIGHT") && out.contains("BEGIN:STANDARD"), "{out}");
        assert!(out.contains("TZOFFSETFROM:-0500") && out.contains("TZOFFSETTO:-0400"));
        let mut out = String::new();
        vtimezone(&mut out, "Europe/Moscow", &TimeZone::get("Europe/Moscow").unwrap(), t, t);
        assert!(out.contains("TZOFFSETTO:+0300") && !out.contains("DAYLIGHT"), "{out}");
    }
}
