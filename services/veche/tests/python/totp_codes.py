"""Codes from an independent TOTP implementation (pyotp) for an otpauth URI.

Reads the URI as an authenticator app would (pyotp.parse_uri) and prints, as JSON, the
issuer and account it names and the code at each given Unix time.

Usage: totp_codes.py OTPAUTH_URI TIME...
"""

import json
import sys

import pyotp

uri, times = sys.argv[1], [int(t) for t in sys.argv[2:]]
totp = pyotp.parse_uri(uri)
assert isinstance(totp, pyotp.TOTP), type(totp)
print(
    json.dumps(
        {
            "issuer": totp.issuer,
            "account": totp.name,
            "digits": totp.digits,
            "interval": totp.interval,
            "codes": [totp.at(t) for t in times],
        }
    )
)
