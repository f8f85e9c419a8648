"""Uploading a lead pack: every row ends up either a lead or a reject with a reason, never dropped.

One database transaction per upload: a crash or a bad row that stops the file (a broken
quote) leaves nothing half-loaded, and the same file can simply be uploaded again.
Rows are checked in chunks so a million-row file needs neither a million-entry set in
memory nor a query per row; duplicates within the file are found against the rows the
earlier chunks already inserted.
"""
from __future__ import annotations

import getpass
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from bot.audiences.models import AudiencePack
from bot.audiences.service import guess_scene
from bot.db.base import utc_now
from bot.db.bulk import bulk_insert
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import active_hashes
from bot.errors import UserError
from bot.leads.lead_pack import ColumnMap, FileFacts, inspect_file, map_columns, open_rows
from bot.leads.models import Lead, LeadPack, LeadReject
from bot.leads.phone import LANDLINE, Phone, normalise_phone
from bot.pii import PhoneKeyring, mask_digit_runs, mask_phone

CHUNK_ROWS = 5000
_JSON = json.JSONEncoder(ensure_ascii=False).encode
CONSENT_TIMEZONE = ZoneInfo("Asia/Shanghai")  # consent times without a zone are Beijing time
MAX_NAME = 100
MAX_TEXT = 200

LEAD_COLUMNS = ("pack_id", "audience_id", "row_number", "phone_ciphertext", "phone_hash", "phone_masked",
                "line_type", "name", "gender", "consent_source", "consent_at", "consent_scope", "custom_fields",
                "status", "created_at")
REJECT_COLUMNS = ("pack_id", "row_number", "reason", "message", "phone_hash", "raw_masked", "raw_ciphertext")

_GENDERS = {"男": "M", "男性": "M", "先生": "M", "m": "M", "male": "M", "女": "F", "女性": "F", "女士": "F",
            "f": "F", "female": "F"}


@dataclass(frozen=True)
class UploadRequest:
    path: Path
    pack_name: str
    audience: str | None = None
    column_overrides: dict[str, str] = field(default_factory=dict)
    first_party: bool = False
    consent_basis: str | None = None
    sheet: str | None = None
    uploaded_by: str = field(default_factory=lambda: _current_user())


@dataclass
class UploadSummary:
    pack: str
    file: str
    file_format: str
    rows: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    dnc: int = 0
    landlines: int = 0
    blank_rows: int = 0
    already_uploaded: bool = False
    audiences_created: list[str] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_json(self) -> dict:
        return {"pack": self.pack, "file": self.file, "format": self.file_format, "rows": self.rows,
                "accepted": self.accepted, "rejected": dict(sorted(self.rejected.items())),
                "rejected_total": self.rejected_total, "duplicates": self.duplicates, "dnc": self.dnc,
                "landlines": self.landlines, "blank_rows": self.blank_rows, "already_uploaded": self.already_uploaded,
                "audiences_created": self.audiences_created, "columns": self.columns, "notes": self.notes}


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def upload_lead_pack(engine: Engine, keyring: PhoneKeyring, request: UploadRequest, *,
                     now: datetime | None = None,
                     on_progress: Callable[[int], None] | None = None,
                     on_start: Callable[[FileFacts], None] | None = None) -> UploadSummary:
    now = now or utc_now()
    _check_request(request)
    facts = inspect_file(request.path)
    with engine.connect() as conn:
        previous = _pack_by_sha(conn, facts.sha256)
        if previous is not None:
            return _summary_of(previous, facts, already_uploaded=True)
        if conn.execute(select(LeadPack.id).where(LeadPack.name == request.pack_name)).first():
            raise UserError(f"a lead pack named {request.pack_name!r} already exists (from another file); "
                            "choose another --pack name")
    if on_start is not None:
        on_start(facts)
    header, rows, notes = open_rows(facts, sheet=request.sheet, on_progress=on_progress)
    columns = map_columns(request.path, header, request.column_overrides)
    summary = UploadSummary(request.pack_name, str(request.path), facts.format_label,
                            columns=columns.describe(), notes=notes)
    with engine.begin() as conn:
        _tune_for_bulk_load(conn)
        session = Session(bind=conn, future=True)
        audiences = AudienceResolver(session)
        default_audience = audiences.resolve(request.audience) if request.audience else None
        pack = LeadPack(name=request.pack_name, file_name=request.path.name, file_sha256=facts.sha256,
                        file_format=facts.format_label, audience_id=default_audience,
                        first_party=int(request.first_party), consent_basis=request.consent_basis,
                        column_map={"fields": columns.describe(), "header": columns.header}, uploaded_by=request.uploaded_by, uploaded_at=now)
        session.add(pack)
        session.flush()
        checker = RowChecker(columns, keyring, request, audiences, default_audience, now)
        loader = ChunkLoader(conn, session, keyring, pack.id, now, summary)
        chunk: list = []
        for row_number, cells in rows:
            if not any(cell is not None and (not isinstance(cell, str) or cell.strip()) for cell in cells):
                summary.blank_rows += 1
                continue
            summary.rows += 1
            chunk.append(checker.check(row_number, cells))
            if len(chunk) >= CHUNK_ROWS:
                loader.load(chunk)
                chunk = []
        loader.load(chunk)
        if summary.rows == 0:
            raise UserError(f"{request.path}: has a header row but no data rows; nothing to upload")
        summary.audiences_created = audiences.created
        pack.rows, pack.accepted = summary.rows, summary.accepted
        pack.rejected, pack.duplicates, pack.dnc_hits = summary.rejected_total, summary.duplicates, summary.dnc
        pack.rejected_by_reason = dict(summary.rejected)
        session.flush()
        session.close()
    return summary


def _tune_for_bulk_load(conn: Connection) -> None:
    """Settings for this one transaction that keep a million-row upload linear."""
    if conn.dialect.name == "postgresql":
        # The leads table grows inside this transaction, unseen by the planner's statistics; without
        # this, the per-chunk duplicate lookups turn into sequential scans (quadratic in file size).
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")


def _check_request(request: UploadRequest) -> None:
    if not request.pack_name.strip():
        raise UserError("--pack needs a name for this lead pack")
    if len(request.pack_name) > 200:
        raise UserError("--pack name is longer than 200 characters")
    if request.first_party and not (request.consent_basis or "").strip():
        raise UserError("--first-party needs --consent-basis: say how these people agreed to be called "
                        "(e.g. \"官网留资表单勾选授权 v3\")")
    if request.consent_basis and not request.first_party:
        raise UserError("--consent-basis only applies with --first-party (partner packs need a consent "
                        "time per row)")


def _pack_by_sha(conn: Connection, sha256: str) -> LeadPack | None:
    session = Session(bind=conn, future=True)
    try:
        return session.execute(select(LeadPack).where(LeadPack.file_sha256 == sha256)).scalar_one_or_none()
    finally:
        session.close()


def _summary_of(pack: LeadPack, facts: FileFacts, *, already_uploaded: bool) -> UploadSummary:
    return UploadSummary(pack.name, str(facts.path), pack.file_format, rows=pack.rows, accepted=pack.accepted,
                         rejected=dict(pack.rejected_by_reason or {}), duplicates=pack.duplicates, dnc=pack.dnc_hits,
                         already_uploaded=already_uploaded, columns=dict((pack.column_map or {}).get("fields", {})),
                         notes=[f"this file (sha256 {facts.sha256[:12]}…) was already uploaded as pack {pack.name!r} "
                                f"on {pack.uploaded_at:%Y-%m-%d %H:%M} UTC; nothing was changed"])


class AudienceResolver:
    """Audience pack name → id, creating packs named in the file (scene guessed from the name)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.ids: dict[str, int] = {}
        self.created: list[str] = []

    def resolve(self, name: str) -> int:
        name = name.strip()
        if name not in self.ids:
            found = self.session.execute(select(AudiencePack.id).where(AudiencePack.name == name)).scalar()
            if found is None:
                pack = AudiencePack(name=name[:100], scene=guess_scene(name), attributes={})
                self.session.add(pack)
                self.session.flush()
                found = pack.id
                self.created.append(name)
            self.ids[name] = found
        return self.ids[name]


@dataclass(slots=True)
class CheckedRow:
    row_number: int
    cells: list
    lead: tuple | None = None         # LEAD_COLUMNS minus pack_id, when the row passed the per-row checks
    phone: str | None = None
    phone_hash: str | None = None
    reason: str | None = None
    message: str | None = None


class RowChecker:
    """Per-row checks that need no database: shape, phone, consent, fields."""

    def __init__(self, columns: ColumnMap, keyring: PhoneKeyring, request: UploadRequest,
                 audiences: AudienceResolver, default_audience: int | None, now: datetime) -> None:
        self.width = len(columns.header)
        self.fields = columns.fields
        self.custom = list(columns.custom.items())
        self.keyring = keyring
        self.request = request
        self.audiences = audiences
        self.default_audience = default_audience
        self.now = now
        self.phone_index = columns.fields["phone"]

    def cell(self, cells: list, name: str) -> object:
        index = self.fields.get(name)
        if index is None or index >= len(cells):
            return None
        value = cells[index]
        if value == "":
            return None
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    def check(self, row_number: int, cells: list) -> CheckedRow:
        row = CheckedRow(row_number, cells)
        if len(cells) > self.width and any(_filled(c) for c in cells[self.width:]):
            return _reject(row, "extra_cells", f"{len(cells)} cells but the header has {self.width} columns "
                                               "(an unquoted comma or tab inside a value?); quote that value")
        raw_phone = cells[self.phone_index] if self.phone_index < len(cells) else None
        phone = normalise_phone(raw_phone)
        if not isinstance(phone, Phone):
            shown = mask_digit_runs(str(raw_phone)) if raw_phone not in (None, "") else "empty"
            return _reject(row, phone.reason, f"phone ({shown}): {phone.message}")
        row.phone = phone.number
        row.phone_hash = self.keyring.hash_phone(phone.number)
        consent = self._consent(row, cells)
        if consent is None:
            return row
        consent_source, consent_at, consent_scope = consent
        name = self.cell(cells, "name")
        gender_raw = self.cell(cells, "gender")
        gender = _GENDERS.get(str(gender_raw).strip().lower()) if gender_raw is not None else None
        custom = {label: _jsonable(cells[i]) for i, label in self.custom
                  if i < len(cells) and cells[i] not in ("", None) and _filled(cells[i])}
        if gender_raw is not None and gender is None:
            custom["性别(原值)"] = str(gender_raw)  # kept, not guessed
        name_text = str(name) if name is not None else None
        if name_text is not None and len(name_text) > MAX_NAME:
            custom["name_full"], name_text = name_text, name_text[:MAX_NAME]
        audience_name = self.cell(cells, "audience")
        audience_id = self.audiences.resolve(str(audience_name)) if audience_name else self.default_audience
        row.lead = (audience_id, row_number, self.keyring.encrypt_phone(phone.number), row.phone_hash,
                    mask_phone(phone.number), phone.line_type, name_text, gender, consent_source, consent_at,
                    consent_scope, custom, "new", self.now)
        return row

    def _consent(self, row: CheckedRow, cells: list) -> tuple | None:
        raw_at = self.cell(cells, "consent_at")
        source = _text(self.cell(cells, "consent_source"))
        scope = _text(self.cell(cells, "consent_scope"))
        if raw_at is not None:
            consent_at = parse_consent_time(raw_at)
            if consent_at is None:
                _reject(row, "consent_invalid", f"consent time {mask_digit_runs(str(raw_at))!r} is not a date/time; "
                                                "write it like 2024-05-01 10:30")
                return None
            if consent_at > self.now + timedelta(days=1):
                _reject(row, "consent_invalid", f"consent time {consent_at:%Y-%m-%d %H:%M} UTC is in the future")
                return None
            return source, consent_at, scope
        if self.request.first_party:
            return source or "first_party", None, scope or _text(self.request.consent_basis)
        _reject(row, "consent_missing", "no consent time for this person; partner packs need a consent record "
                                        "per row (同意时间/consent_at), or upload with --first-party "
                                        "--consent-basis if the leads are your own")
        return None


def _filled(cell: object) -> bool:
    return cell is not None and (not isinstance(cell, str) or cell.strip() != "")


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:MAX_TEXT]


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _reject(row: CheckedRow, reason: str, message: str) -> CheckedRow:
    row.lead, row.reason, row.message = None, reason, message
    return row


_CONSENT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
                    "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y%m%d%H%M%S")
_CHINESE_DATE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日\s*(?:(\d{1,2})[:：时](\d{1,2})分?)?$")


def parse_consent_time(value: object) -> datetime | None:
    """Consent times as exports write them; no zone means Beijing time. None if unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 20000 < value < 80000:  # an Excel serial date (days since 1899-12-30)
            return None
        moment = datetime(1899, 12, 30) + timedelta(days=float(value))
    else:
        text = str(value).strip().replace("T", " ")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = _parse_text_time(text)
        if moment is None:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CONSENT_TIMEZONE)
    return moment.astimezone(timezone.utc)


def _parse_text_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in _CONSENT_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    match = _CHINESE_DATE.match(text)
    if match:
        year, month, day, hour, minute = (int(g) if g else 0 for g in match.groups())
        try:
            return datetime(year, month, day, hour, minute)
        except ValueError:
            return None
    return None


class ChunkLoader:
    """Dedupe and DNC-scrub a chunk against the database, then insert its leads and rejects."""

    def __init__(self, conn: Connection, session: Session, keyring: PhoneKeyring, pack_id: int, now: datetime,
                 summary: UploadSummary) -> None:
        self.conn, self.session, self.keyring = conn, session, keyring
        self.pack_id, self.now, self.summary = pack_id, now, summary
        self.reasons: Counter[str] = Counter()

    def load(self, chunk: list[CheckedRow]) -> None:
        if not chunk:
            return
        hashes = list({row.phone_hash for row in chunk if row.lead is not None})
        stored = self._stored(hashes)
        on_dnc = active_hashes(self.session, hashes, self.now)
        seen_in_chunk: dict[str, int] = {}
        leads, rejects = [], []
        for row in chunk:
            if row.lead is not None:
                self._dedupe_and_scrub(row, stored, on_dnc, seen_in_chunk)
            if row.lead is not None:
                leads.append((self.pack_id, *row.lead))
                seen_in_chunk[row.phone_hash] = row.row_number
                if row.lead[5] == LANDLINE:
                    self.summary.landlines += 1
            else:
                rejects.append(self._reject_row(row))
                self.reasons[row.reason] += 1
        self.session.flush()
        bulk_insert(self.conn, Lead.__table__, LEAD_COLUMNS, leads)
        bulk_insert(self.conn, LeadReject.__table__, REJECT_COLUMNS, rejects)
        self.summary.accepted += len(leads)
        self.summary.rejected = dict(self.reasons)
        self.summary.duplicates = self.reasons["duplicate_in_file"] + self.reasons["duplicate_existing"]
        self.summary.dnc = self.reasons["dnc_opt_out"] + self.reasons["dnc_soft_decline"]

    def _stored(self, hashes: list[str]) -> dict[str, tuple[int, int, str]]:
        if not hashes:
            return {}
        rows = self.conn.execute(select(Lead.phone_hash, Lead.pack_id, Lead.row_number, LeadPack.name)
                                 .join(LeadPack, LeadPack.id == Lead.pack_id)
                                 .where(Lead.phone_hash.in_(hashes)))
        return {phone_hash: (pack_id, row_number, name) for phone_hash, pack_id, row_number, name in rows}

    def _dedupe_and_scrub(self, row: CheckedRow, stored: dict, on_dnc: dict, seen_in_chunk: dict) -> None:
        phone_hash = row.phone_hash
        if phone_hash not in on_dnc and phone_hash not in seen_in_chunk and phone_hash not in stored:
            return  # the common case: a new number
        masked = mask_phone(row.phone)
        entry = on_dnc.get(row.phone_hash)
        if entry is not None:
            if entry.scope == SCOPE_OPT_OUT:
                _reject(row, "dnc_opt_out", f"{masked} opted out of calls (do-not-call, {entry.source})")
            else:
                _reject(row, "dnc_soft_decline", f"{masked} declined recently; on the do-not-call list until "
                                                 f"{entry.expires_at:%Y-%m-%d}")
            return
        if row.phone_hash in seen_in_chunk:
            _reject(row, "duplicate_in_file", f"{masked} already appears in row {seen_in_chunk[row.phone_hash]}")
            return
        previous = stored.get(row.phone_hash)
        if previous is not None:
            pack_id, row_number, pack_name = previous
            if pack_id == self.pack_id:
                _reject(row, "duplicate_in_file", f"{masked} already appears in row {row_number}")
            else:
                _reject(row, "duplicate_existing", f"{masked} is already a lead (pack {pack_name!r}, row {row_number})")

    def _reject_row(self, row: CheckedRow) -> tuple:
        raw = _JSON([_jsonable(c) for c in row.cells])
        masked = _JSON([mask_digit_runs(str(c)) if c is not None else None for c in row.cells])
        return (self.pack_id, row.row_number, row.reason, row.message, row.phone_hash, masked,
                self.keyring.encrypt_text(raw))


# ---- reading back, exporting, forgetting ------------------------------------------------------------

def get_pack(session: Session, name: str) -> LeadPack:
    pack = session.execute(select(LeadPack).where(LeadPack.name == name)).scalar_one_or_none()
    if pack is None:
        known = session.execute(select(LeadPack.name).order_by(LeadPack.uploaded_at.desc()).limit(10)).scalars().all()
        raise UserError(f"no lead pack named {name!r}",
                        details=[f"recent packs: {', '.join(known)}" if known else "no packs uploaded yet"])
    return pack


def iter_rejects(session: Session, pack: LeadPack, batch: int = 5000) -> Iterable[LeadReject]:
    last_id = 0
    while True:
        rows = session.execute(select(LeadReject).where(LeadReject.pack_id == pack.id, LeadReject.id > last_id)
                               .order_by(LeadReject.id).limit(batch)).scalars().all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()


@dataclass(frozen=True)
class ForgetResult:
    masked_phone: str
    leads: int
    rejects: int
    dnc_kept: bool


def forget_phone(session: Session, keyring: PhoneKeyring, raw_phone: str) -> ForgetResult:
    """PIPL erasure: the person's leads and rejected rows go; a DNC hash stays (it holds no number)."""
    from bot.dnc.models import DoNotCall
    from bot.dnc.service import parse_phone_or_fail

    phone = parse_phone_or_fail(raw_phone)
    phone_hash = keyring.hash_phone(phone.number)
    leads = session.execute(delete(Lead).where(Lead.phone_hash == phone_hash)).rowcount or 0
    rejects = session.execute(delete(LeadReject).where(LeadReject.phone_hash == phone_hash)).rowcount or 0
    dnc_kept = session.execute(select(DoNotCall.id).where(DoNotCall.phone_hash == phone_hash)).first() is not None
    return ForgetResult(mask_phone(phone.number), leads, rejects, dnc_kept)
