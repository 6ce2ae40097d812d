//! Moments as queries give them: an RFC 3339 time, or a plain date from a date picker
//! (`2027-02-01`), read in the caller's `time_zone` (UTC when none is given). A date
//! that opens a range means the start of that day; one that closes it means the whole
//! day is in (the next day's start, as an exclusive end), as people read "from 1 to 7
//! February".

use crate::problem::Violations;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Which end of a range a moment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `from`: a date is its day's start.
    Start,
    /// `to`: a date includes its day (the next day's start).
    Finish,
}

/// Unix seconds of `s`, or `None` when it is neither an RFC 3339 time nor a date.
pub fn parse(s: &str, zone: &TimeZone, end: End) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    // Only the plain `YYYY-MM-DD`: jiff also reads forms people do not type in a query.
    if s.len() != 10 {
        return None;
    }
    let date: Date = s.parse().ok()?;
    let day = match end {
        End::Start => date,
        End::Finish => date.tomorrow().ok()?,
    };
    // The first instant of the day there: midnight, or when the clocks jump past a
    // midnight that never happened, the moment after the jump.
    let midnight = day.to_datetime(jiff::civil::Time::midnight());
    zone.to_ambiguous_timestamp(midnight).compatible().ok().map(|t| t.as_second())
}

/// The zone of an optional `time_zone` parameter (UTC when absent), or a violation.
pub fn zone(v: &mut Violations, field: &str, name: Option<&str>) -> TimeZone {
    let Some(name) = name else { return TimeZone::UTC };
    match crate::validate::time_zone(name).and_then(|n| jiff::tz::db().get(&n).ok()) {
        Some(zone) => zone,
        None => {
            v.add(field, "must be an IANA time zone such as Europe/Moscow");
            TimeZone::UTC
        }
    }
}

/// Reads the optional parameter `field` as a moment, recording a violation that names
/// both accepted forms when it is neither.
pub fn param(v: &mut Violations, field: &str, value: Option<&str>, zone: &TimeZone, end: End) -> Option<i64> {
    let value = value?;
    let parsed = parse(value, zone, end);
    if parsed.is_none() {
        v.add(field, "must be an RFC 3339 time such as 2027-02-01T16:00:00Z or a date such as 2027-02-01");
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn times_are_read_as_they_are_and_dates_in_the_callers_zone() {
        let moscow = jiff::tz::db().get("Europe/Moscow").unwrap();
        assert_eq!(parse("2027-02-01T16:00:00+03:00", &moscow, End::Start), Some(at("2027-02-01T13:00:00Z")));
        assert_eq!(parse("2027-02-01", &TimeZone::UTC, End::Start), Some(at("2027-02-01T00:00:00Z")));
        assert_eq!(parse("2027-02-01", &moscow, End::Start), Some(at("2027-01-31T21:00:00Z")));
        assert_eq!(parse("2027-02-01", &moscow, End::Finish), Some(at("2027-02-01T21:00:00Z")));
        assert_eq!(parse("2027-12-31", &TimeZone::UTC, End::Finish), Some(at("2028-01-01T00:00:00Z")));
    }

    #[test]
    fn a_day_that_starts_with_a_clock_change_starts_when_the_clocks_say_so() {
        // Santiago's clocks went from 24:00 to 01:00 on 2022-09-11: the day began at 01:00.
        let santiago = jiff::tz::db().get("America/Santiago").unwrap();
        assert_eq!(parse("2022-09-11", &santiago, End::Start), Some(at("2022-09-11T04:00:00Z")));
    }

    #[test]
    fn nothing_else_is_a_moment() {
        for bad in ["2027-02-30", "2027-2-1", "20270201", "02/01/2027", "2027-02-01T25:00:00Z", "tomorrow", ""] {
            assert_eq!(parse(bad, &TimeZone::UTC, End::Start), None, "{bad}");
        }
        let mut v = Violations::new();
        assert_eq!(zone(&mut v, "time_zone", Some("Mars/Olympus")), TimeZone::UTC);
        assert!(v.into_result().is_err());
    }
}
