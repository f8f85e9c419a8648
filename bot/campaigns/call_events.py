"""The webhook events about calls (`call.finished`, `lead.graded`), built from the attempt row
and emitted into the outbox in the caller's transaction (bot.webhooks.events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt, Campaign
from bot.core.pii import mask_digit_runs
from bot.webhooks.events import CALL_FINISHED, LEAD_GRADED, emit, iso, lead_fields


def _masked(text: str | None) -> str | None:
    """A reason is free text (a manager may quote the callee's number): mask it for a CRM."""
    return mask_digit_runs(text) if text else text


def _call_part(session: Session, attempt: CallAttempt) -> dict[str, Any]:
    campaign = session.get(Campaign, attempt.campaign_id)
    return {
        "attempt_id": attempt.id,
        "campaign_id": attempt.campaign_id,
        "campaign": campaign.name if campaign is not None else None,
        **lead_fields(session, attempt.lead_id),
        "arms": dict(attempt.arms or {}),
    }


def emit_call_finished(session: Session, attempt: CallAttempt) -> int | None:
    """Every finished attempt, connected or not: its status (completed/failed), the call status
    (answered, no_answer, vacant_number …), the grade when it connected."""
    return emit(
        session,
        CALL_FINISHED,
        {
            **_call_part(session, attempt),
            "attempt_no": attempt.attempt_no,
            "status": attempt.status,
            "outcome": attempt.outcome,
            "connected": attempt.answered_at is not None,
            "grade": attempt.grade,
            "reason": _masked(attempt.grade_reason),
            "hangup_by": attempt.hangup_by,
            "talk_time_s": attempt.talk_time_s,
            "dialed_at": iso(attempt.dialed_at),
            "answered_at": iso(attempt.answered_at),
            "ended_at": iso(attempt.ended_at),
        },
        now=attempt.ended_at,
    )


def emit_lead_graded(
    session: Session,
    attempt: CallAttempt,
    *,
    grade: str,
    reason: str | None,
    graded_at: datetime | None,
    previous_grade: str | None = None,
    corrected_by: str | None = None,
) -> int | None:
    """The robot graded a connected call, or a person corrected the grade (`corrected: true`)."""
    return emit(
        session,
        LEAD_GRADED,
        {
            **_call_part(session, attempt),
            "grade": grade,
            "reason": _masked(reason),
            "corrected": corrected_by is not None,
            "previous_grade": previous_grade,
            "corrected_by": corrected_by,
            "graded_at": iso(graded_at),
        },
        now=graded_at,
    )
