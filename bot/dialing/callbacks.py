"""Booked callbacks: a promise to call back at the time the callee named.

The hopper dials callbacks that are due ahead of every other lead (planner.py); here the
reconciler settles each booking once it is decided: "dialled" when a later attempt of the
same lead in the same campaign went out inside [named time, named time + grace], or
"missed:<reason>" once the grace has run out without one — with the reason found, so a
missed callback is reported, never silent (log, the callback_outcome column, /metrics).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import policy_for_slot
from bot.dnc.service import dnc_state
from bot.leads.models import Lead
from telephony.compliance.eligibility import Attempt, check_eligibility

log = logging.getLogger(__name__)

DIALLED = "dialled"
MISSED = "missed"
# Statuses of an attempt that reached the carrier (a `dialing` one may still be waiting for
# its turn, and be cancelled at T-0: the booking stays pending until it is decided).
DIALLED_STATUSES = ("completed", "failed")
IN_FLIGHT = ("scheduled", "dialing")
# How many bookings one reconcile pass settles at most (the rest wait a minute).
SETTLE_BATCH = 500


@dataclass(frozen=True)
class Settled:
    attempt_id: int
    outcome: str  # "dialled" or "missed:<reason>"


def settle_callbacks(session: Session, now: datetime) -> list[Settled]:
    """Settle every booking that is decided by now; pending ones are left alone."""
    booked = (
        session.execute(
            select(CallAttempt)
            .where(
                CallAttempt.callback_at.isnot(None),
                CallAttempt.callback_outcome.is_(None),
                CallAttempt.callback_at <= now,
            )
            .order_by(CallAttempt.callback_at)
            .limit(SETTLE_BATCH)
        )
        .scalars()
        .all()
    )
    settled: list[Settled] = []
    campaigns: dict[int, Campaign] = {}
    for booking in booked:
        campaign = campaigns.get(booking.campaign_id) or session.get(Campaign, booking.campaign_id)
        campaigns[booking.campaign_id] = campaign
        grace = timedelta(seconds=policy_for_slot(campaign, booking.arms.get("time_slot")).callback_grace_seconds)
        lapses = booking.callback_at + grace
        later = (
            session.execute(
                select(CallAttempt)
                .where(
                    CallAttempt.campaign_id == booking.campaign_id,
                    CallAttempt.lead_id == booking.lead_id,
                    CallAttempt.attempt_no > booking.attempt_no,
                )
                .order_by(CallAttempt.attempt_no)
            )
            .scalars()
            .all()
        )
        if any(
            a.status in DIALLED_STATUSES
            and a.dialed_at is not None
            and booking.callback_at - timedelta(seconds=1) <= a.dialed_at <= lapses
            for a in later
        ):
            outcome = DIALLED
        elif now <= lapses or any(a.status in IN_FLIGHT for a in later):
            continue  # still inside its grace, or a later attempt not yet decided: pending
        else:
            reason = _why_missed(session, booking, campaign, later, lapses)
            outcome = f"{MISSED}:{reason}"
            log.warning(
                "callback missed: attempt %s (campaign %s, lead %s) booked for %s, grace until %s: %s",
                booking.id,
                campaign.name,
                booking.lead_id,
                booking.callback_at.isoformat(),
                lapses.isoformat(),
                reason,
            )
        booking.callback_outcome = outcome
        settled.append(Settled(booking.id, outcome))
    return settled


def _why_missed(
    session: Session, booking: CallAttempt, campaign: Campaign, later: list[CallAttempt], lapses: datetime
) -> str:
    """The first thing that explains why nobody dialled inside the grace."""
    lead = session.get(Lead, booking.lead_id)
    if lead is None or lead.status not in ("new", "active"):
        return "lead_retired"
    dnc = dnc_state(session, booking.phone_hash, lapses)
    if dnc.opt_out or (dnc.soft_until is not None and dnc.soft_until > booking.callback_at):
        return "do_not_call"
    if campaign.status != "running":
        return f"campaign_{campaign.status}"
    in_grace = [a for a in later if booking.callback_at <= (a.ended_at or a.scheduled_at) <= lapses]
    cancelled = [a for a in in_grace if a.status == "cancelled"]
    if cancelled:
        return f"cancelled_at_t0_{cancelled[-1].outcome or 'unknown'}"
    if any(a.dialed_at is not None and a.dialed_at > lapses for a in later):
        return "dialled_after_grace"
    # Would the rules have let it be dialled at the named time? (Band, caps, a later call.)
    history = session.execute(
        select(
            CallAttempt.scheduled_at,
            CallAttempt.dialed_at,
            CallAttempt.history_outcome,
            CallAttempt.campaign_id,
            CallAttempt.callback_at,
        ).where(
            CallAttempt.phone_hash == booking.phone_hash,
            CallAttempt.status != "cancelled",
            CallAttempt.scheduled_at <= booking.callback_at,
        )
    ).all()
    attempts = sorted(
        (
            Attempt(at=dialed or scheduled, outcome=outcome, campaign=str(campaign_id), callback_at=cb)
            for scheduled, dialed, outcome, campaign_id, cb in history
        ),
        key=lambda a: a.at,
    )
    if attempts and attempts[-1].callback_at != booking.callback_at:
        return "superseded_by_a_later_call"
    policy = policy_for_slot(campaign, booking.arms.get("time_slot"))
    verdict = check_eligibility(policy, now=booking.callback_at, attempts=attempts)
    if not verdict.allowed and (verdict.earliest is None or verdict.earliest > lapses):
        return verdict.reason
    return "no_line_in_grace"
