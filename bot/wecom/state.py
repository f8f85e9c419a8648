"""The `state` of a 联系我 contact way: ties a friend-add back to its call and arms.

WeCom returns the contact way's `state` (at most 30 characters) in the add event, and
nothing else of ours. The encoding (lower-case letters and digits only, ≤ 25 chars):

    "w1" + mac (10, base32) + arms fingerprint (4, base32) + attempt id (base36)

- attempt id: the call; its invite row holds everything else.
- arms fingerprint: the first 20 bits of SHA-256 over the canonical JSON of the arms the
  invite was made under (script, time slot, incentive, welcome…), so a state says which
  arms it belongs to and a mismatch with the stored invite is caught.
- mac: HMAC-SHA256 with a key derived from the installation secret, over
  "attempt id|fingerprint", first 50 bits: nobody can make up a state that matches a call
  (e.g. to claim someone else's welcome gift), and other channels' states (the corp's own
  QR codes, other tools) are recognised as not ours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

VERSION = "w1"
MAX_STATE_CHARS = 30  # WeCom's limit for add_contact_way.state
_MAC_CHARS = 10
_FINGERPRINT_CHARS = 4
_PATTERN = re.compile(rf"{VERSION}([a-z2-7]{{{_MAC_CHARS}}})([a-z2-7]{{{_FINGERPRINT_CHARS}}})([0-9a-z]{{1,13}})")
_DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class DecodedState:
    attempt_id: int
    arms_fingerprint: str


def arms_fingerprint(arms: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(arms), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return _base32(hashlib.sha256(canonical.encode("utf-8")).digest())[:_FINGERPRINT_CHARS]


def encode_state(key: bytes, attempt_id: int, arms: Mapping[str, str]) -> str:
    if attempt_id < 1:
        raise ValueError("attempt id must be positive")
    fingerprint = arms_fingerprint(arms)
    state = VERSION + _mac(key, attempt_id, fingerprint) + fingerprint + _base36(attempt_id)
    assert len(state) <= MAX_STATE_CHARS
    return state


def decode_state(key: bytes, state: str | None) -> DecodedState | None:
    """The call a state names, or None if it is not one of ours (wrong shape or MAC)."""
    match = _PATTERN.fullmatch(state or "")
    if not match:
        return None
    mac, fingerprint, id36 = match.groups()
    attempt_id = int(id36, 36)
    if not hmac.compare_digest(mac, _mac(key, attempt_id, fingerprint)):
        return None
    return DecodedState(attempt_id, fingerprint)


def state_key(secret: bytes) -> bytes:
    """The MAC key, derived from the installation's master secret (not the secret itself)."""
    from bot.core.pii import _derive

    return _derive(secret, b"wecom-state-v1")


def state_key_from_settings() -> bytes:
    from bot.core.settings import get_settings

    settings = get_settings()
    return _cached_state_key(settings.secret_key, settings.secret_key_file)


@lru_cache(maxsize=4)
def _cached_state_key(secret_key: str | None, secret_key_file) -> bytes:
    from bot.core.pii import load_secret

    return state_key(load_secret(secret_key, secret_key_file))


def _mac(key: bytes, attempt_id: int, fingerprint: str) -> str:
    digest = hmac.new(key, f"{attempt_id}|{fingerprint}".encode("ascii"), hashlib.sha256).digest()
    return _base32(digest)[:_MAC_CHARS]


def _base32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _base36(number: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_DIGITS36[rest])
    return "".join(reversed(digits)) or "0"
