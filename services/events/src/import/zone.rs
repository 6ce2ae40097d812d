//! A name for a VTIMEZONE no table knows, like Outlook's "Customized Time Zone": the IANA
//! zone whose UTC offsets match the VTIMEZONE's rules, checked mid-month and around each
//! of its transitions over the years that matter (CalConnect's advice: guess the zone,
//! do not trust the rules alone).

use calcard::common::PartialDateTime;
use calcard::icalendar::{ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarProperty, ICalendarValue};
use chrono::{Datelike, NaiveDate, Offset, TimeZone};
use std::ops::RangeInclusive;

/// Parts of one VTIMEZONE read, and transitions taken from each: real ones have two
/// parts with a yearly rule (some four hundred transitions since 1601).
const OBSERVANCES_MAX: usize = 8;
const TRANSITIONS_MAX: usize = 1000;

/// Continents first: of zones with the same offsets, the one people recognise.
const PREFERRED: [&str; 7] = ["Europe/", "America/", "Asia/", "Africa/", "Australia/", "Pacific/", "Atlantic/"];

/// One STANDARD or DAYLIGHT part: from when, by which rule, to which offset.
struct Observance {
    start: chrono::NaiveDateTime,
    rule: Option<String>,
    from: i32,
    to: i32,
}

fn offset(value: &PartialDateTime) -> Option<i32> {
    let seconds = i32::from(value.tz_hour?) * 3600 + i32::from(value.tz_minute.unwrap_or(0)) * 60;
    Some(if value.tz_minus { -seconds } else { seconds })
}

fn observances(calendar: &ICalendar, vtimezone: &ICalendarComponent) -> Vec<Observance> {
    let parts = vtimezone.component_ids.iter().filter_map(|id| calendar.components.get(*id as usize));
    parts
        .filter(|c| matches!(c.component_type, ICalendarComponentType::Standard | ICalendarComponentType::Daylight))
        .take(OBSERVANCES_MAX)
        .filter_map(|c| {
            let (mut start, mut rule, mut from, mut to) = (None, None, None, None);
            for entry in &c.entries {
                match (&entry.name, entry.values.first()) {
                    (ICalendarProperty::Dtstart, Some(ICalendarValue::PartialDateTime(dt))) => {
                        start = dt.to_date_time().map(|d| d.date_time)
                    }
                    (ICalendarProperty::Rrule, Some(ICalendarValue::RecurrenceRule(r))) => rule = Some(r.to_string()),
                    (ICalendarProperty::Tzoffsetfrom, Some(ICalendarValue::PartialDateTime(dt))) => from = offset(dt),
                    (ICalendarProperty::Tzoffsetto, Some(ICalendarValue::PartialDateTime(dt))) => to = offset(dt),
                    _ => {}
                }
            }
            Some(Observance { start: start?, rule, from: from?, to: to? })
        })
        .collect()
}

/// The VTIMEZONE's transitions (UTC seconds, new offset) up to the end of `years`.
fn transitions(observances: &[Observance], years: &RangeInclusive<i32>) -> Vec<(i64, i32)> {
    let end = NaiveDate::from_ymd_opt(*years.end() + 1, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let Some(end) = end.map(|e| e.and_utc().timestamp()) else { return vec![] };
    let mut out = Vec::new();
    for o in observances {
        let first = rrule::Tz::UTC.from_utc_datetime(&o.start);
        let local_starts: Vec<i64> = match &o.rule {
            Some(rule) => match rule.parse::<rrule::RRule<rrule::Unvalidated>>().and_then(|r| r.build(first)) {
                Ok(set) => set
                    .limit()
                    .into_iter()
                    .map(|d| d.timestamp())
                    .take_while(|t| *t < end)
                    .take(TRANSITIONS_MAX)
                    .collect(),
                Err(_) => vec![first.timestamp()],
            },
            None => vec![first.timestamp()],
        };
        // A transition's local time is on the clock it leaves.
        out.extend(local_starts.into_iter().map(|local| (local - i64::from(o.from), o.to)));
    }
    out.sort();
    out
}

/// The IANA zone matching a VTIMEZONE's rules over `years`, if one does.
pub fn guess(
    calendar: &ICalendar,
    vtimezone: &ICalendarComponent,
    years: RangeInclusive<i32>,
) -> Option<chrono_tz::Tz> {
    let changes = transitions(&observances(calendar, vtimezone), &years);
    let offset_at = |t: i64| changes[..changes.partition_point(|(at, _)| *at <= t)].last().map(|(_, o)| *o);
    let mut samples: Vec<i64> = years
        .clone()
        .flat_map(|y| (1..=12).flat_map(move |m| [1, 15].map(|d| (y, m, d))))
        .filter_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d)?.and_hms_opt(12, 0, 0))
        .map(|d| d.and_utc().timestamp())
        .collect();
    let first_year = NaiveDate::from_ymd_opt(*years.start(), 1, 1)?.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    samples.extend(changes.iter().filter(|(at, _)| *at >= first_year).flat_map(|(at, _)| [at - 1, *at]));
    let wanted: Vec<(i64, i32)> = samples.iter().map(|t| Some((*t, offset_at(*t)?))).collect::<Option<_>>()?;
    let matches = |tz: &chrono_tz::Tz| {
        wanted.iter().all(|(t, want)| {
            chrono::DateTime::from_timestamp(*t, 0)
                .is_some_and(|at| tz.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc() == *want)
        })
    };
    let rank = |tz: &chrono_tz::Tz| PREFERRED.iter().position(|p| tz.name().starts_with(p)).unwrap_or(PREFERRED.len());
    let mut found: Vec<chrono_tz::Tz> = chrono_tz::TZ_VARIANTS.iter().filter(|tz| matches(tz)).copied().collect();
    found.sort_by_key(|tz| (rank(tz), tz.name()));
    found.into_iter().next()
}

/// The years a window touches, with the one before (a series may start there).
pub fn years_of(from: jiff::Timestamp, to: jiff::Timestamp) -> RangeInclusive<i32> {
    let year = |t: jiff::Timestamp| chrono::DateTime::from_timestamp(t.as_second(), 0).map_or(2000, |d| d.year());
    (year(from) - 1)..=year(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone_of(vtimezone: &str) -> Option<chrono_tz::Tz> {
        let text = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{vtimezone}END:VCALENDAR\r\n");
        let calendar = ICalendar::parse(text).unwrap();
        let tz = calendar.components.iter().find(|c| c.component_type == ICalendarComponentType::VTimezone).unwrap();
        guess(&calendar, tz, 2026..=2027)
    }

    #[test]
    fn outlooks_customized_zone_is_recognised_by_its_rules() {
        // Eastern European rules: +2, +3 from the last Sunday of March at 03:00.
        let eet = "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\nBEGIN:STANDARD\r\nDTSTART:16010101T040000\r\n\
TZOFFSETFROM:+0300\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n\
BEGIN:DAYLIGHT\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0300\r\n\
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
        let tz = zone_of(eet).unwrap();
        assert!(tz.name().starts_with("Europe/"), "{tz:?}");
        // Beirut has the same offsets but changes at midnight: the transitions tell them apart.
        assert_ne!(tz, chrono_tz::Asia::Beirut);
        // US Eastern rules (second Sunday of March, first of November).
        let us = "BEGIN:VTIMEZONE\r\nTZID:Custom\r\nBEGIN:STANDARD\r\nDTSTART:16011104T020000\r\n\
RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nEND:STANDARD\r\n\
BEGIN:DAYLIGHT\r\nDTSTART:16010311T020000\r\nRRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\r\nTZOFFSETFROM:-0500\r\n\
TZOFFSETTO:-0400\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
        let tz = zone_of(us).unwrap();
        assert!(tz.name().starts_with("America/"), "{tz:?}");
        let nowhere = "BEGIN:VTIMEZONE\r\nTZID:Mars\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\n\
TZOFFSETFROM:+0317\r\nTZOFFSETTO:+0317\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
        assert_eq!(zone_of(nowhere), None);
    }
}
