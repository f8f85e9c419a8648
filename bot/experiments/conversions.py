"""Matching conversions (policies and premium) to leads, their last call and its arms.

One path for the API and the file import: `record_conversions(session, keyring, items, …)`
checks each item, matches it to a lead (by the caller's external id, else by the phone's
keyed hash — the clear number is never stored), attributes it to a call and returns one
result per item: accepted, duplicate (the policy number is already stored: nothing is
updated), unmatched or rejected (with the field and what is wrong). Every row not taken is
kept in `conversion_rejects`.

Attribution is last touch: the lead's last *connected* call before the policy, within a
window (default 30 days). Why last touch: every arm a lead is in is fixed for the lead (the
dialer keeps a lead's arms on each of its attempts), so for the A/B comparison any touch
gives the same arms; what the attempt adds is which campaign's call the policy followed and
whether it followed one recently enough to be credited at all. The last connected call is
the one closest to the decision, needs no model and is what an advisor would name. A
policy outside the window is matched to the lead but unattributed, and counted apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt
from bot.core.phone import Phone, normalise_phone
from bot.core.pii import PhoneKeyring, mask_digit_runs, mask_phone
from bot.experiments.conversion_models import Conversion, ConversionReject
from bot.leads.models import Lead
from bot.leads.service import parse_consent_time
from bot.webhooks.events import emit_conversion_matched, lead_fields
from bot.wecom.sop import purchase_hook as sop_purchase_hook

ACCEPTED, DUPLICATE, UNMATCHED, REJECTED = "accepted", "duplicate", "unmatched", "rejected"
DEFAULT_WINDOW_DAYS = 30
MAX_BATCH = 500
MAX_PREMIUM = Decimal("9999999999.99")  # Numeric(12, 2)
ANSWERED = "answered"  # CallAttempt.outcome of a connected call
FIELDS = ("policy_no", "product", "premium", "converted_at", "external_id", "phone")


@dataclass(frozen=True)
class ConversionIn:
    """One conversion as sent: every value as text or a number (a file cell, a JSON value)."""

    policy_no: object = None
    product: object = None
    premium: object = None
    converted_at: object = None
    external_id: object = None
    phone: object = None
    row_number: int = 0  # file row, or the API item's index


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str  # missing | invalid | unmatched | ambiguous
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "message": self.message}


@dataclass
class ConversionResult:
    row_number: int
    status: str
    policy_no: str | None = None
    lead_id: int | None = None
    phone_masked: str | None = None
    attempt_id: int | None = None
    campaign_id: int | None = None
    arms: dict[str, Any] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)

    @property
    def attributed(self) -> bool:
        return self.attempt_id is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "row": self.row_number,
            "status": self.status,
            "policy_no": self.policy_no,
            "lead_id": self.lead_id,
            "phone_masked": self.phone_masked,
            "attempt_id": self.attempt_id,
            "campaign_id": self.campaign_id,
            "arms": self.arms,
            "errors": [error.as_json() for error in self.errors],
        }


@dataclass
class _Checked:
    policy_no: str
    product: str
    premium: Decimal
    converted_at: datetime
    external_id: str | None
    phone_hash: str | None


def record_conversions(
    session: Session,
    keyring: PhoneKeyring,
    items: Sequence[ConversionIn],
    *,
    source: str,
    batch: str | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> list[ConversionResult]:
    """Check, match and store each item in `session` (the caller commits); rejects are kept.
    A matched policy's `conversion.matched` webhook event is written in the same transaction."""
    window = timedelta(days=window_days)
    results: list[ConversionResult] = []
    seen_in_batch: set[str] = set()
    for item in items:
        result = _record_one(session, keyring, item, source, batch, window, seen_in_batch)
        if result.status in (UNMATCHED, REJECTED):
            session.add(_reject_row(keyring, item, result, source, batch))
        results.append(result)
    session.flush()
    return results


def _record_one(
    session: Session,
    keyring: PhoneKeyring,
    item: ConversionIn,
    source: str,
    batch: str | None,
    window: timedelta,
    seen_in_batch: set[str],
) -> ConversionResult:
    checked, errors = _check(keyring, item)
    policy_no = _text(item.policy_no) or None
    if checked is None:
        return ConversionResult(item.row_number, REJECTED, policy_no, errors=errors)
    if (
        checked.policy_no in seen_in_batch
        or session.execute(select(Conversion.id).where(Conversion.policy_no == checked.policy_no)).first()
    ):
        # Idempotent: a policy already stored is left exactly as it is.
        return ConversionResult(item.row_number, DUPLICATE, checked.policy_no)
    lead, error = _match_lead(session, checked)
    if lead is None:
        assert error is not None
        return ConversionResult(item.row_number, UNMATCHED, checked.policy_no, errors=[error])
    attempt, campaign_id = _attribute(session, lead.id, checked.converted_at, window)
    arms = dict(attempt.arms or {}) if attempt is not None else {}
    conversion = Conversion(
        policy_no=checked.policy_no,
        product=checked.product,
        premium=checked.premium,
        converted_at=checked.converted_at,
        lead_id=lead.id,
        attempt_id=attempt.id if attempt is not None else None,
        campaign_id=campaign_id,
        arms=arms,
        source=source,
        batch=batch,
    )
    session.add(conversion)
    session.flush()
    seen_in_batch.add(checked.policy_no)
    emit_conversion_matched(
        session,
        lead=lead_fields(session, lead.id),
        policy_number=checked.policy_no,
        product=checked.product,
        premium=float(checked.premium),
        converted_at=checked.converted_at,
        source=source,
        campaign_id=campaign_id,
        attempt_id=conversion.attempt_id,
        arms=arms,
    )
    # Follow-up sequences (bot.wecom.sop): a buyer leaves the SOP or switches as its purchase branch says.
    sop_purchase_hook(session, lead.id, checked.converted_at)
    return ConversionResult(
        item.row_number,
        ACCEPTED,
        checked.policy_no,
        lead.id,
        lead.phone_masked,
        conversion.attempt_id,
        campaign_id,
        arms,
    )


def _check(keyring: PhoneKeyring, item: ConversionIn) -> tuple[_Checked | None, list[FieldError]]:
    errors: list[FieldError] = []
    policy_no = _text(item.policy_no)
    if not policy_no:
        errors.append(FieldError("policy_no", "missing", "保单号为空"))
    elif len(policy_no) > 64:
        errors.append(FieldError("policy_no", "invalid", f"保单号最长 64 个字符，收到 {len(policy_no)} 个"))
    product = _text(item.product)
    if not product:
        errors.append(FieldError("product", "missing", "产品为空"))
    elif len(product) > 200:
        errors.append(FieldError("product", "invalid", "产品名称最长 200 个字符"))
    premium = _premium(item.premium)
    if isinstance(premium, FieldError):
        errors.append(premium)
    converted_at = None
    if _text(item.converted_at) == "":
        errors.append(FieldError("converted_at", "missing", "成交时间为空"))
    else:
        converted_at = parse_consent_time(item.converted_at)
        if converted_at is None:
            errors.append(
                FieldError(
                    "converted_at",
                    "invalid",
                    f"成交时间无法识别：{mask_digit_runs(_text(item.converted_at))[:40]}（例如 2026-12-01 10:30）",
                )
            )
    external_id = _text(item.external_id) or None
    phone_hash = None
    phone_text = _text(item.phone)
    if phone_text:
        phone = normalise_phone(phone_text)
        if isinstance(phone, Phone):
            phone_hash = keyring.hash_phone(phone.number)
        elif external_id is None:
            errors.append(FieldError("phone", "invalid", f"手机号无法识别：{mask_digit_runs(phone_text)[:40]}"))
    if external_id is None and not phone_text:
        errors.append(FieldError("external_id", "missing", "需要线索的外部ID或手机号，用来匹配线索"))
    if errors:
        return None, errors
    assert converted_at is not None and isinstance(premium, Decimal)
    return _Checked(policy_no, product, premium, converted_at, external_id, phone_hash), []


def _premium(value: object) -> Decimal | FieldError:
    given = _text(value)
    text = given.replace(",", "").replace("，", "").replace("¥", "").replace("￥", "").removesuffix("元")
    if not text:
        return FieldError("premium", "missing", "保费为空")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return FieldError("premium", "invalid", f"保费不是数字：{given[:40]}（单位：元，例如 1288.00）")
    if not amount.is_finite() or amount <= 0:
        return FieldError("premium", "invalid", f"保费必须大于 0（单位：元），收到 {given[:40]}")
    if amount > MAX_PREMIUM:
        return FieldError("premium", "invalid", f"保费过大：{given[:40]}")
    return amount.quantize(Decimal("0.01"))


def _match_lead(session: Session, checked: _Checked) -> tuple[Lead | None, FieldError | None]:
    """By the caller's external id first (it names the lead exactly), else by the phone's hash."""
    if checked.external_id is not None:
        leads = session.execute(select(Lead).where(Lead.external_id == checked.external_id).limit(2)).scalars().all()
        if len(leads) == 1:
            return leads[0], None
        if len(leads) > 1 and checked.phone_hash is None:
            return None, FieldError(
                "external_id", "ambiguous", f"外部ID {checked.external_id} 对应多条线索（不同名单），请同时提供手机号"
            )
    if checked.phone_hash is not None:
        lead = session.execute(select(Lead).where(Lead.phone_hash == checked.phone_hash)).scalar_one_or_none()
        if lead is not None:
            return lead, None
        return None, FieldError("phone", "unmatched", "没有这个手机号的线索")
    return None, FieldError("external_id", "unmatched", f"没有外部ID为 {checked.external_id} 的线索")


def _attribute(
    session: Session, lead_id: int, converted_at: datetime, window: timedelta
) -> tuple[CallAttempt | None, int | None]:
    """(the attempt credited, its campaign): the lead's last connected call at or before the
    policy. Older than the window: no attempt (unattributed), but the campaign is kept so the
    report can count it apart."""
    attempt = session.execute(
        select(CallAttempt)
        .where(
            CallAttempt.lead_id == lead_id,
            CallAttempt.outcome == ANSWERED,
            CallAttempt.dialed_at.isnot(None),
            CallAttempt.dialed_at <= converted_at,
        )
        .order_by(CallAttempt.dialed_at.desc(), CallAttempt.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if attempt is None:
        return None, None
    if attempt.dialed_at < converted_at - window:
        return None, attempt.campaign_id
    return attempt, attempt.campaign_id


def _reject_row(
    keyring: PhoneKeyring, item: ConversionIn, result: ConversionResult, source: str, batch: str | None
) -> ConversionReject:
    first = result.errors[0]
    phone = normalise_phone(_text(item.phone)) if _text(item.phone) else None
    # Digit runs masked (a phone typed into any column); a readable phone as 138****1234.
    raw = {name: mask_digit_runs(_text(getattr(item, name))) for name in FIELDS}
    if isinstance(phone, Phone):
        raw["phone"] = mask_phone(phone.number)
    return ConversionReject(
        source=source,
        batch=batch,
        row_number=item.row_number,
        field=first.field,
        reason=first.reason,
        message="; ".join(f"{error.field}: {error.message}" for error in result.errors),
        policy_no=(result.policy_no or "")[:64] or None,
        phone_hash=keyring.hash_phone(phone.number) if isinstance(phone, Phone) else None,
        raw_masked=json.dumps(raw, ensure_ascii=False),
    )


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass(frozen=True)
class ConversionRow:
    """A stored conversion as listed (masked)."""

    id: int
    policy_no: str
    product: str
    premium: float
    converted_at: datetime
    lead_id: int
    phone_masked: str
    campaign_id: int | None
    attempt_id: int | None
    arms: dict[str, Any]
    source: str


def list_conversions(session: Session, *, campaign_id: int | None = None, limit: int = 50) -> list[ConversionRow]:
    query = (
        select(Conversion, Lead.phone_masked)
        .join(Lead, Lead.id == Conversion.lead_id)
        .order_by(Conversion.converted_at.desc(), Conversion.id.desc())
        .limit(limit)
    )
    if campaign_id is not None:
        query = query.where(Conversion.campaign_id == campaign_id)
    return [
        ConversionRow(
            c.id,
            c.policy_no,
            c.product,
            float(c.premium),
            c.converted_at,
            c.lead_id,
            masked,
            c.campaign_id,
            c.attempt_id,
            dict(c.arms or {}),
            c.source,
        )
        for c, masked in session.execute(query).all()
    ]


def list_rejects(session: Session, *, limit: int = 100) -> list[ConversionReject]:
    return list(
        session.execute(
            select(ConversionReject)
            .order_by(ConversionReject.created_at.desc(), ConversionReject.id.desc())
            .limit(limit)
        ).scalars()
    )


def erase_lead_conversions(session: Session, lead_ids: Sequence[int], phone_hash: str) -> int:
    """PIPL erasure: the person's policies and rejected rows (whether or not the database
    enforces the cascade from leads)."""
    erased = 0
    if lead_ids:
        erased += (
            session.execute(
                delete(Conversion)
                .where(Conversion.lead_id.in_(list(lead_ids)))
                .execution_options(synchronize_session=False)
            ).rowcount
            or 0
        )
    session.execute(
        delete(ConversionReject)
        .where(ConversionReject.phone_hash == phone_hash)
        .execution_options(synchronize_session=False)
    )
    return erased
