"""Phone numbers as personal data (PIPL): encrypted at rest, keyed hash for matching, masked on show.

One master secret feeds two derived keys (HKDF), so the encryption key and the hashing
key are independent: a leaked hash key does not decrypt anything, and the DNC list
(hashes only) stays useful after a lead's ciphertext is erased.

A rotated secret (`waihu keys rotate`) also carries the hash keys it replaced, oldest first:
a stored hash is then HMAC(newest key, … HMAC(oldest key, number)), which is how the DNC
list, which keeps no number, follows a rotation. The database keeps the key's fingerprint
(`key_check`); `bot.core.keys` compares it before numbers are read or written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.core.errors import UserError
from bot.core.keys import KeyMismatch, keyed_tables_with_rows, require_key_matches
from bot.core.private_files import private_dir

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# First byte of every ciphertext: lets a later key rotation tell old blobs from new ones.
CIPHERTEXT_VERSION = b"\x01"
_NONCE_BYTES = 12
_MIN_SECRET_BYTES = 16
# A rotated secret: "waihu-k2.<new master>.<replaced hash key>.<…>" (base64url, oldest hash key first).
ROTATED_SECRET_PREFIX = "waihu-k2"
_KEY_CHECK_MESSAGE = b"waihu-key-check"
# Phone-shaped text (see `mask_digit_runs`): digits as people and ASR write them (ASCII, full-width,
# Chinese numerals with 幺/两), in groups split by at most three separator characters.
_DIGIT_VALUES = {
    **{str(i): str(i) for i in range(10)},
    **{chr(0xFF10 + i): str(i) for i in range(10)},
    "〇": "0",
    "零": "0",
    "一": "1",
    "幺": "1",
    "二": "2",
    "两": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
}
_DIGIT_CLASS = "[" + "".join(sorted(_DIGIT_VALUES)) + "]"
_TO_ASCII_DIGITS = str.maketrans(_DIGIT_VALUES)
_ANY_DIGIT = re.compile(_DIGIT_CLASS)
_DIGIT_GROUP = re.compile(_DIGIT_CLASS + "+")
_SEPARATORS = " \t\u3000-._/·—–－．()（）"
_SEPARATOR_CLASS = "[" + re.escape(_SEPARATORS) + "]"
_DROP_SEPARATORS = str.maketrans("", "", _SEPARATORS)
_DIGIT_RUN = re.compile(f"{_DIGIT_CLASS}+(?:{_SEPARATOR_CLASS}{{1,3}}{_DIGIT_CLASS}+)*")
# A number a person could be reached on: a mobile (11 digits from 1), a landline with its area code
# (0 + 9-11 digits), either after the country code. 7-10 digit numbers without these shapes (16777216,
# 2024050110) are not phones and stay readable; so do dates and times (their groups are short).
_PHONE_SHAPE = re.compile(r"(0086|86)?(1[0-9]{10}|0[0-9]{9,11})")
_LONG_NUMBER = 12  # an unbroken run this long is masked whatever it is (an id card, a number with a prefix)


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"waihu-pii", info=purpose).derive(master)


@dataclass(frozen=True)
class PhoneKeyring:
    """Encrypts, decrypts and hashes normalised phone numbers (e.g. '13812345678')."""

    encryption_key: bytes
    hash_key: bytes
    # Hash keys this one replaced (key rotations), oldest first; empty for a key never rotated.
    hash_chain: tuple[bytes, ...] = ()

    @classmethod
    def from_secret(cls, secret: bytes) -> PhoneKeyring:
        if secret.startswith(ROTATED_SECRET_PREFIX.encode("ascii") + b"."):
            master, chain = _parse_rotated_secret(secret)
            return cls(_derive(master, b"phone-encryption-v1"), _derive(master, b"phone-hash-v1"), chain)
        if len(secret) < _MIN_SECRET_BYTES:
            raise UserError(
                f"the secret key is too short ({len(secret)} bytes); use at least {_MIN_SECRET_BYTES} "
                "random bytes (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return cls(_derive(secret, b"phone-encryption-v1"), _derive(secret, b"phone-hash-v1"))

    @property
    def key_check(self) -> str:
        """The key's fingerprint (hex): an HMAC of a constant under all of the key material. Equal for equal
        keys, different otherwise, and reveals nothing of the key: the database stores it."""
        return _key_check(self.encryption_key, self.hash_key, self.hash_chain)

    def hash_phone(self, phone: str) -> str:
        """Keyed hash (HMAC-SHA256, hex): equal numbers match, nobody without the key can brute-force 10^11."""
        digest = _hmac_hex(self.hash_chain[0] if self.hash_chain else self.hash_key, phone.encode("ascii"))
        if self.hash_chain:
            for key in (*self.hash_chain[1:], self.hash_key):
                digest = _hmac_hex(key, digest.encode("ascii"))
        return digest

    def extend_hash(self, stored_hash: str) -> str:
        """A hash made by the key this one replaced, as this key makes it (rotation: no number needed)."""
        return _hmac_hex(self.hash_key, stored_hash.encode("ascii"))

    def rotated(self) -> tuple[bytes, PhoneKeyring]:
        """A new random key that continues this one's hash chain: (its secret text, its keyring)."""
        master = os.urandom(32)
        chain = (*self.hash_chain, self.hash_key)
        secret = ".".join([ROTATED_SECRET_PREFIX, _b64(master), *(_b64(key) for key in chain)]).encode("ascii")
        return secret, PhoneKeyring.from_secret(secret)

    def encrypt_phone(self, phone: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return CIPHERTEXT_VERSION + nonce + self._aead.encrypt(nonce, phone.encode("utf-8"), None)

    def bulk_encryptor(self) -> BulkEncryptor:
        """For one thread encrypting many values (an upload): same blobs, fewer calls per value."""
        return BulkEncryptor(self._aead)

    def decrypt_phone(self, blob: bytes) -> str:
        if not blob or blob[:1] != CIPHERTEXT_VERSION:
            raise UserError("stored phone ciphertext has an unknown format version")
        nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, None).decode("utf-8")
        except InvalidTag:
            raise UserError(
                "cannot decrypt a stored phone number: the secret key differs from the one that "
                "encrypted it (check WAIHU_SECRET_KEY / the secret key file)"
            ) from None

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


def _hmac_hex(key: bytes, data: bytes) -> str:
    inner, outer = _hmac_pads_for(key)
    inner = inner.copy()
    inner.update(data)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


@lru_cache(maxsize=8)
def _key_check(encryption_key: bytes, hash_key: bytes, chain: tuple[bytes, ...]) -> str:
    return hmac.new(encryption_key + hash_key + b"".join(chain), _KEY_CHECK_MESSAGE, hashlib.sha256).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _parse_rotated_secret(secret: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    parts = secret.decode("ascii", "replace").strip().split(".")
    try:
        keys = [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in parts[1:]]
    except (binascii.Error, ValueError):
        keys = []
    if len(keys) < 2 or any(len(key) != 32 for key in keys):
        raise UserError(
            "the secret key starts like a rotated key (waihu-k2.…) but is damaged; restore it from "
            "your backup (WAIHU_SECRET_KEY or the key file) exactly as `waihu keys rotate` wrote it"
        )
    return keys[0], tuple(keys[1:])


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
                yield batch[offset : offset + size]

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
    """Masks every phone-shaped number in free text (error messages, raw rows, custom columns, log lines).

    Catches numbers however they are written: 13812345678, 138 1234 5678, 138.1234.5678, 139/1234/5678,
    139_1234_5678, 1 3 8 1 2 3 4 5 6 7 8, +86 138-1234-5678, (010) 8888 6666, full-width digits and
    Chinese numerals (一三八一二三四五六七八, 幺三八…). Leaves other numbers alone (16777216, 2024-05-01
    10:00, amounts), except unbroken runs of 12+ digits, which are masked whatever they are.
    """
    if not text or _ANY_DIGIT.search(text) is None:
        return text
    return _DIGIT_RUN.sub(_mask_run, text)


def _mask_run(match: re.Match) -> str:
    run = match.group(0)
    if len(run) < 11 or len(run.translate(_DROP_SEPARATORS)) < 11:  # too few digits for any phone
        return run
    groups = [(g.start(), g.end(), g.group(0).translate(_TO_ASCII_DIGITS)) for g in _DIGIT_GROUP.finditer(run)]
    pieces, position, index = [], 0, 0
    while index < len(groups):
        start, end, digits = groups[index]
        if digits == "0" and run[end : end + 1] == ".":  # 0.123456789 is a fraction, not a phone
            index += 1
            continue
        masked_until, replacement = None, None
        if len(digits) >= _LONG_NUMBER:
            masked_until, replacement = index, mask_phone(digits)
        joined = ""
        for last in range(index, len(groups)):
            joined += groups[last][2]
            if len(joined) > 16:
                break
            shape = _PHONE_SHAPE.fullmatch(joined)
            if shape is not None:
                prefix, number = shape.groups()
                masked_until, replacement = last, (f"{prefix} " if prefix else "") + mask_phone(number)
        if masked_until is None:
            index += 1
            continue
        pieces.append(run[position:start])
        pieces.append(replacement)
        position = groups[masked_until][1]
        index = masked_until + 1
    pieces.append(run[position:])
    return "".join(pieces)


def load_secret(secret_key: str | None, secret_key_file: Path, *, database: Engine | str | None = None) -> bytes:
    """The master secret: from settings if set, else from the key file.

    The key file is created (0600, in a 0700 folder) only when the database — `database`, default
    the settings' one — holds no phone data and no key fingerprint yet: a new key over stored
    numbers would make them unreadable and silently turn off do-not-call and duplicate matching.
    """
    if secret_key:
        return secret_key.encode("utf-8")
    if secret_key_file.exists():
        text = secret_key_file.read_text(encoding="ascii").strip()
        if not text:
            raise UserError(f"{secret_key_file} is empty; restore it from your backup or set WAIHU_SECRET_KEY")
        return text.encode("ascii")
    _refuse_new_key_over_data(secret_key_file, database)
    private_dir(secret_key_file.parent)
    token = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(secret_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_secret(None, secret_key_file)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    print(
        f"notice: generated a new secret key in {secret_key_file}. Phone numbers are encrypted with it: "
        "back it up (or set WAIHU_SECRET_KEY); without it stored numbers cannot be read or matched.",
        file=sys.stderr,
    )
    return token.encode("ascii")


def _refuse_new_key_over_data(secret_key_file: Path, database: Engine | str | None) -> None:
    from sqlalchemy.engine import Engine
    from sqlalchemy.exc import SQLAlchemyError

    from bot.core.db.engine import get_engine
    from bot.core.settings import get_settings

    engine = database if isinstance(database, Engine) else get_engine(database or get_settings().database_url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        holding = keyed_tables_with_rows(engine)
    except SQLAlchemyError as exc:
        raise UserError(
            f"no secret key ({secret_key_file} does not exist and WAIHU_SECRET_KEY is not set), and the "
            f"database {where} cannot be checked for stored numbers, so no new key was made: "
            f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}",
            details=["start the database (or fix WAIHU_DATABASE_URL) and try again"],
        ) from None
    if holding:
        raise UserError(
            f"no secret key: {secret_key_file} does not exist and WAIHU_SECRET_KEY is not set, but the "
            f"database {where} already holds data written with a key ({', '.join(holding)}); "
            "no new key was made",
            details=[
                "restore the key file from your backup, or set WAIHU_SECRET_KEY to the key",
                "a new key could not read the stored numbers, and do-not-call and duplicate "
                "checks would silently miss every one of them",
            ],
        )


def keyring_from_settings() -> PhoneKeyring:
    """The settings' key, checked against the settings' database (`bot.core.keys`): a key the database's
    numbers were not written with stops here, before anything is read or written."""
    from bot.core.settings import get_settings

    settings = get_settings()
    return _checked_keyring(settings.database_url, settings.secret_key, settings.secret_key_file)


def keyring_for_engine(engine: Engine) -> PhoneKeyring:
    """The settings' key, checked against `engine`'s database: for a process that holds its own engine
    (the web console, a worker). Raises KeyMismatch (a UserError) on the wrong key."""
    from bot.core.settings import get_settings

    settings = get_settings()
    ring = PhoneKeyring.from_secret(load_secret(settings.secret_key, settings.secret_key_file, database=engine))
    require_key_with_advice(engine, ring, settings.secret_key_file)
    return ring


@lru_cache(maxsize=4)
def _checked_keyring(database_url: str, secret_key: str | None, secret_key_file: Path) -> PhoneKeyring:
    from bot.core.db.engine import open_database

    engine = open_database(database_url)
    ring = PhoneKeyring.from_secret(load_secret(secret_key, secret_key_file, database=engine))
    require_key_with_advice(engine, ring, secret_key_file)
    return ring


def pending_key_file(secret_key_file: Path) -> Path:
    """Where `waihu keys rotate` writes the new key before the database moves to it."""
    return secret_key_file.with_name(secret_key_file.name + ".new")


def require_key_with_advice(engine: Engine, ring: PhoneKeyring, secret_key_file: Path) -> None:
    """`require_key_matches`, and if a rotation committed but its new key file was never put in place
    (a crash in between), say so instead of only "wrong key"."""
    try:
        require_key_matches(engine, ring)
    except KeyMismatch as exc:
        pending = pending_key_file(secret_key_file)
        if exc.expected and pending.exists():
            try:
                finished = PhoneKeyring.from_secret(pending.read_bytes().strip()).key_check == exc.expected
            except UserError:
                finished = False
            if finished:
                raise UserError(
                    f"a key rotation finished in the database but its new key ({pending}) was not put "
                    "in place; run `waihu keys rotate` again to finish it"
                ) from None
        raise


def policy_signing_key_from_settings() -> bytes:
    """Key an admin's approval of a looser compliance profile is signed with (derived, not the master)."""
    from bot.core.settings import get_settings

    settings = get_settings()
    return _derive(load_secret(settings.secret_key, settings.secret_key_file), b"policy-signing-v1")
