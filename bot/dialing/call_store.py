"""Write a finished call to the database and act on its follow-ups.

Follow-ups take effect in the same transaction as the call record, so an opt-out is on
the do-not-call list before the dialer can pick the number again.

A hand-off nobody took (`advisor_callback`) makes a call-back task for a human advisor
(bot.wecom.advisor_tasks) and books no robot callback (`callback_at` stays empty): the robot
told the callee an advisor would call. Its history outcome is `busy`, so the robot keeps off
the number for the busy cool-down while the advisor calls back.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from bot.campaigns.call_events import emit_call_finished, emit_lead_graded
from bot.campaigns.models import CallAttempt, TurnRow
from bot.core.db.base import utc_now
from bot.dialing.call_runner import CallResult
from bot.dialing.routing import route_after_call
from bot.dnc.models import SCOPE_OPT_OUT, SCOPE_SOFT_DECLINE
from bot.dnc.service import add_entry
from bot.leads.models import Lead
from bot.wecom.advisor_tasks import create_handoff_callback
from intents.finished_call import ANSWERED
from intents.followups import (
    ADVISOR_CALLBACK,
    CALLBACK,
    COOL_DOWN,
    DO_NOT_CALL,
    RETIRE_LEAD,
    SOFT_DECLINE,
    WECOM_INVITE,
    FollowUp,
)

RETIRED = "retired"


def record_call(session: Session, attempt: CallAttempt, result: CallResult) -> None:
    outcome = result.outcome
    attempt.status = "completed"
    attempt.outcome = outcome.status if outcome else (result.carrier_status or "unreachable")
    attempt.grade = outcome.grade.grade if outcome and outcome.grade else None
    attempt.grade_reason = (
        outcome.grade.reason if outcome and outcome.grade else (outcome.as_json()["reason"] if outcome else None)
    )
    attempt.followups = [f.as_json() for f in outcome.followups] if outcome else []
    attempt.hangup_by = result.hangup_by
    attempt.handoff = result.handoff
    attempt.talk_time_s = result.talk_time_s
    attempt.answered_at = result.answered_at
    attempt.ended_at = result.ended_at
    attempt.carrier_call_id = result.carrier_call_id
    attempt.history_outcome = history_outcome(attempt.outcome, outcome.followups if outcome else ())
    for turn in result.turns:
        session.add(
            TurnRow(
                attempt_id=attempt.id,
                seq=turn.seq,
                speaker=turn.speaker,
                text=turn.text,
                response=turn.response,
                intent=turn.intent,
                confidence=turn.confidence,
                entities=[dict(e) for e in turn.entities],
                offset_ms=turn.offset_ms,
            )
        )
    for followup in outcome.followups if outcome else ():
        _apply(session, attempt, followup, result)
    # Webhooks (bot.webhooks): the events go into the outbox in this transaction, with the call.
    session.flush()
    emit_call_finished(session, attempt)
    if attempt.grade is not None:
        emit_lead_graded(session, attempt, grade=attempt.grade, reason=attempt.grade_reason, graded_at=attempt.ended_at)
        # dialogs/routing.yml's grade rules (e.g. A → advisor one-to-one), with the call.
        route_after_call(session, attempt.lead_id, attempt.grade, attempt.ended_at or utc_now())


def history_outcome(status: str, followups: Iterable[FollowUp]) -> str:
    """What the compliance rules read from an attempt (`CallAttempt.history_outcome`): its
    call status, unless a follow-up says more (the last one that does)."""
    result = status
    for followup in followups:
        if followup.action == DO_NOT_CALL:
            result = "opt_out"
        elif followup.action == SOFT_DECLINE:
            result = "soft_decline"
        elif followup.action in (COOL_DOWN, CALLBACK, ADVISOR_CALLBACK):
            # ADVISOR_CALLBACK: no robot callback time, so the busy cool-down keeps the robot
            # off the number while the advisor calls back.
            result = "busy"
        elif followup.action == RETIRE_LEAD and status == ANSWERED:
            result = "wrong_person"
    return result


def _apply(session: Session, attempt: CallAttempt, followup, result: CallResult) -> None:
    now = result.ended_at
    if followup.action == DO_NOT_CALL:
        add_entry(
            session,
            attempt.phone_hash,
            scope=SCOPE_OPT_OUT,
            reason=followup.reason,
            source="call",
            source_call_id=attempt.id,
            now=now,
        )
    elif followup.action == SOFT_DECLINE:
        add_entry(
            session,
            attempt.phone_hash,
            scope=SCOPE_SOFT_DECLINE,
            reason=followup.reason,
            source="call",
            source_call_id=attempt.id,
            expires_at=followup.until,
            now=now,
        )
    elif followup.action == CALLBACK:
        attempt.callback_at = followup.window_start
    elif followup.action == ADVISOR_CALLBACK:
        # The person the robot promised (转人工 nobody took): an advisor's task, never callback_at.
        create_handoff_callback(session, attempt, followup.window_start, followup.window_end, now=now)
    elif followup.action == RETIRE_LEAD:
        lead = session.get(Lead, attempt.lead_id)
        if lead is not None:
            lead.status = RETIRED
    elif followup.action == WECOM_INVITE:
        # The invitation row (status pending) commits with the call: the delivery pass
        # (bot.wecom.invites) sends it; a broken offers file gives a failed row, never a lost call.
        from bot.wecom.invites import create_invite

        create_invite(session, attempt, now=now)
