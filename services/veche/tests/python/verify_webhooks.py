"""Checks what the webhook receiver kept, as an integrator would, with Python's own
hmac: for each request to PATH, whether its Veche-Signature (t=<time>,v1=<hex>) is the
HMAC-SHA256 of "<t>.<body>" under SECRET, how old its time was when it arrived, and the
body read as JSON.

usage: verify_webhooks.py DIR PATH SECRET
"""

import hashlib
import hmac
import json
import os
import sys

folder, path, secret = sys.argv[1], sys.argv[2], sys.argv[3].encode()
out = []
for name in sorted(n for n in os.listdir(folder) if n.endswith(".json")):
    with open(os.path.join(folder, name)) as f:
        r = json.load(f)
    if r["path"] != path:
        continue
    parts = dict(p.split("=", 1) for p in (r["signature"] or "").split(","))
    expected = hmac.new(secret, f'{parts.get("t")}.{r["body"]}'.encode(), hashlib.sha256).hexdigest()
    arrived_ns = int(name.split(".")[0])
    out.append({
        "valid": hmac.compare_digest(expected, parts.get("v1", "")),
        "age_seconds": arrived_ns // 1_000_000_000 - int(parts.get("t", "0")),
        "delivery": r["delivery"],
        "event": r["event"],
        "content_type": r["content_type"],
        "body": json.loads(r["body"]),
    })
print(json.dumps(out))
