"""A small, misbehaving OpenID Connect provider for testing a relying party.

It runs the authorization code flow with PKCE for one client and signs everyone in, with
no form, as subject `hostile-1`. What it gets wrong in its ID tokens is chosen at run
time by `POST /test/mode` with one of these names as the plain-text body:

  good            a correct ID token (the default)
  wrong_nonce     nonce is not the one sent to /authorize
  expired         exp and iat lie in the past
  foreign_key     signed with a key the JWKS never publishes, kid still "real"
  unknown_kid     signed with that key, kid "rotated-away" (absent from the JWKS)
  wrong_audience  aud is another client
  wrong_issuer    iss is another issuer
  bad_at_hash     at_hash is of a different access token
  alg_none        header alg "none" and an empty signature

The issuer is http://127.0.0.1:PORT. Once listening it prints one line,
`ready http://127.0.0.1:PORT`, and nothing else.

Usage: hostile_oidc.py PORT CLIENT_ID CLIENT_SECRET
"""

import base64
import hashlib
import json
import secrets
import sys
import threading
import time
from urllib.parse import parse_qs, unquote_plus, urlsplit

from standin import QuietHandler, pkce_ok, same, serve

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PORT, CLIENT_ID, CLIENT_SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ISSUER = f"http://127.0.0.1:{PORT}"
SUBJECT = "hostile-1"
PROFILE = {"email": "mallory@example.org", "email_verified": True, "name": "Mallory"}
MODES = {"good", "wrong_nonce", "expired", "foreign_key", "unknown_kid",
         "wrong_audience", "wrong_issuer", "bad_at_hash", "alg_none"}

REAL_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FOREIGN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

# Shared by the handler threads; every access holds LOCK.
LOCK = threading.Lock()
state = {"mode": "good"}
codes = {}  # code -> {"redirect_uri", "nonce", "code_challenge"}
access_tokens = set()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk(key, kid):
    numbers = key.public_key().public_numbers()
    n, e = (b64url(i.to_bytes((i.bit_length() + 7) // 8, "big")) for i in (numbers.n, numbers.e))
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": e}


def at_hash(access_token):
    # OIDC Core 3.1.3.6: left half of the SHA-256 of the token's ASCII octets.
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


def id_token(mode, nonce, access_token):
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": SUBJECT, "aud": CLIENT_ID, "exp": now + 300,
              "iat": now, **PROFILE, "at_hash": at_hash(access_token)}
    if nonce is not None:  # echoed only when /authorize was sent one
        claims["nonce"] = nonce
    header = {"alg": "RS256", "typ": "JWT", "kid": "real"}
    key = REAL_KEY
    if mode == "wrong_nonce":
        claims["nonce"] = "not-the-nonce-we-were-sent"
    elif mode == "expired":
        claims["exp"], claims["iat"] = now - 600, now - 900
    elif mode == "foreign_key":
        key = FOREIGN_KEY
    elif mode == "unknown_kid":
        key, header["kid"] = FOREIGN_KEY, "rotated-away"
    elif mode == "wrong_audience":
        claims["aud"] = "someone-else"
    elif mode == "wrong_issuer":
        claims["iss"] = "http://127.0.0.1:1"
    elif mode == "bad_at_hash":
        claims["at_hash"] = at_hash(secrets.token_urlsafe(32))
    elif mode == "alg_none":
        header = {"alg": "none", "typ": "JWT"}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    if mode == "alg_none":
        return signing_input + "."
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)




def client_authenticated(header):
    # RFC 6749 2.3.1: id and secret are form-urlencoded before being joined and encoded.
    if not header or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except ValueError:
        return False
    client_id, sep, secret = decoded.partition(":")
    return bool(sep) and same(unquote_plus(client_id), CLIENT_ID) and same(
        unquote_plus(secret), CLIENT_SECRET)


class Handler(QuietHandler):

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/.well-known/openid-configuration":
            self.reply(200, {
                "issuer": ISSUER,
                "authorization_endpoint": ISSUER + "/authorize",
                "token_endpoint": ISSUER + "/token",
                "jwks_uri": ISSUER + "/jwks",
                "userinfo_endpoint": ISSUER + "/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "grant_types_supported": ["authorization_code"],
                "scopes_supported": ["openid", "email", "profile"],
                "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "at_hash",
                                     "email", "email_verified", "name"],
            })
        elif url.path == "/jwks":
            self.reply(200, {"keys": [jwk(REAL_KEY, "real")]})
        elif url.path == "/authorize":
            self.authorize(query)
        elif url.path == "/userinfo":
            auth = self.headers.get("Authorization", "")
            with LOCK:
                known = auth.startswith("Bearer ") and auth[7:].strip() in access_tokens
            if known:
                self.reply(200, {"sub": SUBJECT, **PROFILE})
            else:
                self.reply(401, {"error": "invalid_token"},
                           headers=[("WWW-Authenticate", 'Bearer error="invalid_token"')])
        else:
            self.reply(404, "not found")

    def authorize(self, query):
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code" \
                or "redirect_uri" not in query:
            return self.reply(400, "needs our client_id, response_type=code and a redirect_uri")
        code = secrets.token_urlsafe(24)
        with LOCK:
            codes[code] = {"redirect_uri": query["redirect_uri"],
                           "nonce": query.get("nonce"),
                           "code_challenge": query.get("code_challenge")}
        params = {"code": code, **({"state": query["state"]} if "state" in query else {})}
        self.redirect_back(query["redirect_uri"], params)

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/token":
            self.token({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        elif path == "/test/mode":
            mode = body.decode("utf-8", "replace").strip()
            if mode not in MODES:
                return self.reply(400, "unknown mode")
            with LOCK:
                state["mode"] = mode
            self.reply(204)
        else:
            self.reply(404, "not found")

    def token(self, form):
        no_store = [("Cache-Control", "no-store")]
        if not client_authenticated(self.headers.get("Authorization")):
            return self.reply(401, {"error": "invalid_client"}, headers=no_store
                              + [("WWW-Authenticate", 'Basic realm="hostile"')])
        if form.get("grant_type") != "authorization_code":
            return self.reply(400, {"error": "unsupported_grant_type"}, headers=no_store)
        with LOCK:
            # Popped before any other check: a code is spent by its first use.
            grant = codes.pop(form.get("code", ""), None)
            mode = state["mode"]
        verifier = form.get("code_verifier", "")
        if (grant is None or form.get("redirect_uri") != grant["redirect_uri"]
                or not grant["code_challenge"] or not verifier
                or not pkce_ok(verifier, grant["code_challenge"])):
            return self.reply(400, {"error": "invalid_grant"}, headers=no_store)
        access_token = secrets.token_urlsafe(32)
        with LOCK:
            access_tokens.add(access_token)
        self.reply(200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 300,
                         "id_token": id_token(mode, grant["nonce"], access_token)},
                   headers=no_store)


if __name__ == "__main__":
    serve(PORT, Handler)
