"""The events a CRM can subscribe to, what each carries, and `emit` — the outbox write.

`emit` adds the event and one pending delivery per active endpoint that subscribes to its
type, in the caller's session: they commit or roll back with the change they announce. After
the commit, a delivery pass is kicked (`on_commit`, installed by the worker: bot.webhooks.tasks);
beat runs one every few seconds anyway.

Payloads carry masked phone numbers only (138****1234); `emit` refuses a payload with an
11-digit mobile number in it, so a clear number cannot leave by mistake.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.db.base import utc_now
from bot.leads.models import Lead
from bot.webhooks.models import PENDING, WebhookDelivery, WebhookEndpoint, WebhookEvent

log = logging.getLogger(__name__)

CALL_FINISHED = "call.finished"
LEAD_GRADED = "lead.graded"
WECOM_ADDED = "wecom.added"
SOP_STEP_SENT = "sop.step_sent"
CONVERSION_MATCHED = "conversion.matched"
LEAD_ROUTED = "lead.routed"  # dialogs/routing.yml sent the lead to people (or back): bot.dialing.routing
PING = "ping"  # `waihu webhooks test`: never stored, never subscribed to

_LEAD = ("lead_id", "lead_external_id", "phone_masked")
# Every event type and the keys its `data` always has (values may be null where the README says so).
EVENT_SCHEMAS: dict[str, tuple[str, ...]] = {
    CALL_FINISHED: (
        "attempt_id",
        "attempt_no",
        "campaign_id",
        "campaign",
        *_LEAD,
        "status",
        "outcome",
        "connected",
        "grade",
        "reason",
        "arms",
        "hangup_by",
        "talk_time_s",
        "dialed_at",
        "answered_at",
        "ended_at",
    ),
    LEAD_GRADED: (
        "attempt_id",
        "campaign_id",
        "campaign",
        *_LEAD,
        "grade",
        "reason",
        "arms",
        "corrected",
        "previous_grade",
        "corrected_by",
        "graded_at",
    ),
    WECOM_ADDED: (
        "invite_id",
        "attempt_id",
        "campaign_id",
        "campaign",
        *_LEAD,
        "grade",
        "audience",
        "arms",
        "incentive",
        "advisor_userid",
        "external_userid",
        "added_at",
    ),
    SOP_STEP_SENT: ("sequence", "step", "channel", *_LEAD, "campaign_id", "arms", "sent_at"),
    CONVERSION_MATCHED: (
        *_LEAD,
        "policy_number",
        "product",
        "premium",
        "converted_at",
        "source",
        "campaign_id",
        "attempt_id",
        "arms",
    ),
    LEAD_ROUTED: (*_LEAD, "route", "rule", "reason", "advisor_userid", "routed_at"),
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_SCHEMAS)

# A mainland mobile number in clear (what masking turns into 138****1234). Not inside a longer
# token of letters and digits: WeCom's external_userid is random hex and may hold 11 digits.
_CLEAR_MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9A-Za-z])")

_after_commit: list[Callable[[], None]] = []
EMITTED_FLAG = "waihu_webhook_events"  # session.info: kick a delivery pass after the commit


def on_commit(hook: Callable[[], None]) -> None:
    """Run `hook` after every commit that emitted an event (the worker kicks a delivery pass)."""
    if hook not in _after_commit:
        _after_commit.append(hook)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def emit(session: Session, event_type: str, data: Mapping[str, Any], *, now: datetime | None = None) -> int | None:
    """Write the event and its deliveries in `session` (the change's own transaction).
    Returns the event id, or None when no active endpoint subscribes to the type (nothing stored)."""
    if event_type not in EVENT_SCHEMAS:
        raise ValueError(f"unknown webhook event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    missing = [key for key in EVENT_SCHEMAS[event_type] if key not in data]
    if missing:
        raise ValueError(f"{event_type} payload lacks {', '.join(missing)}")
    text = json.dumps(dict(data), ensure_ascii=False, default=str)
    if _CLEAR_MOBILE.search(text):
        raise ValueError(f"{event_type} payload holds a phone number in clear; send phone_masked only")
    endpoints = [
        endpoint_id
        for endpoint_id, types in session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(WebhookEndpoint.active.is_(True))
        )
        if event_type in (types or ())
    ]
    if not endpoints:
        return None
    now = now or utc_now()
    row = WebhookEvent(event_type=event_type, payload=json.loads(text), created_at=now)
    session.add(row)
    session.flush()
    session.add_all(
        WebhookDelivery(
            endpoint_id=endpoint_id,
            event_id=row.id,
            status=PENDING,
            attempts=0,
            replays=0,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint_id in endpoints
    )
    session.info[EMITTED_FLAG] = True
    return row.id


def emit_sop_step_sent(
    session: Session,
    *,
    sequence: str,
    step: str,
    channel: str,
    lead: Mapping[str, Any],
    campaign_id: int | None,
    arms: Mapping[str, Any],
    sent_at: datetime,
) -> int | None:
    """A follow-up sequence step went out (SOP: T+1, T+3 …). Ready for the follow-up feature (not built yet)."""
    return emit(
        session,
        SOP_STEP_SENT,
        {
            "sequence": sequence,
            "step": step,
            "channel": channel,
            **_lead_part(lead),
            "campaign_id": campaign_id,
            "arms": dict(arms),
            "sent_at": iso(sent_at),
        },
        now=sent_at,
    )


def emit_conversion_matched(
    session: Session,
    *,
    lead: Mapping[str, Any],
    policy_number: str,
    product: str,
    premium: float,
    converted_at: datetime,
    source: str,
    campaign_id: int | None,
    attempt_id: int | None,
    arms: Mapping[str, Any],
) -> int | None:
    """A policy was matched to a lead and its arms. Ready for the conversions feature (not built yet)."""
    return emit(
        session,
        CONVERSION_MATCHED,
        {
            **_lead_part(lead),
            "policy_number": policy_number,
            "product": product,
            "premium": premium,
            "converted_at": iso(converted_at),
            "source": source,
            "campaign_id": campaign_id,
            "attempt_id": attempt_id,
            "arms": dict(arms),
        },
        now=converted_at,
    )


def _lead_part(lead: Mapping[str, Any]) -> dict[str, Any]:
    return {key: lead.get(key) for key in _LEAD}


def lead_fields(session: Session, lead_id: int | None) -> dict[str, Any]:
    """lead_id, lead_external_id (the CRM's id, when the lead came with one) and phone_masked."""
    lead = session.get(Lead, lead_id) if lead_id is not None else None
    if lead is None:
        return {"lead_id": lead_id, "lead_external_id": None, "phone_masked": None}
    external = getattr(lead, "external_id", None) or (lead.custom_fields or {}).get("external_id")
    return {"lead_id": lead.id, "lead_external_id": external, "phone_masked": lead.phone_masked}


def _kick_after_commit(session: Session) -> None:
    if session.info.pop(EMITTED_FLAG, False):
        for hook in list(_after_commit):
            try:
                hook()
            except Exception:  # noqa: BLE001  (a kick is an optimisation: beat delivers anyway)
                log.warning("could not kick a webhook delivery pass; the next scheduled pass delivers", exc_info=True)


def _forget_after_rollback(session: Session) -> None:
    session.info.pop(EMITTED_FLAG, None)


sa_event.listen(Session, "after_commit", _kick_after_commit)
sa_event.listen(Session, "after_soft_rollback", lambda session, _tx: _forget_after_rollback(session))
