"""Uploading a lead pack: every row ends up either a lead or a reject with a reason, never dropped.

One database transaction per upload: a crash or a bad row that stops the file (a broken
quote) leaves nothing half-loaded, and the same file can simply be uploaded again.
Rows are checked in chunks so a million-row file needs neither a million-entry set in
memory nor a query per row; duplicates within the file are found against the rows the
earlier chunks already inserted.

Two threads share the work: one reads and checks rows (decode, normalise, hash, encrypt,
encode for the driver) while the other dedupes, scrubs and writes the previous chunk. The
database's own work (index upkeep, COPY parsing, SQLite's B-tree) runs with the GIL released,
so on two cores it overlaps the Python checks instead of following them.
"""

from __future__ import annotations

import getpass
import json
import queue
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from json.encoder import encode_basestring as _json_string
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from bot.audiences.models import AudiencePack
from bot.audiences.service import guess_scene
from bot.core.db.base import utc_now
from bot.core.db.bulk import (
    COPY_NULL,
    bulk_insert,
    copy_bytea,
    copy_datetime,
    copy_text,
    insert_encoded,
    json_text,
    sqlite_datetime,
)
from bot.core.errors import UserError
from bot.core.keys import require_key_matches
from bot.core.phone import LANDLINE, Phone, PhoneProblem, normalise_phone
from bot.core.pii import PhoneKeyring, mask_digit_runs, mask_phone
from bot.core.region import Region, resolve_region
from bot.core.tabular_file import (
    FIRST_PARTY_TIME_HEADERS,
    LEAD_LEFT_TIME_HEADERS,
    ColumnMap,
    FileFacts,
    RowStream,
    header_key,
    inspect_file,
    map_columns,
    open_rows,
    shown,
)
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import listed_hashes
from bot.leads.models import Lead, LeadPack, LeadReject
from bot.leads.upload_hints import FixHint, fix_hints

CHUNK_ROWS = 5000
CHUNKS_AHEAD = 2  # checked chunks waiting for the writer: bounds memory, keeps both threads busy
_JSON = json.JSONEncoder(ensure_ascii=False).encode
CONSENT_TIMEZONE = ZoneInfo("Asia/Shanghai")  # consent times without a zone are Beijing time
MAX_NAME = 100
MAX_TEXT = 200

LEAD_COLUMNS = (
    "pack_id",
    "audience_id",
    "row_number",
    "phone_ciphertext",
    "phone_hash",
    "phone_masked",
    "line_type",
    "name",
    "gender",
    "consent_source",
    "consent_at",
    "consent_scope",
    "custom_fields",
    "status",
    "created_at",
    "lead_left_at",
    "province",
    "city",
    "timezone",
    "region_source",
)
REJECT_COLUMNS = ("pack_id", "row_number", "reason", "message", "phone_hash", "raw_masked", "raw_ciphertext")

_GENDERS = {
    "男": "M",
    "男性": "M",
    "先生": "M",
    "m": "M",
    "male": "M",
    "女": "F",
    "女性": "F",
    "女士": "F",
    "f": "F",
    "female": "F",
}


# A yes/no consent column (授权同意, 是否授权): the answers exports write, folded by `_flag_key`.
CONSENT_YES = ("是", "是的", "已授权", "授权", "同意", "已同意", "允许", "有", "y", "yes", "true", "1", "√", "✓", "✔")
CONSENT_NO = (
    "否",
    "未授权",
    "不授权",
    "不同意",
    "未同意",
    "拒绝",
    "不允许",
    "没有",
    "无",
    "n",
    "no",
    "false",
    "0",
    "×",
    "✗",
    "✘",
)
LEAD_FORM_SOURCE = "first_party"


def _flag_key(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


_CONSENT_FLAGS = {**{_flag_key(v): True for v in CONSENT_YES}, **{_flag_key(v): False for v in CONSENT_NO}}


def consent_flag(value: object) -> bool | None:
    """是/已授权/同意/yes/1 → True, 否/未授权/不同意/no/0 → False, anything else None."""
    return _CONSENT_FLAGS.get(_flag_key(value))


def is_lead_form_time(columns: ColumnMap) -> bool:
    """Whether the consent time column is a 留资时间: when the person left their number on our own form."""
    index = columns.fields.get("consent_at")
    if index is None:
        return False
    return header_key(columns.header[index]) in {header_key(name) for name in FIRST_PARTY_TIME_HEADERS}


def is_lead_left_time(columns: ColumnMap) -> bool:
    """Whether the consent time column is also when the person left their number (留资/注册/提交/授权时间)."""
    index = columns.fields.get("consent_at")
    if index is None:
        return False
    return header_key(columns.header[index]) in {header_key(name) for name in LEAD_LEFT_TIME_HEADERS}


class PackNameTaken(UserError):
    """Another file was uploaded under this pack name (and this upload does not --replace it)."""

    def __init__(self, pack: str, message: str) -> None:
        super().__init__(message)
        self.pack = pack


class ReplaceAmbiguous(UserError):
    """--replace: the file was uploaded as one pack, and another pack has the name given."""

    def __init__(self, file_pack: str, named_pack: str, message: str) -> None:
        super().__init__(message)
        self.file_pack, self.named_pack = file_pack, named_pack


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
    # Replace the earlier pack of the same file or name (only while none of its leads was dialled).
    replace: bool = False


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
    header: list[str] = field(default_factory=list)
    replaced: str | None = None  # the earlier pack this upload replaced (--replace)
    hints: list[FixHint] = field(default_factory=list)
    # Rows whose city/province column named no place the geocoder knows: their region came
    # from the number instead, and the column's text is kept in custom_fields (城市(原值)).
    region_unrecognised: int = 0
    region_unrecognised_rows: list[int] = field(default_factory=list)  # the first few row numbers

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_json(self) -> dict:
        return {
            "pack": self.pack,
            "file": self.file,
            "format": self.file_format,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": self.rejected_total,
            "duplicates": self.duplicates,
            "dnc": self.dnc,
            "landlines": self.landlines,
            "blank_rows": self.blank_rows,
            "already_uploaded": self.already_uploaded,
            "audiences_created": self.audiences_created,
            "columns": self.columns,
            "notes": self.notes,
            "replaced": self.replaced,
            "hints": [hint.as_json() for hint in self.hints],
            "region_unrecognised": self.region_unrecognised,
            "region_unrecognised_rows": self.region_unrecognised_rows,
        }

    def add_hints(self) -> None:
        """What to do when most rows failed for one reason (the flag, the header names it accepts)."""
        self.hints = fix_hints(self.rejected, self.rows, self.columns, self.header)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


# Given the earlier pack a --replace upload is about to delete (in the upload's transaction): raises
# UserError if it may not be replaced (a lead of it was dialled), else returns what to do with the new
# pack's id once it exists (e.g. put it into the campaigns the earlier one was in). bot.campaigns has it.
ReplaceGuard = Callable[[Session, LeadPack], Callable[[Session, int], None]]


def upload_lead_pack(
    engine: Engine,
    keyring: PhoneKeyring,
    request: UploadRequest,
    *,
    now: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_start: Callable[[FileFacts], None] | None = None,
    replace_guard: ReplaceGuard | None = None,
) -> UploadSummary:
    """Upload one file as a lead pack. With `request.replace`, the earlier pack of the same file or
    name is deleted (its leads and kept rejects) in the same transaction, once `replace_guard` allows it."""
    now = now or utc_now()
    _check_request(request)
    if request.replace and replace_guard is None:
        raise ValueError("a --replace upload needs the replace_guard (bot.campaigns.pack_removal)")
    switch_interval = sys.getswitchinterval()
    try:
        # Two threads share the upload (see the module docstring); the database thread waits on the
        # database with the GIL released and, by default, then up to 5 ms to get it back from the checking
        # thread — a few times per chunk, seconds per million rows. 0.5 ms keeps it close behind.
        sys.setswitchinterval(min(switch_interval, 0.0005))
        return _upload(engine, keyring, request, now, on_progress, on_start, replace_guard)
    finally:
        sys.setswitchinterval(switch_interval)


def _upload(
    engine: Engine,
    keyring: PhoneKeyring,
    request: UploadRequest,
    now: datetime,
    on_progress: Callable[[int], None] | None,
    on_start: Callable[[FileFacts], None] | None,
    replace_guard: ReplaceGuard | None,
) -> UploadSummary:
    # Another key's hashes match nothing stored: every duplicate and do-not-call number would pass.
    require_key_matches(engine, keyring)
    facts = inspect_file(request.path)
    with engine.connect() as conn:
        previous = _pack_by_sha(conn, facts.sha256)
        same_name = conn.execute(select(LeadPack.id).where(LeadPack.name == request.pack_name)).scalar()
        if not request.replace:
            if previous is not None:
                return _summary_of(previous, facts, already_uploaded=True)
            if same_name is not None:
                raise PackNameTaken(
                    request.pack_name,
                    f"a lead pack named {request.pack_name!r} already exists (from another file); "
                    "choose another --pack name, or add --replace to replace that pack with this file "
                    "(allowed while none of its leads was dialled)",
                )
        elif previous is not None and same_name is not None and previous.id != same_name:
            raise ReplaceAmbiguous(
                previous.name,
                request.pack_name,
                f"--replace: this file was uploaded as pack {previous.name!r}, and another pack is named "
                f"{request.pack_name!r}; replace one at a time: --pack {previous.name!r} replaces the upload "
                f"of this file, or delete the other first (waihu leads delete-pack {request.pack_name!r})",
            )
    to_replace = previous.id if previous is not None else same_name
    if on_start is not None:
        on_start(facts)
    header, rows, notes = open_rows(facts, sheet=request.sheet, on_progress=on_progress)
    columns = map_columns(request.path, header, request.column_overrides)
    summary = UploadSummary(
        request.pack_name,
        str(request.path),
        facts.format_label,
        columns=columns.describe(),
        notes=notes,
        header=[mask_digit_runs(h) for h in columns.header],
    )
    lead_form = is_lead_form_time(columns)
    if lead_form and not request.first_party:
        summary.notes.append(
            f"column {columns.describe()['consent_at']} is the time each person left their number on your own "
            "form (留资): taken as a first-party consent record with that time"
        )
    if request.replace and to_replace is None:
        summary.notes.append(f"--replace: no earlier pack of this file or named {request.pack_name!r}; uploaded as new")
    with engine.connect() as conn, _bulk_load_settings(conn), conn.begin():
        # Again inside the transaction, holding the fingerprint: a key rotation cannot commit under it.
        require_key_matches(conn, keyring, lock=True)
        _tune_transaction_for_bulk_load(conn)
        session = Session(bind=conn, future=True)
        after_replace: Callable[[Session, int], None] | None = None
        if request.replace and to_replace is not None:
            old = session.execute(
                select(LeadPack).where(LeadPack.id == to_replace).with_for_update()
            ).scalar_one_or_none()
            if old is not None:
                after_replace = cast(ReplaceGuard, replace_guard)(session, old)
                summary.replaced = old.name
                leads_gone, rejects_gone = delete_pack_records(session, old)
                summary.notes.append(
                    f"replaced pack {old.name!r} (uploaded {old.uploaded_at:%Y-%m-%d %H:%M} UTC): "
                    f"its {leads_gone} leads and {rejects_gone} rejected rows were deleted"
                )
        audiences = AudienceResolver(session)
        default_audience = audiences.resolve(request.audience) if request.audience else None
        # Nothing the file says is stored with a phone-shaped number in clear: names, headers, notes
        # (备注, 备用电话) are masked (the number itself is stored only encrypted and hashed).
        pack = LeadPack(
            name=request.pack_name,
            file_name=mask_digit_runs(request.path.name)[:500],
            file_sha256=facts.sha256,
            file_format=facts.format_label,
            audience_id=default_audience,
            first_party=int(request.first_party or lead_form),
            consent_basis=(
                mask_digit_runs(request.consent_basis)
                if request.consent_basis is not None
                else (
                    f"{mask_digit_runs(columns.describe()['consent_at'])}: 留资时间 (own form)" if lead_form else None
                )
            ),
            column_map={
                "fields": {k: mask_digit_runs(v) for k, v in columns.describe().items()},
                "header": [mask_digit_runs(h) for h in columns.header],
            },
            uploaded_by=request.uploaded_by,
            uploaded_at=now,
        )
        session.add(pack)
        session.flush()
        checker_args = (columns, keyring, request, pack.id, now, conn.dialect.name)
        loader = ChunkLoader(conn, session, keyring, pack.id, now, summary, audiences, default_audience)
        with BackgroundChecker(rows, RowChecker(*checker_args), CHUNK_ROWS) as chunks:
            for chunk in chunks:
                summary.rows += chunk.rows
                summary.blank_rows += chunk.blank_rows
                loader.load(chunk.checked)
        if summary.rows == 0:
            raise UserError(f"{request.path}: has a header row but no data rows; nothing to upload")
        summary.audiences_created = audiences.created
        pack.rows, pack.accepted = summary.rows, summary.accepted
        pack.rejected, pack.duplicates, pack.dnc_hits = summary.rejected_total, summary.duplicates, summary.dnc
        pack.rejected_by_reason = dict(summary.rejected)
        session.flush()
        if after_replace is not None:
            after_replace(session, pack.id)
            session.flush()
        session.close()
    if summary.region_unrecognised:
        rows_named = ", ".join(str(n) for n in summary.region_unrecognised_rows)
        more = ", …" if summary.region_unrecognised > len(summary.region_unrecognised_rows) else ""
        summary.notes.append(
            f"{summary.region_unrecognised} rows (rows {rows_named}{more}): the city/province column "
            f"({columns.describe().get('city') or columns.describe().get('province')}) names no place the "
            "number geocoder knows; their region was taken from the phone number instead and the text kept "
            "as 城市(原值). Write the city as 深圳, 深圳市 or 广东深圳 to use it"
        )
    summary.add_hints()
    return summary


def delete_pack_records(session: Session, pack: LeadPack) -> tuple[int, int]:
    """Delete a pack with its leads and kept rejects (rows that reference its leads cascade); the
    caller has checked that none was dialled. Returns (leads, rejects) deleted."""
    rejects = session.execute(delete(LeadReject).where(LeadReject.pack_id == pack.id)).rowcount or 0
    leads = session.execute(delete(Lead).where(Lead.pack_id == pack.id)).rowcount or 0
    session.execute(delete(LeadPack).where(LeadPack.id == pack.id).execution_options(synchronize_session=False))
    session.expunge(pack)
    return leads, rejects


def _tune_transaction_for_bulk_load(conn: Connection) -> None:
    """Settings for this one transaction that keep a million-row upload linear."""
    if conn.dialect.name == "postgresql":
        # The leads table grows inside this transaction, unseen by the planner's statistics; without
        # this, per-chunk lookups may turn into sequential scans (quadratic in file size). Not enough on
        # its own: see ChunkLoader._stored.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        # Safe not to wait for the WAL flush at commit: a crash in the instant after it can lose only
        # this whole upload (one transaction, never half of it), its lead_packs row with the file's
        # sha256 included, so the same file simply uploads again as new. Nothing else is written here.
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


SQLITE_UPLOAD_CACHE_KIB = 64 * 1024


@contextmanager
def _bulk_load_settings(conn: Connection) -> Iterator[None]:
    """Connection settings for the upload, put back before the connection returns to the pool."""
    if conn.dialect.name != "sqlite":
        yield
        return
    # SQLite's default 2 MB page cache re-reads the leads unique index from the OS for most inserts
    # once the file passes ~100k rows; 64 MB measured -25% CPU for 1M inserts (+70 MB RSS; 128 MB: no
    # further gain).
    previous = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_UPLOAD_CACHE_KIB}")
    conn.commit()  # ends the autobegun SQLAlchemy transaction (a pragma writes nothing)
    try:
        yield
    finally:
        if conn.in_transaction():
            conn.rollback()
        conn.exec_driver_sql(f"PRAGMA cache_size = {int(previous)}")
        conn.commit()


def _check_request(request: UploadRequest) -> None:
    if not request.pack_name.strip():
        raise UserError("--pack needs a name for this lead pack")
    if len(request.pack_name) > 200:
        raise UserError("--pack name is longer than 200 characters")
    if request.first_party and not (request.consent_basis or "").strip():
        raise UserError(
            "--first-party needs --consent-basis: say how these people agreed to be called "
            '(e.g. "官网留资表单勾选授权 v3")'
        )
    if request.consent_basis and not request.first_party:
        raise UserError("--consent-basis only applies with --first-party (partner packs need a consent time per row)")


def _pack_by_sha(conn: Connection, sha256: str) -> LeadPack | None:
    session = Session(bind=conn, future=True)
    try:
        return session.execute(select(LeadPack).where(LeadPack.file_sha256 == sha256)).scalar_one_or_none()
    finally:
        session.close()


def _summary_of(pack: LeadPack, facts: FileFacts, *, already_uploaded: bool) -> UploadSummary:
    summary = UploadSummary(
        pack.name,
        str(facts.path),
        pack.file_format,
        rows=pack.rows,
        accepted=pack.accepted,
        rejected=dict(pack.rejected_by_reason or {}),
        duplicates=pack.duplicates,
        dnc=pack.dnc_hits,
        already_uploaded=already_uploaded,
        columns=dict((pack.column_map or {}).get("fields", {})),
        header=list((pack.column_map or {}).get("header", [])),
        notes=[
            f"this file (sha256 {facts.sha256[:12]}…) was already uploaded as pack {pack.name!r} "
            f"on {pack.uploaded_at:%Y-%m-%d %H:%M} UTC; nothing was changed",
            f"to upload it again (other --map/--first-party options): add --replace --pack {pack.name!r} "
            f"(allowed while none of its leads was dialled), or delete it: waihu leads delete-pack {pack.name!r}",
        ],
    )
    summary.add_hints()
    return summary


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


class CheckedRow:
    """One data row after the per-row checks: a lead to be (already encoded for the driver, see
    `RowChecker`), or a reject (`reason`, `message`, and the encoded reject row)."""

    __slots__ = (
        "row_number",
        "cells",
        "phone_hash",
        "masked",
        "landline",
        "audience",
        "lead",
        "reason",
        "message",
        "reject",
        "region_unrecognised",
    )

    def __init__(
        self,
        row_number: int,
        cells: list,
        phone_hash: str | None = None,
        masked: str | None = None,
        landline: bool = False,
        audience: str | None = None,
        lead: str | tuple | None = None,
    ) -> None:
        self.row_number, self.cells, self.phone_hash, self.masked = row_number, cells, phone_hash, masked
        self.landline, self.audience, self.lead = landline, audience, lead
        self.reason: str | None = None
        self.message: str | None = None
        self.reject: tuple | None = None
        self.region_unrecognised = False


@dataclass
class CheckedChunk:
    checked: list[CheckedRow]
    rows: int  # data rows in this chunk
    blank_rows: int  # skipped blank rows read along the way


class BackgroundChecker:
    """Reads and checks rows in a thread, handing over chunks of `CheckedRow` in file order.

    A problem that stops the file (a broken quote: UserError) is raised in the caller's thread,
    where the upload transaction rolls back. Leaving the `with` block early stops the thread.
    """

    def __init__(self, rows: RowStream, checker: RowChecker, chunk_rows: int) -> None:
        self._rows, self._checker, self._chunk_rows = rows, checker, chunk_rows
        self._chunks: queue.Queue = queue.Queue(maxsize=CHUNKS_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lead-row-checker", daemon=True)

    def __enter__(self) -> Iterator[CheckedChunk]:
        self._thread.start()
        return self._iterate()

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _iterate(self) -> Iterator[CheckedChunk]:
        while True:
            item = self._chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _hand_over(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        chunks = self.produce(self._stop)
        try:
            for chunk in chunks:
                if not self._hand_over(chunk):
                    return
            self._hand_over(None)
        except BaseException as exc:  # noqa: BLE001  (handed to the caller's thread, raised there)
            self._hand_over(exc)
        finally:
            chunks.close()

    def produce(self, stop: threading.Event) -> Generator[CheckedChunk, None, None]:
        """The checked chunks, in file order (the last one may be empty); closes the rows when done."""
        rows, check, chunk_rows = self._rows, self._checker.check, self._chunk_rows
        phone_index = self._checker.phone_index
        checked: list[CheckedRow] = []
        data_rows = blank_rows = 0
        try:
            for row_number, cells in rows:
                # Fast path: a non-empty phone text means the row is not blank.
                phone = cells[phone_index] if phone_index < len(cells) else None
                if not (phone.__class__ is str and phone and not phone.isspace()) and not any(
                    _filled(cell) for cell in cells
                ):
                    blank_rows += 1
                    continue
                data_rows += 1
                checked.append(check(row_number, cells))
                if data_rows >= chunk_rows:
                    yield CheckedChunk(checked, data_rows, blank_rows)
                    if stop.is_set():
                        return
                    checked, data_rows, blank_rows = [], 0, 0
            yield CheckedChunk(checked, data_rows, blank_rows)
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()


class RowChecker:
    """Per-row checks that need no database: shape, phone, consent, fields.

    A row that passes leaves here encoded for the driver (minus pack and audience ids, which the
    writer adds): one COPY text line on PostgreSQL, a tuple of bound values on SQLite. Runs in the
    checking thread: uses no database connection and its own encryptor.
    """

    def __init__(
        self,
        columns: ColumnMap,
        keyring: PhoneKeyring,
        request: UploadRequest,
        pack_id: int,
        now: datetime,
        dialect: str,
    ) -> None:
        self.width = len(columns.header)
        self.fields = columns.fields
        # Custom columns with their JSON-encoded keys, so the common all-text row needs no dict.
        self.custom = [(index, label, _json_string(mask_digit_runs(label))) for index, label in columns.custom.items()]
        self.hash_phone = keyring.hash_phone
        self.encrypt = keyring.bulk_encryptor().encrypt
        self.request = request
        self.pack_id = pack_id
        self.now = now
        self.latest_consent = now + timedelta(days=1)
        self.phone_index = columns.fields["phone"]
        get = columns.fields.get
        self.name_index, self.gender_index, self.audience_index = get("name"), get("gender"), get("audience")
        self.consent_at_index, self.consent_source_index = get("consent_at"), get("consent_source")
        self.consent_scope_index = get("consent_scope")
        self.consent_given_index = get("consent_given")
        self.province_index, self.city_index = get("province"), get("city")
        self.consent_given_label = (
            None if self.consent_given_index is None else shown(columns.header[self.consent_given_index] or "consent")
        )
        self.consent_at_label = (
            None if self.consent_at_index is None else shown(columns.header[self.consent_at_index] or "consent_at")
        )
        self.lead_form = is_lead_form_time(columns)  # a 留资时间 column: first-party consent with that time
        self.lead_left = is_lead_left_time(columns)  # the consent time is also Lead.lead_left_at
        self.first_party_source = LEAD_FORM_SOURCE
        self.first_party_scope = _text(request.consent_basis)
        self.encode: Callable[..., str | tuple] = {
            "postgresql": self._encode_copy_line,
            "sqlite": self._encode_sqlite,
        }.get(dialect, self._encode_values)
        self.created_copy, self.created_sqlite = copy_datetime(now), sqlite_datetime(now)

    def cell(self, cells: list, name: str) -> object:
        return _cell(cells, self.fields.get(name))

    def check(self, row_number: int, cells: list) -> CheckedRow:
        row = CheckedRow(row_number, cells)
        width = len(cells)
        if width > self.width and any(_filled(c) for c in cells[self.width :]):
            return self._reject(
                row,
                "extra_cells",
                f"{width} cells but the header has {self.width} columns "
                "(an unquoted comma or tab inside a value?); quote that value",
            )
        raw_phone = cells[self.phone_index] if self.phone_index < width else None
        phone = normalise_phone(raw_phone)
        if phone.__class__ is not Phone:
            problem = cast(PhoneProblem, phone)  # the cheap class check above, which mypy cannot narrow on
            cell = shown(raw_phone) if raw_phone not in (None, "") else "empty"
            return self._reject(row, problem.reason, f"phone ({cell}): {problem.message}")
        number = phone.number
        row.phone_hash = self.hash_phone(number)
        row.masked = mask_phone(number)
        consent = self._consent(row, cells)
        if consent is None:
            return row
        consent_source, consent_at, consent_scope = consent
        name = _cell(cells, self.name_index)
        gender_raw = _cell(cells, self.gender_index)
        gender = (
            None
            if gender_raw is None
            else (_GENDERS.get(gender_raw) if gender_raw.__class__ is str else None)
            or _GENDERS.get(str(gender_raw).strip().lower())
        )
        extra: dict | None = None
        if gender_raw is not None and gender is None:
            extra = {"性别(原值)": mask_digit_runs(str(gender_raw))}  # kept, not guessed
        name_text = mask_digit_runs(str(name)) if name is not None else None
        if name_text is not None and len(name_text) > MAX_NAME:
            extra = extra or {}
            extra["name_full"], name_text = name_text, name_text[:MAX_NAME]
        province_raw, city_raw = _cell(cells, self.province_index), _cell(cells, self.city_index)
        region, row.region_unrecognised = resolve_region(number, province_raw, city_raw)
        if row.region_unrecognised:
            extra = extra or {}
            extra["城市(原值)"] = mask_digit_runs(" ".join(str(v) for v in (province_raw, city_raw) if v))[:MAX_TEXT]
        audience = _cell(cells, self.audience_index)
        row.audience = str(audience) if audience else None
        row.landline = phone.line_type == LANDLINE
        row.lead = self.encode(
            row_number,
            self.encrypt(number),
            row.phone_hash,
            row.masked,
            phone.line_type,
            name_text,
            gender,
            consent_source,
            consent_at,
            consent_scope,
            self._custom_json(cells, width, extra),
            region,
        )
        return row

    def _custom_json(self, cells: list, width: int, extra: dict | None) -> str:
        """The custom columns as a JSON object (text), same as json_text({label: value, …, **extra})."""
        parts = []
        for index, _label, label_json in self.custom:
            if index < width:
                value = cells[index]
                if value.__class__ is str:
                    if value and not value.isspace():
                        parts.append(f"{label_json}:{_json_string(mask_digit_runs(value))}")
                    continue
                if value is None:
                    continue
                return self._custom_json_slow(cells, width, extra)
        if extra:
            parts.extend(f"{_json_string(key)}:{_json_string(value)}" for key, value in extra.items())
        return "{" + ",".join(parts) + "}"

    def _custom_json_slow(self, cells: list, width: int, extra: dict | None) -> str:
        custom = {
            mask_digit_runs(label): _masked(_jsonable(cells[index]))
            for index, label, _ in self.custom
            if index < width and cells[index] not in ("", None) and _filled(cells[index])
        }
        custom.update(extra or {})
        return json_text(custom)

    def _encode_copy_line(
        self,
        row_number: int,
        ciphertext: bytes,
        phone_hash: str,
        masked: str,
        line_type: str,
        name: str | None,
        gender: str | None,
        consent_source: str | None,
        consent_at: datetime | None,
        consent_scope: str | None,
        custom_json: str,
        region: Region | None = None,
    ) -> str:
        # LEAD_COLUMNS after pack_id and audience_id; hash and masked phone need no escaping.
        return (
            f"{row_number}\t{copy_bytea(ciphertext)}\t{phone_hash}\t{masked}\t{line_type}\t"
            f"{COPY_NULL if name is None else copy_text(name)}\t{gender or COPY_NULL}\t"
            f"{COPY_NULL if consent_source is None else copy_text(consent_source)}\t"
            f"{COPY_NULL if consent_at is None else consent_at.isoformat()}\t"
            f"{COPY_NULL if consent_scope is None else copy_text(consent_scope)}\t"
            f"{copy_text(custom_json)}\tnew\t{self.created_copy}\t"
            f"{consent_at.isoformat() if self.lead_left and consent_at is not None else COPY_NULL}\t"
            + (
                f"{region.province}\t{region.city or COPY_NULL}\t{region.timezone}\t{region.source}"
                if region is not None
                else f"{COPY_NULL}\t{COPY_NULL}\t{COPY_NULL}\t{COPY_NULL}"
            )
        )

    def _encode_sqlite(
        self,
        row_number: int,
        ciphertext: bytes,
        phone_hash: str,
        masked: str,
        line_type: str,
        name: str | None,
        gender: str | None,
        consent_source: str | None,
        consent_at: datetime | None,
        consent_scope: str | None,
        custom_json: str,
        region: Region | None = None,
    ) -> tuple:
        return (
            row_number,
            ciphertext,
            phone_hash,
            masked,
            line_type,
            name,
            gender,
            consent_source,
            None if consent_at is None else sqlite_datetime(consent_at),
            consent_scope,
            custom_json,
            "new",
            self.created_sqlite,
            sqlite_datetime(consent_at) if self.lead_left and consent_at is not None else None,
            *_region_values(region),
        )

    def _encode_values(
        self,
        row_number: int,
        ciphertext: bytes,
        phone_hash: str,
        masked: str,
        line_type: str,
        name: str | None,
        gender: str | None,
        consent_source: str | None,
        consent_at: datetime | None,
        consent_scope: str | None,
        custom_json: str,
        region: Region | None = None,
    ) -> tuple:
        return (
            row_number,
            ciphertext,
            phone_hash,
            masked,
            line_type,
            name,
            gender,
            consent_source,
            consent_at,
            consent_scope,
            json.loads(custom_json),
            "new",
            self.now,
            consent_at if self.lead_left else None,
            *_region_values(region),
        )

    def _consent(self, row: CheckedRow, cells: list) -> tuple | None:
        raw_at = _cell(cells, self.consent_at_index)
        source = _text(_cell(cells, self.consent_source_index))
        scope = _text(_cell(cells, self.consent_scope_index))
        raw_flag = _cell(cells, self.consent_given_index)
        given = None
        if raw_flag is not None:
            given = consent_flag(raw_flag)
            if given is None:
                self._reject(
                    row,
                    "consent_invalid",
                    f"consent column {self.consent_given_label!r} says {shown(raw_flag)!r}, which is not a yes/no "
                    "answer; write 是/已授权/同意 or 否/未授权/不同意",
                )
                return None
            if not given:
                self._reject(
                    row,
                    "consent_declined",
                    f"consent column {self.consent_given_label!r} says {shown(raw_flag)!r}: this person did not agree "
                    "to be called, so the row is not a lead (kept here as a reject)",
                )
                return None
        if raw_at is not None:
            consent_at = consent_moment(raw_at)
            if consent_at is None:
                self._reject(
                    row,
                    "consent_invalid",
                    f"consent time {shown(raw_at)!r} is not a date/time; write it like 2024-05-01 10:30",
                )
                return None
            if consent_at > self.latest_consent:
                self._reject(
                    row,
                    "consent_invalid",
                    f"consent time {consent_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC is in the future",
                )
                return None
            if self.lead_form:
                return source or self.first_party_source, consent_at, scope or self.first_party_scope
            return source, consent_at, scope
        if given:  # a yes in the consent column, without a time
            return source or f"{self.consent_given_label}={shown(raw_flag)}", None, scope
        if self.request.first_party:
            return source or self.first_party_source, None, scope or self.first_party_scope
        if self.consent_at_label is not None or self.consent_given_label is not None:
            where = " and ".join(
                repr(label) for label in (self.consent_at_label, self.consent_given_label) if label is not None
            )
            message = (
                f"no consent record for this person (column {where} is empty in this row); fill it in, or upload "
                "with --first-party --consent-basis if the leads are your own"
            )
        else:
            message = (
                "no consent record for this person: the file has no consent column; partner packs need one per row "
                "(a time: 留资时间/同意时间/授权时间/注册时间, or 是/否: 授权同意/是否授权; another name: "
                "--map consent_at=<column>), or upload with --first-party --consent-basis if the leads are your own"
            )
        self._reject(row, "consent_missing", message)
        return None

    def _reject(self, row: CheckedRow, reason: str, message: str) -> CheckedRow:
        row.reason, row.message = reason, message
        row.reject = reject_row(self.pack_id, row, self.encrypt)
        return row


def _region_values(region: Region | None) -> tuple:
    """province, city, timezone, region_source (LEAD_COLUMNS' last four)."""
    if region is None:
        return (None, None, None, None)
    return (region.province, region.city, region.timezone, region.source)


def _cell(cells: list, index: int | None) -> object:
    """A cell's value: text stripped, empty text as None."""
    if index is None or index >= len(cells):
        return None
    value = cells[index]
    if value.__class__ is str:
        return value.strip() or None
    return value


def _filled(cell: object) -> bool:
    return cell is not None and (not isinstance(cell, str) or cell.strip() != "")


def _text(value: object) -> str | None:
    return None if value is None else mask_digit_runs(str(value)[:MAX_TEXT])


def _masked(value: object) -> object:
    """A custom cell as stored: text with phone-shaped numbers masked; a number that is itself phone-shaped
    (an Excel number column of 备用电话) becomes its masked text."""
    if value.__class__ is str:
        return mask_digit_runs(value)
    if isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer():
        digits = str(int(value))
        masked = mask_digit_runs(digits)
        return masked if masked != digits else value
    return value


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def reject_row(pack_id: int, row: CheckedRow, encrypt: Callable[[str], bytes]) -> tuple:
    """REJECT_COLUMNS for a rejected row: the raw row as JSON, masked, and encrypted."""
    raw = _JSON([_jsonable(c) for c in row.cells])
    masked = _JSON([mask_digit_runs(str(c)) if c is not None else None for c in row.cells])
    return (pack_id, row.row_number, row.reason, row.message, row.phone_hash, masked, encrypt(raw))


_CONSENT_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%Y%m%d",
    "%Y%m%d%H%M%S",
)
_CHINESE_DATE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日\s*(?:(\d{1,2})[:：时](\d{1,2})分?)?$")
# Asia/Shanghai has been UTC+8 all year since 1992 (it kept DST 1986–1991): a fixed offset is the
# same zone for those years and costs a tenth of a zoneinfo lookup per row.
_BEIJING_SINCE_1992 = timezone(timedelta(hours=8), "Asia/Shanghai")


def parse_consent_time(value: object) -> datetime | None:
    """Consent times as exports write them; no zone means Beijing time. None if unreadable."""
    moment = consent_moment(value)
    return None if moment is None else moment.astimezone(timezone.utc)


def consent_moment(value: object) -> datetime | None:
    """Like `parse_consent_time`, but the instant may be given in another zone than UTC."""
    if value.__class__ is str:  # the common case first: ISO text as most exports write it
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and (moment.tzinfo is not None or moment.year >= 1992):
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=_BEIJING_SINCE_1992)
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
        if moment.year >= 1992:
            return moment.replace(tzinfo=_BEIJING_SINCE_1992)
        moment = moment.replace(tzinfo=CONSENT_TIMEZONE)
    return moment


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


# See ChunkLoader._stored.
STORED_LOOKUP_SQL = (
    "SELECT h.phone_hash, l.pack_id, l.row_number FROM unnest(%s::varchar[]) AS h(phone_hash) "
    "CROSS JOIN LATERAL (SELECT pack_id, row_number FROM leads WHERE leads.phone_hash = h.phone_hash "
    "LIMIT 1) AS l"
)


class ChunkLoader:
    """Dedupe and DNC-scrub a chunk against the database, then insert its leads and rejects."""

    def __init__(
        self,
        conn: Connection,
        session: Session,
        keyring: PhoneKeyring,
        pack_id: int,
        now: datetime,
        summary: UploadSummary,
        audiences: AudienceResolver,
        default_audience: int | None,
    ) -> None:
        self.conn, self.session = conn, session
        self.encrypt = keyring.bulk_encryptor().encrypt  # this thread's own
        self.pack_id, self.now, self.summary = pack_id, now, summary
        self.audiences, self.default_audience = audiences, default_audience
        self.dialect = conn.dialect.name
        self.reasons: Counter[str] = Counter()
        self._pack_names: dict[int, str] = {}

    def load(self, chunk: list[CheckedRow]) -> None:
        if not chunk:
            return
        hashes = list({row.phone_hash for row in chunk if row.lead is not None and row.phone_hash is not None})
        stored = self._stored(hashes)
        on_dnc = listed_hashes(self.session, hashes, self.now)
        seen_in_chunk: dict[str, int] = {}
        leads: list[str | tuple] = []
        rejects: list[tuple] = []
        resolve, default_audience = self.audiences.resolve, self.default_audience
        with_ids = self._with_ids
        for row in chunk:
            if row.lead is not None:
                # Audiences named by rows that passed the per-row checks exist even if the row turns
                # out a duplicate: resolve before dedupe.
                audience_id = resolve(row.audience) if row.audience is not None else default_audience
                phone_hash = cast(str, row.phone_hash)  # every row with a lead has its hash (RowChecker.check)
                if phone_hash in on_dnc or phone_hash in seen_in_chunk or phone_hash in stored:
                    self._dedupe_and_scrub(row, stored, on_dnc, seen_in_chunk)
                if row.reject is None:
                    leads.append(with_ids(audience_id, row.lead))
                    if row.region_unrecognised:
                        self.summary.region_unrecognised += 1
                        if len(self.summary.region_unrecognised_rows) < 10:
                            self.summary.region_unrecognised_rows.append(row.row_number)
                    seen_in_chunk[phone_hash] = row.row_number
                    if row.landline:
                        self.summary.landlines += 1
                    continue
            # A row without a lead, or deduped above, was rejected: it has its reject row and reason.
            rejects.append(cast(tuple, row.reject))
            self.reasons[cast(str, row.reason)] += 1
        self.session.flush()
        if self.dialect in ("postgresql", "sqlite"):
            insert_encoded(self.conn, Lead.__table__, LEAD_COLUMNS, leads)
        else:
            bulk_insert(self.conn, Lead.__table__, LEAD_COLUMNS, cast("list[tuple]", leads))  # _encode_values tuples
        bulk_insert(self.conn, LeadReject.__table__, REJECT_COLUMNS, rejects)
        self.summary.accepted += len(leads)
        self.summary.rejected = dict(self.reasons)
        self.summary.duplicates = self.reasons["duplicate_in_file"] + self.reasons["duplicate_existing"]
        self.summary.dnc = self.reasons["dnc_opt_out"] + self.reasons["dnc_soft_decline"]

    def _with_ids(self, audience_id: int | None, lead: str | tuple) -> str | tuple:
        if self.dialect == "postgresql":
            return f"{self.pack_id}\t{COPY_NULL if audience_id is None else audience_id}\t{lead}"
        return (self.pack_id, audience_id) + cast(tuple, lead)  # tuples on every other dialect

    def _stored(self, hashes: list[str]) -> dict[str, tuple[int, int, str]]:
        """Leads already stored (earlier packs, and this pack's earlier chunks) with these hashes."""
        if not hashes:
            return {}
        cursor = self.conn.connection.cursor()
        try:
            if self.dialect == "postgresql":
                # One index probe per hash, whatever the planner believes about a table that grows inside
                # this transaction: the LIMIT keeps the subquery a per-hash lookup (a plain IN/ANY let it
                # pick a full scan of ix_leads_pack_id under enable_seqscan=off — quadratic in file size).
                cursor.execute(STORED_LOOKUP_SQL, (hashes,))
            else:
                cursor.execute(
                    f"SELECT phone_hash, pack_id, row_number FROM leads WHERE phone_hash IN "
                    f"({', '.join('?' * len(hashes))})",
                    hashes,
                )
            found = cursor.fetchall()
        finally:
            cursor.close()
        names = self._pack_names
        missing = {pack_id for _, pack_id, _ in found if pack_id not in names}
        if missing:
            names.update(self.conn.execute(select(LeadPack.id, LeadPack.name).where(LeadPack.id.in_(missing))).all())
        return {phone_hash: (pack_id, row_number, names[pack_id]) for phone_hash, pack_id, row_number in found}

    def _dedupe_and_scrub(self, row: CheckedRow, stored: dict, on_dnc: dict, seen_in_chunk: dict) -> None:
        phone_hash, masked = row.phone_hash, row.masked
        entry = on_dnc.get(phone_hash)
        if entry is not None:
            if entry.scope == SCOPE_OPT_OUT:
                self._reject(row, "dnc_opt_out", f"{masked} opted out of calls (do-not-call, {entry.source})")
            else:
                self._reject(
                    row,
                    "dnc_soft_decline",
                    f"{masked} declined recently; on the do-not-call list until {entry.expires_at:%Y-%m-%d}",
                )
            return
        if phone_hash in seen_in_chunk:
            self._reject(row, "duplicate_in_file", f"{masked} already appears in row {seen_in_chunk[phone_hash]}")
            return
        previous = stored.get(phone_hash)
        if previous is not None:
            pack_id, row_number, pack_name = previous
            if pack_id == self.pack_id:
                self._reject(row, "duplicate_in_file", f"{masked} already appears in row {row_number}")
            else:
                self._reject(
                    row, "duplicate_existing", f"{masked} is already a lead (pack {pack_name!r}, row {row_number})"
                )

    def _reject(self, row: CheckedRow, reason: str, message: str) -> None:
        row.reason, row.message = reason, message
        row.reject = reject_row(self.pack_id, row, self.encrypt)


# ---- reading back, exporting, forgetting ------------------------------------------------------------


def get_pack(session: Session, name: str) -> LeadPack:
    pack = session.execute(select(LeadPack).where(LeadPack.name == name)).scalar_one_or_none()
    if pack is None:
        known = session.execute(select(LeadPack.name).order_by(LeadPack.uploaded_at.desc()).limit(10)).scalars().all()
        raise UserError(
            f"no lead pack named {name!r}",
            details=[f"recent packs: {', '.join(known)}" if known else "no packs uploaded yet"],
        )
    return pack


def iter_rejects(session: Session, pack: LeadPack, batch: int = 5000) -> Iterable[LeadReject]:
    last_id = 0
    while True:
        rows = (
            session.execute(
                select(LeadReject)
                .where(LeadReject.pack_id == pack.id, LeadReject.id > last_id)
                .order_by(LeadReject.id)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()
