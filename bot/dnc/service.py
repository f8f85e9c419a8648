"""Do-not-call: add, remove, import and check, by keyed phone hash.

`dnc_state()` is the one function the dial path calls right before every dial; its answer
(plain data) goes into the compliance eligibility check together with the call history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy.orm import Session

from bot.core.db.base import utc_now
from bot.core.db.bulk import matches_any
from bot.core.errors import UserError
from bot.core.keys import require_key_matches
from bot.core.phone import Phone, normalise_phone
from bot.core.pii import PhoneKeyring, mask_phone
from bot.core.tabular_file import inspect_file, map_columns, open_rows, shown
from bot.dnc.models import SCOPE_OPT_OUT, SCOPE_SOFT_DECLINE, SCOPES, DoNotCall
from telephony.compliance.eligibility import DncState

IMPORT_CHUNK = 500  # hashes per lookup: well inside SQLite's bound-variable limit
SOFT_DECLINE_DAYS = 180  # 人身保险电话销售业务管理办法 Art 25: at least six months after a refusal


@dataclass(frozen=True)
class DncEntry:
    scope: str
    reason: str
    source: str
    created_at: datetime
    expires_at: datetime | None


def parse_phone_or_fail(raw: str) -> Phone:
    phone = normalise_phone(raw)
    if not isinstance(phone, Phone):
        raise UserError(f"{shown(raw)}: {phone.message}")
    return phone


def active_entries(session: Session, phone_hash: str, now: datetime | None = None) -> list[DncEntry]:
    now = now or utc_now()
    rows = (
        session.execute(
            select(DoNotCall).where(
                DoNotCall.phone_hash == phone_hash, or_(DoNotCall.expires_at.is_(None), DoNotCall.expires_at > now)
            )
        )
        .scalars()
        .all()
    )
    return [DncEntry(r.scope, r.reason, r.source, r.created_at, r.expires_at) for r in rows]


def dnc_state(session: Session, phone_hash: str, now: datetime | None = None) -> DncState:
    """Right before a dial: is this number on the list, and until when."""
    return state_from_entries(active_entries(session, phone_hash, now))


def state_from_entries(entries: Iterable[DncEntry]) -> DncState:
    opt_out = False
    soft_until: datetime | None = None
    for entry in entries:
        if entry.scope == SCOPE_OPT_OUT:
            opt_out = True
        elif entry.expires_at is not None and (soft_until is None or entry.expires_at > soft_until):
            soft_until = entry.expires_at
    return DncState(opt_out=opt_out, soft_until=soft_until)


def active_hashes(session: Session, phone_hashes: Sequence[str], now: datetime) -> dict[str, DncEntry]:
    """For an upload chunk: which of these hashes are on the list now (opt-out wins over soft)."""
    found: dict[str, DncEntry] = {}
    if not phone_hashes:
        return found
    rows = session.execute(
        select(
            DoNotCall.phone_hash,
            DoNotCall.scope,
            DoNotCall.reason,
            DoNotCall.source,
            DoNotCall.created_at,
            DoNotCall.expires_at,
        ).where(
            matches_any(DoNotCall.phone_hash, phone_hashes, session.get_bind().dialect.name),
            or_(DoNotCall.expires_at.is_(None), DoNotCall.expires_at > now),
        )
    )
    for phone_hash, scope, reason, source, created_at, expires_at in rows:
        if phone_hash in found and found[phone_hash].scope == SCOPE_OPT_OUT:
            continue
        found[phone_hash] = DncEntry(scope, reason, source, created_at, expires_at)
    return found


def listed_hashes(session: Session, phone_hashes: list[str], now: datetime) -> dict[str, DncEntry]:
    """`active_hashes` for thousands of hashes at once (an upload chunk), where nearly none are listed:
    one bare index probe through the driver first, full entries only for the few that hit."""
    if not phone_hashes:
        return {}
    conn = session.connection()
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute("SELECT DISTINCT phone_hash FROM do_not_call WHERE phone_hash = ANY(%s)", (phone_hashes,))
        else:
            cursor.execute(
                f"SELECT DISTINCT phone_hash FROM do_not_call WHERE phone_hash IN "
                f"({', '.join('?' * len(phone_hashes))})",
                phone_hashes,
            )
        hits = [phone_hash for (phone_hash,) in cursor.fetchall()]
    finally:
        cursor.close()
    return active_hashes(session, hits, now) if hits else {}


def add_entry(
    session: Session,
    phone_hash: str,
    *,
    scope: str,
    reason: str,
    source: str,
    expires_at: datetime | None = None,
    source_call_id: int | None = None,
    now: datetime | None = None,
) -> DoNotCall:
    """Add or extend an entry. A soft decline's expiry only ever moves later."""
    now = now or utc_now()
    _check_scope(scope)
    if scope == SCOPE_OPT_OUT:
        expires_at = None
    elif expires_at is None:
        expires_at = now + timedelta(days=SOFT_DECLINE_DAYS)
    elif expires_at <= now:
        raise UserError(f"the expiry {expires_at.isoformat()} is in the past; a soft decline must end in the future")
    existing = session.execute(
        select(DoNotCall).where(DoNotCall.phone_hash == phone_hash, DoNotCall.scope == scope)
    ).scalar_one_or_none()
    if existing is None:
        existing = DoNotCall(
            phone_hash=phone_hash,
            scope=scope,
            reason=reason,
            source=source,
            source_call_id=source_call_id,
            created_at=now,
            expires_at=expires_at,
        )
        session.add(existing)
    else:
        existing.reason, existing.source = reason or existing.reason, source or existing.source
        if existing.expires_at is not None and (expires_at is None or expires_at > existing.expires_at):
            existing.expires_at = expires_at
    session.flush()
    return existing


def remove_entries(session: Session, phone_hash: str, scope: str | None = None) -> int:
    if scope is not None:
        _check_scope(scope)
    condition = DoNotCall.phone_hash == phone_hash
    if scope is not None:
        condition = and_(condition, DoNotCall.scope == scope)
    return session.execute(delete(DoNotCall).where(condition)).rowcount or 0


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise UserError(f"unknown DNC scope {scope!r}; scopes are: {', '.join(SCOPES)}")


@dataclass
class ImportSummary:
    rows: int = 0
    added: int = 0  # distinct valid numbers now on the list (new or extended)
    invalid: list[str] = field(default_factory=list)
    already_listed: int = 0  # of those, already on the list in this scope


def import_file(
    session: Session,
    keyring: PhoneKeyring,
    path: Path,
    *,
    scope: str,
    reason: str,
    source: str,
    column: str | None = None,
    now: datetime | None = None,
) -> ImportSummary:
    """A DNC list from a partner or a complaint desk: one phone per row (CSV/TSV/XLSX)."""
    _check_scope(scope)
    # With another key the list would hold hashes that match no call: a silent no-op.
    require_key_matches(session, keyring, lock=True)
    now = now or utc_now()
    facts = inspect_file(path)
    header, rows, _notes = open_rows(facts)
    # A bare list of numbers has no header: its first row is itself a number.
    if isinstance(normalise_phone(header[0] if header else None), Phone) and column is None:
        phone_index, first = 0, [(1, header)]
    else:
        phone_index = map_columns(path, header, {"phone": column} if column else {}).fields["phone"]
        first = []
    summary = ImportSummary(invalid=[])
    seen: set[str] = set()
    pending: list[str] = []
    expires_at = None if scope == SCOPE_OPT_OUT else now + timedelta(days=SOFT_DECLINE_DAYS)
    for row_number, cells in [*first, *rows]:
        if not any(c not in (None, "") for c in cells):
            continue
        summary.rows += 1
        cell = cells[phone_index] if phone_index < len(cells) else None
        phone = normalise_phone(cell)
        if not isinstance(phone, Phone):
            summary.invalid.append(f"row {row_number}: {shown(cell or '')} — {phone.message}")
            continue
        phone_hash = keyring.hash_phone(phone.number)
        if phone_hash in seen:
            continue
        seen.add(phone_hash)
        pending.append(phone_hash)
        if len(pending) >= IMPORT_CHUNK:
            summary.already_listed += add_entries(
                session, pending, scope=scope, reason=reason, source=source, expires_at=expires_at, now=now
            )
            pending.clear()
    summary.already_listed += add_entries(
        session, pending, scope=scope, reason=reason, source=source, expires_at=expires_at, now=now
    )
    summary.added = len(seen)
    return summary


def add_entries(
    session: Session,
    phone_hashes: list[str],
    *,
    scope: str,
    reason: str,
    source: str,
    expires_at: datetime | None,
    now: datetime,
) -> int:
    """`add_entry` for a chunk of distinct hashes in two statements plus the extensions (an
    import of 100,000 numbers took one SELECT and one INSERT per number). Returns how many
    were already listed in this scope."""
    if not phone_hashes:
        return 0
    existing = (
        session.execute(
            select(DoNotCall).where(
                matches_any(DoNotCall.phone_hash, phone_hashes, session.get_bind().dialect.name),
                DoNotCall.scope == scope,
            )
        )
        .scalars()
        .all()
    )
    for entry in existing:
        entry.reason, entry.source = reason or entry.reason, source or entry.source
        if entry.expires_at is not None and (expires_at is None or expires_at > entry.expires_at):
            entry.expires_at = expires_at
    listed = {entry.phone_hash for entry in existing}
    new = [
        {
            "phone_hash": h,
            "scope": scope,
            "reason": reason,
            "source": source,
            "created_at": now,
            "expires_at": expires_at,
        }
        for h in phone_hashes
        if h not in listed
    ]
    if new:
        session.execute(insert(DoNotCall), new)
    session.flush()
    return len(listed)


def describe(entry: DncEntry) -> str:
    until = "permanent" if entry.expires_at is None else f"until {entry.expires_at:%Y-%m-%d %H:%M} UTC"
    return f"{entry.scope} ({until}; reason: {entry.reason or '-'}; source: {entry.source})"


__all__ = [
    "SCOPE_OPT_OUT",
    "SCOPE_SOFT_DECLINE",
    "dnc_state",
    "active_hashes",
    "listed_hashes",
    "add_entry",
    "remove_entries",
    "import_file",
    "parse_phone_or_fail",
    "mask_phone",
]
