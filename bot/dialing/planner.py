"""The hopper: every minute, pick the leads each running campaign may dial now.

Like VICIdial's hopper refill: for each running campaign, fill the free lines with
leads whose number may be dialled at this instant — the compliance eligibility function
over the number's history across all campaigns, the do-not-call list read now, the
lead's time-slot arm open — and create the call attempts. (campaign, lead, attempt
number) is unique, so two planners racing create each attempt once; the caller enqueues
a dial task per attempt created, after commit.

A tick must stay well under a second or two for 10,000 lines over a million leads, so
the candidates come from index-ordered queries in pages (never-tried leads by id, then
tried ones least recently first), the history and the do-not-call list are read for a
whole page at once, and the attempts are written with one multi-row INSERT … ON CONFLICT
DO NOTHING RETURNING per chunk instead of one savepoint per row.

Callbacks first: a booked callback that is due (its named time has come and its grace has
not run out) is a promise, so each tick offers those leads before any other, oldest
booking first; the never-tried and tried scans share what is left.

Never more than the CPS can dial: a tick plans at most what the campaign's CPS dials in
one tick, less the attempts still waiting for their turn, and the k-th attempt of a tick
must still be allowed at the instant it is expected to go out (now + its place in the
CPS queue), so nothing is planned that could only be dialled after its window closed.
The dial task checks again at that instant (dialer.py); this keeps the queue from
promising what the T-0 check will have to cancel.

Experiments: a lead in the campaign's holdout is never dialled; the first time the hopper
meets one it is written to experiment_holdouts, so later ticks leave it out of the scan
(otherwise, once everyone else was tried, held-out leads would fill every tick's scan
budget and retries would starve). With a bandit, the campaign's weights move daily
(bot.experiments.bandit); a tried lead then keeps the arms of its first attempt.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import NamedTuple

from sqlalchemy import String, and_, any_, bindparam, case, func, or_, select, text, true, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.audiences.models import AudiencePack
from bot.campaigns.caller_numbers import CALLER_NUMBERS_CAPPED, pool_has_room
from bot.campaigns.experiment_design import HOLDOUT
from bot.campaigns.models import IN_FLIGHT, CallAttempt, Campaign, CampaignPack, ExperimentHoldout
from bot.campaigns.service import CampaignArms, campaign_arms, policy_for_slot
from bot.core.db.base import UtcDateTime
from bot.core.region import BEIJING_ZONE
from bot.dialing.routing import ROUTED_TO_PEOPLE, any_held, held_by_people, held_lead_ids, route_campaign_leads
from bot.dnc.service import DncEntry, active_hashes, state_from_entries
from bot.experiments.bandit import refresh_bandit_weights
from bot.leads.models import PRIORITY_LANE, Lead
from telephony.celery_app import PLAN_EVERY_S
from telephony.compliance.eligibility import OK_CALLBACK, Attempt, DncState, check_for_callee
from telephony.compliance.policy import CompliancePolicy

# Lead statuses that may still be called (retired: wrong person, vacant number, forgotten).
CALLABLE_LEAD_STATUSES = ("new", "active")
# How far back the history matters: the longest cool-down (soft decline, 180 days).
HISTORY_DAYS = 181
# Look at this many candidates per free line in one page: most of a scan is often not
# callable yet (the other time slot's leads, cool-downs).
SCAN_FACTOR = 4
# …and at most this many per free line in one tick, so a campaign whose leads are nearly
# all blocked right now costs a bounded scan rather than the whole list every minute.
MAX_SCAN_FACTOR = 10
# Candidates whose history and do-not-call entries are read in one query. Also keeps
# PostgreSQL on the (phone_hash, scheduled_at) index: from ~5,000 values on it estimates
# a sequential scan of all attempts as cheaper, and that is 4× slower.
LOOKUP_SLICE = 2000
# SQLite allows 32,766 bound variables per statement; stay far below.
SQLITE_CHUNK = 500


@dataclass
class PlanResult:
    campaign_id: int
    created: list[int] = field(default_factory=list)  # call attempt ids, to enqueue after commit
    skipped: Counter = field(default_factory=Counter)  # reason code → leads
    free_lines: int = 0
    backlog: int = 0  # attempts planned earlier and still waiting for their dial
    cps: float = 1.0
    offered: int = 0  # attempts offered this tick (their place in the CPS queue)
    callbacks: int = 0  # of `created`, callbacks booked by the callee


def cps_budget(cps: float, backlog: int) -> int:
    """Attempts one tick may add: what the CPS dials in a tick (plus one, so a CPS below one
    dial a tick still dials), less those still waiting."""
    return max(0, int(cps * PLAN_EVERY_S) + 1 - backlog)


class Candidate(NamedTuple):  # a tuple: a page holds tens of thousands
    lead_id: int
    phone_hash: str
    last_attempt_no: int  # in this campaign; 0 if never tried here
    scan_key: tuple = ()  # its place in its source's order: (lead id,) or (last tried at, lead id)
    source: str = ""  # the scan that found it


UNTRIED, TRIED, TRIED_FIRST, CALLBACKS = "untried", "tried", "tried_first", "callbacks"
PRIORITY = "priority"
# Speed to lead: each tick offers the priority lane's leads (API leads, Lead.priority) first,
# newest 留资 first, up to this share of the tick's attempts; the rest is the batch's, so a
# flood of API leads cannot starve the campaign's packs. Lines the batch leaves unused still
# reach priority leads: they are never-tried leads, found by the ordinary scan too.
PRIORITY_SHARE = 0.8
# The lane looks only at priority leads this fresh: speed to lead is about the first hours, and
# a fresh lead that cannot be dialled yet (a cool-down from another campaign) stops taking the
# lane's places after that; older ones are dialled as batch leads.
PRIORITY_HORIZON = timedelta(days=3)
# Of a tick's budget for tried leads, the share spent from the least recently tried on:
# leads come off their caps in that order, so newly callable retries are found at once.
# The rest goes on from where the last tick's scan stopped, so leads waiting for another
# slot's window (or a cool-down) at the front cannot take the whole budget every tick.
TRIED_FIRST_SHARE = 0.5


@dataclass
class ScanState:
    """Where each source's scan starts this tick (from the campaign's planner_cursor), what
    it looked at last, and which sources went all the way round."""

    start: dict[str, tuple | None]
    examined: dict[str, tuple] = field(default_factory=dict)
    round_done: set[str] = field(default_factory=set)
    looked_at: int = 0  # rows looked at this tick, over all scans
    seen: set[int] = field(default_factory=set)  # lead ids offered this tick
    now: datetime | None = None  # the tick's time (callbacks due)
    people_hold: bool = False  # some leads are routed to people (dialogs/routing.yml): filter them out

    @classmethod
    def of(cls, campaign: Campaign) -> ScanState:
        stored = campaign.planner_cursor or {}
        tried = stored.get(TRIED)
        return cls(
            {
                UNTRIED: _untried_key(stored[UNTRIED]) if stored.get(UNTRIED) is not None else None,
                TRIED: (datetime.fromisoformat(tried[0]), int(tried[1])) if tried else None,
            }
        )

    def saved(self) -> dict:
        """The cursor for the next tick: after what was looked at last; back to the start of
        a source that went round; unchanged for a source this tick never reached."""
        cursor: dict = {}
        for source in (UNTRIED, TRIED):
            key = None if source in self.round_done else self.examined.get(source, self.start[source])
            if key is not None:
                cursor[source] = list(key) if source == UNTRIED else [key[0].isoformat(), key[1]]
        return cursor


@dataclass(frozen=True)
class PlannedAttempt:
    lead_id: int
    attempt_no: int
    phone_hash: str
    arms: dict[str, str]
    callback: bool = False


def plan_campaign(session: Session, campaign: Campaign, now: datetime, limit: int | None = None) -> PlanResult:
    result = PlanResult(campaign.id, cps=max(campaign.cps, 1e-6))
    _lock_campaign(session, campaign.id)
    in_flight = _in_flight_by_status(session, campaign.id)
    result.free_lines = max(0, campaign.lines - sum(in_flight.values()))
    result.backlog = in_flight.get("scheduled", 0)
    wanted = min(result.free_lines, cps_budget(result.cps, result.backlog))
    wanted = wanted if limit is None else min(limit, wanted)
    if wanted <= 0:
        return result
    if pool_has_room(session, campaign.id, now) is False:
        # Every caller number is at its daily cap or rested: plan nothing (deferred, not dropped).
        result.skipped[CALLER_NUMBERS_CAPPED] += wanted
        return result
    refresh_bandit_weights(session, campaign, now)
    scan = ScanState.of(campaign)
    scan.now = now
    # dialogs/routing.yml: new leads its rules send to people are routed first (and never dialled).
    route_campaign_leads(session, campaign.id, now)
    scan.people_hold = any_held(session)
    try:
        _fill(session, campaign, now, wanted, scan, result)
    finally:
        cursor = scan.saved()
        if cursor != (campaign.planner_cursor or {}):
            session.execute(update(Campaign).where(Campaign.id == campaign.id).values(planner_cursor=cursor))
    return result


def _fill(
    session: Session, campaign: Campaign, now: datetime, wanted: int, scan: ScanState, result: PlanResult
) -> None:
    arms = campaign_arms(campaign)
    policies = _policies_by_slot(campaign)
    # The priority lane first (speed to lead), within its share of the tick; then the batch.
    lane_wanted = priority_lane_share(wanted)
    lane = _priority_lane(session, campaign, now, lane_wanted * SCAN_FACTOR, scan, skip_held_out=arms.holdout > 0)
    if lane:
        _plan_pages(session, campaign, now, lane_wanted, [lane], arms, policies, scan, result)
        # Those the lane looked at (newest first, down to the last one checked) are not looked at
        # again by the batch's scans this tick; the rest may still fill lines the batch leaves.
        last = scan.examined.get(PRIORITY)
        scan.seen.update(c.lead_id for c in lane if last is not None and c.scan_key >= last)
    pages = _candidate_pages(
        session,
        campaign,
        scan,
        page_size=wanted * SCAN_FACTOR,
        max_leads=wanted * MAX_SCAN_FACTOR,
        skip_held_out=arms.holdout > 0,
    )
    _plan_pages(session, campaign, now, wanted, pages, arms, policies, scan, result)
    # The batch's scans leave the lane's leads out; lines they leave go to the lane beyond its share.
    room = wanted - len(result.created)
    if room > 0 and lane:
        size = room * SCAN_FACTOR + len(lane)
        rest = _priority_lane(session, campaign, now, size, scan, skip_held_out=arms.holdout > 0)
        rest = [c for c in rest if c.lead_id not in scan.seen]
        _plan_pages(session, campaign, now, wanted, [rest], arms, policies, scan, result)


def priority_lane_share(wanted: int) -> int:
    """Of a tick's `wanted` attempts, how many the priority lane may take: PRIORITY_SHARE of them,
    never all of a tick that has two or more (the batch keeps at least one line a tick)."""
    if wanted <= 1:
        return wanted
    return max(1, min(wanted - 1, int(wanted * PRIORITY_SHARE)))


def _plan_pages(
    session: Session,
    campaign: Campaign,
    now: datetime,
    wanted: int,
    pages: Iterable[list[Candidate]],
    arms: CampaignArms,
    policies: dict[str | None, CompliancePolicy],
    scan: ScanState,
    result: PlanResult,
) -> None:
    """Plan from `pages` until the tick's attempts (all lanes) reach `wanted`."""
    if len(result.created) >= wanted:
        return
    for page in pages:
        # History and do-not-call are read a slice at a time, so a tick that fills its
        # lines early reads no more than it looks at.
        for candidates in _chunks(page, LOOKUP_SLICE):
            if scan.people_hold:
                candidates = _without_people_held(session, candidates, result)
            hashes = [c.phone_hash for c in candidates]
            histories = _histories(session, hashes, now)
            dnc = _dnc_entries(session, hashes, now)
            first_arms = _first_arms(session, campaign.id, candidates) if arms.sticky else {}
            audiences = _audience_keys(session, candidates) if arms.scoped_incentives else {}
            zones = _callee_zones(session, candidates)
            held_out: list[int] = []
            verdicts = (
                _plan_one(
                    c,
                    arms,
                    policies,
                    histories,
                    dnc,
                    now,
                    result.skipped,
                    first_arms,
                    held_out,
                    scan.examined,
                    result,
                    audiences,
                    zones,
                )
                for c in candidates
            )
            # Lazily, so leads past the last one needed are neither checked nor counted as
            # skipped; a conflict (another planner got there first) makes room for the next.
            eligible = (planned for planned in verdicts if planned is not None)
            while len(result.created) < wanted:
                batch = _take(eligible, wanted - len(result.created))
                if not batch:
                    break
                created = _insert_attempts(session, campaign.id, batch, now)
                if len(created) < len(batch):
                    result.skipped["already_planned"] += len(batch) - len(created)
                result.created += created
                result.callbacks += sum(1 for planned in batch if planned.callback)
            _remember_held_out(session, campaign.id, held_out, now)
            if len(result.created) >= wanted:
                return


def _without_people_held(session: Session, candidates: Sequence[Candidate], result: PlanResult) -> Sequence[Candidate]:
    """Leads with an open human/advisor route are the advisors' (one probe of the slice)."""
    held = held_lead_ids(session, [c.lead_id for c in candidates])
    if not held:
        return candidates
    result.skipped[ROUTED_TO_PEOPLE] += len(held)
    return [c for c in candidates if c.lead_id not in held]


def _audience_keys(session: Session, candidates: Sequence[Candidate]) -> dict[int, tuple[str, ...]]:
    """Lead id → its audience pack's (name, scene), for a campaign whose incentive arms are
    per pack (read a slice at a time, only for such campaigns)."""
    rows = session.execute(
        select(Lead.id, AudiencePack.name, AudiencePack.scene)
        .join(AudiencePack, AudiencePack.id == Lead.audience_id)
        .where(Lead.id.in_([c.lead_id for c in candidates]))
    )
    return {lead_id: tuple(k for k in (name, scene) if k) for lead_id, name, scene in rows}


def _callee_zones(session: Session, candidates: Sequence[Candidate]) -> dict[int, str]:
    """Lead id → its time zone, for the few leads living off Beijing's clock (Xinjiang): the
    rest are checked in the policy's zone, as before (one indexed read per slice)."""
    rows = session.execute(
        select(Lead.id, Lead.timezone).where(
            Lead.id.in_([c.lead_id for c in candidates]),
            Lead.timezone.isnot(None),
            Lead.timezone != BEIJING_ZONE,
        )
    )
    return dict(rows.all())


def _lock_campaign(session: Session, campaign_id: int) -> None:
    """One planner per campaign at a time, until its commit. Without it, hopper ticks that
    queued up while workers started each counted the same free lines and each filled
    them (1,490 scheduled for 200 lines measured); the unique key only stops the same
    attempt twice. PostgreSQL: a row lock, and the count below then sees the winner's
    attempts. SQLite has no FOR UPDATE (SQLAlchemy leaves it out): it has one writer anyway."""
    session.execute(select(Campaign.id).where(Campaign.id == campaign_id).with_for_update())


def _in_flight_by_status(session: Session, campaign_id: int) -> dict[str, int]:
    return dict(
        session.execute(
            select(CallAttempt.status, func.count())
            .where(CallAttempt.campaign_id == campaign_id, CallAttempt.status.in_(IN_FLIGHT))
            .group_by(CallAttempt.status)
        ).all()
    )


def _policies_by_slot(campaign: Campaign) -> dict[str | None, CompliancePolicy]:
    """Built once per tick, not once per lead."""
    slots = [None] + [s["name"] for s in (campaign.time_slots or ())]
    return {slot: policy_for_slot(campaign, slot) for slot in slots}


def _plan_one(
    candidate: Candidate,
    arms: CampaignArms,
    policies: dict[str | None, CompliancePolicy],
    histories: dict[str, list[Attempt]],
    dnc: dict[str, DncEntry],
    now: datetime,
    skipped: Counter,
    first_arms: dict[int, dict] | None = None,
    held_out: list[int] | None = None,
    examined: dict[str, tuple] | None = None,
    queue: PlanResult | None = None,
    audiences: dict[int, tuple[str, ...]] | None = None,
    zones: dict[int, str] | None = None,
) -> PlannedAttempt | None:
    if examined is not None:
        examined[candidate.source] = candidate.scan_key
    lead_arms = (first_arms or {}).get(candidate.lead_id) or arms.for_lead(
        candidate.lead_id, (audiences or {}).get(candidate.lead_id, ())
    )
    if HOLDOUT in lead_arms:
        skipped["holdout"] += 1
        if held_out is not None:
            held_out.append(candidate.lead_id)
        return None
    slot = lead_arms.get("time_slot")
    policy = policies[slot] if slot in policies else policies[None]
    entry = dnc.get(candidate.phone_hash)
    state = state_from_entries([entry]) if entry else DncState()
    history = histories.get(candidate.phone_hash, ())
    # The legal window in Beijing time (the campaign's policy) and the slot's in the callee's own.
    check = partial(
        check_for_callee, policy, callee_zone=(zones or {}).get(candidate.lead_id), legal_policy=policies[None]
    )
    verdict = check(now=now, attempts=history, dnc=state)
    if not verdict.allowed:
        skipped[verdict.reason] += 1
        return None
    if queue is not None:
        # Its place in the CPS queue: still allowed when its turn to dial comes?
        wait_s = (queue.backlog + queue.offered) / queue.cps
        if wait_s >= 1.0:
            later = check(now=now + timedelta(seconds=wait_s), attempts=history, dnc=state)
            if not later.allowed:
                skipped["closes_before_dial"] += 1
                return None
        queue.offered += 1
    return PlannedAttempt(
        candidate.lead_id,
        candidate.last_attempt_no + 1,
        candidate.phone_hash,
        lead_arms,
        callback=verdict.reason == OK_CALLBACK,
    )


def _take(items: Iterator[PlannedAttempt], n: int) -> list[PlannedAttempt]:
    taken = []
    for item in items:
        taken.append(item)
        if len(taken) >= n:
            break
    return taken


def _priority_lane(
    session: Session, campaign: Campaign, now: datetime, size: int, scan: ScanState, *, skip_held_out: bool
) -> list[Candidate]:
    """The campaign's never-tried priority leads of the last PRIORITY_HORIZON, newest 留资 first (on
    the partial index of priority leads: a few rows however large the packs)."""
    if size <= 0:
        return []
    pack_ids = select(CampaignPack.pack_id).where(CampaignPack.campaign_id == campaign.id).scalar_subquery()
    tried = (
        select(CallAttempt.id).where(CallAttempt.campaign_id == campaign.id, CallAttempt.lead_id == Lead.id).exists()
    )
    query = (
        select(Lead.id, Lead.phone_hash, Lead.lead_left_at)
        .where(
            Lead.pack_id.in_(pack_ids),
            text("leads.priority = 1"),  # a literal, as the partial index's predicate says
            Lead.lead_left_at >= now - PRIORITY_HORIZON,
            Lead.status.in_(CALLABLE_LEAD_STATUSES),
            ~tried,
        )
        .order_by(Lead.lead_left_at.desc(), Lead.id.desc())
        .limit(size)
    )
    if scan.people_hold:
        query = query.where(~held_by_people())
    if skip_held_out:
        query = query.where(
            ~select(ExperimentHoldout.lead_id)
            .where(ExperimentHoldout.campaign_id == campaign.id, ExperimentHoldout.lead_id == Lead.id)
            .exists()
        )
    return [
        Candidate(lead_id, phone_hash, 0, (left_at, lead_id), PRIORITY)
        for lead_id, phone_hash, left_at in session.execute(query)
    ]


def _candidate_pages(
    session: Session, campaign: Campaign, scan: ScanState, page_size: int, max_leads: int, skip_held_out: bool = False
) -> Iterator[list[Candidate]]:
    """Never-tried leads first (by id), then tried ones (least recently first for part of the
    budget, then on from the last tick's position), a page at a time, until `max_leads` have
    been looked at. The untried and tried scans go on from where the last tick stopped and
    wrap round to their start, so leads waiting for another slot's window cannot fill every
    tick's budget and hide the rest. Each source returns (page, cursor, rows looked at); no
    cursor means it reached the end."""
    pack_ids = list(
        session.execute(select(CampaignPack.pack_id).where(CampaignPack.campaign_id == campaign.id)).scalars()
    )
    if not pack_ids:
        return
    untried = partial(
        _untried_leads,
        session,
        campaign.id,
        pack_ids,
        skip_held_out=skip_held_out,
        lane_since=None if scan.now is None else scan.now - PRIORITY_HORIZON,
        skip_people_held=scan.people_hold,
    )

    tried = partial(_tried_leads, session, campaign.id, pack_ids, skip_people_held=scan.people_hold)
    due = _callbacks_due(session, campaign, pack_ids, scan.now) if scan.now is not None else []
    if due:
        scan.seen.update(c.lead_id for c in due)
        yield due
    yield from _scan(UNTRIED, untried, scan.start[UNTRIED], scan, page_size, max_leads)
    first_budget = scan.looked_at + int((max_leads - scan.looked_at) * TRIED_FIRST_SHARE)
    yield from _scan(TRIED_FIRST, tried, None, scan, page_size, first_budget)
    if TRIED_FIRST not in scan.round_done:  # else every tried lead has been looked at already
        yield from _scan(TRIED, tried, scan.start[TRIED], scan, page_size, max_leads)


def _scan(
    name: str, source, start: tuple | None, scan: ScanState, page_size: int, budget: int
) -> Iterator[list[Candidate]]:
    """One source from `start` (a scan key; None: the top) to the end, then round from the
    top back to `start`, while the leads looked at in this tick stay within `budget`. The
    source returns (page, the key of its last row or None at the end, rows looked at)."""
    after = start
    wrapped = start is None  # from the top: the end is the end
    while scan.looked_at < budget:
        page, after, seen = source(after, min(page_size, budget - scan.looked_at), name)
        # A lead the first tried scan looked at is not looked at again in the same tick.
        page = [c for c in page if c.lead_id not in scan.seen]
        scan.seen.update(c.lead_id for c in page)
        if after is None:  # the end of the list
            if wrapped:
                scan.round_done.add(name)
                return
            wrapped = True
            continue
        scan.looked_at += seen  # rows looked at, callable or not, so the bound holds either way
        if wrapped and start is not None and after >= start:
            page = [c for c in page if c.scan_key <= start]  # round to where this tick began
            scan.round_done.add(name)
            if page:
                yield page
            return
        if page:
            yield page


def _untried_key(stored: int | list) -> tuple:
    """The untried scan's key from the stored cursor; a bare lead id (cursors from before
    freshest-first) is a place among the leads without a 留资 time."""
    return tuple(int(part) for part in stored) if isinstance(stored, list) else (UNDATED, 0, int(stored))


# The untried scan's order, freshest first: leads with a 留资 time (lead_left_at) newest first
# (then the higher id), then those without one by id. As one ascending key:
# (DATED, -µs since the epoch, -id) or (UNDATED, 0, id).
DATED, UNDATED = 0, 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _dated_key(left_at: datetime, lead_id: int) -> tuple:
    return (DATED, -((left_at - _EPOCH) // timedelta(microseconds=1)), -lead_id)


def _untried_leads(
    session: Session,
    campaign_id: int,
    pack_ids: list[int],
    after: tuple | None,
    size: int,
    source: str = UNTRIED,
    *,
    skip_held_out: bool = False,
    lane_since: datetime | None = None,
    skip_people_held: bool = False,
) -> tuple[list[Candidate], tuple | None, int]:
    """Callable leads with no attempt in this campaign yet, freshest 留资 first, then those without
    a 留资 time by id (keyset paging on the key, see DATED); without the leads already found held
    out, when the campaign has a holdout. The dated part walks the partial index of 留资 times
    (a row comparison, so it stays an index range); a pack without them costs one empty probe."""
    tried = (
        select(CallAttempt.id).where(CallAttempt.campaign_id == campaign_id, CallAttempt.lead_id == Lead.id).exists()
    )
    callable_ = [Lead.pack_id.in_(pack_ids), Lead.status.in_(CALLABLE_LEAD_STATUSES), ~tried]
    if lane_since is not None:  # the priority lane's own leads are its, not the batch's (see _fill)
        callable_.append(or_(Lead.priority != PRIORITY_LANE, Lead.lead_left_at < lane_since))
    if skip_people_held:  # dialogs/routing.yml gave them to people: an anti-join on lead_routes' unique key
        callable_.append(~held_by_people())
    if skip_held_out:
        callable_.append(
            ~select(ExperimentHoldout.lead_id)
            .where(ExperimentHoldout.campaign_id == campaign_id, ExperimentHoldout.lead_id == Lead.id)
            .exists()
        )
    page: list[Candidate] = []
    if after is None or after[0] == DATED:
        dated = (
            select(Lead.id, Lead.phone_hash, Lead.lead_left_at)
            .where(*callable_, Lead.lead_left_at.isnot(None))
            .order_by(Lead.lead_left_at.desc(), Lead.id.desc())
            .limit(size)
        )
        if after is not None:
            left_at = _EPOCH + timedelta(microseconds=-after[1])
            dated = dated.where(
                tuple_(Lead.lead_left_at, Lead.id)
                < tuple_(bindparam("after_left_at", left_at, type_=UtcDateTime), bindparam("after_id", -after[2]))
            )
        page = [
            Candidate(lead_id, phone_hash, 0, _dated_key(left_at, lead_id), source)
            for lead_id, phone_hash, left_at in session.execute(dated)
        ]
        if len(page) >= size:
            return page, page[-1].scan_key, len(page)
        after = None  # the dated leads are done: on with the others from their top
    undated = (
        select(Lead.id, Lead.phone_hash)
        .where(*callable_, Lead.lead_left_at.is_(None))
        .order_by(Lead.id)
        .limit(size - len(page))
    )
    if after is not None:
        undated = undated.where(Lead.id > after[2])
    page += [
        Candidate(lead_id, phone_hash, 0, (UNDATED, 0, lead_id), source)
        for lead_id, phone_hash in session.execute(undated)
    ]
    return page, (page[-1].scan_key if page else None), len(page)


# Built once: aliases rebuilt per tick cost more than the query on a small campaign.
_BOOKING = CallAttempt.__table__.alias("booking")
_NEWER = CallAttempt.__table__.alias("newer")
_LATER_ATTEMPT = (
    select(_NEWER.c.id)
    .where(
        _NEWER.c.campaign_id == _BOOKING.c.campaign_id,
        _NEWER.c.lead_id == _BOOKING.c.lead_id,
        _NEWER.c.attempt_no > _BOOKING.c.attempt_no,
    )
    .exists()
)


def _callbacks_due(session: Session, campaign: Campaign, pack_ids: list[int], now: datetime) -> list[Candidate]:
    """Leads whose last attempt in this campaign booked a callback that is due now and not
    yet past the longest grace of the campaign's policies, oldest booking first (the
    eligibility check then applies each lead's own grace and band). Few rows, on the
    partial index of pending callbacks."""
    grace = max(policy.callback_grace_seconds for policy in _policies_by_slot(campaign).values())
    booking, later = _BOOKING, _LATER_ATTEMPT
    rows = session.execute(
        select(booking.c.lead_id, Lead.phone_hash, booking.c.attempt_no, booking.c.callback_at)
        .join(Lead, Lead.id == booking.c.lead_id)
        .where(
            booking.c.campaign_id == campaign.id,
            booking.c.callback_at.isnot(None),
            booking.c.callback_outcome.is_(None),
            booking.c.callback_at <= now,
            booking.c.callback_at >= now - timedelta(seconds=grace),
            booking.c.status == "completed",
            ~later,
            Lead.pack_id.in_(pack_ids),
            Lead.status.in_(CALLABLE_LEAD_STATUSES),
        )
        .order_by(booking.c.callback_at, booking.c.lead_id)
    ).all()
    return [
        Candidate(lead_id, phone_hash, int(attempt_no), (callback_at, lead_id), CALLBACKS)
        for lead_id, phone_hash, attempt_no, callback_at in rows
    ]


def _tried_leads(
    session: Session,
    campaign_id: int,
    pack_ids: list[int],
    after: tuple | None,
    size: int,
    source: str = TRIED,
    *,
    skip_people_held: bool = False,
) -> tuple[list[Candidate], tuple | None, int]:
    """Callable leads tried in this campaign with nothing in flight, least recently tried first.

    The page is cut from the campaign's per-lead aggregate before leads are joined: sorting
    the joined rows spilled to disk (660 ms for 300,000 attempts, 4 MB work_mem), the
    narrow aggregate sorts in memory. So a page may come back shorter than `size` while
    more follow; the cursor is the aggregate's, and only an empty aggregate ends the list."""
    last = (
        select(
            CallAttempt.lead_id.label("lead_id"),
            func.max(CallAttempt.attempt_no).label("last_no"),
            func.max(CallAttempt.scheduled_at).label("last_at"),
        )
        .where(CallAttempt.campaign_id == campaign_id)
        .group_by(CallAttempt.lead_id)
        .having(func.sum(case((CallAttempt.status.in_(IN_FLIGHT), 1), else_=0)) == 0)
        .subquery()
    )
    window = select(last.c.lead_id, last.c.last_no, last.c.last_at)
    if after is not None:
        last_at, lead_id = after
        window = window.where(or_(last.c.last_at > last_at, and_(last.c.last_at == last_at, last.c.lead_id > lead_id)))
    window = window.order_by(last.c.last_at, last.c.lead_id).limit(size).subquery()
    rows = session.execute(
        select(
            window.c.lead_id,
            window.c.last_at,
            Lead.phone_hash,
            window.c.last_no,
            and_(
                Lead.pack_id.in_(pack_ids),
                Lead.status.in_(CALLABLE_LEAD_STATUSES),
                ~held_by_people() if skip_people_held else true(),
            ),
        )
        .join(Lead, Lead.id == window.c.lead_id)
        .order_by(window.c.last_at, window.c.lead_id)
    ).all()
    page = [
        Candidate(lead_id, phone_hash, int(last_no), (last_at, lead_id), source)
        for lead_id, last_at, phone_hash, last_no, callable_ in rows
        if callable_
    ]
    return page, ((rows[-1][1], rows[-1][0]) if rows else None), len(rows)


def _first_arms(session: Session, campaign_id: int, candidates: Sequence[Candidate]) -> dict[int, dict]:
    """The arms of each tried candidate's first attempt in this campaign (one index probe
    each, on the (campaign, lead, attempt number) key)."""
    tried = [c.lead_id for c in candidates if c.last_attempt_no > 0]
    found: dict[int, dict] = {}
    for chunk in _chunks(tried, SQLITE_CHUNK):
        found.update(
            session.execute(
                select(CallAttempt.lead_id, CallAttempt.arms).where(
                    CallAttempt.campaign_id == campaign_id, CallAttempt.attempt_no == 1, CallAttempt.lead_id.in_(chunk)
                )
            ).all()
        )
    return found


def _remember_held_out(session: Session, campaign_id: int, lead_ids: list[int], now: datetime) -> None:
    if not lead_ids:
        return
    insert = (postgresql_insert if _dialect(session) == "postgresql" else sqlite_insert)(ExperimentHoldout)
    for chunk in _chunks(lead_ids, SQLITE_CHUNK):
        session.execute(
            insert.values(
                [{"campaign_id": campaign_id, "lead_id": lead_id, "created_at": now} for lead_id in chunk]
            ).on_conflict_do_nothing()
        )


def history_of(session: Session, phone_hash: str, now: datetime, excluding: int | None = None) -> list[Attempt]:
    """One number's history, for the check right before a dial (without that attempt)."""
    rows = _histories(session, [phone_hash], now, excluding)
    return rows.get(phone_hash, [])


def _histories(
    session: Session, phone_hashes: list[str], now: datetime, excluding: int | None = None
) -> dict[str, list[Attempt]]:
    """Each number's attempts across all campaigns in the window that matters, oldest first."""
    since = now - timedelta(days=HISTORY_DAYS)
    rows = []
    for hash_filter in _hash_filters(session, CallAttempt.phone_hash, phone_hashes):
        # Unordered: sorting a page's attempts in SQL spilled to disk; per number in Python is cheap.
        rows += session.execute(
            select(
                CallAttempt.phone_hash,
                CallAttempt.scheduled_at,
                CallAttempt.dialed_at,
                CallAttempt.history_outcome,
                CallAttempt.campaign_id,
                CallAttempt.callback_at,
            ).where(
                hash_filter,
                CallAttempt.scheduled_at >= since,
                CallAttempt.status != "cancelled",
                CallAttempt.id != (excluding or -1),
            )
        ).all()
    rows.sort(key=lambda row: row[1])
    history: dict[str, list[Attempt]] = defaultdict(list)
    for phone_hash, scheduled_at, dialed_at, outcome, campaign_id, callback_at in rows:
        history[phone_hash].append(
            Attempt(at=dialed_at or scheduled_at, outcome=outcome, campaign=str(campaign_id), callback_at=callback_at)
        )
    return history


def _dnc_entries(session: Session, phone_hashes: list[str], now: datetime) -> dict[str, DncEntry]:
    found: dict[str, DncEntry] = {}
    for chunk in _chunks(phone_hashes, SQLITE_CHUNK if _dialect(session) == "sqlite" else LOOKUP_SLICE):
        found.update(active_hashes(session, chunk, now))
    return found


def _hash_filters(session: Session, column, phone_hashes: list[str]) -> list[ColumnElement]:
    """`column IN (phone_hashes)` in as few statements as the database takes well: one array
    parameter on PostgreSQL (an expanded IN list costs more to bind than to run), chunks
    within the bound-variable limit on SQLite."""
    if len(phone_hashes) > 1 and _dialect(session) == "postgresql":
        return [column == any_(bindparam("phone_hashes", phone_hashes, type_=ARRAY(String)))]
    return [column.in_(chunk) for chunk in _chunks(phone_hashes, SQLITE_CHUNK)]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _chunks(values: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _insert_attempts(session: Session, campaign_id: int, planned: list[PlannedAttempt], now: datetime) -> list[int]:
    """Write the batch with INSERT … ON CONFLICT DO NOTHING RETURNING: conflicting keys
    (another planner's rows) are left alone and not returned, so the ids are exactly the
    attempts this call created — in planning order, the order the dials are paced in.
    Plain SQL: SQLAlchemy 1.4 renders RETURNING only for PostgreSQL, and its per-row
    parameter handling costs more than the database's own work at 10,000 rows."""
    session.flush()  # pending ORM changes first, so the statement sees them
    insert = _insert_attempts_postgresql if _dialect(session) == "postgresql" else _insert_attempts_sqlite
    created: dict[int, int] = {}
    for chunk in _chunks(planned, len(planned) if _dialect(session) == "postgresql" else SQLITE_CHUNK // 2):
        created.update(insert(session, campaign_id, chunk, now))
    return [created[a.lead_id] for a in planned if a.lead_id in created]


_ATTEMPT_COLUMNS = (
    "campaign_id, lead_id, attempt_no, phone_hash, arms, status, history_outcome, followups, scheduled_at"
)
_ON_CONFLICT = "ON CONFLICT (campaign_id, lead_id, attempt_no) DO NOTHING RETURNING lead_id, id"


def _insert_attempts_postgresql(
    session: Session, campaign_id: int, planned: Sequence[PlannedAttempt], now: datetime
) -> dict[int, int]:
    """One statement for the whole batch: four array parameters unnested into rows."""
    statement = text(
        f"INSERT INTO call_attempts ({_ATTEMPT_COLUMNS}) "
        "SELECT :campaign_id, t.lead_id, t.attempt_no, t.phone_hash, CAST(t.arms AS jsonb), "
        "'scheduled', 'scheduled', CAST('[]' AS jsonb), :now "
        "FROM unnest(CAST(:lead_ids AS bigint[]), CAST(:attempt_nos AS integer[]), CAST(:phone_hashes AS text[]), "
        "CAST(:arms AS text[])) AS t(lead_id, attempt_no, phone_hash, arms) "
        f"{_ON_CONFLICT}"
    ).bindparams(bindparam("now", type_=UtcDateTime))
    arms_json = _ArmsJson()
    return dict(
        session.execute(
            statement,
            {
                "campaign_id": campaign_id,
                "now": now,
                "lead_ids": [a.lead_id for a in planned],
                "attempt_nos": [a.attempt_no for a in planned],
                "phone_hashes": [a.phone_hash for a in planned],
                "arms": [arms_json(a.arms) for a in planned],
            },
        ).all()
    )


def _insert_attempts_sqlite(
    session: Session, campaign_id: int, planned: Sequence[PlannedAttempt], now: datetime
) -> dict[int, int]:
    """A multi-row VALUES (SQLite ≥ 3.35 has RETURNING), values bound as SQLAlchemy would."""
    dialect = session.get_bind().dialect
    stored_now = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)(now)
    arms_json = _ArmsJson()
    values = ", ".join("(?, ?, ?, ?, ?, 'scheduled', 'scheduled', '[]', ?)" for _ in planned)
    params: list = []
    for attempt in planned:
        params += [
            campaign_id,
            attempt.lead_id,
            attempt.attempt_no,
            attempt.phone_hash,
            arms_json(attempt.arms),
            stored_now,
        ]
    connection = session.connection()
    return dict(
        connection.exec_driver_sql(
            f"INSERT INTO call_attempts ({_ATTEMPT_COLUMNS}) VALUES {values} {_ON_CONFLICT}", tuple(params)
        ).all()
    )


class _ArmsJson:
    """JSON text of a lead's arms; a campaign has a handful of distinct ones, so each is
    encoded once."""

    def __init__(self) -> None:
        self._encoded: dict[tuple, str] = {}

    def __call__(self, arms: dict[str, str]) -> str:
        key = tuple(sorted(arms.items()))
        if key not in self._encoded:
            self._encoded[key] = json.dumps(arms, ensure_ascii=False)
        return self._encoded[key]
