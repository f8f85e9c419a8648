"""The dial path: plan attempts, then for each one claim it, check again at T-0, call,
grade and log. Celery tasks (bot.dialing.tasks) and the embedded demo both use it.

Safety comes from the database, not from the queue: an attempt is dialled only by
whoever flips it from `scheduled` to `dialing` (a compare-and-set), so a task delivered
twice — a worker killed mid-call, a broker restart — never dials the same attempt twice.

The rules hold at the instant the carrier dials, not at the claim: the claim reads the
number's history and the do-not-call list once (a snapshot in the PreparedCall), and the
compliance check runs again on that snapshot — pure, no I/O — after every wait (the CPS
turn, a free line) and on the call loop right before `carrier.dial`, together with the
opt-outs still waiting in a journal. A dial that would go out outside its window is
cancelled with the reason (the attempt's outcome, /metrics). Between the claim and the
dial nothing is burnt: an error there gives the attempt back (`scheduled` again, sent
again by the reconciler) and it never counts against the caps.

After the call nothing is lost: the result is written with retries and, if the database
stays down, appended to the local journal (bot.dialing.call_journal), replayed when the
database is back — do-not-call entries first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.audiences.models import AudiencePack
from bot.campaigns.call_events import emit_call_finished
from bot.campaigns.caller_numbers import (
    CALLER_NUMBERS_CAPPED,
    give_back_caller_number,
    has_pool,
    take_caller_number,
)
from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import incentive_text_for, policy_for_slot
from bot.conversation.agent import DialogueAgent
from bot.conversation.session import LeadContext
from bot.core.add_modes import add_mode_for_call
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.pii import PhoneKeyring, mask_phone
from bot.core.settings import get_settings
from bot.dialing import metrics
from bot.dialing.call_journal import (
    CALL,
    CANCEL,
    FAILED,
    GIVE_BACK,
    CallJournal,
    attempt_entry,
    call_entry,
    result_from_json,
)
from bot.dialing.call_prompts import CallPrompts
from bot.dialing.call_runner import CallResult, EventRouter, assess, run_call
from bot.dialing.call_store import record_call
from bot.dialing.callbacks import settle_callbacks
from bot.dialing.liveness import WorkerLiveness
from bot.dialing.planner import PlanResult, history_of, plan_campaign
from bot.dialing.recordings import CallRecorder
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import add_entry, dnc_state
from bot.leads.models import Lead
from bot.wecom.offers import incentive_for, load_offers
from telephony.carrier import Carrier, NoLineFree
from telephony.celery_app import MAX_DIAL_WAIT_S
from telephony.clock import Clock
from telephony.compliance.eligibility import NOT_ON_DNC, Attempt, DncState, check_for_callee
from telephony.compliance.policy import CompliancePolicy
from telephony.rate_limits import DialLimits

log = logging.getLogger(__name__)

# A call that has been "dialing" this long lost its worker (calls end well before).
STUCK_AFTER = timedelta(minutes=20)


# A planned attempt nobody claimed for this long lost its queue message (e.g. the broker
# restarted without persistence): its dial task is sent again (the claim makes that safe).
REQUEUE_AFTER = timedelta(minutes=5)
# A dial that finds every line of its campaign held waits this long (dialer clock) and asks again.
LINE_RETRY_S = 1.0
# T-0 cancellation reasons of the dialer's own (the others are the eligibility reason codes).
CAMPAIGN_NOT_RUNNING = "campaign_not_running"
DNC_PENDING = "dnc_pending_in_journal"
CPS_BACKLOG = "cps_backlog"
NO_FREE_LINE = "no_free_line"
# The carrier had no line of its own for the dial (SIP: every PJSIP call slot taken) for longer
# than CARRIER_LINE_WAIT_S, or until the watchdog: nothing was sent.
CARRIER_FULL = "carrier_full"
CARRIER_LINE_WAIT_S = 40.0
CARRIER_LINE_RETRY_S = 0.05
# A call the dialer had to end itself (the carrier never answered the request or the call ran too long).
DIALER_TIMEOUT = "DIALER_TIMEOUT"
# Seconds between tries of a result write (real time; the database is restarting).
WRITE_BACKOFF_S = (0.5, 1.5, 3.0, 5.0)
# One reconciler at a time: a PostgreSQL advisory lock on this key (SQLite has one writer).
RECONCILE_LOCK_KEY = 0x77616968  # "waih"


def stuck_after() -> timedelta:
    """How long an attempt may stay "dialing" before it belongs to a dead worker (WAIHU_STUCK_AFTER_S)."""
    return timedelta(seconds=get_settings().stuck_after_s)


def requeue_after() -> timedelta:
    """How long a planned attempt may wait unclaimed before its message counts as lost (WAIHU_REQUEUE_AFTER_S)."""
    return timedelta(seconds=get_settings().requeue_after_s)


class DialCancelled(Exception):
    """The T-0 check failed right before the dial: nothing went to the carrier."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallFailed(Exception):
    """The call went to the carrier and then failed in the dialer (the phone may have rung)."""


class CheckedCarrier:
    """The carrier, with a check run at the very moment of `dial` — synchronously, before
    the request goes out, with no await in between. Everything else is the carrier's.

    A carrier with lines of its own (SIP: PJSIP's call slots; telephony.carrier.LineReserving)
    is waited for BEFORE the check, and a dial it refuses for want of a line (NoLineFree:
    nothing sent) is checked again before it is tried again: however long the wait, the rules
    hold at the instant the request goes out."""

    def __init__(
        self,
        carrier: Carrier,
        check: Callable[[], str | None],
        now: Callable[[], datetime],
        on_dial: Callable[[], None] | None = None,
    ) -> None:
        self._carrier = carrier
        self._check = check
        self._now = now
        self._on_dial = on_dial  # once, when the request went to the carrier
        self.dialled_at: datetime | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._carrier, name)

    async def dial(self, call_id: str, *args, **kwargs) -> str:
        reserve = getattr(self._carrier, "reserve_line", None)
        give_up = time.monotonic() + CARRIER_LINE_WAIT_S
        while True:
            if reserve is not None:
                await reserve(call_id)
            reason = self._check()
            if reason:
                self._release(call_id)
                raise DialCancelled(reason)
            self.dialled_at = self._now()
            try:
                carrier_id = await self._carrier.dial(call_id, *args, **kwargs)
            except NoLineFree:
                self.dialled_at = None
                if time.monotonic() >= give_up:
                    raise DialCancelled(CARRIER_FULL) from None
                await asyncio.sleep(CARRIER_LINE_RETRY_S)
                continue
            except BaseException:
                self._dialled()  # it may have gone out before the failure
                raise
            self._dialled()
            return carrier_id

    def _dialled(self) -> None:
        if self._on_dial is not None:
            self._on_dial()

    def _release(self, call_id: str) -> None:
        release = getattr(self._carrier, "release_line", None)
        if release is not None:
            release(call_id)


@dataclass(frozen=True)
class PreparedCall:
    """A claimed attempt that passed its T-0 check: what the call needs, and nothing that
    must be read from the database while it runs — including the snapshot the compliance
    check is repeated on after every wait."""

    attempt_id: int
    phone: str
    lead: LeadContext
    audience: str | None
    campaign_id: int = 0
    cps: float = 1.0
    lines: int = 1
    phone_hash: str = ""
    policy: CompliancePolicy | None = None
    history: tuple[Attempt, ...] = ()
    dnc: DncState = NOT_ON_DNC
    # The callee's clock (Asia/Urumqi for Xinjiang; None: Beijing's) and the campaign's own
    # policy, whose window holds in Beijing time while `policy` (the slot's) holds in theirs.
    callee_zone: str | None = None
    legal_policy: CompliancePolicy | None = None
    callee_province: str | None = None
    callee_city: str | None = None
    # The pool number this dial shows (taken after the T-0 check; None without a pool).
    caller_number: str | None = None
    caller_match: str | None = None

    @property
    def holder(self) -> str:
        return f"attempt-{self.attempt_id}"


@dataclass
class ReconcileReport:
    lost: int = 0
    resent: list[int] = field(default_factory=list)
    callbacks_dialled: int = 0
    callbacks_missed: int = 0
    skipped: bool = False  # another reconciler held the lock

    def as_json(self) -> dict:
        return {
            "lost": self.lost,
            "resent": len(self.resent),
            "callbacks_dialled": self.callbacks_dialled,
            "callbacks_missed": self.callbacks_missed,
            "skipped": self.skipped,
        }


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
    # Where results wait while the database is down; None: nowhere (the embedded demo).
    journal: CallJournal | None = None
    # The clock calls are timed on (the watchdog, the carrier-silence timeout); None: `sleep`
    # or real time.
    clock: Clock | None = None
    max_call_s: float = 15 * 60
    event_timeout_s: float = 120.0
    write_attempts: int = 3
    # How a failed result write waits before the next try (real seconds; tests pass a no-op).
    backoff: Callable[[float], None] = time.sleep
    # Which workers are alive (Redis heartbeats): a dead worker's calls are closed at once.
    liveness: WorkerLiveness | None = None
    # Records every connected call (bot.dialing.recordings); None: no recordings.
    recorder: CallRecorder | None = None
    _reconcile_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def plan(self) -> list[PlanResult]:
        """The hopper, once: attempts for every running campaign (commit, then enqueue)."""
        now = self.now()
        with session_scope(self.engine) as session:
            campaigns = session.execute(select(Campaign).where(Campaign.status == "running")).scalars().all()
            return [plan_campaign(session, campaign, now) for campaign in campaigns]

    # ------------------------------------------------------------------ one dial

    async def dial(self, attempt_id: int) -> str:
        """Run one planned attempt to the end, all on the calling thread (the embedded demo
        and tests). Returns what happened, for the task log, as the Celery task does."""
        try:
            prepared = self.prepare(attempt_id)
        except Exception as exc:  # noqa: BLE001  (the claim did not take: the attempt stays scheduled)
            log.warning("dial %s not started (%s); the attempt stays scheduled", attempt_id, type(exc).__name__)
            return f"not started: {type(exc).__name__}"
        if isinstance(prepared, str):
            return prepared
        try:
            try:
                reason = None
                if self.sleep is not None:
                    turn = self.wait_for_turn(prepared)
                    try:
                        while True:
                            await self.sleep(next(turn))
                    except StopIteration as stop:
                        reason = stop.value
            except Exception as exc:  # noqa: BLE001  (before the dial: give the attempt back)
                return self.give_back(prepared, exc)
            if reason:
                return self.cancel(prepared, reason)
            try:
                result = await self.converse(prepared)
            except DialCancelled as exc:
                return self.cancel(prepared, exc.reason)
            except CallFailed as exc:
                return self.fail(prepared, exc)
            return self.finish(prepared, result)
        finally:
            self.release_line(prepared)

    def prepare(self, attempt_id: int) -> PreparedCall | str:
        """Claim the attempt and check it again at T-0: blocking database work, so a Celery
        task runs it on its own thread, never on the event loop that carries the calls
        (three commits there stalled every other call on that loop). A string says why
        nothing will be dialled.

        A database error before the claim leaves the attempt `scheduled` (the reconciler
        sends it again); after the claim, the attempt is given back."""
        claimed = self._claim(attempt_id)
        if claimed is None:
            return "skipped: already taken or not scheduled"
        attempt, lead, campaign, pack = claimed
        try:
            snapshot = self._t0_snapshot(attempt, campaign)
            running = snapshot.pop("running")
            audience = (pack.scene or pack.name) if pack else None
            incentive, advisor = _offer_for(campaign, pack, lead.id, attempt.arms)
            context = LeadContext(
                surname=(lead.name or "")[:1] or None,
                gender=lead.gender,
                audience_pack=audience,
                script_variant=attempt.arms.get("script", "standard"),
                incentive=incentive,
                advisor=advisor,
                add_mode=add_mode_for_call(campaign.add_mode, lead.line_type),
            )
            prepared = PreparedCall(
                attempt.id,
                self.keyring.decrypt_phone(lead.phone_ciphertext),
                context,
                audience,
                campaign_id=campaign.id,
                cps=campaign.cps,
                lines=campaign.lines,
                phone_hash=attempt.phone_hash,
                callee_zone=lead.timezone,
                callee_province=lead.province,
                callee_city=lead.city,
                **snapshot,
            )
        except Exception as exc:  # noqa: BLE001  (claimed, not dialled: never burn it)
            bare = PreparedCall(
                attempt.id, "", LeadContext(), None, campaign_id=campaign.id, phone_hash=attempt.phone_hash
            )
            return self.give_back(bare, exc)
        reason = self.recheck(prepared) if running else CAMPAIGN_NOT_RUNNING
        if reason:
            return self.cancel(prepared, reason)
        try:
            taken = self._take_caller_number(prepared)
        except Exception as exc:  # noqa: BLE001  (claimed, not dialled: never burn it)
            return self.give_back(prepared, exc)
        if taken is None:
            return self.cancel(prepared, CALLER_NUMBERS_CAPPED)
        return taken

    def _take_caller_number(self, call: PreparedCall) -> PreparedCall | None:
        """The campaign's pool number for this dial, local first, within its daily cap (one
        conditional UPDATE: safe across workers), stored on the attempt. Unchanged without a
        pool; None when every number is at its cap or rested (the dial is deferred)."""
        with session_scope(self.engine) as session:
            if not has_pool(session, call.campaign_id):
                return call
            taken = take_caller_number(session, call.campaign_id, call.callee_province, call.callee_city, self.now())
            if taken is None:
                return None
            session.execute(
                update(CallAttempt)
                .where(CallAttempt.id == call.attempt_id)
                .values(caller_number=taken.number, caller_match=taken.match)
            )
        return replace(call, caller_number=taken.number, caller_match=taken.match)

    def _return_caller_number(self, call: PreparedCall) -> None:
        """A dial that took a pool number and did not go out gives the use back (best effort:
        the cap only ever errs on the safe side)."""
        if call.caller_number is None:
            return
        try:
            with session_scope(self.engine) as session:
                give_back_caller_number(session, call.campaign_id, call.caller_number, self.now())
                session.execute(
                    update(CallAttempt)
                    .where(CallAttempt.id == call.attempt_id)
                    .values(caller_number=None, caller_match=None)
                )
        except Exception as exc:  # noqa: BLE001
            log.warning("attempt %s: caller number use not given back (%s)", call.attempt_id, type(exc).__name__)

    def recheck(self, call: PreparedCall, at: datetime | None = None, on_loop: bool = False) -> str | None:
        """The T-0 rule check on the claim's snapshot at `at` (default now): pure and cheap,
        run after every wait and right before the dial. None: dial; else the reason.
        `on_loop`: on the call loop, where nothing may block — the pending opt-outs of this
        machine's journals only (the task thread asked Redis for the others' a moment ago)."""
        if self.journal is not None and self.journal.blocks(call.phone_hash, shared=not on_loop):
            return DNC_PENDING
        if call.policy is None:
            return None
        verdict = check_for_callee(
            call.policy,
            now=at or self.now(),
            attempts=call.history,
            dnc=call.dnc,
            callee_zone=call.callee_zone,
            legal_policy=call.legal_policy,
        )
        return None if verdict.allowed else verdict.reason

    def wait_for_turn(self, call: PreparedCall) -> Generator[float, None, str | None]:
        """The CPS turn, then a free line, re-checking the rules after each wait. Yields the
        seconds to wait (the caller sleeps on its clock: a task thread, or the embedded
        loop); returns None when the dial may go out, else why it must not."""
        start = self.now()
        wait = self.reserve_dial(call)
        if wait > MAX_DIAL_WAIT_S:
            return CPS_BACKLOG
        if wait > 0:
            # Known before waiting: would the dial still be allowed when its turn comes?
            reason = self.recheck(call, at=start + timedelta(seconds=wait))
            if reason:
                return reason
            yield wait
            reason = self.recheck(call)
            if reason:
                return reason
        while not self.acquire_line(call):
            if (self.now() - start).total_seconds() > 2 * MAX_DIAL_WAIT_S:
                return NO_FREE_LINE
            yield LINE_RETRY_S
            reason = self.recheck(call)
            if reason:
                return reason
        return None

    def reserve_dial(self, call: PreparedCall) -> float:
        """Seconds (on the dialer's clock) until this dial may go out, by the campaign's CPS."""
        return self.limits.reserve_dial(str(call.campaign_id), call.cps, self.now().timestamp())

    def acquire_line(self, call: PreparedCall) -> bool:
        return self.limits.acquire_line(str(call.campaign_id), call.lines, call.holder, self.now().timestamp())

    def release_line(self, call: PreparedCall) -> None:
        """Give the line back; a failure (Redis down) is logged as what it is — the call's
        result is not affected and the lease runs out by itself."""
        try:
            self.limits.release_line(str(call.campaign_id), call.holder)
        except Exception as exc:  # noqa: BLE001
            metrics.LINE_RELEASE_FAILED.inc()
            log.warning(
                "attempt %s: line lease not released (%s: %s); it expires by itself",
                call.attempt_id,
                type(exc).__name__,
                exc,
            )

    async def converse(self, call: PreparedCall) -> CallResult:
        """The call itself, on the event loop: the last T-0 check, dial, talk, grade. No
        database work here. Raises DialCancelled if the check fails (nothing was dialled),
        CallFailed if the call failed after the dial.

        The last check runs inside `carrier.dial` (CheckedCarrier), in the same step of the
        loop as the dial request: a busy loop may start a call task a while after it was
        created, and the rules hold at the dial, not at the task's creation."""
        reason = self.recheck(call, on_loop=True)
        if reason:
            raise DialCancelled(reason)
        counted = False

        def at_dial() -> str | None:
            return self.recheck(call, on_loop=True)

        def dialled() -> None:
            nonlocal counted
            counted = True
            metrics.DIALS.labels(str(call.campaign_id)).inc()
            metrics.CALLS_IN_FLIGHT.inc()

        checked = CheckedCarrier(self.carrier, at_dial, self.now, on_dial=dialled)
        try:
            return await self._watched_call(call, checked)
        except DialCancelled:
            raise
        except Exception as exc:
            log.exception("call for attempt %s (%s) failed after the dial", call.attempt_id, mask_phone(call.phone))
            raise CallFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if counted:
                metrics.CALLS_IN_FLIGHT.dec()

    async def _watched_call(self, call: PreparedCall, carrier: CheckedCarrier) -> CallResult:
        """run_call under a watchdog on the dialer's clock: a carrier that never answers the
        dial request, or a call past the longest call, is hung up and stored as such."""
        self.router = self.router or EventRouter(self.carrier)
        call_id = f"attempt-{call.attempt_id}"
        started = self.now()
        speed = getattr(self.clock, "speed", 1.0) if self.clock is not None else None
        if speed is None:
            event_timeout = 120.0 if self.sleep is None else None
        else:
            event_timeout = self.event_timeout_s / speed if 0 < speed < float("inf") else None
        # TimedAgent forwards everything to the agent it wraps, timing parse → respond.
        agent = cast(DialogueAgent, metrics.TimedAgent(self.agent)) if self.agent is not None else None
        running = asyncio.ensure_future(
            run_call(
                carrier,
                self.router,
                agent,
                call_id=call_id,
                phone=call.phone,
                lead=call.lead,
                clock=self.now,
                audio_for=self.prompts.for_call(call.lead) if self.prompts else (lambda line: None),
                event_timeout_s=event_timeout,
                dial_options=self._with_recording(call, _dial_options(call)),
            )
        )
        sleep = self.clock.sleep if self.clock is not None else (self.sleep or asyncio.sleep)
        watchdog = asyncio.ensure_future(sleep(self.max_call_s))
        try:
            await asyncio.wait({running, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watchdog.cancel()
        if running.done():
            return running.result()  # DialCancelled from the check at the dial, too
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if carrier.dialled_at is None:  # still waiting for a carrier line: nothing was sent
            carrier._release(call_id)
            raise DialCancelled(CARRIER_FULL)
        log.warning("attempt %s: no end from the carrier after %.0f s; hanging up", call.attempt_id, self.max_call_s)
        try:
            await asyncio.wait_for(self.carrier.hangup(call_id), 10)
        except Exception as exc:  # noqa: BLE001  (the carrier is what hangs: the result is stored anyway)
            log.warning("attempt %s: hang-up after the watchdog failed: %s", call.attempt_id, exc)
        result = CallResult(
            call_id,
            carrier_status="unreachable",
            cause=DIALER_TIMEOUT,
            hangup_by="bot",
            dialed_at=carrier.dialled_at or started,
            ended_at=self.now(),
        )
        result.outcome = assess(result)
        return result

    # ------------------------------------------------------------------ after the call

    def finish(self, call: PreparedCall, result: CallResult) -> str:
        """The call log, the grade and the follow-ups in one transaction (blocking: off the
        loop), retried; if the database stays down, journaled (fsync'd) — never dropped."""
        label = result.outcome.label if result.outcome else "ended"
        try:
            self._retrying(lambda: self._store_result(call.attempt_id, result), f"result of attempt {call.attempt_id}")
        except Exception as exc:  # noqa: BLE001
            return self._journal_or_raise(
                call_entry(call.attempt_id, call.phone_hash, result, self.now()),
                exc,
                f"{label} (journaled: {type(exc).__name__})",
            )
        self._record(call, result)
        return label

    def _with_recording(self, call: PreparedCall, options: dict | None) -> dict | None:
        """The recorder's dial options (FreeSWITCH: where the switch writes the file)."""
        if self.recorder is None:
            return options
        extra = self.recorder.dial_options(call.attempt_id, self.now())
        return {**(options or {}), **extra} or None

    def _record(self, call: PreparedCall, result: CallResult) -> None:
        """Hand the stored call to the recorder; its failure never touches the call's result."""
        if self.recorder is None:
            return
        try:
            self.recorder.after_call(call.attempt_id, result)
        except Exception:  # noqa: BLE001
            log.exception("attempt %s: recording not made", call.attempt_id)

    def _store_result(self, attempt_id: int, result: CallResult) -> bool:
        """Write a finished call unless it is stored already (a journal replayed twice).
        Overwrites a `worker_lost` the reconciler set while the result waited."""
        with session_scope(self.engine) as session:
            attempt = session.get(CallAttempt, attempt_id, with_for_update=True)
            if attempt is None or attempt.status == "completed":
                return False
            record_call(session, attempt, result)
            # The claim stamped its own time; the call went out after its CPS turn.
            attempt.dialed_at = result.dialed_at or attempt.dialed_at
            return True

    def fail(self, call: PreparedCall, exc: BaseException | None = None, outcome: str = "error") -> str:
        """A call that failed after the dial: `failed` (it counts: the phone may have rung)."""
        try:
            self._retrying(
                lambda: self._mark(call.attempt_id, ("dialing",), "failed", outcome, outcome),
                f"failure of attempt {call.attempt_id}",
            )
        except Exception as write_error:  # noqa: BLE001
            return self._journal_or_raise(
                attempt_entry(FAILED, call.attempt_id, call.phone_hash, outcome, self.now()),
                write_error,
                f"failed: {outcome} (journaled)",
            )
        return f"failed: {outcome}" + (f" ({type(exc).__name__})" if exc else "")

    def cancel(self, call: PreparedCall, reason: str) -> str:
        """Cancelled at T-0 with its reason: never dialled, never counted against the caps."""
        metrics.T0_CANCELLED.labels(reason).inc()
        self._return_caller_number(call)
        try:
            self._retrying(
                lambda: self._mark(call.attempt_id, ("dialing",), "cancelled", reason, "cancelled"),
                f"cancellation of attempt {call.attempt_id}",
            )
        except Exception as exc:  # noqa: BLE001
            return self._journal_or_raise(
                attempt_entry(CANCEL, call.attempt_id, call.phone_hash, reason, self.now()),
                exc,
                f"cancelled at T-0: {reason} (journaled)",
            )
        return f"cancelled at T-0: {reason}"

    def give_back(self, call: PreparedCall, exc: BaseException) -> str:
        """An error between the claim and the dial (Redis, the database, a bug): the attempt
        goes back to `scheduled`, unburnt; the reconciler sends it again."""
        cause = _cause(exc)
        metrics.GIVEN_BACK.labels(cause).inc()
        self._return_caller_number(call)
        log.warning(
            "attempt %s given back before the dial (%s: %s); it will be sent again",
            call.attempt_id,
            type(exc).__name__,
            exc,
        )
        try:
            self._retrying(lambda: self._unclaim(call.attempt_id), f"give-back of attempt {call.attempt_id}")
        except Exception as write_error:  # noqa: BLE001
            return self._journal_or_raise(
                attempt_entry(GIVE_BACK, call.attempt_id, call.phone_hash, cause, self.now()),
                write_error,
                f"given back: {cause} (journaled)",
            )
        return f"given back: {cause}"

    def _mark(
        self, attempt_id: int, from_statuses: tuple[str, ...], status: str, outcome: str, history_outcome: str
    ) -> bool:
        values = {"status": status, "outcome": outcome, "history_outcome": history_outcome, "ended_at": self.now()}
        if status == "cancelled":
            values["dialed_at"] = None  # the claim's stamp: it was never dialled
        with session_scope(self.engine) as session:
            marked = bool(
                session.execute(
                    update(CallAttempt)
                    .where(CallAttempt.id == attempt_id, CallAttempt.status.in_(from_statuses))
                    .values(**values)
                ).rowcount
            )
            if marked and status == "failed":  # it reached the carrier: a finished attempt for the CRMs too
                attempt = session.get(CallAttempt, attempt_id, populate_existing=True)
                if attempt is not None:
                    emit_call_finished(session, attempt)
            return marked

    def _unclaim(self, attempt_id: int) -> bool:
        with session_scope(self.engine) as session:
            return bool(
                session.execute(
                    update(CallAttempt)
                    .where(
                        CallAttempt.id == attempt_id,
                        CallAttempt.status == "dialing",
                        CallAttempt.carrier_call_id.is_(None),
                    )
                    .values(status="scheduled", worker=None, dialed_at=None, requeued_at=None)
                ).rowcount
            )

    def _retrying(self, write: Callable[[], Any], what: str) -> Any:
        """Try a database write `write_attempts` times, waiting between tries on transient
        errors (connection lost, pool exhausted); anything else fails at once."""
        for attempt in range(max(1, self.write_attempts)):
            try:
                return write()
            except (DBAPIError, PoolTimeout) as exc:
                transient = isinstance(exc, PoolTimeout) or exc.connection_invalidated or _is_operational(exc)
                if not transient or attempt + 1 >= self.write_attempts:
                    raise
                metrics.RESULT_WRITE_RETRIES.inc()
                log.warning("%s: database write failed (%s), retrying", what, type(exc).__name__)
                self.backoff(WRITE_BACKOFF_S[min(attempt, len(WRITE_BACKOFF_S) - 1)])
        raise AssertionError("unreachable")

    def _journal_or_raise(self, entry: dict, error: BaseException, said: str) -> str:
        if self.journal is None:
            log.error(
                "attempt %s: %s not written and no journal to keep it: %s", entry["attempt_id"], entry["kind"], error
            )
            raise error
        self.journal.append(entry)
        metrics.RESULTS_JOURNALED.labels(entry["kind"]).inc()
        log.warning(
            "attempt %s: database unavailable (%s: %s); %s kept in the journal for replay",
            entry["attempt_id"],
            type(error).__name__,
            str(error).splitlines()[0] if str(error) else "",
            entry["kind"],
        )
        return said

    # ------------------------------------------------------------------ the journal

    def replay_journal(self) -> dict[str, int]:
        """Apply what waits in the journal: every do-not-call entry first (one transaction),
        then each record in its own. Idempotent; a file whose replay fails stays for the
        next pass. Returns what was applied, by kind."""
        applied: dict[str, int] = {}
        if self.journal is None:
            return applied
        for path, entries, fd in self.journal.claim():
            try:
                self._replay_dnc(entries)
                for entry in entries:
                    if self._replay_one(entry):
                        applied[entry["kind"]] = applied.get(entry["kind"], 0) + 1
                        metrics.JOURNAL_REPLAYED.labels(entry["kind"]).inc()
            except Exception as exc:  # noqa: BLE001  (the database went again: next pass)
                self.journal.keep(path, fd)
                log.warning(
                    "journal %s: replay stopped (%s: %s); will try again",
                    path.name,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
                continue
            self.journal.done(path, fd, entries)
            if entries:
                log.info("journal %s replayed: %d entries", path.name, len(entries))
        return applied

    def _replay_dnc(self, entries: list[dict]) -> None:
        with session_scope(self.engine) as session:
            for entry in entries:
                for dnc in entry.get("dnc", ()):
                    ended = entry["result"].get("ended_at") or {"$dt": entry["at"]}
                    now = datetime.fromisoformat(ended["$dt"])
                    expires = datetime.fromisoformat(dnc["expires_at"]) if dnc.get("expires_at") else None
                    if dnc["scope"] != SCOPE_OPT_OUT and expires is not None and expires <= now:
                        continue
                    add_entry(
                        session,
                        entry["phone_hash"],
                        scope=dnc["scope"],
                        reason=dnc["reason"],
                        source="call",
                        source_call_id=entry["attempt_id"],
                        expires_at=expires,
                        now=now,
                    )

    def _replay_one(self, entry: dict) -> bool:
        kind, attempt_id = entry["kind"], entry["attempt_id"]
        at = datetime.fromisoformat(entry["at"])
        if kind == CALL:
            return self._store_result(attempt_id, result_from_json(entry["result"]))
        with session_scope(self.engine) as session:
            attempt = session.get(CallAttempt, attempt_id, with_for_update=True)
            if attempt is None:
                return False
            lost = attempt.status == "failed" and attempt.outcome == "worker_lost"
            if kind == FAILED and (attempt.status == "dialing" or lost):
                attempt.status, attempt.outcome, attempt.history_outcome = "failed", entry["reason"], entry["reason"]
            elif kind == CANCEL and (attempt.status == "dialing" or lost):
                attempt.status, attempt.outcome, attempt.history_outcome = "cancelled", entry["reason"], "cancelled"
                attempt.dialed_at = None
            elif kind == GIVE_BACK and attempt.status == "dialing":
                attempt.status, attempt.worker, attempt.dialed_at, attempt.requeued_at = "scheduled", None, None, None
                return True
            elif kind == GIVE_BACK and lost:
                # The reconciler closed it meanwhile; it was never dialled: cancelled, not counted.
                attempt.status, attempt.outcome = "cancelled", f"given_back_{entry['reason']}"
                attempt.history_outcome, attempt.dialed_at = "cancelled", None
            else:
                return False
            attempt.ended_at = at
            return True

    # ------------------------------------------------------------------ the reconciler

    def reconcile(self) -> ReconcileReport:
        """One reconciler at a time (PostgreSQL advisory lock; a process lock on SQLite):
        attempts whose worker died mid-call are marked failed (never re-dialled; they count,
        since the phone may have rung); booked callbacks are settled (dialled, or missed
        with the reason); planned attempts whose message was lost are marked re-sent and
        returned, for the caller to send after commit."""
        report = ReconcileReport()
        if not self._reconcile_lock.acquire(blocking=False):
            report.skipped = True
            metrics.RECONCILER_ACTIONS.labels("skipped_locked").inc()
            return report
        try:
            now = self.now()
            with session_scope(self.engine) as session:
                if (
                    session.get_bind().dialect.name == "postgresql"
                    and not session.execute(
                        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RECONCILE_LOCK_KEY}
                    ).scalar()
                ):
                    report.skipped = True
                    metrics.RECONCILER_ACTIONS.labels("skipped_locked").inc()
                    return report
                lost = (CallAttempt.status == "dialing") & (CallAttempt.dialed_at < now - stuck_after())
                dead = self._dead_workers(session)
                if dead:
                    lost = lost | ((CallAttempt.status == "dialing") & CallAttempt.worker.in_(dead))
                report.lost = (
                    session.execute(
                        update(CallAttempt)
                        .where(lost)
                        .values(status="failed", outcome="worker_lost", history_outcome="worker_lost", ended_at=now)
                    ).rowcount
                    or 0
                )
                if dead and report.lost:
                    log.warning("reconciler: workers %s stopped beating; their calls are closed", ", ".join(dead))
                for settled in settle_callbacks(session, now):
                    if settled.outcome.startswith("missed"):
                        report.callbacks_missed += 1
                        metrics.CALLBACKS_MISSED.labels(settled.outcome.split(":", 1)[1]).inc()
                    else:
                        report.callbacks_dialled += 1
                report.resent = self._mark_unclaimed(session, now)
        finally:
            self._reconcile_lock.release()
        for action, count in (
            ("worker_lost", report.lost),
            ("resent", len(report.resent)),
            ("callback_missed", report.callbacks_missed),
        ):
            if count:
                metrics.RECONCILER_ACTIONS.labels(action).inc(count)
        if report.lost:
            log.warning("reconciler: %d attempts lost their worker mid-call (marked worker_lost)", report.lost)
        return report

    def _dead_workers(self, session) -> list[str]:
        """Workers holding `dialing` attempts whose heartbeat has expired (none without liveness)."""
        if self.liveness is None:
            return []
        holders = (
            session.execute(select(CallAttempt.worker).where(CallAttempt.status == "dialing").distinct())
            .scalars()
            .all()
        )
        return sorted(self.liveness.dead(holders))

    def unclaimed(self) -> list[int]:
        """Planned attempts whose dial task never arrived, to be sent again (each marked, so
        it is not sent again before another `requeue_after`)."""
        with session_scope(self.engine) as session:
            return self._mark_unclaimed(session, self.now())

    def _mark_unclaimed(self, session, now: datetime) -> list[int]:
        cutoff = now - requeue_after()
        ids = list(
            session.execute(
                select(CallAttempt.id)
                .where(
                    CallAttempt.status == "scheduled",
                    CallAttempt.scheduled_at < cutoff,
                    (CallAttempt.requeued_at.is_(None)) | (CallAttempt.requeued_at < cutoff),
                )
                .order_by(CallAttempt.id)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        if ids:
            session.execute(update(CallAttempt).where(CallAttempt.id.in_(ids)).values(requeued_at=now))
        return ids

    # ------------------------------------------------------------------ claim and T-0

    def _claim(self, attempt_id: int):
        with session_scope(self.engine) as session:
            won = session.execute(
                update(CallAttempt)
                .where(CallAttempt.id == attempt_id, CallAttempt.status == "scheduled")
                .values(status="dialing", worker=self.worker, dialed_at=self.now())
            ).rowcount
            if not won:
                return None
            attempt = session.get(CallAttempt, attempt_id)
            lead = session.get(Lead, attempt.lead_id)
            campaign = session.get(Campaign, attempt.campaign_id)
            audience = session.get(AudiencePack, lead.audience_id) if lead.audience_id else None
            return attempt, lead, campaign, audience

    def _t0_snapshot(self, attempt: CallAttempt, campaign: Campaign) -> dict[str, Any]:
        """What the T-0 check needs, read once right after the claim: the campaign still
        running, the policy of the lead's slot, the number's history across campaigns and
        the do-not-call list."""
        now = self.now()
        with session_scope(self.engine) as session:
            if session.get(Campaign, campaign.id).status != "running":
                return {"running": False, "policy": None, "history": (), "dnc": NOT_ON_DNC}
            policy = policy_for_slot(campaign, attempt.arms.get("time_slot"))
            history = tuple(history_of(session, attempt.phone_hash, now, excluding=attempt.id))
            return {
                "running": True,
                "policy": policy,
                "legal_policy": policy_for_slot(campaign, None),
                "history": history,
                "dnc": dnc_state(session, attempt.phone_hash, now),
            }


def _dial_options(call: PreparedCall) -> dict | None:
    """What carrier.dial gets besides the number: the audience pack (the simulator's callee
    mix) and the pool's caller number."""
    options: dict[str, str] = {}
    if call.audience:
        options["audience_pack"] = call.audience
    if call.caller_number:
        options["caller_id"] = call.caller_number
    return options or None


def _cause(exc: BaseException) -> str:
    """A short label for what broke before a dial (metrics, logs)."""
    module = type(exc).__module__.split(".")[0]
    if module == "redis":
        return "redis"
    if isinstance(exc, SQLAlchemyError) or module in ("sqlalchemy", "psycopg2"):
        return "database"
    return "error"


def _is_operational(exc: DBAPIError) -> bool:
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))


def _offer_for(
    campaign: Campaign, pack: AudiencePack | None, lead_id: int, arms: dict
) -> tuple[str | None, str | None]:
    """What the robot promises and whose WeCom it names: the same incentive and advisor the
    welcome message will repeat (bot.wecom.offers). A broken offers file must not stop the
    dialling: the campaign's own incentive is said, the error logged (its invites fail
    with the file's error, so nobody is welcomed with a different promise)."""
    try:
        offers = load_offers()
    except UserError as exc:
        log.error("WeCom offers unavailable, saying the campaign's incentive: %s", exc)
        keys = tuple(k for k in ((pack.name, pack.scene) if pack else ()) if k)
        return incentive_text_for(campaign, arms, keys), None
    return (incentive_for(offers, pack, lead_id, arms, campaign=campaign).text, offers.advisor_for(pack).name)
