"""Celery tasks: the hopper (every minute, from beat), one dial per attempt, reconciliation.

Start a worker with `celery -A bot.dialing.tasks worker --pool threads --concurrency 50`
and beat with `celery -A bot.dialing.tasks beat`. Each worker process keeps one event
loop thread that carries all of its calls, one shared dialogue agent and one carrier; the
task threads hand their call to that loop and wait for it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future

import redis

from bot.core.clock import clock_from_settings, clock_speed
from bot.core.settings import get_settings
from bot.dialing.call_prompts import CallPrompts
from bot.dialing.dialer import LINE_RETRY_S, Dialer
from bot.script.project import DialogsProject
from bot.script.script_lines import load_script_domain
from bot.wecom.tasks import deliver_wecom_invites
from telephony.carrier import Carrier
from telephony.celery_app import app, configure, plan_every_s
from telephony.clock import Clock
from telephony.freeswitch.carrier import FreeSwitchCarrier
from telephony.freeswitch.esl import EslConnection
from telephony.prompts import EspeakNgProvider, PromptRenderer
from telephony.rate_limits import DialLimits
from telephony.simulator.carrier import SimulatorCarrier

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
        self.dialer = Dialer(open_database(), agent, carrier, keyring_from_settings(), now=self.clock.now,
                             worker=f"{socket.gethostname()}:{os.getpid()}", prompts=_call_prompts(carrier),
                             limits=_dial_limits())

    def sleep(self, seconds: float) -> None:
        """Wait on this task's thread for `seconds` of the runtime's clock (simulated or real)."""
        speed = getattr(self.clock, "speed", 1.0)
        if seconds > 0 and 0 < speed < float("inf"):
            time.sleep(seconds / speed)

    def submit(self, coro, timeout: float | None = None):
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)


async def _make_carrier(clock: Clock) -> Carrier:
    settings = get_settings()
    if settings.carrier == "freeswitch":
        connection = await EslConnection.connect(settings.esl_host, settings.esl_port, settings.esl_password)
        carrier = FreeSwitchCarrier(connection, gateway=settings.esl_gateway, caller_id=settings.caller_id)
        await carrier.start()
        return carrier
    return SimulatorCarrier(clock=clock, seed=settings.sim_seed)


def _dial_limits() -> DialLimits:
    """CPS and lines shared by every worker on the same Redis broker; per process otherwise."""
    settings = get_settings()
    if settings.redis_broker:
        return DialLimits(redis.Redis.from_url(settings.broker_url), prefix=f"waihu:{settings.queue}")
    return DialLimits()


def _call_prompts(carrier: Carrier) -> CallPrompts | None:
    """Rendered audio for carriers that play files; none for the simulator."""
    if isinstance(carrier, SimulatorCarrier):
        return None
    settings = get_settings()
    return CallPrompts(PromptRenderer(EspeakNgProvider(), settings.prompts_dir),
                       load_script_domain(DialogsProject(settings.dialogs_dir)))


_runtime: DialWorkerRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> DialWorkerRuntime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = DialWorkerRuntime()
        return _runtime


@app.task(name="waihu.plan_dials")
def plan_dials() -> dict:
    """Refill: attempts for every running campaign, each dial paced by the campaign's CPS."""
    from sqlalchemy import select

    from bot.campaigns.models import Campaign
    from bot.core.db.engine import open_database, session_scope

    dialer = runtime().dialer
    plans = dialer.plan()
    # Pacing is in the campaign's time: on a simulated clock running faster, faster.
    speed = getattr(runtime().clock, "speed", 1.0)
    speed = speed if 0 < speed < float("inf") else 1.0
    with session_scope(open_database()) as session:
        cps = dict(session.execute(select(Campaign.id, Campaign.cps)).all())
    # The countdown spreads the dials over the tick at the campaign's CPS so they wait in the
    # broker, not on worker threads; the token each dial reserves (DialLimits) is what
    # enforces the CPS across workers and ticks.
    queued = 0
    for plan in plans:
        for index, attempt_id in enumerate(plan.created):
            dial.apply_async(args=[attempt_id], countdown=index / max(cps.get(plan.campaign_id, 1.0), 0.01) / speed)
            queued += 1
    return {"queued": queued, "campaigns": len(plans)}


@app.task(name="waihu.dial", bind=True)
def dial(self, attempt_id: int) -> str:
    # Claim, T-0 check and call log run here on the task's thread (blocking database work,
    # many in parallel); only the conversation goes to the process's call loop.
    worker = runtime()
    try:
        prepared = worker.dialer.prepare(attempt_id)
        if isinstance(prepared, str):
            return prepared
        worker.sleep(worker.dialer.reserve_dial(prepared))
        while not worker.dialer.acquire_line(prepared):
            worker.sleep(LINE_RETRY_S)
        try:
            result = worker.submit(worker.dialer.converse(prepared))
            return worker.dialer.finish(prepared, result)
        finally:
            worker.dialer.release_line(prepared)
    except Exception as exc:  # logged with the attempt; the attempt row says "failed"
        log.exception("dial %s failed", attempt_id)
        return f"failed: {type(exc).__name__}"


@app.task(name="waihu.reconcile_attempts")
def reconcile_attempts() -> dict:
    """Lost calls are closed; planned attempts whose message was lost are sent again."""
    dialer = runtime().dialer
    lost = dialer.reconcile()
    resent = dialer.unclaimed()
    for attempt_id in resent:
        dial.apply_async(args=[attempt_id])
    return {"lost": lost, "resent": len(resent)}


def _configure_from_settings() -> None:
    """Broker, queue and the beat schedule from the settings; the tasks by reference."""
    settings = get_settings()
    configure(app, broker_url=settings.broker_url, queue=settings.queue)
    every = plan_every_s(clock_speed(settings))
    app.conf.beat_schedule = {
        "plan-dials": {"task": plan_dials.name, "schedule": every},
        "reconcile-attempts": {"task": reconcile_attempts.name, "schedule": every},
        # WeCom invitations run on the same workers.
        "deliver-wecom-invites": {"task": deliver_wecom_invites.name, "schedule": every},
    }


_configure_from_settings()
