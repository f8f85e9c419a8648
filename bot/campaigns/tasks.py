"""Celery tasks: the hopper (every minute, from beat), one dial per attempt, reconciliation.

Start a worker with `celery -A bot.campaigns.tasks worker --pool threads --concurrency 50`
and beat with `celery -A bot.campaigns.tasks beat`. Each worker process keeps one event
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

from bot.campaigns.dialer import LINE_RETRY_S, Dialer
from bot.clock import clock_from_settings
from bot.settings import get_settings
from telephony.celery_app import app
from telephony.carrier import Carrier

log = logging.getLogger(__name__)


class DialWorkerRuntime:
    """What one worker process needs to run calls, built on first use."""

    def __init__(self) -> None:
        from bot.conversation.agent import load_shared_agent
        from bot.db.engine import open_database
        from bot.pii import keyring_from_settings
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


async def _make_carrier(clock) -> Carrier:
    kind = os.environ.get("WAIHU_CARRIER", "simulator")
    if kind == "simulator":
        from telephony.simulator.carrier import SimulatorCarrier

        return SimulatorCarrier(clock=clock, seed=os.environ.get("WAIHU_SIM_SEED", "0"))
    if kind == "freeswitch":
        from telephony.freeswitch.carrier import FreeSwitchCarrier
        from telephony.freeswitch.esl import EslConnection

        env = os.environ
        connection = await EslConnection.connect(env.get("WAIHU_ESL_HOST", "127.0.0.1"),
                                                 int(env.get("WAIHU_ESL_PORT", "8021")),
                                                 env.get("WAIHU_ESL_PASSWORD", "ClueCon"))
        carrier = FreeSwitchCarrier(connection, gateway=env.get("WAIHU_ESL_GATEWAY", "carrier"),
                                    caller_id=env.get("WAIHU_CALLER_ID", "0000000000"))
        await carrier.start()
        return carrier
    raise ValueError(f"WAIHU_CARRIER={kind!r}: use simulator or freeswitch")


def _dial_limits():
    """CPS and lines shared by every worker on the same Redis broker; per process otherwise."""
    from telephony.rate_limits import DialLimits

    broker = os.environ.get("WAIHU_BROKER_URL", "")
    if broker.startswith(("redis://", "rediss://")):
        import redis

        return DialLimits(redis.Redis.from_url(broker), prefix=f"waihu:{os.environ.get('WAIHU_QUEUE', 'waihu')}")
    return DialLimits()


def _call_prompts(carrier: Carrier):
    """Rendered audio for carriers that play files; none for the simulator."""
    from telephony.simulator.carrier import SimulatorCarrier

    if isinstance(carrier, SimulatorCarrier):
        return None
    from bot.campaigns.call_prompts import CallPrompts
    from bot.script.project import DialogsProject
    from bot.script.script_lines import load_script_domain
    from telephony.prompts import EspeakNgProvider, PromptRenderer

    settings = get_settings()
    return CallPrompts(PromptRenderer(EspeakNgProvider(), settings.prompts_dir),
                       load_script_domain(DialogsProject(settings.dialogs_dir)))


# The WeCom delivery task (beat: every minute) runs on the same workers.
import bot.wecom.tasks  # noqa: E402,F401

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
    from bot.db.engine import open_database, session_scope

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
