"""The secret key's fingerprint in the database, and key rotation.

Phone numbers are stored encrypted and as keyed hashes (`bot.core.pii`). Another key cannot
decrypt the first, and it silently misses the second: the do-not-call list and the duplicate
check would let every stored number through. So the database keeps the fingerprint of the key
its numbers were written with — `PhoneKeyring.key_check`, an HMAC of a constant under the key
material, never the key — recorded at first use; everything that reads or writes numbers
checks it first (`require_key_matches`) and stops with one error on a mismatch.

`rotate_keyed_data` moves every key-dependent column (`KEYED_COLUMNS`) to a new keyring in one
transaction: ciphertexts are decrypted and encrypted again; hashes are extended with the new hash
key (HMAC(new key, old hash)), because the do-not-call list keeps no number to hash again.

This module knows the other domains' tables by name only (it sits below them): a test checks
`KEYED_COLUMNS` against the whole schema, so a new encrypted or hashed column cannot be missed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import CheckConstraint, Column, Integer, String, inspect, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from bot.core.db.base import Base, UtcDateTime, utc_now
from bot.core.errors import UserError

KEY_ROW_ID = 1
CIPHERTEXT = "ciphertext"
HASH = "hash"


class SecretKeyFingerprint(Base):
    """The one key this database's numbers are written with, as a check value (never the key)."""

    __tablename__ = "secret_key_fingerprint"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id = Column(Integer, primary_key=True)
    fingerprint = Column(String(64), nullable=False)
    recorded_at = Column(UtcDateTime, nullable=False, default=utc_now)
    rotated_at = Column(UtcDateTime)
    rotations = Column(Integer, nullable=False, default=0)


@dataclass(frozen=True)
class KeyedColumn:
    table: str
    column: str
    kind: str  # CIPHERTEXT (PhoneKeyring.encrypt_text) | HASH (PhoneKeyring.hash_phone)


# Every column whose value depends on the secret key (tests/security checks this against the schema).
KEYED_COLUMNS: tuple[KeyedColumn, ...] = (
    KeyedColumn("leads", "phone_ciphertext", CIPHERTEXT),
    KeyedColumn("leads", "phone_hash", HASH),
    KeyedColumn("lead_rejects", "raw_ciphertext", CIPHERTEXT),
    KeyedColumn("lead_rejects", "phone_hash", HASH),
    KeyedColumn("do_not_call", "phone_hash", HASH),
    KeyedColumn("call_attempts", "phone_hash", HASH),
    KeyedColumn("wecom_sms_outbox", "phone_ciphertext", CIPHERTEXT),
    KeyedColumn("webhook_endpoints", "secret_ciphertext", CIPHERTEXT),  # a CRM's signing secret
    KeyedColumn("conversion_rejects", "phone_hash", HASH),  # an unmatched policy's number, for erasure
)
KEYED_TABLES: tuple[str, ...] = tuple(dict.fromkeys(c.table for c in KEYED_COLUMNS))
# Where a stored ciphertext can prove which key wrote it, best first: (table, ciphertext, hash of it or None).
_PROOF_COLUMNS = (
    ("leads", "phone_ciphertext", "phone_hash"),
    ("lead_rejects", "raw_ciphertext", None),
    ("wecom_sms_outbox", "phone_ciphertext", None),
)


class Keyring(Protocol):
    """What this module needs of `bot.core.pii.PhoneKeyring` (it does not import it)."""

    @property
    def hash_key(self) -> bytes: ...
    @property
    def hash_chain(self) -> tuple[bytes, ...]: ...
    @property
    def key_check(self) -> str: ...
    def hash_phone(self, phone: str) -> str: ...
    def encrypt_text(self, text: str) -> bytes: ...
    def decrypt_text(self, blob: bytes) -> str: ...
    def extend_hash(self, stored_hash: str) -> str: ...


class KeyMismatch(UserError):
    """The key in use is not the one the database's numbers were written with."""

    def __init__(self, message: str, *, expected: str, actual: str, details: list[str] | None = None) -> None:
        super().__init__(message, details=details)
        self.expected, self.actual = expected, actual


def short(fingerprint: str) -> str:
    """Enough of a fingerprint to tell two keys apart in a message."""
    return fingerprint[:12]


def mismatch_error(expected: str | None, actual: str) -> KeyMismatch:
    """`expected` None: no fingerprint recorded, but the stored numbers do not decrypt with the key."""
    written_with = (
        f"with key {short(expected)}…" if expected else "with another key (they do not decrypt with this one)"
    )
    return KeyMismatch(
        f"the secret key does not match this database (key {short(actual)}…; the database's numbers were written "
        f"{written_with}): nothing was read or changed",
        expected=expected or "",
        actual=actual,
        details=[
            "with another key, do-not-call and duplicate checks would silently miss every stored number",
            "use the key this database was written with: set WAIHU_SECRET_KEY, or put the key file back "
            "(WAIHU_SECRET_KEY_FILE, default <data folder>/secret.key) from your backup",
            "to change keys on purpose, keep the old key in place and run `waihu keys rotate`",
        ],
    )


def keyed_tables_with_rows(bind: Engine | Connection) -> list[str]:
    """The key-dependent tables (and the fingerprint table) that hold at least one row. Missing tables
    (a database not migrated yet) hold nothing."""
    with _connection(bind) as conn:
        existing = set(inspect(conn).get_table_names())
        return [
            table
            for table in (*KEYED_TABLES, SecretKeyFingerprint.__tablename__)
            if table in existing and conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None
        ]


def stored_fingerprint(bind: Engine | Connection | Session, *, lock: str | None = None) -> str | None:
    """The recorded fingerprint; `lock` ("share" | "update") locks the row on PostgreSQL until the
    transaction ends, so a rotation and an upload never interleave."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return stored_fingerprint(conn)
    conn = _as_connection(bind)
    if SecretKeyFingerprint.__tablename__ not in inspect(conn).get_table_names():
        return None  # not migrated yet
    query = select(SecretKeyFingerprint.fingerprint).where(SecretKeyFingerprint.id == KEY_ROW_ID)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update(read=lock == "share")
    return conn.execute(query).scalar()


def require_key_matches(bind: Engine | Connection | Session, keyring: Keyring, *, lock: bool = False) -> None:
    """Stop (KeyMismatch) unless `keyring` is the key this database's numbers were written with.

    At first use the fingerprint is recorded: right away on a database without numbers; after the
    key has decrypted some stored numbers (and, for leads, reproduced their hashes) on one that
    has them (upgraded from before fingerprints). A database holding only hashes (an imported
    do-not-call list) cannot prove which key wrote them: `waihu keys adopt` records it on purpose.
    With `lock`, the caller's transaction holds the fingerprint row (PostgreSQL: FOR SHARE) until it
    ends, so a key rotation cannot commit in between.
    """
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            _require(conn, keyring, lock)
        return
    _require(_as_connection(bind), keyring, lock)


def _require(conn: Connection, keyring: Keyring, lock: bool) -> None:
    expected = stored_fingerprint(conn, lock="share" if lock else None)
    actual = keyring.key_check
    if expected is None:
        proof = _proof_against_stored_numbers(conn, keyring)
        if proof is None and any(t in KEYED_TABLES for t in keyed_tables_with_rows(conn)):
            raise UserError(
                "this database holds do-not-call or call hashes but no stored number that could "
                "prove which secret key wrote them, and no key fingerprint yet",
                details=[
                    "if the key in use (WAIHU_SECRET_KEY or the key file) is the one the list was "
                    "written with, record it: `waihu keys adopt`",
                    "with another key, do-not-call checks would silently miss every listed number",
                ],
            )
        if proof is False:
            raise mismatch_error(None, actual)
        _record(conn, actual)
        expected = stored_fingerprint(conn, lock="share" if lock else None)
    if expected != actual:
        raise mismatch_error(expected, actual)


def _proof_against_stored_numbers(conn: Connection, keyring: Keyring) -> bool | None:
    """True: stored numbers decrypt with this key; False: they do not; None: there are none to try."""
    existing = set(inspect(conn).get_table_names())
    for table, column, hash_column in _PROOF_COLUMNS:
        if table not in existing:
            continue
        columns = f"{column}, {hash_column}" if hash_column else column
        rows = conn.execute(text(f"SELECT {columns} FROM {table} WHERE {column} IS NOT NULL ORDER BY id LIMIT 3")).all()
        for row in rows:
            try:
                plain = keyring.decrypt_text(bytes(row[0]))
            except UserError:
                return False
            if hash_column and keyring.hash_phone(plain) != row[1]:
                return False
        if rows:
            return True
    return None


def adopt_key(bind: Engine | Connection, keyring: Keyring) -> None:
    """Record `keyring` as this database's key when none is recorded (`waihu keys adopt`)."""
    with _connection(bind) as conn:
        recorded = stored_fingerprint(conn)
        if recorded is not None and recorded != keyring.key_check:
            raise mismatch_error(recorded, keyring.key_check)
        if recorded is None:
            if _proof_against_stored_numbers(conn, keyring) is False:
                raise mismatch_error(None, keyring.key_check)
            _record(conn, keyring.key_check)


def _record(conn: Connection, fingerprint: str) -> None:
    """Insert the fingerprint unless another process just did (then the caller compares with theirs)."""
    table = SecretKeyFingerprint.__table__
    values = {"id": KEY_ROW_ID, "fingerprint": fingerprint, "recorded_at": utc_now(), "rotations": 0}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=["id"]))
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(table).values(**values).prefix_with("OR IGNORE"))
    elif stored_fingerprint(conn) is None:
        conn.execute(table.insert().values(**values))


@dataclass
class RotationSummary:
    rows: dict[str, int]  # table -> rows rewritten
    old_fingerprint: str
    new_fingerprint: str
    rotated_at: datetime


def rotate_keyed_data(
    engine: Engine,
    old: Keyring,
    new: Keyring,
    *,
    batch: int = 2000,
    on_progress: Callable[[str, int], None] | None = None,
) -> RotationSummary:
    """Rewrite every key-dependent column from `old` to `new` and record `new`'s fingerprint, in one
    transaction: a failure or a crash leaves the database as it was (with `old`), so running again
    simply starts over. `new` must be `old` rotated (`PhoneKeyring.rotated`): its hash chain ends
    with `old`'s hash key, which is what lets hashes move without the numbers."""
    if tuple(new.hash_chain) != tuple(old.hash_chain) + (old.hash_key,):
        raise UserError(
            "the new key is not a rotation of the current one (its hash chain does not continue "
            "the current key's); nothing was changed"
        )
    if new.key_check == old.key_check:
        raise UserError("the new key is the current key; nothing to rotate")
    rows: dict[str, int] = {}
    with engine.begin() as conn:
        require_key_matches(conn, old)
        stored_fingerprint(conn, lock="update")
        existing = set(inspect(conn).get_table_names())
        for table in KEYED_TABLES:
            if table not in existing:
                continue
            columns = [c for c in KEYED_COLUMNS if c.table == table]
            rows[table] = _rotate_table(conn, table, columns, old, new, batch, on_progress)
        now = utc_now()
        conn.execute(
            update(SecretKeyFingerprint.__table__)
            .where(SecretKeyFingerprint.id == KEY_ROW_ID)
            .values(fingerprint=new.key_check, rotated_at=now, rotations=SecretKeyFingerprint.rotations + 1)
        )
    return RotationSummary(rows, old.key_check, new.key_check, now)


def _rotate_table(
    conn: Connection,
    table: str,
    columns: list[KeyedColumn],
    old: Keyring,
    new: Keyring,
    batch: int,
    on_progress: Callable[[str, int], None] | None,
) -> int:
    names = [c.column for c in columns]
    convert = [(_reencrypt(old, new) if c.kind == CIPHERTEXT else new.extend_hash) for c in columns]
    last_id, done = 0, 0
    while True:
        page = conn.execute(
            text(f"SELECT id, {', '.join(names)} FROM {table} WHERE id > :last ORDER BY id LIMIT {int(batch)}"),
            {"last": last_id},
        ).all()
        if not page:
            return done
        changed = [
            (row[0], *[None if value is None else fn(value) for value, fn in zip(row[1:], convert, strict=True)])
            for row in page
        ]
        _update_rows(conn, table, columns, changed)
        last_id, done = page[-1][0], done + len(page)
        if on_progress is not None:
            on_progress(table, done)


def _reencrypt(old: Keyring, new: Keyring) -> Callable[[bytes], bytes]:
    def convert(blob) -> bytes:
        return new.encrypt_text(old.decrypt_text(bytes(blob)))

    return convert


def _update_rows(conn: Connection, table: str, columns: list[KeyedColumn], rows: list[tuple]) -> None:
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            types = ["bigint"] + ["bytea" if c.kind == CIPHERTEXT else "text" for c in columns]
            names = ["id"] + [c.column for c in columns]
            arrays = [list(values) for values in zip(*rows, strict=True)]
            cursor.execute(
                f"UPDATE {table} AS t SET {', '.join(f'{n} = v.{n}' for n in names[1:])} "
                f"FROM unnest({', '.join(f'%s::{t}[]' for t in types)}) AS v({', '.join(names)}) WHERE t.id = v.id",
                arrays,
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET {', '.join(f'{c.column} = ?' for c in columns)} WHERE id = ?",
                [(*row[1:], row[0]) for row in rows],
            )
    finally:
        cursor.close()


class _connection:
    """A connection in a transaction: the engine's own (committed at the end), or the one given."""

    def __init__(self, bind: Engine | Connection) -> None:
        self.bind = bind
        self.context: AbstractContextManager[Connection] | None = None

    def __enter__(self) -> Connection:
        if isinstance(self.bind, Engine):
            self.context = self.bind.begin()
            return self.context.__enter__()
        return self.bind

    def __exit__(self, *exc_info) -> None:
        if self.context is not None:
            self.context.__exit__(*exc_info)


def _as_connection(bind: Engine | Connection | Session) -> Connection:
    if isinstance(bind, Session):
        return bind.connection()
    if isinstance(bind, Engine):
        raise TypeError("pass a connection or session (or use require_key_matches, which opens one)")
    return bind
