"""Expands an iCalendar file over a window with the independent `icalendar` and
`recurring_ical_events` packages, as a calendar program would, and prints each
occurrence as JSON: its start in UTC, its summary and its UID.

usage: expand_series.py FILE FROM TO   (dates, YYYY-MM-DD)
"""
import json
import sys
from datetime import date, timezone

import icalendar
import recurring_ical_events

path, start, end = sys.argv[1], date.fromisoformat(sys.argv[2]), date.fromisoformat(sys.argv[3])
with open(path, "rb") as f:
    cal = icalendar.Calendar.from_ical(f.read())
out = []
for e in recurring_ical_events.of(cal).between(start, end):
    out.append({
        "start": e["DTSTART"].dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "summary": str(e["SUMMARY"]),
        "uid": str(e["UID"]),
    })
out.sort(key=lambda o: o["start"])
print(json.dumps(out, ensure_ascii=False))
