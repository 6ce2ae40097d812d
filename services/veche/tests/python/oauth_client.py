"""An independent OAuth 2.0 client (Authlib) against Veche's token endpoint.

Finds the endpoint through discovery, fetches a service token with each client
authentication method the metadata advertises, and checks that refusals come back as
RFC 6749 errors that an OAuth library understands. Prints what it saw as JSON; exits
non-zero on the first surprise.

Usage: oauth_client.py BASE_URL CLIENT_ID CLIENT_SECRET
"""

import json
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

base, client_id, secret = sys.argv[1:4]
meta = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
token_url = meta["token_endpoint"]
assert meta["grant_types_supported"] == ["client_credentials"], meta["grant_types_supported"]
seen = {"methods": []}


def refused(session, **params):
    try:
        session.fetch_token(token_url, **params)
    except OAuthError as e:
        return e.error
    raise AssertionError(f"accepted: {params}")


for method in meta["token_endpoint_auth_methods_supported"]:
    session = OAuth2Session(client_id, secret, token_endpoint_auth_method=method)
    token = session.fetch_token(token_url, grant_type="client_credentials", audience="organizations")
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0, token
    assert token["access_token"].count(".") == 2, "a JWT"
    wrong = OAuth2Session(client_id, "not-the-secret", token_endpoint_auth_method=method)
    seen["methods"].append(
        {
            "method": method,
            "wrong_secret": refused(wrong, grant_type="client_credentials", audience="organizations"),
        }
    )

session = OAuth2Session(client_id, secret)
seen["password_grant"] = refused(session, username="someone@example.org", password="a-password")
seen["unknown_audience"] = refused(session, grant_type="client_credentials", audience="elsewhere")
seen["no_audience"] = refused(session, grant_type="client_credentials")
print(json.dumps(seen))
