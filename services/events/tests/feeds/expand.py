#!/usr/bin/env python3
"""Reference expander for the calendar fixtures beside it.

    expand.py FILE FROM TO

FROM and TO are RFC 3339 instants (2026-12-06T00:00:00Z). FILE is read as bytes and
decoded as UTF-8 (a byte-order mark is dropped), or as Windows-1252 when it is not
UTF-8. It is parsed with icalendar and expanded with recurring_ical_events, whose
between(FROM, TO) gives every occurrence that overlaps [FROM, TO). Printed to stdout:
a JSON array, sorted by (uid, start), of

    {"uid": str, "recurrence_id": str|null, "start": str, "end": str,
     "all_day": bool, "summary": str, "status": str|null}

All-day occurrences have dates ("2027-02-23", end exclusive as DTEND); timed ones
have UTC instants with seconds ("2027-01-05T07:00:00Z"); floating times are taken as
UTC, and all-day ones span UTC days when matched against the window. But in a calendar
with X-WR-TIMEZONE, recurring_ical_events (through x_wr_timezone) first moves floating
and UTC times into that zone, as Google and Apple mean them: a floating time is then
local time there, and a series whose DTSTART is in UTC keeps its local wall-clock time
across daylight-saving changes. A TZID that is a Windows name (Outlook) resolves to the
file's VTIMEZONE of that name, or without one to icalendar's Windows-to-Olson table.
recurrence_id is the original slot of an occurrence of a recurring series (an
override's RECURRENCE-ID), null for a non-recurring event. An event without DTEND
or DURATION ends at its start (timed) or a day later (all-day), per RFC 5545.
Cancelled events are included with their status.

A file that cannot be decoded, parsed or expanded makes it exit 1 with a message on
stderr and nothing on stdout: icalendar's parse errors, a VEVENT without UID or DTSTART,
a property icalendar could not read (an invalid RRULE, a cut-off date), and a TZID that
is neither a known zone nor a VTIMEZONE in the file (icalendar would make it floating).
Overlap is start < TO and FROM < end; an occurrence without duration counts when
FROM <= start < TO.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import icalendar
import recurring_ical_events

UTC = dt.timezone.utc


def fail(message: str) -> None:
    print(f"expand.py: {message}", file=sys.stderr)
    sys.exit(1)


def instant(arg: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(arg)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None or "T" not in arg.upper():
        fail(f"{arg!r} is not an RFC 3339 instant such as 2026-12-06T00:00:00Z")
    return value.astimezone(UTC)


def decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as error:
        fail(f"{path}: neither UTF-8 nor Windows-1252 ({error})")


def utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; a floating (naive) time is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def text(value: dt.date) -> str:
    if isinstance(value, dt.datetime):
        return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return lines[0][:200]


def times(event: icalendar.Event, name: str) -> list:
    """The (value, params) of every date or time in the event's property `name`."""
    values = event.get(name, [])
    out = []
    for value in values if isinstance(values, list) else [values]:
        for one in getattr(value, "dts", [value]):
            out.append((one.dt, value.params))
    return out


def check(calendar: icalendar.Calendar, path: str) -> None:
    """Refuse what icalendar let through broken, or would make recurring_ical_events
    fail obscurely or guess silently, naming the event."""
    for event in calendar.walk("VEVENT"):
        uid = str(event.get("UID", "(no UID)"))
        # icalendar keeps a component's unparsable lines and values in .errors
        for prop, error in getattr(event, "errors", []):
            what = f"bad {prop}" if prop else "bad content line"
            fail(f"{path}: VEVENT {uid}: {what}: {first_line(error)}")
        if "UID" not in event:
            fail(f"{path}: a VEVENT has no UID")
        if "DTSTART" not in event:
            fail(f"{path}: VEVENT {uid} has no DTSTART")
        # A TZID that is neither a known zone (Olson or Windows name) nor defined by a
        # VTIMEZONE in the file comes back from icalendar as a floating time.
        for name in ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE"):
            for value, params in times(event, name):
                if isinstance(value, tuple):  # an RDATE period
                    value = value[0]
                tzid = params.get("TZID")
                if tzid and isinstance(value, dt.datetime) and value.tzinfo is None:
                    fail(f"{path}: VEVENT {uid}: {name} has TZID={tzid}, "
                         "which is neither a known zone nor a VTIMEZONE in the file")


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        fail("usage: expand.py FILE FROM TO  (FROM, TO: RFC 3339, e.g. 2026-12-06T00:00:00Z)")
    path, start, stop = argv[1], instant(argv[2]), instant(argv[3])
    if stop < start:
        fail("TO is before FROM")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        fail(f"{path}: {error.strerror}")
    try:
        calendar = icalendar.Calendar.from_ical(decode(data, path))
    except Exception as error:  # icalendar raises ValueError and friends
        fail(f"{path}: not a calendar icalendar can parse: {first_line(error)}")
    check(calendar, path)

    # A UID is a recurring series when any of its components recurs or overrides an
    # occurrence. recurring_ical_events sets RECURRENCE-ID on every occurrence it
    # returns, non-recurring events included, so that alone cannot tell.
    recurring = {
        str(event["UID"])
        for event in calendar.walk("VEVENT")
        if "RRULE" in event or "RDATE" in event or "RECURRENCE-ID" in event
    }
    try:
        occurrences = recurring_ical_events.of(calendar).between(start, stop)
    except Exception as error:
        fail(f"{path}: recurring_ical_events cannot expand it: "
             f"{type(error).__name__}: {first_line(error)}")

    out = []
    for event in occurrences:
        uid = str(event["UID"])
        begin = event["DTSTART"].dt
        all_day = not isinstance(begin, dt.datetime)
        if "DTEND" in event:
            end = event["DTEND"].dt
        elif "DURATION" in event:
            end = begin + event["DURATION"].dt
        else:
            end = begin + dt.timedelta(days=1) if all_day else begin
        rid = event.get("RECURRENCE-ID") if uid in recurring else None
        status = event.get("STATUS")
        out.append(
            {
                "uid": uid,
                "recurrence_id": None if rid is None else text(rid.dt),
                "start": text(begin),
                "end": text(end),
                "all_day": all_day,
                "summary": str(event.get("SUMMARY", "")),
                "status": None if status is None else str(status),
            }
        )
    out.sort(key=lambda o: (o["uid"], o["start"]))
    sys.stdout.buffer.write(json.dumps(out, indent=2, ensure_ascii=False).encode("utf-8") + b"\n")


if __name__ == "__main__":
    main(sys.argv)
