"""The dial path: plan attempts, then for each one claim it, check again at T-0, call,
grade and log. Celery tasks (bot.dialing.tasks) and the embedded demo both use it.

Safety comes from the database, not from the queue: an attempt is dialled only by
whoever flips it from `scheduled` to `dialing` (a compare-and-set), so a task delivered
twice — a worker killed mid-call, a broker restart — never dials the same attempt twice.
"""
from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Awaitable, Callable

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from bot.audiences.models import AudiencePack
from bot.core.settings import get_settings
from bot.dialing.call_store import record_call
from bot.dialing.call_prompts import CallPrompts
from bot.dialing.call_runner import CallResult, EventRouter, run_call
from bot.dialing.planner import PlanResult, history_of, plan_campaign
from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import incentive_text_for, policy_for_slot
from bot.core.errors import UserError
from bot.conversation.agent import DialogueAgent
from bot.conversation.session import LeadContext
from bot.core.db.engine import session_scope
from bot.dnc.service import dnc_state
from bot.leads.models import Lead
from bot.core.pii import PhoneKeyring, mask_phone
from bot.wecom.offers import incentive_for, load_offers
from telephony.carrier import Carrier
from telephony.rate_limits import DialLimits
from telephony.compliance.eligibility import check_eligibility

log = logging.getLogger(__name__)

# A call that has been "dialing" this long lost its worker (calls end well before).
STUCK_AFTER = timedelta(minutes=20)


# A planned attempt nobody claimed for this long lost its queue message (e.g. the broker
# restarted without persistence): its dial task is sent again (the claim makes that safe).
REQUEUE_AFTER = timedelta(minutes=5)
# A dial that finds every line of its campaign held waits this long (dialer clock) and asks again.
LINE_RETRY_S = 1.0


def stuck_after() -> timedelta:
    """How long an attempt may stay "dialing" before it belongs to a dead worker (WAIHU_STUCK_AFTER_S)."""
    return timedelta(seconds=get_settings().stuck_after_s)


def requeue_after() -> timedelta:
    """How long a planned attempt may wait unclaimed before its message counts as lost (WAIHU_REQUEUE_AFTER_S)."""
    return timedelta(seconds=get_settings().requeue_after_s)


@dataclass(frozen=True)
class PreparedCall:
    """A claimed attempt that passed its T-0 check: what the call needs, and nothing that
    must be read from the database while it runs."""

    attempt_id: int
    phone: str
    lead: LeadContext
    audience: str | None
    campaign_id: int = 0
    cps: float = 1.0
    lines: int = 1

    @property
    def holder(self) -> str:
        return f"attempt-{self.attempt_id}"


@dataclass
class Dialer:
    engine: Engine
    agent: DialogueAgent
    carrier: Carrier
    keyring: PhoneKeyring
    now: Callable[[], datetime]
    worker: str = field(default_factory=socket.gethostname)
    router: EventRouter | None = None
    # Carriers that play audio files (FreeSWITCH) need each line rendered; the simulator
    # takes the text.
    prompts: CallPrompts | None = None
    # Calls per second and lines per campaign, at the moment of dialling (Redis-shared in
    # the Celery workers). `sleep` is how the embedded path waits for its turn (the
    # simulated clock's sleep); without it the embedded path does not pace.
    limits: DialLimits = field(default_factory=DialLimits)
    sleep: Callable[[float], Awaitable[None]] | None = None

    def plan(self) -> list[PlanResult]:
        """The hopper, once: attempts for every running campaign (commit, then enqueue)."""
        now = self.now()
        with session_scope(self.engine) as session:
            campaigns = session.execute(select(Campaign).where(Campaign.status == "running")).scalars().all()
            return [plan_campaign(session, campaign, now) for campaign in campaigns]

    async def dial(self, attempt_id: int) -> str:
        """Run one planned attempt to the end, all on the calling thread (the embedded demo
        and tests). Returns what happened, for the task log."""
        prepared = self.prepare(attempt_id)
        if isinstance(prepared, str):
            return prepared
        if self.sleep is not None:
            await self.sleep(self.reserve_dial(prepared))
            while not self.acquire_line(prepared):
                await self.sleep(LINE_RETRY_S)
        try:
            result = await self.converse(prepared)
            return self.finish(prepared, result)
        finally:
            self.release_line(prepared)

    def reserve_dial(self, call: PreparedCall) -> float:
        """Seconds (on the dialer's clock) until this dial may go out, by the campaign's CPS."""
        return self.limits.reserve_dial(str(call.campaign_id), call.cps, self.now().timestamp())

    def acquire_line(self, call: PreparedCall) -> bool:
        return self.limits.acquire_line(str(call.campaign_id), call.lines, call.holder, self.now().timestamp())

    def release_line(self, call: PreparedCall) -> None:
        self.limits.release_line(str(call.campaign_id), call.holder)

    def prepare(self, attempt_id: int) -> "PreparedCall | str":
        """Claim the attempt and check it again at T-0: blocking database work, so a Celery
        task runs it on its own thread, never on the event loop that carries the calls
        (three commits there stalled every other call on that loop). A string says why
        nothing will be dialled."""
        claimed = self._claim(attempt_id)
        if claimed is None:
            return "skipped: already taken or not scheduled"
        attempt, lead, campaign, pack = claimed
        blocked = self._blocked_at_t0(attempt, campaign)
        if blocked:
            return blocked
        audience = (pack.scene or pack.name) if pack else None
        incentive, advisor = _offer_for(campaign, pack, lead.id, attempt.arms)
        context = LeadContext(surname=(lead.name or "")[:1] or None, gender=lead.gender,
                              audience_pack=audience, script_variant=attempt.arms.get("script", "standard"),
                              incentive=incentive, advisor=advisor)
        return PreparedCall(attempt.id, self.keyring.decrypt_phone(lead.phone_ciphertext), context, audience,
                            campaign_id=campaign.id, cps=campaign.cps, lines=campaign.lines)

    async def converse(self, call: "PreparedCall") -> CallResult:
        """The call itself, on the event loop: dial, talk, grade. No database work here."""
        self.router = self.router or EventRouter(self.carrier)
        try:
            return await run_call(self.carrier, self.router, self.agent, call_id=f"attempt-{call.attempt_id}",
                                  phone=call.phone, lead=call.lead, clock=self.now,
                                  audio_for=self.prompts.for_call(call.lead) if self.prompts else (lambda line: None),
                                  dial_options={"audience_pack": call.audience} if call.audience else None)
        except Exception:
            log.exception("call for attempt %s (%s) failed", call.attempt_id, mask_phone(call.phone))
            self._finish_failed(call.attempt_id, "error")
            raise

    def finish(self, call: "PreparedCall", result: CallResult) -> str:
        """The call log, the grade and the follow-ups in one transaction (blocking: off the loop)."""
        with session_scope(self.engine) as session:
            attempt = session.get(CallAttempt, call.attempt_id)
            record_call(session, attempt, result)
            # The claim stamped its own time; the call went out after its CPS turn.
            attempt.dialed_at = result.dialed_at or attempt.dialed_at
        outcome = result.outcome
        return outcome.label if outcome else "ended"

    def reconcile(self) -> int:
        """Attempts whose worker died mid-call: marked failed (never re-dialled), and they
        count as attempts for the caps, since the phone may have rung."""
        cutoff = self.now() - stuck_after()
        with session_scope(self.engine) as session:
            result = session.execute(update(CallAttempt)
                                     .where(CallAttempt.status == "dialing", CallAttempt.dialed_at < cutoff)
                                     .values(status="failed", outcome="worker_lost", history_outcome="worker_lost",
                                             ended_at=self.now()))
            return result.rowcount or 0

    def unclaimed(self) -> list[int]:
        """Planned attempts whose dial task never arrived, to be sent again."""
        cutoff = self.now() - requeue_after()
        with session_scope(self.engine) as session:
            return list(session.execute(select(CallAttempt.id).where(CallAttempt.status == "scheduled",
                                                                     CallAttempt.scheduled_at < cutoff)).scalars())

    def _claim(self, attempt_id: int):
        with session_scope(self.engine) as session:
            won = session.execute(update(CallAttempt)
                                  .where(CallAttempt.id == attempt_id, CallAttempt.status == "scheduled")
                                  .values(status="dialing", worker=self.worker, dialed_at=self.now())).rowcount
            if not won:
                return None
            attempt = session.get(CallAttempt, attempt_id)
            lead = session.get(Lead, attempt.lead_id)
            campaign = session.get(Campaign, attempt.campaign_id)
            audience = session.get(AudiencePack, lead.audience_id) if lead.audience_id else None
            return attempt, lead, campaign, audience

    def _blocked_at_t0(self, attempt: CallAttempt, campaign: Campaign) -> str | None:
        """The do-not-call list and the compliance rules, read again right before the dial."""
        now = self.now()
        with session_scope(self.engine) as session:
            if session.get(Campaign, campaign.id).status != "running":
                reason = "campaign_not_running"
            else:
                policy = policy_for_slot(campaign, attempt.arms.get("time_slot"))
                verdict = check_eligibility(policy, now=now, attempts=history_of(session, attempt.phone_hash, now,
                                                                                 excluding=attempt.id),
                                            dnc=dnc_state(session, attempt.phone_hash, now))
                reason = None if verdict.allowed else verdict.reason
            if reason is None:
                return None
            row = session.get(CallAttempt, attempt.id)
            row.status, row.outcome, row.history_outcome, row.ended_at = "cancelled", reason, "cancelled", now
        return f"cancelled at T-0: {reason}"

    def _finish_failed(self, attempt_id: int, outcome: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(CallAttempt, attempt_id)
            row.status, row.outcome, row.history_outcome, row.ended_at = "failed", outcome, outcome, self.now()


def _offer_for(campaign: Campaign, pack: AudiencePack | None, lead_id: int,
               arms: dict) -> tuple[str | None, str | None]:
    """What the robot promises and whose WeCom it names: the same incentive and advisor the
    welcome message will repeat (bot.wecom.offers). A broken offers file must not stop the
    dialling: the campaign's own incentive is said, the error logged (its invites fail
    with the file's error, so nobody is welcomed with a different promise)."""
    try:
        offers = load_offers()
    except UserError as exc:
        log.error("WeCom offers unavailable, saying the campaign's incentive: %s", exc)
        return incentive_text_for(campaign, arms), None
    return (incentive_for(offers, pack, lead_id, arms, campaign=campaign).text,
            offers.advisor_for(pack).name)
