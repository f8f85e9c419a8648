"""Phone numbers as personal data (PIPL): encrypted at rest, keyed hash for matching, masked on show.

One master secret feeds two derived keys (HKDF), so the encryption key and the hashing
key are independent: a leaked hash key does not decrypt anything, and the DNC list
(hashes only) stays useful after a lead's ciphertext is erased.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.core.errors import UserError

# First byte of every ciphertext: lets a later key rotation tell old blobs from new ones.
CIPHERTEXT_VERSION = b"\x01"
_NONCE_BYTES = 12
_MIN_SECRET_BYTES = 16
# Phone-shaped digits: 7+ in a row, or grouped like 138 1234 5678 / 010-8888-6666 / 0755-1234567.
# Dates (2024-05-01 10:00) have short groups and stay readable.
_LONG_DIGIT_RUN = re.compile(r"\d{7,}|\d{3,4}[ \-]\d{3,4}[ \-]\d{3,4}|\d{3,4}[ \-]\d{7,8}")


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"waihu-pii", info=purpose).derive(master)


@dataclass(frozen=True)
class PhoneKeyring:
    """Encrypts, decrypts and hashes normalised phone numbers (e.g. '13812345678')."""

    encryption_key: bytes
    hash_key: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> "PhoneKeyring":
        if len(secret) < _MIN_SECRET_BYTES:
            raise UserError(f"the secret key is too short ({len(secret)} bytes); use at least {_MIN_SECRET_BYTES} "
                            "random bytes (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
        return cls(_derive(secret, b"phone-encryption-v1"), _derive(secret, b"phone-hash-v1"))

    def hash_phone(self, phone: str) -> str:
        """Keyed hash (HMAC-SHA256, hex): equal numbers match, nobody without the key can brute-force 10^11."""
        inner, outer = _hmac_pads_for(self.hash_key)
        inner = inner.copy()
        inner.update(phone.encode("ascii"))
        outer = outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def encrypt_phone(self, phone: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return CIPHERTEXT_VERSION + nonce + self._aead.encrypt(nonce, phone.encode("utf-8"), None)

    def bulk_encryptor(self) -> "BulkEncryptor":
        """For one thread encrypting many values (an upload): same blobs, fewer calls per value."""
        return BulkEncryptor(self._aead)

    def decrypt_phone(self, blob: bytes) -> str:
        if not blob or blob[:1] != CIPHERTEXT_VERSION:
            raise UserError("stored phone ciphertext has an unknown format version")
        nonce, body = blob[1:1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, body, None).decode("utf-8")
        except InvalidTag:
            raise UserError("cannot decrypt a stored phone number: the secret key differs from the one that "
                            "encrypted it (check WAIHU_SECRET_KEY / the secret key file)") from None

    def encrypt_text(self, text: str) -> bytes:
        """Same scheme for other personal text (e.g. the raw row of a rejected line)."""
        return self.encrypt_phone(text)

    def decrypt_text(self, blob: bytes) -> str:
        return self.decrypt_phone(blob)

    @property
    def _aead(self) -> AESGCM:
        return _aead_for(self.encryption_key)


@lru_cache(maxsize=8)
def _aead_for(key: bytes) -> AESGCM:
    return AESGCM(key)


@lru_cache(maxsize=8)
def _hmac_pads_for(key: bytes) -> tuple:
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once: a phone then costs two
    hash-state copies instead of building an `hmac.HMAC` object (half the time, same digest)."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return (hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class BulkEncryptor:
    """AES-GCM like `PhoneKeyring.encrypt_text`, for one thread: the AESGCM object is reused and random
    nonces are drawn from the OS in batches (one syscall per 4096 values instead of one per value)."""

    _BATCH = 4096

    def __init__(self, aead: AESGCM) -> None:
        self._aead_encrypt = aead.encrypt
        self._next_nonce = self._nonces().__next__

    def _nonces(self):
        size = _NONCE_BYTES
        while True:
            batch = os.urandom(size * self._BATCH)
            for offset in range(0, len(batch), size):
                yield batch[offset:offset + size]

    def encrypt(self, text: str) -> bytes:
        nonce = self._next_nonce()
        return CIPHERTEXT_VERSION + nonce + self._aead_encrypt(nonce, text.encode("utf-8"), None)


def mask_phone(phone: str) -> str:
    """138****1234: enough for a person to recognise their number, useless to dial."""
    if len(phone) == 11 and phone.isascii() and phone.isdigit():
        return phone[:3] + "****" + phone[7:]
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) >= 7:
        return digits[:2] + "*" * (len(digits) - 5) + digits[-3:]
    if len(digits) >= 3:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits) if digits else phone


def mask_digit_runs(text: str) -> str:
    """Masks every phone-shaped run of digits in free text (error messages, raw rows, log lines)."""
    if not text or not any(ch.isdigit() for ch in text):
        return text
    return _LONG_DIGIT_RUN.sub(lambda m: mask_phone(m.group(0)), text)


def load_secret(secret_key: str | None, secret_key_file: Path) -> bytes:
    """The master secret: from settings if set, else from the key file, created on first use."""
    if secret_key:
        return secret_key.encode("utf-8")
    if secret_key_file.exists():
        text = secret_key_file.read_text(encoding="ascii").strip()
        if not text:
            raise UserError(f"{secret_key_file} is empty; restore it from your backup or set WAIHU_SECRET_KEY")
        return text.encode("ascii")
    secret_key_file.parent.mkdir(parents=True, exist_ok=True)
    token = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(secret_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_secret(None, secret_key_file)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    print(f"notice: generated a new secret key in {secret_key_file}. Phone numbers are encrypted with it: "
          "back it up (or set WAIHU_SECRET_KEY); without it stored numbers cannot be read or matched.",
          file=sys.stderr)
    return token.encode("ascii")


def keyring_from_settings() -> PhoneKeyring:
    from bot.core.settings import get_settings

    settings = get_settings()
    return _cached_keyring(settings.secret_key, settings.secret_key_file)


@lru_cache(maxsize=4)
def _cached_keyring(secret_key: str | None, secret_key_file: Path) -> PhoneKeyring:
    return PhoneKeyring.from_secret(load_secret(secret_key, secret_key_file))


def policy_signing_key_from_settings() -> bytes:
    """Key an admin's approval of a looser compliance profile is signed with (derived, not the master)."""
    from bot.core.settings import get_settings

    settings = get_settings()
    return _derive(load_secret(settings.secret_key, settings.secret_key_file), b"policy-signing-v1")
