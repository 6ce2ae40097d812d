//! iCalendar (RFC 5545) into [`Item`]s over a window: calcard parses (folded lines,
//! escapes, VTIMEZONE, Windows zone names as Outlook writes them), rrule expands RRULE,
//! RDATE and EXDATE in the series' own zone (so 10:00 stays 10:00 across DST), and
//! RECURRENCE-ID overrides replace the occurrence they name, wherever they move it.

use super::{Item, Moment, ParseError, Parsed, Window};
use calcard::common::DateTimeResult;
use calcard::common::timezone::Tz;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarEntry, ICalendarProperty, ICalendarStatus,
    ICalendarValue,
};
use chrono::TimeZone;
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// Occurrences a series may step through before the window's end: a rule firing every
/// minute since years ago is refused, not expanded for minutes of CPU.
const STEPS_MAX: usize = 100_000;
/// Steps through rules a whole calendar may take: thousands of series each stepping
/// through years of a fast rule would cost minutes of CPU.
const CALENDAR_STEPS_MAX: usize = 2_000_000;

type Resolver = calcard::icalendar::timezone::TzResolver<String>;

/// A date or date-time property: its value and zone.
#[derive(Debug, Clone)]
struct Stamp<'a> {
    value: DateTimeResult,
    tzid: Option<&'a str>,
    has_time: bool,
}

/// The parts of a VEVENT the importer reads.
#[derive(Debug, Default)]
struct Vevent<'a> {
    uid: Option<&'a str>,
    start: Option<Stamp<'a>>,
    end: Option<Stamp<'a>>,
    duration: Option<i64>,
    rrule: Option<String>,
    /// An RRULE calcard could not read: the series is unknown, not a single event.
    bad_rule: bool,
    rdates: Vec<Stamp<'a>>,
    exdates: Vec<Stamp<'a>>,
    recurrence_id: Option<Stamp<'a>>,
    summary: Option<&'a str>,
    description: Option<&'a str>,
    location: Option<&'a str>,
    url: Option<&'a str>,
    categories: Vec<String>,
    cancelled: bool,
    sequence: i64,
    modified: Option<i64>,
}

fn stamps<'a>(entry: &'a ICalendarEntry) -> impl Iterator<Item = Stamp<'a>> + 'a {
    let tzid = entry.tz_id();
    entry.values.iter().filter_map(move |v| match v {
        ICalendarValue::PartialDateTime(dt) => Some(Stamp { value: dt.to_date_time()?, tzid, has_time: dt.has_time() }),
        _ => None,
    })
}

fn read(component: &ICalendarComponent) -> Vevent<'_> {
    let mut e = Vevent::default();
    for entry in &component.entries {
        let text = entry.values.first().and_then(ICalendarValue::as_text);
        match &entry.name {
            ICalendarProperty::Uid => e.uid = text,
            ICalendarProperty::Dtstart => e.start = stamps(entry).next(),
            ICalendarProperty::Dtend => e.end = stamps(entry).next(),
            ICalendarProperty::Duration => {
                if let Some(ICalendarValue::Duration(d)) = entry.values.first() {
                    e.duration = Some(if d.neg { -d.as_seconds() } else { d.as_seconds() });
                }
            }
            ICalendarProperty::Rrule => match entry.values.first() {
                Some(ICalendarValue::RecurrenceRule(rule)) => e.rrule = Some(rule.to_string()),
                _ => e.bad_rule = true,
            },
            ICalendarProperty::Rdate => e.rdates.extend(stamps(entry)),
            ICalendarProperty::Exdate => e.exdates.extend(stamps(entry)),
            ICalendarProperty::RecurrenceId => e.recurrence_id = stamps(entry).next(),
            ICalendarProperty::Summary => e.summary = text,
            ICalendarProperty::Description => e.description = text,
            ICalendarProperty::Location => e.location = text,
            ICalendarProperty::Url => e.url = text,
            ICalendarProperty::Categories => {
                e.categories.extend(entry.values.iter().filter_map(ICalendarValue::as_text).map(str::to_owned))
            }
            ICalendarProperty::Status => {
                e.cancelled = matches!(entry.values.first(), Some(ICalendarValue::Status(ICalendarStatus::Cancelled)))
            }
            ICalendarProperty::Sequence => {
                if let Some(ICalendarValue::Integer(n)) = entry.values.first() {
                    e.sequence = *n;
                }
            }
            ICalendarProperty::LastModified => {
                e.modified =
                    stamps(entry).next().and_then(|s| s.value.to_date_time_with_tz(Tz::UTC)).map(|d| d.timestamp())
            }
            _ => {}
        }
    }
    e
}

/// Reads a calendar's events over `window`. Floating times are read in the calendar's
/// X-WR-TIMEZONE, else in `floating` (an IANA name; UTC if unknown).
pub fn parse(text: &str, floating: &str, window: Window) -> Result<Parsed, ParseError> {
    let calendar =
        ICalendar::parse(text).map_err(|_| ParseError("not an iCalendar file (no VCALENDAR in it)".into()))?;
    // Google and Apple name the calendar's zone in X-WR-TIMEZONE; floating times mean it.
    let calendar_zone = calendar
        .components
        .iter()
        .filter(|c| c.component_type == ICalendarComponentType::VCalendar)
        .flat_map(|c| &c.entries)
        .find_map(|e| match &e.name {
            ICalendarProperty::Other(name) if name.eq_ignore_ascii_case("X-WR-TIMEZONE") => {
                e.values.first().and_then(ICalendarValue::as_text)
            }
            _ => None,
        });
    let floating = calendar_zone
        .and_then(|z| chrono_tz::Tz::from_str(z.trim()).ok())
        .or_else(|| chrono_tz::Tz::from_str(floating).ok())
        .unwrap_or(chrono_tz::UTC);
    let resolver = calendar.build_owned_tz_resolver().with_default(Tz::Tz(floating));
    // Zones known by no name (Outlook's "Customized Time Zone"), recognised by their rules;
    // only those an event uses.
    let used: std::collections::HashSet<&str> = calendar
        .components
        .iter()
        .filter(|c| c.component_type == ICalendarComponentType::VEvent)
        .flat_map(|c| c.entries.iter().filter_map(ICalendarEntry::tz_id))
        .collect();
    let guessed = calendar
        .components
        .iter()
        .filter(|c| c.component_type == ICalendarComponentType::VTimezone)
        .filter_map(|c| {
            let tzid = c.entries.iter().find(|e| e.name == ICalendarProperty::Tzid)?.values.first()?.as_text()?;
            if !used.contains(tzid) || resolver.resolve(tzid).is_some() {
                return None;
            }
            Some((tzid.to_owned(), super::zone::guess(&calendar, c, super::zone::years_of(window.from, window.to))?))
        })
        .collect();
    let mut reader =
        Reader { resolver, guessed, floating, window, parsed: Parsed::default(), steps: 0, overflow: None };

    // Series and single events by UID, and the overrides of each UID by the slot they replace.
    let mut masters: BTreeMap<&str, Vevent<'_>> = BTreeMap::new();
    let mut overrides: BTreeMap<&str, Vec<Vevent<'_>>> = BTreeMap::new();
    let events = calendar.components.iter().filter(|c| c.component_type == ICalendarComponentType::VEvent);
    for (n, component) in events.enumerate() {
        let vevent = read(component);
        let Some(uid) = vevent.uid.filter(|u| !u.trim().is_empty()) else {
            reader.parsed.skip(&format!("event #{}", n + 1), "it has no UID");
            continue;
        };
        if vevent.recurrence_id.is_some() {
            overrides.entry(uid).or_default().push(vevent);
        } else if masters.contains_key(uid) {
            reader.parsed.skip(uid, "its UID appears twice");
        } else {
            masters.insert(uid, vevent);
        }
    }
    for (uid, master) in &masters {
        let mut own = overrides.remove(uid).unwrap_or_default();
        if master.bad_rule {
            reader.parsed.skip(uid, "its RRULE cannot be read");
            continue;
        }
        if master.rrule.is_some() || !master.rdates.is_empty() {
            reader.series(uid, master, &mut own);
        } else {
            reader.single(uid, master, None);
        }
        // Overrides whose slot the series does not produce (moved from outside the window,
        // or of a single event): each stands on its own.
        for o in &own {
            reader.single(uid, o, o.recurrence_id.as_ref());
        }
    }
    for (uid, orphans) in &overrides {
        for o in orphans {
            reader.single(uid, o, o.recurrence_id.as_ref());
        }
    }
    if let Some(why) = reader.overflow {
        return Err(ParseError(why));
    }
    let mut parsed = reader.parsed;
    parsed.items.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    parsed.items.dedup_by(|a, b| a.external_id == b.external_id);
    Ok(parsed)
}

struct Reader {
    resolver: Resolver,
    guessed: HashMap<String, chrono_tz::Tz>,
    floating: chrono_tz::Tz,
    window: Window,
    parsed: Parsed,
    /// Steps taken through rules so far, against [`CALENDAR_STEPS_MAX`].
    steps: usize,
    /// Why the calendar is too big to import, once it is.
    overflow: Option<String>,
}

impl Reader {
    fn push(&mut self, item: Item) {
        if self.parsed.items.len() >= super::ITEMS_MAX {
            self.overflow.get_or_insert_with(|| {
                format!(
                    "the calendar has more than {} events in the next {} days",
                    super::ITEMS_MAX,
                    super::HORIZON_DAYS
                )
            });
            return;
        }
        self.parsed.items.push(item);
    }

    fn knows(&self, tzid: &str) -> bool {
        self.guessed.contains_key(tzid) || self.resolver.resolve(tzid).is_some()
    }

    fn zone(&self, stamp: &Stamp<'_>) -> Tz {
        match (stamp.value.tz(), stamp.tzid.and_then(|id| self.guessed.get(id))) {
            (Some(tz), _) => tz,
            (None, Some(guessed)) => Tz::Tz(*guessed),
            (None, None) => self.resolver.resolve_or_default(stamp.tzid),
        }
    }

    fn moment(&self, stamp: &Stamp<'_>) -> Option<Moment> {
        if !stamp.has_time {
            let d = stamp.value.date_time.date();
            use chrono::Datelike;
            return jiff::civil::Date::new(d.year() as i16, d.month() as i8, d.day() as i8).ok().map(Moment::Day);
        }
        let seconds = match stamp.value.offset {
            Some(_) => stamp.value.to_date_time_with_tz(Tz::UTC)?.timestamp(),
            None => local_to_utc(&self.zone(stamp), stamp.value.date_time)?,
        };
        Timestamp::from_second(seconds).ok().map(Moment::At)
    }

    /// The IANA name of a stamp's zone, when it has one we know.
    fn zone_name(&self, stamp: &Stamp<'_>) -> Option<String> {
        match self.zone(stamp) {
            Tz::Tz(tz) if stamp.has_time && tz != chrono_tz::UTC => Some(tz.name().to_owned()),
            _ => None,
        }
    }

    /// Start and end of an event: DTEND, or DTSTART plus DURATION, or RFC 5545's default
    /// (the start for a timed event, the next day for an all-day one).
    fn span(&self, e: &Vevent<'_>) -> Result<(Moment, Moment), &'static str> {
        let start_stamp = e.start.as_ref().or(e.recurrence_id.as_ref()).ok_or("it has no DTSTART")?;
        for stamp in [Some(start_stamp), e.end.as_ref()].into_iter().flatten() {
            if stamp.has_time && stamp.value.tz().is_none() && stamp.tzid.is_some_and(|id| !self.knows(id)) {
                return Err("its TZID is neither a time zone we know nor one the file defines");
            }
        }
        let start = self.moment(start_stamp).ok_or("its DTSTART does not exist in its time zone")?;
        let end = match (&e.end, e.duration) {
            (Some(end), _) => self.moment(end).ok_or("its DTEND does not exist in its time zone")?,
            (None, Some(secs)) => shift(start, secs).ok_or("its DURATION is out of range")?,
            (None, None) => {
                shift(start, if start_stamp.has_time { 0 } else { 86_400 }).ok_or("its DTSTART is out of range")?
            }
        };
        if end.utc() < start.utc() {
            return Err("it ends before it starts");
        }
        Ok((start, end))
    }

    fn item(
        &self,
        external_id: String,
        e: &Vevent<'_>,
        start: Moment,
        end: Moment,
        master: Option<&Vevent<'_>>,
    ) -> Item {
        let pick =
            |f: for<'v> fn(&'v Vevent<'v>) -> Option<&'v str>| f(e).or_else(|| master.and_then(f)).map(str::to_owned);
        let categories = if e.categories.is_empty() {
            master.map(|m| m.categories.clone()).unwrap_or_default()
        } else {
            e.categories.clone()
        };
        let zone_stamp = e.start.as_ref().or(master.and_then(|m| m.start.as_ref()));
        Item {
            external_id,
            title: pick(|v| v.summary).unwrap_or_default(),
            description: pick(|v| v.description).unwrap_or_default(),
            start,
            end,
            time_zone: zone_stamp.and_then(|s| self.zone_name(s)),
            location: pick(|v| v.location),
            url: pick(|v| v.url),
            categories,
            cancelled: e.cancelled || master.is_some_and(|m| m.cancelled),
            sequence: e.sequence,
            modified: e.modified,
        }
    }

    /// A single event, or an override on its own (then keyed by the slot it replaces).
    fn single(&mut self, uid: &str, e: &Vevent<'_>, slot: Option<&Stamp<'_>>) {
        let external_id = match slot.and_then(|s| self.moment(s)) {
            Some(slot) => super::external_key(&format!("{uid}/{}", slot.to_wire())),
            None => super::external_key(uid),
        };
        match self.span(e) {
            Ok((start, end)) if self.window.overlaps(start, end) => {
                let item = self.item(external_id, e, start, end, None);
                self.push(item);
            }
            Ok(_) => {}
            Err(why) => self.parsed.skip(&external_id, why),
        }
    }

    /// A recurring series over the window, with its overrides taking their slots.
    fn series<'a>(&mut self, uid: &str, master: &Vevent<'a>, overrides: &mut Vec<Vevent<'a>>) {
        let (start, end) = match self.span(master) {
            Ok(span) => span,
            Err(why) => return self.parsed.skip(uid, why),
        };
        let Some(start_stamp) = master.start.as_ref() else { return self.parsed.skip(uid, "it has no DTSTART") };
        let length = end.utc().as_second() - start.utc().as_second();
        let slots = match self.slots(master, start_stamp, length) {
            Ok(slots) => slots,
            Err(why) => return self.parsed.skip(uid, why),
        };
        let mut by_slot: HashMap<i64, usize> = HashMap::new();
        for (i, o) in overrides.iter().enumerate() {
            if let Some(slot) = o.recurrence_id.as_ref().and_then(|s| self.moment(s)) {
                by_slot.insert(slot.utc().as_second(), i);
            }
        }
        let mut taken = vec![false; overrides.len()];
        for slot in slots {
            let external_id = super::external_key(&format!("{uid}/{}", slot.to_wire()));
            match by_slot.get(&slot.utc().as_second()) {
                Some(&i) => {
                    taken[i] = true;
                    match self.span(&overrides[i]) {
                        Ok((s, e)) if self.window.overlaps(s, e) => {
                            let item = self.item(external_id, &overrides[i], s, e, Some(master));
                            self.push(item);
                        }
                        Ok(_) => {}
                        Err(why) => self.parsed.skip(&external_id, why),
                    }
                }
                None => {
                    let Some(end) = shift(slot, length) else { continue };
                    if self.window.overlaps(slot, end) {
                        let mut item = self.item(external_id, master, slot, end, None);
                        item.sequence = master.sequence;
                        self.push(item);
                    }
                }
            }
        }
        // Overrides of slots outside the expanded range are read on their own by the caller,
        // keyed by their slot, with the master's fields where they have none.
        let mut i = 0;
        overrides.retain(|_| {
            i += 1;
            !taken[i - 1]
        });
        for o in overrides.iter_mut() {
            if o.summary.is_none() {
                o.summary = master.summary;
            }
            if o.location.is_none() {
                o.location = master.location;
            }
            if o.description.is_none() {
                o.description = master.description;
            }
        }
    }

    /// The slots of a series that may overlap the window: RRULE and RDATE, less EXDATE,
    /// expanded in the series' zone (all-day series as dates).
    fn slots(&mut self, master: &Vevent<'_>, start: &Stamp<'_>, length: i64) -> Result<Vec<Moment>, String> {
        let zone = if start.has_time { self.rrule_zone(self.zone(start)) } else { rrule::Tz::UTC };
        let local = |s: &Stamp<'_>| -> Option<chrono::DateTime<rrule::Tz>> {
            if s.has_time && s.value.offset.is_some() {
                // UTC or a fixed offset: an instant, shown in the series' zone.
                let at = s.value.to_date_time_with_tz(Tz::UTC)?;
                return zone.timestamp_opt(at.timestamp(), 0).single();
            }
            let naive = if s.has_time { s.value.date_time } else { s.value.date_time.date().and_hms_opt(0, 0, 0)? };
            let tz = if s.has_time && s.tzid != start.tzid { self.rrule_zone(self.zone(s)) } else { zone };
            zone.timestamp_opt(local_to_utc(&tz, naive)?, 0).single()
        };
        let first = local(start).ok_or("its DTSTART does not exist in its time zone")?;
        let mut set = match &master.rrule {
            Some(rule) => until_in_utc(rule, zone, !start.has_time)
                .parse::<rrule::RRule<rrule::Unvalidated>>()
                .and_then(|r| r.build(first))
                .map_err(|e| format!("its RRULE cannot be read: {e}"))?,
            None => rrule::RRuleSet::new(first),
        };
        // rrule's own guard: a rule that never matches gives up instead of counting to 9999.
        set = set.limit();
        for rdate in master.rdates.iter().filter_map(local) {
            set = set.rdate(rdate);
        }
        for exdate in master.exdates.iter().filter_map(local) {
            set = set.exdate(exdate);
        }
        let from = self.window.from.as_second() - length.max(0);
        let to = self.window.to.as_second();
        let mut slots = Vec::new();
        for (steps, at) in set.into_iter().enumerate() {
            if steps >= STEPS_MAX {
                return Err(format!("its rule gives more than {STEPS_MAX} occurrences before the window's end"));
            }
            self.steps += 1;
            if self.steps > CALENDAR_STEPS_MAX {
                self.overflow.get_or_insert_with(|| "the calendar's rules give too many occurrences to expand".into());
                return Ok(vec![]);
            }
            let second = at.timestamp();
            if second >= to {
                break;
            }
            if second >= from {
                slots.push(if start.has_time {
                    Moment::At(Timestamp::from_second(second).map_err(|e| e.to_string())?)
                } else {
                    use chrono::Datelike;
                    let d = at.date_naive();
                    Moment::Day(
                        jiff::civil::Date::new(d.year() as i16, d.month() as i8, d.day() as i8)
                            .map_err(|e| e.to_string())?,
                    )
                });
            }
        }
        Ok(slots)
    }

    /// rrule's zone for calcard's: a named zone as is; a fixed offset of whole hours as
    /// `Etc/GMT±h`; floating time in the source's zone.
    fn rrule_zone(&self, tz: Tz) -> rrule::Tz {
        match tz {
            Tz::Tz(tz) => rrule::Tz::Tz(tz),
            Tz::Fixed(offset) if offset.local_minus_utc() % 3600 == 0 => {
                // POSIX signs: Etc/GMT-3 is three hours east of Greenwich.
                let hours = -offset.local_minus_utc() / 3600;
                let name = if hours == 0 { "UTC".to_owned() } else { format!("Etc/GMT{hours:+}") };
                rrule::Tz::Tz(chrono_tz::Tz::from_str(&name).unwrap_or(chrono_tz::UTC))
            }
            Tz::Fixed(_) => rrule::Tz::UTC,
            Tz::Floating => rrule::Tz::Tz(self.floating),
        }
    }
}

/// A local time in `tz` as Unix seconds, as RFC 5545 reads times a clock change touches:
/// a time that happens twice is the first, and a time the clock skips is read with the
/// offset before the change (so 02:30 on a spring-forward night is 03:30).
fn local_to_utc<T: TimeZone>(tz: &T, local: chrono::NaiveDateTime) -> Option<i64> {
    use chrono::Offset;
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => Some(at.timestamp()),
        chrono::LocalResult::None => {
            let before = tz.offset_from_utc_datetime(&(local - chrono::TimeDelta::hours(24))).fix();
            Some(local.and_utc().timestamp() - i64::from(before.local_minus_utc()))
        }
    }
}

/// `m` moved by `seconds` (whole days for a day), or `None` past the calendar's range.
fn shift(m: Moment, seconds: i64) -> Option<Moment> {
    match m {
        Moment::At(t) => t.checked_add(jiff::SignedDuration::from_secs(seconds)).ok().map(Moment::At),
        Moment::Day(d) => {
            let days = jiff::Span::new().try_days(seconds.div_euclid(86_400)).ok()?;
            d.checked_add(days).ok().map(Moment::Day)
        }
    }
}

/// The rule with its UNTIL in UTC, as rrule takes it beside a zoned start: a date (all-day
/// series, and some exporters' timed ones) or a floating time is read in the series' zone.
fn until_in_utc(rule: &str, zone: rrule::Tz, all_day: bool) -> String {
    rule.split(';')
        .map(|part| {
            let Some(value) = part.strip_prefix("UNTIL=") else { return part.to_owned() };
            if value.ends_with('Z') {
                return part.to_owned();
            }
            let parsed = match value.len() {
                8 => chrono::NaiveDate::parse_from_str(value, "%Y%m%d").ok().and_then(|d| {
                    // A date: the whole of that day.
                    if all_day { d.and_hms_opt(0, 0, 0) } else { d.and_hms_opt(23, 59, 59) }
                }),
                _ => chrono::NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S").ok(),
            };
            let utc = parsed
                .and_then(|local| zone.from_local_datetime(&local).latest())
                .map(|d| d.with_timezone(&chrono::Utc));
            match utc {
                Some(utc) => format!("UNTIL={}", utc.format("%Y%m%dT%H%M%SZ")),
                None => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::SkippedItem;

    fn window(from: &str, to: &str) -> Window {
        Window { from: from.parse().unwrap(), to: to.parse().unwrap() }
    }

    fn ids(parsed: &Parsed) -> Vec<(&str, String, String)> {
        parsed.items.iter().map(|i| (i.external_id.as_str(), i.start.to_wire(), i.end.to_wire())).collect()
    }

    const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:w1\r\nSUMMARY:Standup\r\n\
DTSTART;TZID=Europe/Berlin:20270301T100000\r\nDTEND;TZID=Europe/Berlin:20270301T103000\r\n\
RRULE:FREQ=WEEKLY;COUNT=6\r\nEXDATE;TZID=Europe/Berlin:20270315T100000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:w1\r\nRECURRENCE-ID;TZID=Europe/Berlin:20270322T100000\r\nSUMMARY:Standup (moved)\r\n\
DTSTART;TZID=Europe/Berlin:20270323T150000\r\nDTEND;TZID=Europe/Berlin:20270323T153000\r\nSEQUENCE:2\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:d1\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:20270308\r\nDTEND;VALUE=DATE:20270310\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nSUMMARY:no uid\r\nDTSTART:20270308T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn a_series_keeps_its_wall_time_across_dst_less_exdates_and_with_its_overrides() {
        let parsed = parse(WEEKLY, "UTC", window("2027-03-01T00:00:00Z", "2027-05-01T00:00:00Z")).unwrap();
        assert_eq!(
            ids(&parsed),
            vec![
                ("d1", "2027-03-08".into(), "2027-03-10".into()),
                ("w1/2027-03-01T09:00:00Z", "2027-03-01T09:00:00Z".into(), "2027-03-01T09:30:00Z".into()),
                ("w1/2027-03-08T09:00:00Z", "2027-03-08T09:00:00Z".into(), "2027-03-08T09:30:00Z".into()),
                ("w1/2027-03-22T09:00:00Z", "2027-03-23T14:00:00Z".into(), "2027-03-23T14:30:00Z".into()),
                // Berlin moves to summer time on 28 March: 10:00 is 08:00 UTC from then on.
                ("w1/2027-03-29T08:00:00Z", "2027-03-29T08:00:00Z".into(), "2027-03-29T08:30:00Z".into()),
                ("w1/2027-04-05T08:00:00Z", "2027-04-05T08:00:00Z".into(), "2027-04-05T08:30:00Z".into()),
            ]
        );
        let moved = &parsed.items[3];
        assert_eq!((moved.title.as_str(), moved.sequence), ("Standup (moved)", 2));
        assert_eq!(parsed.items[1].time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(
            parsed.skipped,
            vec![SkippedItem { external_id: "event #4".into(), reason: "it has no UID".into() }]
        );
    }

    #[test]
    fn the_window_cuts_a_series_and_an_override_moved_out_of_it_takes_its_slot_along() {
        let parsed = parse(WEEKLY, "UTC", window("2027-03-20T00:00:00Z", "2027-03-23T00:00:00Z")).unwrap();
        assert!(ids(&parsed).is_empty(), "{:?}", ids(&parsed));
        let parsed = parse(WEEKLY, "UTC", window("2027-03-23T00:00:00Z", "2027-03-24T00:00:00Z")).unwrap();
        assert_eq!(
            ids(&parsed),
            vec![("w1/2027-03-22T09:00:00Z", "2027-03-23T14:00:00Z".into(), "2027-03-23T14:30:00Z".into())]
        );
    }

    #[test]
    fn a_rule_firing_every_second_for_years_is_refused_not_expanded() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:s\r\nDTSTART:20200101T000000Z\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let parsed = parse(text, "UTC", window("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")).unwrap();
        assert!(parsed.items.is_empty());
        assert!(parsed.skipped[0].reason.contains("more than 100000"), "{:?}", parsed.skipped);
    }

    #[test]
    fn an_all_day_series_ending_on_a_date_is_expanded() {
        // Google and Apple write UNTIL as a date in all-day series.
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:d\r\nSUMMARY:Market\r\nDTSTART;VALUE=DATE:20270106\r\n\
DTEND;VALUE=DATE:20270107\r\nRRULE:FREQ=WEEKLY;UNTIL=20270120\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:t\r\n\
DTSTART;TZID=Europe/Berlin:20270106T180000\r\nDTEND;TZID=Europe/Berlin:20270106T190000\r\n\
RRULE:FREQ=WEEKLY;UNTIL=20270120T180000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let parsed = parse(text, "UTC", window("2027-01-01T00:00:00Z", "2027-03-01T00:00:00Z")).unwrap();
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        let days: Vec<String> =
            parsed.items.iter().filter(|i| i.external_id.starts_with("d/")).map(|i| i.start.to_wire()).collect();
        assert_eq!(days, vec!["2027-01-06", "2027-01-13", "2027-01-20"]);
        let timed = parsed.items.iter().filter(|i| i.external_id.starts_with("t/")).count();
        assert_eq!(timed, 3, "a floating UNTIL is read in the series' zone, and includes its last day");
    }

    #[test]
    fn hostile_rules_and_durations_end_quickly_and_panic_nowhere() {
        let w = window("2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z");
        // February 30th never comes: rrule's own guard stops the search.
        let never = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:n\r\nDTSTART:20270101T000000Z\r\n\
RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:long\r\nDTSTART:20270101T000000Z\r\n\
DURATION:P9999999W\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let started = std::time::Instant::now();
        let parsed = parse(never, "UTC", w).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(parsed.items.is_empty(), "{:?}", parsed.items);
        assert_eq!(parsed.skipped[0].reason, "its DURATION is out of range");
        // Every three minutes for half a year: more events than one source may bring.
        let flood = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:f\r\nDTSTART:20270101T000000Z\r\nRRULE:FREQ=MINUTELY;INTERVAL=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let err = parse(flood, "UTC", w).unwrap_err();
        assert!(err.0.contains("more than 20000 events"), "{err}");
    }

    #[test]
    fn times_a_clock_change_touches_are_read_as_rfc_5545_says() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:gap\r\nDTSTART;TZID=Europe/Berlin:20270328T023000\r\n\
DTEND;TZID=Europe/Berlin:20270328T043000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:twice\r\n\
DTSTART;TZID=Europe/Berlin:20271031T023000\r\nDTEND;TZID=Europe/Berlin:20271031T040000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:weekly\r\nDTSTART;TZID=Europe/Berlin:20270321T023000\r\nDURATION:PT1H\r\n\
RRULE:FREQ=WEEKLY;COUNT=2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let parsed = parse(text, "UTC", window("2027-03-01T00:00:00Z", "2027-12-01T00:00:00Z")).unwrap();
        assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
        // 02:30 does not exist on 28 March: it is 03:30 summer time, 01:30 UTC.
        assert_eq!(ids(&parsed)[0], ("gap", "2027-03-28T01:30:00Z".into(), "2027-03-28T02:30:00Z".into()));
        // 02:30 happens twice on 31 October: the first, in summer time.
        assert_eq!(ids(&parsed)[1], ("twice", "2027-10-31T00:30:00Z".into(), "2027-10-31T03:00:00Z".into()));
        assert_eq!(parsed.items.len(), 4, "{:?}", ids(&parsed));
    }

    #[test]
    fn not_a_calendar_is_an_error() {
        assert!(parse("<html>", "UTC", window("2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")).is_err());
    }
}
