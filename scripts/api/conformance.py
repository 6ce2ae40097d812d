"""The HTTP API against its own OpenAPI document, as an outside client sees it.

Against a running `veche up` (VECHE_URL) with fresh data:
1. the merged `/openapi.json` passes an OpenAPI 3.1 validator, its operation ids are
   unique and every `$ref` resolves;
2. real fixtures are made through the API (an organizer, an attendee, an administrator,
   an organization, a published event with a registration, an invitation, a calendar feed);
3. schemathesis runs as three identities (anonymous, the organizer, the administrator),
   with path parameters bound to the fixtures, and fails on any 5xx and on any status
   code, content type or response schema the document does not declare.

Written in Python because schemathesis is; it is a test client, not part of the product.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

BASE = os.environ["VECHE_URL"].rstrip("/")
PASSWORD = "correct horse battery staple"
# Seconds each identity's run may take (the whole run stays within CI's budget).
BUDGET = int(os.environ.get("VECHE_CONFORMANCE_SECONDS", "150"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"

# Operations left out of a run, and why (documented false positives, or operations that
# would end the identity's own session mid-run and so test nothing after them).
SKIPPED = {
    "deleteMe": "deletes the identity the run uses; covered by services/veche/tests",
}


def call(method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if body is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read()
            return r.status, (json.loads(text) if text and r.headers.get_content_subtype() == "json" else text)
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ok(status, answer, what):
    if status // 100 != 2:
        sys.exit(f"conformance: fixture {what} failed: {status} {answer!r}")
    return answer


def check_document():
    from openapi_spec_validator import validate

    with urllib.request.urlopen(BASE + "/openapi.json") as r:
        doc = json.load(r)
    try:
        validate(doc)
    except Exception as e:  # the validator's message quotes the whole document: its head says enough
        sys.exit(f"conformance: /openapi.json is not valid OpenAPI: {str(e)[:400]}")
    ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items() if m in ("get", "put", "post", "patch", "delete")]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        sys.exit(f"conformance: operation ids are not unique: {dupes}")
    text = json.dumps(doc)
    for section, name in set(re.findall(r'"\$ref": "#/components/(\w+)/(\w+)"', text)):
        if name not in doc["components"].get(section, {}):
            sys.exit(f"conformance: $ref #/components/{section}/{name} does not resolve")
    internal = [p for p in doc["paths"] if p.startswith("/internal/")]
    if internal:
        sys.exit(f"conformance: internal paths in the public document: {internal}")
    print(f"conformance: the document is valid OpenAPI {doc['openapi']}: {len(ids)} operations, unique ids, every $ref resolves")
    return doc


def login(email):
    return ok(*call("POST", "/api/v1/auth/login", body={"email": email, "password": PASSWORD}), "login")["access_token"]


def fixtures(data_dir, veche_bin):
    run = str(int(time.time()))
    organizer, attendee, admin = (f"{who}.{run}@example.org" for who in ("organizer", "attendee", "admin"))
    ok(*call("POST", "/api/v1/auth/register", body={"email": organizer, "password": PASSWORD, "display_name": "Organizer"}), "register")
    me_attendee = ok(*call("POST", "/api/v1/auth/register", body={"email": attendee, "password": PASSWORD, "display_name": "Attendee"}), "register")
    subprocess.run([veche_bin, "admin", "create", "--email", admin, "--data-dir", data_dir], input=PASSWORD.encode(),
                   check=True, stdout=subprocess.DEVNULL)
    tokens = {"organizer": login(organizer), "attendee": login(attendee), "admin": login(admin)}
    org = ok(*call("POST", "/api/v1/organizations", tokens["organizer"], {"name": f"Conformance Club {run}"}), "organization")
    invitation = ok(*call("POST", f"/api/v1/organizations/{org['id']}/invitations", tokens["organizer"], {"email": f"guest.{run}@example.org"}), "invitation")
    event = ok(*call("POST", "/api/v1/events", tokens["organizer"], {
        "title": f"Conformance meetup {run}", "start": "2031-06-01T16:00:00Z", "end": "2031-06-01T18:00:00Z",
        "time_zone": "Europe/Moscow", "format": "online", "online_url": "https://meet.example.org/c",
        "organization_id": org["id"], "capacity": 50}), "event")
    ok(*call("POST", f"/api/v1/events/{event['id']}/publish", tokens["organizer"]), "publish")
    ok(*call("POST", f"/api/v1/events/{event['id']}/registrations", tokens["attendee"]), "registration")
    feed = ok(*call("POST", "/api/v1/users/me/calendar", tokens["attendee"]), "calendar")
    # A spare session of the organizer for `DELETE /users/me/sessions/{id}`: ending the one
    # whose token the run uses would end its access token too, and the run with it.
    login(organizer)
    sessions = ok(*call("GET", "/api/v1/users/me/sessions", tokens["organizer"]), "sessions")
    spare = [s for s in sessions if not s["current"]]
    return tokens, {
        "organization": org["id"], "event": event["id"], "attendee": me_attendee["id"],
        "invitation": invitation["id"], "feed": feed["url"].rsplit("/", 1)[-1].removesuffix(".ics"), "session": spare[0]["id"],
    }


def config(ids):
    """schemathesis.toml: path parameters bound to the fixtures, per group of paths."""
    groups = [
        (r"^/api/v1/(events|analytics/events)/", {"id": ids["event"], "user_id": ids["attendee"]}),
        (r"^/api/v1/(organizations|analytics/organizations)/", {"id": ids["organization"], "user_id": ids["attendee"], "invitation_id": ids["invitation"]}),
        (r"^/api/v1/users/me/sessions/", {"id": ids["session"]}),
        (r"^/api/v1/users/\{id\}", {"id": ids["attendee"]}),
        (r"^/api/v1/calendar/", {"token": ids["feed"]}),
    ]
    lines = []
    for regex, params in groups:
        lines.append("[[operations]]")
        lines.append(f"include-path-regex = {json.dumps(regex)}")
        lines.append("parameters = { " + ", ".join(f"{json.dumps('path.' + k)} = {json.dumps(v)}" for k, v in params.items()) + " }")
    for op in SKIPPED:
        lines += ["[[operations]]", f"include-operation-id = {json.dumps(op)}", "enabled = false"]
    return "\n".join(lines) + "\n"


def schemathesis(identity, token, cfg, report_dir):
    cmd = [os.path.join(os.path.dirname(sys.executable), "st"), "--config-file", cfg, "run", BASE + "/openapi.json",
           "--checks", CHECKS, "--mode", "positive", "--phases", "examples,coverage,fuzzing",
           "--max-time", str(BUDGET), "--seed", os.environ.get("VECHE_CONFORMANCE_SEED", "20261204"),
           "--generation-deterministic", "--warnings", "off", "--continue-on-failure",
           "--report", "junit", "--report-junit-path", os.path.join(report_dir, f"{identity}.xml")]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    print(f"\nconformance: schemathesis as {identity} (at most {BUDGET} s)", flush=True)
    # schemathesis keeps its example database in the working directory: the reports
    # directory, never the source tree.
    return subprocess.run(cmd, cwd=report_dir).returncode


def main():
    data_dir, veche_bin, report_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    check_document()
    tokens, ids = fixtures(data_dir, veche_bin)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config(ids))
    failed = [who for who, token in (("anonymous", None), ("organizer", tokens["organizer"]), ("admin", tokens["admin"]))
              if schemathesis(who, token, f.name, report_dir) != 0]
    if failed:
        sys.exit(f"conformance: schemathesis found failures as {', '.join(failed)} (reports in {report_dir})")
    print("conformance: no 5xx, and every answer matched the document, as all three identities")


if __name__ == "__main__":
    main()
