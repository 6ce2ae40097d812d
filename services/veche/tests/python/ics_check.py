"""Parses an iCalendar file with the independent `icalendar` package and checks each
event's start and end, with their zones, against the expectations given as JSON.

usage: ics_check.py FILE EXPECTED_JSON
EXPECTED_JSON: [{"uid": ..., "start": RFC 3339 UTC, "end": ..., "tzid": ...}, ...]
Exits non-zero with a message on any difference.
"""
import json
import sys
from datetime import datetime, timezone

import icalendar


def main() -> int:
    path, expected = sys.argv[1], json.loads(sys.argv[2])
    with open(path, "rb") as f:
        raw = f.read()
    for line in raw.split(b"\r\n"):
        if len(line) > 75:
            print(f"line longer than 75 octets: {line[:40]!r}...", file=sys.stderr)
            return 1
    cal = icalendar.Calendar.from_ical(raw)
    # The VTIMEZONE components themselves, turned into tzinfo objects: a parser may
    # resolve a TZID from its own database, so check our definitions separately.
    zones = {str(tz["TZID"]): tz.to_tz(lookup_tzid=False) for tz in cal.walk("VTIMEZONE")}
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    if len(events) != len(expected):
        print(f"expected {len(expected)} events, found {len(events)}", file=sys.stderr)
        return 1
    for want in expected:
        event = events.get(want["uid"])
        if event is None:
            print(f"missing event {want['uid']}", file=sys.stderr)
            return 1
        for key in ("start", "end"):
            prop = event["DTSTART" if key == "start" else "DTEND"]
            tzid = prop.params.get("TZID")
            if tzid != want["tzid"] or tzid not in zones:
                print(f"{key}: TZID {tzid!r}, expected {want['tzid']!r} with a VTIMEZONE", file=sys.stderr)
                return 1
            value = prop.dt
            if value.tzinfo is None:
                print(f"{key}: no time zone attached", file=sys.stderr)
                return 1
            instant = value.astimezone(timezone.utc)
            expected_instant = datetime.fromisoformat(want[key].replace("Z", "+00:00"))
            if instant != expected_instant:
                print(f"{key}: {instant.isoformat()} != {expected_instant.isoformat()}", file=sys.stderr)
                return 1
            ours = zones[tzid]
            naive = value.replace(tzinfo=None)
            local = ours.localize(naive) if hasattr(ours, "localize") else naive.replace(tzinfo=ours)
            if local.astimezone(timezone.utc) != expected_instant:
                print(f"{key}: our VTIMEZONE {tzid} puts it at {local.astimezone(timezone.utc).isoformat()}", file=sys.stderr)
                return 1
        if str(event["SUMMARY"]) != want["summary"]:
            print(f"summary {event['SUMMARY']!r} != {want['summary']!r}", file=sys.stderr)
            return 1
    print(f"ok: {len(events)} event(s), zones {sorted(zones)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
