"""What the provider stand-ins (hostile_oidc.py, github_standin.py, yandex_standin.py,
vkid_standin.py) share: a quiet request handler that answers text or JSON and redirects
back to a client, a constant-time comparison, the PKCE check, and serving on loopback
with the one `ready` line the tests wait for."""

import base64
import hashlib
import hmac
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit


def same(a, b):
    # Constant-time, and bytes so that non-ASCII input is refused rather than raising.
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def pkce_ok(verifier, challenge):
    # RFC 7636 S256: base64url(sha256(verifier)) without padding.
    digest = hashlib.sha256(verifier.encode("utf-8")).digest()
    return same(base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"), challenge)


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass  # the tests read this process's output; per-request lines are noise

    def reply(self, status, body=b"", content_type="text/plain; charset=utf-8", headers=()):
        if isinstance(body, (dict, list)):
            body, content_type = json.dumps(body).encode(), "application/json; charset=utf-8"
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if body:  # a 204 or 302 carries none
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect_back(self, uri, params):
        # A 302 to the client's redirect URI with `params` added to any query it has.
        sep = "&" if urlsplit(uri).query else "?"
        self.reply(302, headers=[("Location", uri + sep + urlencode(params))])


def serve(port, handler):
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print(f"ready http://127.0.0.1:{port}", flush=True)
    server.serve_forever()
