"""A local stand-in for VK ID's OAuth 2.1 web flow and user info API, for testing a
relying party.

It speaks the endpoints id.vk.com documents for one public web client:

  GET  /authorize          no form: redirects straight back with code, state, device_id,
                           type=code_v2 and expires_in; PKCE (S256) is mandatory
  POST /oauth2/auth        code + verifier + the device_id handed out with it, for a
                           `vk2.a.` token; no client secret is needed (one sent must match);
                           errors are JSON with HTTP 400
  POST /oauth2/user_info   client_id and access_token in the form; the person, as
                           {"user": {...}}; a bad token is HTTP 401

Who signs in is set at run time by `POST /test/user` with a JSON `user` object such as
the default below (`user_id` must be a string of digits: the token answer repeats it as a
number):

  {"user_id": "1234567", "first_name": "Ivan", "last_name": "Petrov",
   "avatar": "https://example.org/a.jpg", "email": "ivan@example.org", "sex": 2,
   "verified": false, "birthday": "01.01.2000"}

A code remembers the person of its /authorize, so a later change affects only new sign-ins.
Once listening it prints one line, `ready http://127.0.0.1:PORT`, and nothing else.

Usage: vkid_standin.py PORT CLIENT_ID CLIENT_SECRET
"""

import json
import secrets
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

from standin import QuietHandler, pkce_ok, same, serve

PORT, CLIENT_ID, CLIENT_SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
CODE_LIFETIME = 600  # VK ID's codes live for 10 minutes
TOKEN_LIFETIME = 3600  # and its access tokens for an hour
SCOPE = "vkid.personal_info email"
TOKEN_FIELDS = ("grant_type", "code", "code_verifier", "client_id", "device_id",
                "redirect_uri", "state")  # all required by VK ID's /oauth2/auth

# Shared by the handler threads; every access holds LOCK.
LOCK = threading.Lock()
state = {"person": {"user_id": "1234567", "first_name": "Ivan", "last_name": "Petrov",
                    "avatar": "https://example.org/a.jpg", "email": "ivan@example.org",
                    "sex": 2, "verified": False, "birthday": "01.01.2000"}}
codes = {}  # code -> {"redirect_uri", "code_challenge", "device_id", "person", "created"}
tokens = {}  # access token -> person



def error(name, description):
    return {"error": name, "error_description": description}


class Handler(QuietHandler):

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/authorize":
            self.authorize({k: v[0] for k, v in parse_qs(url.query).items()})
        else:
            self.reply(404, "not found")

    def authorize(self, query):
        if query.get("client_id") != CLIENT_ID:
            return self.reply(400, error("invalid_request", "unknown client_id"))
        if query.get("response_type") != "code" or "redirect_uri" not in query:
            return self.reply(400, error("invalid_request",
                                         "response_type=code and redirect_uri are required"))
        # VK ID follows OAuth 2.1: PKCE is mandatory, and S256 is the only method.
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            return self.reply(400, error("invalid_request",
                                         "code_challenge with code_challenge_method=S256 "
                                         "is required"))
        code, device_id = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
        with LOCK:
            codes[code] = {"redirect_uri": query["redirect_uri"],
                           "code_challenge": query["code_challenge"], "device_id": device_id,
                           "person": json.loads(json.dumps(state["person"])),
                           "created": time.monotonic()}
        params = {"code": code, **({"state": query["state"]} if "state" in query else {}),
                  "device_id": device_id, "type": "code_v2", "expires_in": CODE_LIFETIME}
        self.redirect_back(query["redirect_uri"], params)

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if path == "/oauth2/auth":
            self.auth(form)
        elif path == "/oauth2/user_info":
            self.user_info(form)
        elif path == "/test/user":
            try:
                person = json.loads(body)
            except ValueError:
                person = None
            user_id = person.get("user_id") if isinstance(person, dict) else None
            if not (isinstance(user_id, str) and user_id.isascii() and user_id.isdigit()):
                return self.reply(400, "malformed user")
            with LOCK:
                state["person"] = person
            self.reply(204)
        else:
            self.reply(404, "not found")

    def auth(self, form):
        missing = [f for f in TOKEN_FIELDS if not form.get(f)]
        if missing:
            return self.reply(400, error("invalid_request", "missing " + ", ".join(missing)))
        # The client is public; a secret is optional, but a wrong one is still refused.
        if not same(form["client_id"], CLIENT_ID) or (
                "client_secret" in form and not same(form["client_secret"], CLIENT_SECRET)):
            return self.reply(400, error("invalid_client", "client authentication failed"))
        if form["grant_type"] != "authorization_code":
            return self.reply(400, error("unsupported_grant_type", "unsupported grant_type"))
        with LOCK:
            # Popped before any other check: a code is spent by its first use.
            grant = codes.pop(form["code"], None)
        if grant is None or time.monotonic() - grant["created"] > CODE_LIFETIME:
            return self.reply(400, error("invalid_grant", "code is invalid or expired"))
        if not same(form["device_id"], grant["device_id"]):
            return self.reply(400, error("invalid_grant", "device_id does not match the code"))
        if form["redirect_uri"] != grant["redirect_uri"]:
            return self.reply(400, error("invalid_grant", "redirect_uri does not match"))
        if not pkce_ok(form["code_verifier"], grant["code_challenge"]):
            return self.reply(400, error("invalid_grant", "code_verifier is invalid"))
        token, refresh = ("vk2.a." + secrets.token_urlsafe(96) for _ in range(2))
        with LOCK:
            tokens[token] = grant["person"]
        self.reply(200, {"access_token": token, "refresh_token": refresh,
                         "id_token": secrets.token_urlsafe(64), "token_type": "Bearer",
                         "expires_in": TOKEN_LIFETIME,
                         "user_id": int(grant["person"]["user_id"]),
                         "state": form["state"], "scope": SCOPE})

    def user_info(self, form):
        if not same(form.get("client_id", ""), CLIENT_ID):
            return self.reply(400, error("invalid_client", "unknown client_id"))
        with LOCK:
            person = tokens.get(form.get("access_token", ""))
        if person is None:
            return self.reply(401, error("invalid_token", "access token is invalid or expired"))
        self.reply(200, {"user": person})


if __name__ == "__main__":
    serve(PORT, Handler)
