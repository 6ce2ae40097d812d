//! Repeating events: a series is an RFC 5545 rule (RRULE) over a first start, expanded by
//! the rrule crate into occurrences, each an event of its own (searchable, with its own
//! seats and registrations). No I/O here.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;
use uuid::Uuid;

/// At most this many occurrences of a series exist at a time.
pub const OCCURRENCES_MAX: usize = 100;
/// How far ahead a series is expanded; a scan extends it as time passes.
pub const HORIZON: i64 = 366 * 86_400;
const RULE_MAX: usize = 500;
const EXCEPTIONS_MAX: usize = 500;

/// How an event repeats: the body's `recurrence` when a series is made or changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// An RFC 5545 RRULE without its `RRULE:` prefix, counted from the event's `start` in
    /// its `time_zone` (which must be the first occurrence): `FREQ=WEEKLY;BYDAY=TU;COUNT=10`,
    /// `FREQ=MONTHLY;BYDAY=1TH;UNTIL=20271231T000000Z`. `FREQ` is `DAILY`, `WEEKLY`,
    /// `MONTHLY` or `YEARLY`.
    #[schema(max_length = 500, example = "FREQ=WEEKLY;BYDAY=TU;COUNT=10")]
    pub rule: String,
    /// Starts of occurrences taken out of the series (its EXDATEs), RFC 3339.
    #[serde(default)]
    #[schema(value_type = Vec<String>, max_items = 500)]
    pub exceptions: Vec<Timestamp>,
}

/// Where an event stands in its series, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeriesMember {
    /// The series: every occurrence names it; `PATCH ...?series=true` edits it.
    pub series_id: Uuid,
    /// This occurrence's place in the rule (its RECURRENCE-ID): its start as the rule
    /// gives it, even after it was moved on its own.
    #[schema(format = DateTime)]
    pub occurrence: String,
    /// Edited on its own: changes to the series leave its fields alone.
    pub edited: bool,
    pub recurrence: Recurrence,
}

impl Recurrence {
    /// Normalises and checks the rule against `start` in `zone`; the problem in words.
    pub fn check(&mut self, start: Timestamp, zone: &str) -> Result<(), String> {
        self.rule = self.rule.trim().to_ascii_uppercase().trim_start_matches("RRULE:").to_owned();
        if self.rule.len() > RULE_MAX {
            return Err(format!("must be at most {RULE_MAX} characters"));
        }
        if self.exceptions.len() > EXCEPTIONS_MAX {
            return Err(format!("at most {EXCEPTIONS_MAX} exceptions"));
        }
        let freq = self.rule.split(';').find_map(|p| p.strip_prefix("FREQ="));
        if !matches!(freq, Some("DAILY" | "WEEKLY" | "MONTHLY" | "YEARLY")) {
            return Err("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY".into());
        }
        if self.rule.contains("DTSTART") || self.rule.contains('\n') {
            return Err("the rule starts at the event's start: no DTSTART in it".into());
        }
        self.exceptions.sort();
        self.exceptions.dedup();
        let until =
            start.checked_add(jiff::SignedDuration::from_secs(HORIZON)).map_err(|_| "the start is too far ahead")?;
        let first = starts(&self.rule, start, zone, &[], start, until)?;
        match first.first() {
            Some(at) if *at == start => {}
            _ => return Err("the event's start must be the rule's first occurrence".into()),
        }
        if self.occurrences(start, zone, start, until)?.is_empty() {
            return Err("its exceptions leave no occurrence in the coming year".into());
        }
        Ok(())
    }

    /// The starts of the series beginning at `start`, from `from` up to `until`
    /// (exclusive), exceptions left out, at most [`OCCURRENCES_MAX`].
    pub fn occurrences(
        &self,
        start: Timestamp,
        zone: &str,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Timestamp>, String> {
        starts(&self.rule, start, zone, &self.exceptions, from, until)
    }

    /// The rule and exceptions as iCalendar lines of a VEVENT in `zone`.
    pub fn ics_lines(&self, zone: &str) -> Vec<String> {
        let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
        let mut lines = vec![format!("RRULE:{}", self.rule)];
        for at in &self.exceptions {
            let local = at.to_zoned_datetime(tz.clone()).datetime().strftime("%Y%m%dT%H%M%S").to_string();
            lines.push(format!("EXDATE;TZID={zone}:{local}"));
        }
        lines
    }
}

/// Where `at` lands when a series moves its first start from `was` to `is` in `zone`: by
/// the same wall-clock change (days and time of day), so a move by a day keeps 19:00 at
/// 19:00 across a clock change. `None` when that is out of range.
pub fn shifted(at: Timestamp, was: Timestamp, is: Timestamp, zone: &str) -> Option<Timestamp> {
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    let (was, is) = (was.to_zoned_datetime(tz.clone()).datetime(), is.to_zoned_datetime(tz.clone()).datetime());
    let change = was.until(is).ok()?;
    let local = at.to_zoned_datetime(tz.clone()).datetime().checked_add(change).ok()?;
    tz.to_timestamp(local).ok()
}

fn starts(
    rule: &str,
    start: Timestamp,
    zone: &str,
    except: &[Timestamp],
    from: Timestamp,
    until: Timestamp,
) -> Result<Vec<Timestamp>, String> {
    use chrono::TimeZone as _;
    let tz = chrono_tz::Tz::from_str(zone).map_err(|_| format!("{zone} is not a time zone"))?;
    let zone = rrule::Tz::Tz(tz);
    let first = zone.timestamp_opt(start.as_second(), 0).single().ok_or("the start is not a moment")?;
    let set = rule
        .parse::<rrule::RRule<rrule::Unvalidated>>()
        .and_then(|r| r.build(first))
        .map_err(|e| format!("cannot be read: {e}"))?
        // rrule's guard: a rule that never matches gives up instead of counting for ever.
        .limit();
    let mut out = Vec::new();
    for at in &set {
        let at = Timestamp::from_second(at.timestamp()).map_err(|e| e.to_string())?;
        if at >= until || out.len() >= OCCURRENCES_MAX {
            break;
        }
        // Only upcoming ones count towards the cap: a long series goes on.
        if at >= from && !except.contains(&at) {
            out.push(at);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_weekly_club_keeps_its_local_hour_across_the_clock_change() {
        let mut r =
            Recurrence { rule: "rrule:freq=weekly;count=4".into(), exceptions: vec![t("2027-03-31T17:00:00Z")] };
        // Berlin moves its clocks on 28 March 2027: 19:00 local is 18:00Z, then 17:00Z.
        r.check(t("2027-03-17T18:00:00Z"), "Europe/Berlin").unwrap();
        assert_eq!(r.rule, "FREQ=WEEKLY;COUNT=4");
        let got = r
            .occurrences(
                t("2027-03-17T18:00:00Z"),
                "Europe/Berlin",
                t("2027-01-01T00:00:00Z"),
                t("2028-01-01T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(got, [t("2027-03-17T18:00:00Z"), t("2027-03-24T18:00:00Z"), t("2027-04-07T17:00:00Z")]);
        assert_eq!(
            r.ics_lines("Europe/Berlin"),
            ["RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Berlin:20270331T190000"]
        );
    }

    #[test]
    fn bad_rules_say_why() {
        let start = t("2027-03-17T18:00:00Z");
        let check = |rule: &str| Recurrence { rule: rule.into(), exceptions: vec![] }.check(start, "Europe/Berlin");
        assert!(check("FREQ=SECONDLY").unwrap_err().contains("FREQ"));
        assert!(check("FREQ=WEEKLY;BYDAY=XX").unwrap_err().contains("cannot be read"));
        // 17 March 2027 is a Wednesday: a Monday rule does not start there.
        assert!(check("FREQ=WEEKLY;BYDAY=MO").unwrap_err().contains("first occurrence"));
        assert!(check("FREQ=DAILY").is_ok());
        let only = Recurrence { rule: "FREQ=DAILY;COUNT=1".into(), exceptions: vec![start] };
        assert!(only.clone().check(start, "Europe/Berlin").unwrap_err().contains("no occurrence"));
        let far = t("9999-12-01T00:00:00Z");
        assert!(Recurrence { rule: "FREQ=DAILY".into(), exceptions: vec![] }.check(far, "UTC").is_err());
        // A daily series goes on past its hundredth day: the cap counts upcoming ones.
        let many = Recurrence { rule: "FREQ=DAILY".into(), exceptions: vec![] };
        let later = start + jiff::SignedDuration::from_hours(24 * 500);
        let got = many
            .occurrences(start, "Europe/Berlin", later, later + jiff::SignedDuration::from_hours(24 * 1000))
            .unwrap();
        assert_eq!(got.len(), OCCURRENCES_MAX);
        assert!(got[0] >= later && got[0] < later + jiff::SignedDuration::from_hours(24), "{}", got[0]);
    }

    #[test]
    fn a_series_moved_by_a_day_keeps_its_hour_across_the_clock_change() {
        // Berlin, 19:00 on Wednesdays, moved to Thursdays: the one after the clock change
        // is 17:00Z, and a day later still 17:00Z.
        let (was, is) = (t("2027-03-17T18:00:00Z"), t("2027-03-18T18:00:00Z"));
        assert_eq!(shifted(t("2027-03-31T17:00:00Z"), was, is, "Europe/Berlin"), Some(t("2027-04-01T17:00:00Z")));
        assert_eq!(shifted(t("2027-03-24T18:00:00Z"), was, is, "Europe/Berlin"), Some(t("2027-03-25T18:00:00Z")));
    }
}
