"""The hopper: every minute, pick the leads each running campaign may dial now.

Like VICIdial's hopper refill: for each running campaign, fill the free lines with
leads whose number may be dialled at this instant — the compliance eligibility function
over the number's history across all campaigns, the do-not-call list read now, the
lead's time-slot arm open — and create the call attempts. (campaign, lead, attempt
number) is unique, so two planners racing create each attempt once; the caller enqueues
a dial task per attempt created, after commit.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.campaigns.models import IN_FLIGHT, CallAttempt, Campaign, CampaignPack
from bot.campaigns.service import campaign_arms, policy_for_slot
from bot.dnc.service import active_hashes, state_from_entries
from bot.leads.models import Lead
from telephony.compliance.eligibility import Attempt, DncState, check_eligibility

# Lead statuses that may still be called (retired: wrong person, vacant number, forgotten).
CALLABLE_LEAD_STATUSES = ("new", "active")
# How far back the history matters: the longest cool-down (soft decline, 180 days).
HISTORY_DAYS = 181
# Look at this many candidates per free line: most of a scan is often not callable yet.
SCAN_FACTOR = 4


@dataclass
class PlanResult:
    campaign_id: int
    created: list[int] = field(default_factory=list)  # call attempt ids, to enqueue after commit
    skipped: Counter = field(default_factory=Counter)  # reason code → leads
    free_lines: int = 0


def plan_campaign(session: Session, campaign: Campaign, now: datetime, limit: int | None = None) -> PlanResult:
    result = PlanResult(campaign.id)
    in_flight = session.execute(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.campaign_id == campaign.id, CallAttempt.status.in_(IN_FLIGHT))).scalar_one()
    result.free_lines = max(0, campaign.lines - in_flight)
    wanted = result.free_lines if limit is None else min(limit, result.free_lines)
    if wanted <= 0:
        return result
    candidates = _candidates(session, campaign, wanted * SCAN_FACTOR)
    if not candidates:
        return result
    histories = _histories(session, [lead.phone_hash for lead, _ in candidates], now)
    dnc = active_hashes(session, [lead.phone_hash for lead, _ in candidates], now)
    arms = campaign_arms(campaign)
    for lead, last_attempt_no in candidates:
        if len(result.created) >= wanted:
            break
        lead_arms = arms.for_lead(lead.id)
        policy = policy_for_slot(campaign, lead_arms.get("time_slot"))
        entry = dnc.get(lead.phone_hash)
        state = state_from_entries([entry]) if entry else DncState()
        verdict = check_eligibility(policy, now=now, attempts=histories.get(lead.phone_hash, ()), dnc=state)
        if not verdict.allowed:
            result.skipped[verdict.reason] += 1
            continue
        attempt = CallAttempt(campaign_id=campaign.id, lead_id=lead.id, attempt_no=last_attempt_no + 1,
                              phone_hash=lead.phone_hash, arms=lead_arms, status="scheduled",
                              history_outcome="scheduled", scheduled_at=now)
        try:
            with session.begin_nested():
                session.add(attempt)
        except IntegrityError:
            result.skipped["already_planned"] += 1  # another planner got there first
            continue
        result.created.append(attempt.id)
    return result


def _candidates(session: Session, campaign: Campaign, limit: int) -> list[tuple[Lead, int]]:
    """Callable leads of the campaign's packs with nothing in flight, least recently tried first."""
    attempts = (select(CallAttempt.lead_id,
                       func.max(CallAttempt.attempt_no).label("last_no"),
                       func.max(CallAttempt.scheduled_at).label("last_at"),
                       func.sum(case((CallAttempt.status.in_(IN_FLIGHT), 1), else_=0)).label("in_flight"))
                .where(CallAttempt.campaign_id == campaign.id)
                .group_by(CallAttempt.lead_id).subquery())
    packs = select(CampaignPack.pack_id).where(CampaignPack.campaign_id == campaign.id)
    query = (select(Lead, func.coalesce(attempts.c.last_no, 0))
             .outerjoin(attempts, attempts.c.lead_id == Lead.id)
             .where(Lead.pack_id.in_(packs), Lead.status.in_(CALLABLE_LEAD_STATUSES),
                    func.coalesce(attempts.c.in_flight, 0) == 0)
             .order_by(attempts.c.last_at.is_not(None), attempts.c.last_at, Lead.id)
             .limit(limit))
    return [(lead, int(last_no)) for lead, last_no in session.execute(query)]


def history_of(session: Session, phone_hash: str, now: datetime, excluding: int | None = None) -> list[Attempt]:
    """One number's history, for the check right before a dial (without that attempt)."""
    rows = _histories(session, [phone_hash], now, excluding)
    return rows.get(phone_hash, [])


def _histories(session: Session, phone_hashes: list[str], now: datetime,
               excluding: int | None = None) -> dict[str, list[Attempt]]:
    """Each number's attempts across all campaigns in the window that matters."""
    since = now - timedelta(days=HISTORY_DAYS)
    rows = session.execute(select(CallAttempt.phone_hash, CallAttempt.scheduled_at, CallAttempt.dialed_at,
                                  CallAttempt.history_outcome, CallAttempt.campaign_id, CallAttempt.callback_at)
                           .where(and_(CallAttempt.phone_hash.in_(phone_hashes), CallAttempt.scheduled_at >= since,
                                       CallAttempt.status != "cancelled", CallAttempt.id != (excluding or -1)))
                           .order_by(CallAttempt.scheduled_at))
    history: dict[str, list[Attempt]] = defaultdict(list)
    for phone_hash, scheduled_at, dialed_at, outcome, campaign_id, callback_at in rows:
        history[phone_hash].append(Attempt(at=dialed_at or scheduled_at, outcome=outcome,
                                           campaign=str(campaign_id), callback_at=callback_at))
    return history
