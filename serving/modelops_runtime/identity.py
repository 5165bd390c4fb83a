"""Which request this is and who sent it: the request id and the bearer token, read the
same way by every transport (HTTP headers, gRPC metadata, and next a queue message)."""

from __future__ import annotations

import hmac
import os
import re

VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(given: str) -> str:
    """The caller's X-Request-ID when it is a sane one, else a new id (os.urandom: a
    sixth of uuid4's cost, on every request)."""
    return given if given and VALID_REQUEST_ID.match(given) else os.urandom(16).hex()


def bearer_ok(authorization: bytes, token: bytes) -> bool:
    """`Authorization: Bearer <token>`. RFC 9110: the scheme is case-insensitive; the token
    is compared in constant time."""
    scheme, _, credentials = authorization.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), token)
