"""Celery tasks: the hopper (every minute, from beat), one dial per attempt, reconciliation.

Start a worker with `celery -A bot.dialing.tasks worker --pool threads --concurrency 50`
and beat with `celery -A bot.dialing.tasks beat`. Each worker process keeps one event
loop thread that carries all of its calls, one shared dialogue agent and one carrier; the
task threads hand their call to that loop and wait for it. Each also replays its
machine's call journal every few seconds (results the database could not take), and
with WAIHU_METRICS_PORT serves its Prometheus /metrics.

The dial task's log says what happened to the attempt: skipped (claimed elsewhere), not
started (database down before the claim: it stays scheduled), given back (an error before
the dial: scheduled again), cancelled at T-0 (with the rule that failed), failed after the
dial, or the call's grade/status — "journaled" when the database could not take it yet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future
from typing import Any

import redis
from celery.signals import worker_init, worker_shutdown
from sqlalchemy.exc import SQLAlchemyError

from bot.core.clock import clock_from_settings, clock_speed
from bot.core.settings import Settings, get_settings
from bot.dialing import metrics
from bot.dialing.call_journal import CallJournal
from bot.dialing.call_prompts import CallPrompts
from bot.dialing.dialer import CallFailed, DialCancelled, Dialer
from bot.dialing.liveness import SEEN_EVERY_S, WorkerLiveness, dial_workers_from_settings
from bot.dialing.recordings import purge_expired, recorder_from_settings
from bot.leads.tasks import LOCATE_EVERY_S, locate_leads
from bot.script.project import DialogsProject
from bot.script.script_lines import load_script_domain
from bot.webhooks.tasks import DELIVER_EVERY_S as WEBHOOKS_EVERY_S
from bot.webhooks.tasks import deliver_webhooks
from bot.wecom.tasks import deliver_wecom_invites, send_sop_steps
from telephony.asr.aliyun_nls import AliyunNlsASR
from telephony.asr.aliyun_nls import config_from_env as nls_config_from_env
from telephony.carrier import Carrier
from telephony.celery_app import PLAN_EVERY_S, app, configure, plan_every_s, visibility_timeout_s
from telephony.clock import Clock
from telephony.freeswitch.carrier import FreeSwitchCarrier
from telephony.freeswitch.esl import EslConnection
from telephony.prompts import EspeakNgProvider, PromptRenderer
from telephony.rate_limits import DialLimits
from telephony.simulator.advisors import AdvisorPool, AdvisorPoolConfig
from telephony.simulator.carrier import SimulatorCarrier
from telephony.sip.carrier import SipCarrier, SipConfig
from telephony.vad import EndpointerConfig

log = logging.getLogger(__name__)


class DialWorkerRuntime:
    """What one worker process needs to run calls, built on first use."""

    def __init__(self) -> None:
        from bot.conversation.agent import load_shared_agent
        from bot.core.db.engine import open_database
        from bot.core.pii import keyring_from_settings
        from bot.script.project import DialogsProject
        from bot.script.training import require_model

        settings = get_settings()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="waihu-calls", daemon=True).start()
        self.clock = clock_from_settings()
        model = require_model(DialogsProject(settings.dialogs_dir), settings.models_dir)
        agent = load_shared_agent(model, settings.tracker_store_url, settings.lock_store_url)
        self.submit(agent.warm_up())
        carrier = self.submit(_make_carrier(self.clock))
        redis_client = _redis_client()
        prefix = f"waihu:{settings.queue}"
        self.journal = CallJournal(settings.journal_dir, redis_client=redis_client, redis_key=f"{prefix}:pending_dnc")
        # A heartbeat from before the first claim on, every replay pass; it expires after three.
        self.liveness = (
            WorkerLiveness(redis_client, prefix, ttl_s=3 * settings.journal_replay_every_s) if redis_client else None
        )
        worker = f"{socket.gethostname()}:{os.getpid()}"
        if self.liveness:
            self.liveness.beat(worker)
        self.dialer = Dialer(
            open_database(),
            agent,
            carrier,
            keyring_from_settings(),
            now=self.clock.now,
            worker=worker,
            prompts=_call_prompts(carrier),
            liveness=self.liveness,
            limits=DialLimits(redis_client, prefix=prefix) if redis_client else DialLimits(),
            journal=self.journal,
            clock=self.clock,
            max_call_s=settings.max_call_s,
            event_timeout_s=settings.call_event_timeout_s,
            write_attempts=settings.result_write_attempts,
        )
        # Every connected call recorded (the opening says 全程录音): the switch's own file, or
        # the simulator's mix made off the call loop.
        if settings.record_calls:
            self.dialer.recorder = recorder_from_settings(self.dialer.engine, settings.carrier)
        if settings.metrics_port:
            depth = metrics.redis_queue_depth(redis_client, settings.queue) if redis_client else (lambda: None)
            metrics.serve_worker_metrics(settings.metrics_port, [metrics.QueueCollector(depth, self.journal.backlog)])
        self._replay_every = settings.journal_replay_every_s
        threading.Thread(target=self._replay_forever, name="waihu-journal", daemon=True).start()
        if self.liveness:
            threading.Thread(target=self._beat_forever, name="waihu-heartbeat", daemon=True).start()
        # For ops: "is a dial worker running?" (`waihu campaign status`, the console), on any broker.
        self.workers = dial_workers_from_settings()
        self._leaving = threading.Event()
        threading.Thread(target=self._seen_forever, name="waihu-seen", daemon=True).start()

    def _seen_forever(self) -> None:
        while not self._leaving.is_set():
            self.workers.beat(self.dialer.worker)
            self._leaving.wait(SEEN_EVERY_S)

    def leave(self) -> None:
        """This worker is stopping: no longer counted as a dial worker."""
        self._leaving.set()
        self.workers.gone(self.dialer.worker)

    def _beat_forever(self) -> None:
        """Alive: a beat every third of the heartbeat's time-to-live (its own thread, so a
        slow journal replay never makes a live worker look dead)."""
        liveness = self.liveness
        if liveness is None:
            return
        while True:
            liveness.beat(self.dialer.worker)
            time.sleep(liveness.ttl_s / 3)

    def _replay_forever(self) -> None:
        """Replay the journal (own and dead processes' files) whenever the database answers."""
        while True:
            try:
                applied = self.dialer.replay_journal()
                if applied:
                    log.warning("journal replayed into the database: %s", applied)
            except Exception:  # noqa: BLE001  (never let the replayer die)
                log.exception("journal replay failed")
            time.sleep(self._replay_every)

    def sleep(self, seconds: float) -> None:
        """Wait on this task's thread for `seconds` of the runtime's clock (simulated or real)."""
        speed = getattr(self.clock, "speed", 1.0)
        if seconds > 0 and 0 < speed < float("inf"):
            time.sleep(seconds / speed)

    def submit(self, coro, timeout: float | None = None):
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)


def telephony_env(settings: Settings) -> dict[str, str]:
    """The SIP, ASR and VAD settings as the WAIHU_* names telephony reads (it cannot import
    bot.core.settings): validated and documented with every other setting."""
    prefixes = ("sip_", "nls_", "vad_")
    return {f"WAIHU_{name.upper()}": str(value) for name, value in settings.dict().items() if name.startswith(prefixes)}


async def _make_carrier(clock: Clock) -> Carrier:
    settings = get_settings()
    if settings.carrier == "freeswitch":
        connection = await EslConnection.connect(settings.esl_host, settings.esl_port, settings.esl_password)
        carrier = FreeSwitchCarrier(connection, gateway=settings.esl_gateway, caller_id=settings.caller_id)
        await carrier.start()
        return carrier
    if settings.carrier == "sip":
        env = telephony_env(settings)
        sip = SipCarrier(
            SipConfig.from_env(env), AliyunNlsASR(nls_config_from_env(env)), vad=EndpointerConfig.from_env(env)
        )
        await sip.start()
        return sip
    advisors = AdvisorPool(
        AdvisorPoolConfig.with_mean_busy(settings.sim_advisors, settings.sim_advisor_busy_s), seed=settings.sim_seed
    )
    return SimulatorCarrier(
        clock=clock,
        seed=settings.sim_seed,
        log_path=settings.sim_carrier_log,
        hang_dial_share=settings.sim_hang_dial_share,
        hang_call_share=settings.sim_hang_call_share,
        advisors=advisors,
    )


def _redis_client() -> redis.Redis | None:
    """The broker's Redis: CPS and lines shared by every worker, and the shared set of
    pending opt-outs; None without a Redis broker (limits per process). Short timeouts:
    a dead Redis must fail a dial's wait quickly, not hang it."""
    settings = get_settings()
    if settings.redis_broker:
        return redis.Redis.from_url(settings.broker_url, socket_timeout=5, socket_connect_timeout=2)
    return None


def _call_prompts(carrier: Carrier) -> CallPrompts | None:
    """Rendered audio for carriers that play files; none for the simulator."""
    if isinstance(carrier, SimulatorCarrier):
        return None
    settings = get_settings()
    return CallPrompts(
        PromptRenderer(EspeakNgProvider(), settings.prompts_dir),
        load_script_domain(DialogsProject(settings.dialogs_dir)),
    )


_runtime: DialWorkerRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> DialWorkerRuntime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = DialWorkerRuntime()
        return _runtime


def sip_concurrency_warning(settings: Settings, concurrency: int | None) -> str | None:
    """What to tell ops when a SIP worker runs more dial threads than PJSIP holds calls: the
    extra dials wait for a call slot (before their T-0 check, so no rule is broken) while
    holding their campaign's lines. `waihu run` lowers its own --concurrency instead."""
    if settings.carrier != "sip" or not concurrency or concurrency <= settings.sip_max_calls:
        return None
    return (
        f"SIP carrier: this worker runs {concurrency} dial threads but holds {settings.sip_max_calls} calls at once "
        f"(WAIHU_SIP_MAX_CALLS); the others wait for a call slot while holding campaign lines. Start it with "
        f"--concurrency {settings.sip_max_calls}, and more worker processes for more lines."
    )


@worker_init.connect
def _load_runtime_at_start(sender: Any = None, **_kwargs) -> None:
    """Load the dialogue model and carrier (and replay the journal, serve /metrics) before
    the worker takes any task: a restarted worker replays what a dead one left, and takes
    no dial it would hold unserved while its model loads (a minute on a busy machine)."""
    warning = sip_concurrency_warning(get_settings(), getattr(sender, "concurrency", None))
    if warning:
        log.warning(warning)
    try:
        runtime()
    except Exception:  # noqa: BLE001  (the first task reports it again, with its attempt)
        log.exception("dial runtime failed to load")


@worker_shutdown.connect
def _forget_worker_at_stop(**_kwargs) -> None:
    """A worker that stops cleanly is no longer counted as dialling."""
    if _runtime is not None:
        _runtime.leave()


@app.task(name="waihu.plan_dials")
def plan_dials() -> dict:
    """Refill: attempts for every running campaign, each dial paced by the campaign's CPS."""
    dialer = runtime().dialer
    try:
        plans = dialer.plan()
    except SQLAlchemyError as exc:
        log.warning("hopper skipped this tick: database unavailable (%s)", _first_line(exc))
        return {"queued": 0, "skipped": "database"}
    # The countdown spreads the dials over the tick at the campaign's CPS so they wait in the
    # broker, not on worker threads (callbacks first: the planner put them first); the token
    # each dial reserves (DialLimits) is what enforces the CPS across workers and ticks.
    queued = 0
    try:
        for plan in plans:
            for index, attempt_id in enumerate(plan.created):
                # Booked callbacks (first in `created`) take the next CPS turns; the others
                # queue behind the dials already waiting.
                place = index if index < plan.callbacks else index + plan.backlog
                dial.apply_async(args=[attempt_id], countdown=_countdown(place, plan.cps))
                queued += 1
    except Exception as exc:  # noqa: BLE001  (broker down: the attempts are planned; the reconciler re-sends them)
        planned = sum(len(plan.created) for plan in plans)
        log.warning(
            "hopper: %d of %d planned dials not queued, broker unavailable (%s); the reconciler re-sends them",
            planned - queued,
            planned,
            _first_line(exc),
        )
    return {"queued": queued, "campaigns": len(plans), "callbacks": sum(plan.callbacks for plan in plans)}


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _countdown(place: int, cps: float) -> float:
    """Real seconds until the `place`-th dial of a campaign is due (on a simulated clock
    running faster, faster); never past the tick, so a message is not held long."""
    speed = getattr(runtime().clock, "speed", 1.0)
    speed = speed if 0 < speed < float("inf") else 1.0
    return min(place / max(cps, 0.01), PLAN_EVERY_S) / speed


@app.task(name="waihu.dial", bind=True)
def dial(self, attempt_id: int) -> str:
    # Claim, T-0 check and call log run here on the task's thread (blocking database work,
    # many in parallel); only the conversation goes to the process's call loop.
    worker = runtime()
    dialer = worker.dialer
    try:
        prepared = dialer.prepare(attempt_id)
    except Exception as exc:  # noqa: BLE001  (before the claim took: nothing to undo)
        log.warning(
            "dial %s not started (%s: %s); the attempt stays scheduled and is sent again",
            attempt_id,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )
        return f"not started: {type(exc).__name__}"
    if isinstance(prepared, str):
        return prepared
    try:
        try:
            turn = dialer.wait_for_turn(prepared)
            try:
                while True:
                    worker.sleep(next(turn))
            except StopIteration as stop:
                reason = stop.value
        except Exception as exc:  # noqa: BLE001  (Redis gone while waiting: never burn the attempt)
            return dialer.give_back(prepared, exc)
        if reason:
            return dialer.cancel(prepared, reason)
        try:
            result = worker.submit(dialer.converse(prepared))
        except DialCancelled as exc:
            return dialer.cancel(prepared, exc.reason)
        except CallFailed as exc:
            return dialer.fail(prepared, exc)
        return dialer.finish(prepared, result)
    except Exception:  # the journal itself failed (disk full?): say so loudly
        log.exception("dial %s: the outcome could not be stored nor journaled", attempt_id)
        raise
    finally:
        dialer.release_line(prepared)


@app.task(name="waihu.reconcile_attempts")
def reconcile_attempts() -> dict:
    """Lost calls are closed, callbacks settled, planned attempts whose message was lost
    sent again (spread at their campaign's CPS) — by one reconciler at a time."""
    from sqlalchemy import select, update

    from bot.campaigns.models import CallAttempt, Campaign
    from bot.core.db.engine import session_scope

    dialer = runtime().dialer
    try:
        report = dialer.reconcile()
    except SQLAlchemyError as exc:
        log.warning("reconciler skipped this tick: database unavailable (%s)", _first_line(exc))
        return {"skipped": "database"}
    if report.resent:
        with session_scope(dialer.engine) as session:
            rows = session.execute(
                select(CallAttempt.id, Campaign.id, Campaign.cps)
                .join(Campaign, Campaign.id == CallAttempt.campaign_id)
                .where(CallAttempt.id.in_(report.resent))
                .order_by(CallAttempt.id)
            ).all()
        places: dict[int, int] = {}
        sent: list[int] = []
        try:
            for attempt_id, campaign_id, cps in rows:
                place = places.get(campaign_id, 0)
                places[campaign_id] = place + 1
                dial.apply_async(args=[attempt_id], countdown=_countdown(place, cps))
                sent.append(attempt_id)
        except Exception as exc:  # noqa: BLE001  (broker down: unmark the rest, the next pass sends them)
            unsent = [attempt_id for attempt_id, _, _ in rows if attempt_id not in set(sent)]
            with session_scope(dialer.engine) as session:
                session.execute(update(CallAttempt).where(CallAttempt.id.in_(unsent)).values(requeued_at=None))
            log.warning("reconciler: %d attempts not re-sent, broker unavailable (%s)", len(unsent), _first_line(exc))
        log.warning("reconciler: re-sent %d planned attempts whose queue message was lost", len(sent))
    return report.as_json()


@app.task(name="waihu.rest_caller_numbers")
def rest_caller_numbers() -> dict:
    """Rest (and flag) caller numbers whose connect rate fell far below their pool's
    (bot.campaigns.caller_number_health)."""
    from bot.campaigns.caller_number_health import rest_failing_numbers
    from bot.core.db.engine import session_scope

    dialer = runtime().dialer
    try:
        with session_scope(dialer.engine) as session:
            rested = rest_failing_numbers(session, dialer.now())
    except SQLAlchemyError as exc:
        log.warning("caller-number check skipped: database unavailable (%s)", _first_line(exc))
        return {"skipped": "database"}
    for health in rested:
        log.warning("caller number %s of campaign %s rested: %s", health.number, health.campaign_id, health.reason())
    return {"rested": [health.number for health in rested]}


# Recordings past their retention go once an hour (real time; the day boundary is not special).
PURGE_RECORDINGS_EVERY_S = 3600.0


@app.task(name="waihu.purge_recordings")
def purge_recordings() -> dict:
    """Delete the recordings past WAIHU_RECORDING_RETENTION_DAYS (files and rows) and log the counts.
    Needs only the database, not the dial runtime."""
    from bot.core.db.engine import open_database, session_scope

    try:
        with session_scope(open_database()) as session:
            report = purge_expired(session, clock_from_settings().now())
    except SQLAlchemyError as exc:
        log.warning("recording purge skipped: database unavailable (%s)", _first_line(exc))
        return {"skipped": "database"}
    if report.due:
        log.warning(
            "recordings purged past retention: %d rows, %d files, %d bytes", report.due, report.files, report.bytes
        )
    return report.as_json()


def _configure_from_settings() -> None:
    """Broker, queue and the beat schedule from the settings; the tasks by reference."""
    settings = get_settings()
    speed = clock_speed(settings)
    configure(
        app,
        broker_url=settings.broker_url,
        queue=settings.queue,
        visibility_timeout=visibility_timeout_s(settings.max_call_s, speed),
    )
    every = plan_every_s(speed)
    app.conf.beat_schedule = {
        "plan-dials": {"task": plan_dials.name, "schedule": every},
        "reconcile-attempts": {"task": reconcile_attempts.name, "schedule": every},
        # Caller numbers that stopped connecting are rested (a slow signal: every few ticks).
        "rest-caller-numbers": {"task": rest_caller_numbers.name, "schedule": every * 5},
        # WeCom invitations run on the same workers.
        "deliver-wecom-invites": {"task": deliver_wecom_invites.name, "schedule": every},
        # WeCom follow-up sequences (SOP): due steps, on the application's clock.
        "send-sop-steps": {"task": send_sop_steps.name, "schedule": every},
        # CRM webhooks (bot.webhooks): every few real seconds, and kicked after each emitting commit.
        "deliver-webhooks": {"task": deliver_webhooks.name, "schedule": WEBHOOKS_EVERY_S},
        # Call recordings past their retention (bot.dialing.recordings).
        "purge-recordings": {"task": purge_recordings.name, "schedule": PURGE_RECORDINGS_EVERY_S},
        # Region (time zone) of leads stored before migration 0014, from their number (bot.leads.locate).
        "locate-leads": {"task": locate_leads.name, "schedule": LOCATE_EVERY_S},
    }


_configure_from_settings()
