"""The signature every delivery carries (Stripe/GitHub style).

`X-Waihu-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Waihu-Timestamp>.<raw body>")>`. A receiver
recomputes it over the raw body bytes with its secret, compares in constant time and rejects
timestamps far from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "sha256"
SECRET_PREFIX = "whsec_"
MIN_SECRET_CHARS = 16


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"{SCHEME}={digest.hexdigest()}"


def verify(
    secret: str, timestamp: str, body: bytes, header: str, *, now: float | None = None, tolerance_s: float = 300.0
) -> bool:
    """What a receiver does (and the tests do): the signature matches and, with `now`, the timestamp is recent."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if now is not None and abs(now - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, stamp, body), header or "")
