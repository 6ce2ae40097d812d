"""A scripted browser for signing in through an OpenID provider.

Starts at a URL (Veche's start endpoint, or a provider's authorization URL), follows
redirects with cookies as a browser does, fills the provider's login form (any password:
the test provider does not check it) and its consent form, and stops at the first
redirect to the frontend page RETURN_TO. Prints, as JSON, that page's query parameters,
plus `_callback`: the Veche callback URL the browser went through. With `stop`, it does
not call that callback, and prints only `_callback`.

Usage: oidc_login.py START RETURN_TO LOGIN go|stop
"""

import html
import json
import re
import sys
from urllib.parse import parse_qsl, urljoin, urlparse

import requests

start, return_to, login, mode = sys.argv[1:5]
session = requests.Session()
url, method, data = start, "GET", None
callback = None
for _ in range(20):
    if "/api/v1/auth/oauth/" in url and "/callback" in url:
        callback = url
        if mode == "stop":
            print(json.dumps({"_callback": callback}))
            sys.exit(0)
    r = session.request(method, url, data=data, allow_redirects=False, timeout=15)
    if r.status_code in (301, 302, 303, 307, 308):
        target = urljoin(url, r.headers["location"])
        if target.startswith(return_to):
            query = dict(parse_qsl(urlparse(target).query))
            print(json.dumps({**query, "_callback": callback}))
            sys.exit(0)
        url, method, data = target, "GET", None
        continue
    if r.status_code != 200:
        print(json.dumps({"_status": r.status_code, "_body": r.text[:500], "_url": url, "_callback": callback}))
        sys.exit(0)
    form = re.search(r'<form[^>]*action="([^"]+)"[^>]*method="post"', r.text)
    if not form:
        sys.exit(f"no form at {url}: {r.text[:300]}")
    fields = {name: html.unescape(value) for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', r.text)}
    if 'name="login"' in r.text:
        fields.update(login=login, password="any password")
    url, method, data = urljoin(url, html.unescape(form.group(1))), "POST", fields
sys.exit("too many steps")
