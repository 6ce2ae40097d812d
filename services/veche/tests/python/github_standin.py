"""A local stand-in for GitHub's OAuth app web flow and user API, for testing a relying party.

It speaks GitHub's documented endpoints for one OAuth app:

  GET  /login/oauth/authorize     no form: redirects straight back with code and state
  POST /login/oauth/access_token  code (+ PKCE verifier) for a `gho_` token; errors come
                                  back as HTTP 200 with an `error` field, and the body is
                                  form-encoded unless the Accept header asks for JSON
  GET  /api/user                  the REST API, served under /api here; needs the token
  GET  /api/user/emails           and a User-Agent header, as GitHub's does

Who signs in is set at run time by `POST /test/user` with a JSON body such as the default:

  {"id": 4242, "login": "octo", "name": "Octo Cat", "email": null,
   "emails": [{"email": "octo@example.org", "primary": true, "verified": true,
               "visibility": "private"}]}

A code remembers the person of its /authorize, so a later change affects only new sign-ins.
Once listening it prints one line, `ready http://127.0.0.1:PORT`, and nothing else.

Usage: github_standin.py PORT CLIENT_ID CLIENT_SECRET
"""

import base64
import json
import secrets
import sys
import threading
import time
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from standin import QuietHandler, pkce_ok, same, serve

PORT, CLIENT_ID, CLIENT_SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
CODE_LIFETIME = 600  # GitHub's codes expire after 10 minutes
SCOPE = "read:user,user:email"
ERRORS_DOC = ("https://docs.github.com/apps/managing-oauth-apps/"
              "troubleshooting-oauth-app-access-token-request-errors/#")
ERRORS = {
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "bad_verification_code": "The code passed is incorrect or expired.",
    "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for "
                             "this application.",
    "unsupported_grant_type": "The grant type is not supported.",
}
NO_USER_AGENT = ("Request forbidden by administrative rules. "
                 "Please make sure your request has a User-Agent header")

# Shared by the handler threads; every access holds LOCK.
LOCK = threading.Lock()
state = {"person": {"id": 4242, "login": "octo", "name": "Octo Cat", "email": None,
                    "emails": [{"email": "octo@example.org", "primary": True,
                                "verified": True, "visibility": "private"}]}}
codes = {}  # code -> {"redirect_uri", "code_challenge", "person", "created"}
tokens = {}  # access token -> person




def valid_person(p):
    def opt_str(v):
        return v is None or isinstance(v, str)
    return (isinstance(p, dict) and type(p.get("id")) is int and isinstance(p.get("login"), str)
            and opt_str(p.get("name")) and opt_str(p.get("email"))
            and isinstance(p.get("emails"), list)
            and all(isinstance(e, dict) and isinstance(e.get("email"), str)
                    and type(e.get("primary")) is bool and type(e.get("verified")) is bool
                    and opt_str(e.get("visibility")) for e in p["emails"]))


def client_authenticated(header, form):
    # RFC 6749 2.3.1: in Basic, id and secret are form-urlencoded before being joined and
    # encoded. GitHub also takes them in the body; a Basic header, if sent, is what counts.
    if header and header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except ValueError:
            return False
        client_id, sep, secret = decoded.partition(":")
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        if not sep:
            return False
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    return same(client_id, CLIENT_ID) and same(secret, CLIENT_SECRET)


class Handler(QuietHandler):

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/login/oauth/authorize":
            self.authorize({k: v[0] for k, v in parse_qs(url.query).items()})
        elif url.path in ("/api/user", "/api/user/emails"):
            self.api(url.path)
        else:
            self.reply(404, "not found")

    def authorize(self, query):
        if query.get("client_id") != CLIENT_ID or "redirect_uri" not in query:
            return self.reply(400, "needs our client_id and a redirect_uri")
        code = secrets.token_hex(10)  # GitHub's codes are 20 hex characters
        with LOCK:
            codes[code] = {"redirect_uri": query["redirect_uri"],
                           "code_challenge": query.get("code_challenge"),
                           "person": json.loads(json.dumps(state["person"])),
                           "created": time.monotonic()}
        params = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        self.redirect_back(query["redirect_uri"], params)

    def api(self, path):
        # GitHub refuses a request without a User-Agent before it looks at credentials.
        if not self.headers.get("User-Agent", "").strip():
            return self.reply(403, {"message": NO_USER_AGENT})
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        with LOCK:
            person = tokens.get(token.strip()) if scheme.lower() in ("bearer", "token") else None
        if person is None:
            return self.reply(401, {"message": "Bad credentials"})
        if path == "/api/user":
            self.reply(200, {k: person[k] for k in ("id", "login", "name", "email")})
        else:
            self.reply(200, person["emails"])

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/login/oauth/access_token":
            self.access_token({k: v[0] for k, v in
                               parse_qs(body.decode("utf-8", "replace")).items()})
        elif path == "/test/user":
            try:
                person = json.loads(body)
            except ValueError:
                person = None
            if not valid_person(person):
                return self.reply(400, "malformed person")
            with LOCK:
                state["person"] = person
            self.reply(204)
        else:
            self.reply(404, "not found")

    def token_reply(self, fields):
        # Like GitHub: form-encoded unless asked for JSON, and HTTP 200 even for errors.
        if "application/json" in self.headers.get("Accept", ""):
            return self.reply(200, fields)
        self.reply(200, urlencode(fields), "application/x-www-form-urlencoded; charset=utf-8")

    def access_token(self, form):
        def error(name):
            self.token_reply({"error": name, "error_description": ERRORS[name],
                              "error_uri": ERRORS_DOC + name.replace("_", "-")})
        if not client_authenticated(self.headers.get("Authorization"), form):
            return error("incorrect_client_credentials")
        if form.get("grant_type", "authorization_code") != "authorization_code":
            return error("unsupported_grant_type")
        with LOCK:
            # Popped before any other check: a code is spent by its first use.
            grant = codes.pop(form.get("code", ""), None)
        if grant is None or time.monotonic() - grant["created"] > CODE_LIFETIME:
            return error("bad_verification_code")
        if "redirect_uri" in form and form["redirect_uri"] != grant["redirect_uri"]:
            return error("redirect_uri_mismatch")
        if grant["code_challenge"] is not None:
            if "code_verifier" not in form or not pkce_ok(form["code_verifier"], grant["code_challenge"]):
                return error("bad_verification_code")
        token = "gho_" + secrets.token_hex(18)  # 36 characters after the prefix, as GitHub's
        with LOCK:
            tokens[token] = grant["person"]
        self.token_reply({"access_token": token, "token_type": "bearer", "scope": SCOPE})


if __name__ == "__main__":
    serve(PORT, Handler)
