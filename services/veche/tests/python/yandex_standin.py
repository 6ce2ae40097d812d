"""A local stand-in for Yandex ID's OAuth web flow and user info API, for testing a
relying party.

It speaks the endpoints Yandex ID documents for one application (oauth.yandex.ru and
login.yandex.ru, both served here from one origin):

  GET  /authorize        no form: redirects straight back with a numeric code and state
  POST /token            code (+ PKCE verifier) for a `y0_` token; the client authenticates
                         by HTTP Basic or by client_id/client_secret in the body; errors are
                         RFC 6749 JSON with HTTP 400 (401 for a wrong client)
  GET  /info?format=json the person; needs `Authorization: OAuth <token>` (Bearer is
                         taken too)

Who signs in is set at run time by `POST /test/user` with a JSON body such as the default
below (the `id` must be a string; `client_id` is always answered as this application's):

  {"id": "1000034426", "login": "ivan", "display_name": "Ivan", "real_name": "Ivan Petrov",
   "first_name": "Ivan", "last_name": "Petrov", "default_email": "ivan@yandex.ru",
   "emails": ["ivan@yandex.ru"], "psuid": "1.AAqKbQ.Dm3v...."}

A code remembers the person of its /authorize, so a later change affects only new sign-ins.
Once listening it prints one line, `ready http://127.0.0.1:PORT`, and nothing else.

Usage: yandex_standin.py PORT CLIENT_ID CLIENT_SECRET
"""

import base64
import json
import secrets
import sys
import threading
import time
from urllib.parse import parse_qs, unquote_plus, urlsplit

from standin import QuietHandler, pkce_ok, same, serve

PORT, CLIENT_ID, CLIENT_SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
CODE_LIFETIME = 600  # Yandex's codes live for 10 minutes
TOKEN_LIFETIME = 31536000  # and its tokens for a year

# Shared by the handler threads; every access holds LOCK.
LOCK = threading.Lock()
state = {"person": {"id": "1000034426", "login": "ivan", "display_name": "Ivan",
                    "real_name": "Ivan Petrov", "first_name": "Ivan", "last_name": "Petrov",
                    "default_email": "ivan@yandex.ru", "emails": ["ivan@yandex.ru"],
                    "psuid": "1.AAqKbQ.Dm3vQ2o5X1cR8T4kP0yWbA.hZs7uN2c9eLqJ1fV6rYt0w"}}
codes = {}  # code -> {"redirect_uri", "code_challenge", "person", "created"}
tokens = {}  # access token -> person



def client_of(header, form):
    # RFC 6749 2.3.1: in Basic, id and secret are form-urlencoded before being joined and
    # encoded. Yandex also takes them in the body; a Basic header, if sent, is what counts.
    if header and header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except ValueError:
            return None, None
        client_id, sep, secret = decoded.partition(":")
        return (unquote_plus(client_id), unquote_plus(secret)) if sep else (None, None)
    return form.get("client_id"), form.get("client_secret")


class Handler(QuietHandler):

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/authorize":
            self.authorize(query)
        elif url.path == "/info":
            self.info(query)
        else:
            self.reply(404, "not found")

    def authorize(self, query):
        def invalid(description):
            self.reply(400, {"error": "invalid_request", "error_description": description})
        if query.get("client_id") != CLIENT_ID:
            return invalid("Client not found")
        if query.get("response_type") != "code":
            return invalid("Unsupported response_type")
        if "redirect_uri" not in query:  # no registered callback to fall back on here
            return invalid("redirect_uri is required")
        if "code_challenge" in query and query.get("code_challenge_method") != "S256":
            return invalid("Only code_challenge_method=S256 is supported")
        code = str(10**15 + secrets.randbelow(9 * 10**15))  # Yandex's codes are numeric
        with LOCK:
            codes[code] = {"redirect_uri": query["redirect_uri"],
                           "code_challenge": query.get("code_challenge"),
                           "person": json.loads(json.dumps(state["person"])),
                           "created": time.monotonic()}
        params = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        self.redirect_back(query["redirect_uri"], params)

    def info(self, query):
        if query.get("format", "json") != "json":  # xml and jwt are not modelled
            return self.reply(400, "unsupported format")
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        with LOCK:
            person = tokens.get(token.strip()) if scheme.lower() in ("oauth", "bearer") else None
        if person is None:
            return self.reply(401, "invalid token")
        self.reply(200, {**person, "client_id": CLIENT_ID})

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/token":
            self.token({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        elif path == "/test/user":
            try:
                person = json.loads(body)
            except ValueError:
                person = None
            if not (isinstance(person, dict) and isinstance(person.get("id"), str)):
                return self.reply(400, "malformed person")
            with LOCK:
                state["person"] = person
            self.reply(204)
        else:
            self.reply(404, "not found")

    def token(self, form):
        def error(name, description, status=400):
            self.reply(status, {"error": name, "error_description": description})
        client_id, secret = client_of(self.headers.get("Authorization"), form)
        if client_id is None or not same(client_id, CLIENT_ID):
            return error("invalid_client", "Client not found", 401)
        if secret is None or not same(secret, CLIENT_SECRET):
            return error("invalid_client", "Wrong client secret", 401)
        if form.get("grant_type") != "authorization_code":
            return error("unsupported_grant_type", "Unsupported grant_type")
        with LOCK:
            # Popped before any other check: a code is spent by its first use.
            grant = codes.pop(form.get("code", ""), None)
        if grant is None:
            return error("invalid_grant", "Invalid code")
        if time.monotonic() - grant["created"] > CODE_LIFETIME:
            return error("invalid_grant", "Code has expired")
        if "redirect_uri" in form and form["redirect_uri"] != grant["redirect_uri"]:
            return error("invalid_grant", "redirect_uri does not match")
        challenge = grant["code_challenge"]
        if challenge is not None and not pkce_ok(form.get("code_verifier", ""), challenge):
            return error("invalid_grant", "Code verifier is not valid")
        token = "y0_" + secrets.token_urlsafe(42)
        with LOCK:
            tokens[token] = grant["person"]
        self.reply(200, {"access_token": token, "expires_in": TOKEN_LIFETIME,
                         "refresh_token": "1:" + secrets.token_urlsafe(48),
                         "token_type": "bearer"})


if __name__ == "__main__":
    serve(PORT, Handler)
