"""Speed to lead: leads sent one at a time (or a small batch) by the caller's system — the
landing page's form, a CRM — through POST /api/v1/leads or `waihu leads add`.

They go into a lead pack like any upload (one "API·<audience>" pack per audience, or the pack
the caller names), through the upload's own row checks (`RowChecker`: phone, consent, fields)
and writer (`ChunkLoader`: dedupe, do-not-call scrub, rejects kept with their reason), so no
path skips a rule. What differs: each lead carries the caller's external id (a retry with the
same id into the same pack returns the same lead, no new row), its 留资时间 (`lead_left_at`,
also its first-party consent time) and the priority flag the planner's priority lane dials
within minutes. A campaign dials them once it includes the pack.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.core.keys import require_key_matches
from bot.core.phone import Phone, normalise_phone
from bot.core.pii import PhoneKeyring, mask_digit_runs
from bot.core.tabular_file import ColumnMap
from bot.leads.models import PRIORITY_LANE, Lead, LeadPack
from bot.leads.service import (
    AudienceResolver,
    CheckedRow,
    ChunkLoader,
    RowChecker,
    UploadRequest,
    UploadSummary,
    consent_moment,
)

MAX_BATCH = 500  # leads per request: speed to lead is a trickle; files go through `leads upload`
MAX_EXTERNAL_ID = 100
API_PACK_FORMAT = "api"  # LeadPack.file_format of packs filled through the API
API_CONSENT_BASIS = "留资表单（接口提交，POST /api/v1/leads）"
ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
LEAD_LEFT_AT_MISSING = (
    "required: when the person left their number (留资时间), e.g. 2026-12-06 10:30 (Beijing time) or ISO 8601 "
    "with a zone; it is the consent record of an API lead"
)

# The fixed header the upload's row checker reads an API lead with: 留资时间 makes the time a
# first-party consent record (bot.leads.service.is_lead_form_time), as in an uploaded form export.
_FIELDS = ("phone", "name", "gender", "consent_at", "consent_source", "consent_scope", "province", "city")
_HEADER = ["手机号", "姓名", "性别", "留资时间", "授权来源", "授权范围", "省份", "城市"]
# Which request field a reject reason is about (for the caller's field-level error).
_FIELD_OF_REASON = {
    "consent_missing": "lead_left_at",
    "consent_invalid": "lead_left_at",
    "consent_declined": "lead_left_at",
    "extra_cells": "fields",
}


@dataclass(frozen=True)
class LeadIn:
    phone: str
    lead_left_at: str | datetime | None = None
    name: str | None = None
    gender: str | None = None
    external_id: str | None = None  # default: derived from the keyed phone hash (retries stay idempotent)
    consent_source: str | None = None
    consent_scope: str | None = None
    # Where the person lives, when the caller knows (else from the number): time zone, local caller number.
    province: str | None = None
    city: str | None = None
    fields: dict[str, str] = field(default_factory=dict)  # custom fields, kept like an upload's extra columns


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str
    message: str


@dataclass
class LeadResult:
    index: int  # place in the request, from 0
    external_id: str
    status: str  # accepted | duplicate | rejected
    phone_masked: str | None = None
    lead_id: int | None = None
    errors: list[FieldError] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "index": self.index,
            "external_id": self.external_id,
            "status": self.status,
            "phone": self.phone_masked,
            "lead_id": self.lead_id,
            "errors": [
                {"where": f"leads[{self.index}].{e.field}", "field": e.field, "reason": e.reason, "message": e.message}
                for e in self.errors
            ],
        }


@dataclass
class AddLeadsResult:
    pack: str
    pack_id: int
    results: list[LeadResult]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def api_pack_name(audience: str) -> str:
    return f"API·{audience.strip()}"


def add_leads(
    engine: Engine,
    keyring: PhoneKeyring,
    leads: list[LeadIn],
    *,
    audience: str,
    pack: str | None = None,
    added_by: str = "api",
    now: datetime | None = None,
) -> AddLeadsResult:
    """Add a small batch of leads to the audience's API pack (or `pack`), in one transaction."""
    now = now or utc_now()
    if not audience or not audience.strip():
        raise UserError("audience: name the audience pack (人群包) these leads belong to")
    if not leads:
        raise UserError("leads: send at least one lead")
    if len(leads) > MAX_BATCH:
        raise UserError(f"leads: {len(leads)} leads in one request; send at most {MAX_BATCH} (upload a file for more)")
    pack_name = (pack or "").strip() or api_pack_name(audience)
    if len(pack_name) > 200:
        raise UserError("pack: the name is longer than 200 characters")
    require_key_matches(engine, keyring)
    with engine.connect() as conn, conn.begin():
        require_key_matches(conn, keyring, lock=True)
        session = Session(bind=conn, future=True)
        audiences = AudienceResolver(session)
        audience_id = audiences.resolve(audience)
        lead_pack = _api_pack(session, conn, pack_name, audience_id, added_by, now)
        results = _add(session, conn, keyring, lead_pack, audiences, audience_id, leads, now)
        session.flush()
        session.close()
    return AddLeadsResult(pack_name, lead_pack.id, results)


def ensure_api_pack(engine: Engine, audience: str, pack: str | None = None, *, added_by: str = "api") -> str:
    """Create the audience's API pack (or `pack`) before its first lead, so a campaign can name it."""
    if not audience or not audience.strip():
        raise UserError("audience: name the audience pack (人群包) the API leads belong to")
    name = (pack or "").strip() or api_pack_name(audience)
    with engine.connect() as conn, conn.begin():
        session = Session(bind=conn, future=True)
        _api_pack(session, conn, name, AudienceResolver(session).resolve(audience), added_by, utc_now())
        session.close()
    return name


def _api_pack(
    session: Session, conn: Connection, name: str, audience_id: int, added_by: str, now: datetime
) -> LeadPack:
    """The pack, created on first use; held (PostgreSQL: FOR UPDATE) until the transaction ends, so
    two requests with the same external id are taken one after the other."""
    insert = (postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert)(LeadPack)
    session.execute(
        insert.values(
            name=name,
            file_name="POST /api/v1/leads",
            file_sha256=hashlib.sha256(f"api-lead-pack:{name}".encode()).hexdigest(),
            file_format=API_PACK_FORMAT,
            audience_id=audience_id,
            first_party=1,
            consent_basis=API_CONSENT_BASIS,
            column_map={"fields": dict(zip(_FIELDS, _HEADER)), "header": _HEADER},
            uploaded_by=added_by[:100],
            uploaded_at=now,
            rows=0,
            accepted=0,
            rejected=0,
            duplicates=0,
            dnc_hits=0,
            rejected_by_reason={},
        ).on_conflict_do_nothing()
    )
    lead_pack = session.execute(select(LeadPack).where(LeadPack.name == name).with_for_update()).scalar_one_or_none()
    if lead_pack is None or lead_pack.file_format != API_PACK_FORMAT:
        raise UserError(
            f"pack: {name!r} is an uploaded file's pack; API leads go into their own pack — name another "
            "pack, or leave it out to use the audience's API pack"
        )
    return lead_pack


def _add(
    session: Session,
    conn: Connection,
    keyring: PhoneKeyring,
    lead_pack: LeadPack,
    audiences: AudienceResolver,
    audience_id: int,
    leads: list[LeadIn],
    now: datetime,
) -> list[LeadResult]:
    external_ids = [_external_id(keyring, lead) for lead in leads]
    results: list[LeadResult | None] = [None] * len(leads)
    for index, external_id in enumerate(external_ids):
        if len(external_id) > MAX_EXTERNAL_ID:
            results[index] = LeadResult(
                index,
                external_id[:MAX_EXTERNAL_ID],
                REJECTED,
                errors=[FieldError("external_id", "too_long", f"longer than {MAX_EXTERNAL_ID} characters")],
            )
    known = {
        external_id: (lead_id, masked)
        for external_id, lead_id, masked in session.execute(
            select(Lead.external_id, Lead.id, Lead.phone_masked).where(
                Lead.pack_id == lead_pack.id, Lead.external_id.in_(set(external_ids))
            )
        )
    }
    custom = sorted({key for lead in leads for key in lead.fields})
    header = _HEADER + custom
    columns = ColumnMap(
        header, dict(zip(_FIELDS, range(len(_FIELDS)))), {len(_FIELDS) + i: k for i, k in enumerate(custom)}
    )
    request = UploadRequest(
        path=Path(lead_pack.file_name),  # only named in messages; no file is read
        pack_name=lead_pack.name,
        uploaded_by=lead_pack.uploaded_by,
        # Not a first-party upload without times: each API lead needs its own 留资时间.
        first_party=False,
    )
    checker = RowChecker(columns, keyring, request, lead_pack.id, now, conn.dialect.name)
    checked: list[tuple[int, CheckedRow]] = []
    first_of: dict[str, int] = {}
    for index, (lead, external_id) in enumerate(zip(leads, external_ids)):
        if results[index] is not None:
            continue
        if external_id in known:
            lead_id, masked = known[external_id]
            results[index] = LeadResult(index, external_id, DUPLICATE, masked, lead_id)
            continue
        if external_id in first_of:  # the same id twice in one request: the same lead
            results[index] = LeadResult(index, external_id, DUPLICATE)
            continue
        first_of[external_id] = index
        row_number = lead_pack.rows + len(checked) + 1
        checked.append((index, checker.check(row_number, _cells(lead, custom))))
    summary = UploadSummary(lead_pack.name, lead_pack.file_name, API_PACK_FORMAT)
    loader = ChunkLoader(conn, session, keyring, lead_pack.id, now, summary, audiences, audience_id)
    loader.load([row for _, row in checked])
    added = _mark_added(
        session, lead_pack.id, [(external_ids[i], leads[i], row) for i, row in checked if row.reject is None]
    )
    for index, row in checked:
        if row.reject is None:
            results[index] = LeadResult(index, external_ids[index], ACCEPTED, row.masked, added[row.row_number])
        else:
            reason = str(row.reason)
            where = _FIELD_OF_REASON.get(reason, "phone")
            message = LEAD_LEFT_AT_MISSING if reason == "consent_missing" else str(row.message)
            results[index] = LeadResult(
                index, external_ids[index], REJECTED, row.masked, errors=[FieldError(where, reason, message)]
            )
    for index, external_id in enumerate(external_ids):  # repeats within the request: as their first
        result = results[index]
        if result is not None and result.status == DUPLICATE and result.lead_id is None:
            first = results[first_of[external_id]]
            assert first is not None
            result.lead_id, result.phone_masked = first.lead_id, first.phone_masked
            if first.status == REJECTED:
                result.status, result.errors = REJECTED, first.errors
    _count(lead_pack, len(checked), summary, loader.reasons)
    return [r for r in results if r is not None]


def _external_id(keyring: PhoneKeyring, lead: LeadIn) -> str:
    if lead.external_id is not None and lead.external_id.strip():
        return mask_digit_runs(lead.external_id.strip())
    phone = normalise_phone(str(lead.phone))
    # Without the caller's id, the number is the key (keyed hash, never the number itself).
    key = keyring.hash_phone(phone.number) if isinstance(phone, Phone) else str(lead.phone)
    return f"phone:{key[:32]}" if isinstance(phone, Phone) else mask_digit_runs(f"phone:{key}")


def _cells(lead: LeadIn, custom: list[str]) -> list:
    when = lead.lead_left_at
    left_at = when.isoformat() if isinstance(when, datetime) else when
    base = [str(lead.phone), lead.name, lead.gender, left_at, lead.consent_source, lead.consent_scope]
    base += [lead.province, lead.city]
    return base + [lead.fields.get(key) for key in custom]


def _mark_added(session: Session, pack_id: int, added: list[tuple[str, LeadIn, CheckedRow]]) -> dict[int, int]:
    """Give the leads just written their external id, 留资时间 and the priority lane; row number → lead id."""
    if not added:
        return {}
    ids = dict(
        session.execute(
            select(Lead.row_number, Lead.id).where(
                Lead.pack_id == pack_id, Lead.row_number.in_([row.row_number for _, _, row in added])
            )
        ).all()
    )
    params = [
        {"lead_id": ids[row.row_number], "external": external_id, "left_at": consent_moment(lead.lead_left_at)}
        for external_id, lead, row in added
    ]
    session.execute(
        update(Lead.__table__)
        .where(Lead.__table__.c.id == bindparam("lead_id"))
        .values(external_id=bindparam("external"), lead_left_at=bindparam("left_at"), priority=PRIORITY_LANE),
        params,
    )
    return ids


def _count(lead_pack: LeadPack, rows: int, summary: UploadSummary, reasons: Counter) -> None:
    lead_pack.rows += rows
    lead_pack.accepted += summary.accepted
    lead_pack.rejected += sum(reasons.values())
    lead_pack.duplicates += reasons["duplicate_in_file"] + reasons["duplicate_existing"]
    lead_pack.dnc_hits += reasons["dnc_opt_out"] + reasons["dnc_soft_decline"]
    by_reason = Counter(lead_pack.rejected_by_reason or {})
    by_reason.update(reasons)
    lead_pack.rejected_by_reason = dict(by_reason)
