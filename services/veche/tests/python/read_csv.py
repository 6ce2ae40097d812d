"""Reads a CSV download as a spreadsheet program would (Python's csv module, the
byte-order mark taken off when there is one) and prints its rows as JSON objects."""

import csv
import json
import sys

with open(sys.argv[1], newline="", encoding="utf-8-sig") as f:
    print(json.dumps(list(csv.DictReader(f)), ensure_ascii=False))
