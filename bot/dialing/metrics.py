"""What the dial path counts, in the Prometheus format (prometheus-client).

Two views:
- each dial worker process counts what it does (the metrics below, on the default
  registry) and serves them on WAIHU_METRICS_PORT (`serve_worker_metrics`): calls in
  flight, dials, turn latency, results written to the journal, T-0 cancellations,
  reconciler actions, missed callbacks; plus, read at scrape time, the depth of the dial
  queue and the backlog of this machine's journal;
- the web server's /metrics (`bot.web.metrics_views`) adds `DialingCollector`, read from
  the database at scrape time, so it is right whichever worker did the work and survives
  worker restarts: attempts by status, dials in the last minute, T-0 cancellations by
  reason, missed callbacks by reason, plus the queue depth.

Names follow Prometheus conventions: counters end in `_total`; "dials per minute" is
`rate(waihu_dials_total[1m]) * 60` on the workers' counter, or the database's
`waihu_dials_last_minute` gauge.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

log = logging.getLogger(__name__)

CALLS_IN_FLIGHT = Gauge("waihu_calls_in_flight", "Calls on the carrier right now (this process)")
DIALS = Counter("waihu_dials_total", "Dials handed to the carrier", ["campaign"])
TURN_LATENCY = Histogram(
    "waihu_turn_latency_seconds",
    "From the callee's words to the robot's answer (NLU + dialogue policy), real seconds",
    buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0),
)
T0_CANCELLED = Counter(
    "waihu_t0_cancelled_total", "Dials cancelled at T-0 (the instant of dialling), by reason", ["reason"]
)
GIVEN_BACK = Counter(
    "waihu_attempts_given_back_total",
    "Claimed attempts returned unburnt after an error before the dial, by cause",
    ["cause"],
)
RESULTS_JOURNALED = Counter(
    "waihu_results_journaled_total",
    "Journal entries written because the database could not take them, by kind",
    ["kind"],
)
RESULT_WRITE_RETRIES = Counter("waihu_result_write_retries_total", "Retried database writes of call results")
JOURNAL_REPLAYED = Counter(
    "waihu_journal_replayed_total", "Journal entries replayed into the database, by kind", ["kind"]
)
RECONCILER_ACTIONS = Counter(
    "waihu_reconciler_actions_total",
    "What the reconciler did: worker_lost, resent, callback_missed, skipped_locked",
    ["action"],
)
CALLBACKS_MISSED = Counter(
    "waihu_callbacks_missed_total", "Booked callbacks not dialled within their grace, by reason", ["reason"]
)
LINE_RELEASE_FAILED = Counter(
    "waihu_line_release_failures_total", "Line leases not released after a call (they expire by themselves)"
)

_turn_started: contextvars.ContextVar[float | None] = contextvars.ContextVar("waihu_turn_started", default=None)


class TimedAgent:
    """The dialogue agent with its turns timed: parse → respond is one turn of the callee
    waiting for the robot. Each call runs in its own task, so a context variable carries
    the start from parse to respond."""

    def __init__(self, agent: Any) -> None:
        self._agent = agent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._agent, name)

    async def parse(self, *args, **kwargs):
        _turn_started.set(time.perf_counter())
        return await self._agent.parse(*args, **kwargs)

    async def respond(self, *args, **kwargs):
        try:
            return await self._agent.respond(*args, **kwargs)
        finally:
            started = _turn_started.get()
            if started is not None:
                TURN_LATENCY.observe(time.perf_counter() - started)
                _turn_started.set(None)


class QueueCollector(Collector):
    """Depth of the dial queue and backlog of this machine's journal, read at scrape time."""

    def __init__(self, queue_depth: Callable[[], int | None], journal_backlog: Callable[[], int] | None) -> None:
        self._queue_depth = queue_depth
        self._journal_backlog = journal_backlog

    def collect(self):
        depth = GaugeMetricFamily("waihu_queue_depth", "Dial and hopper tasks waiting in the broker (-1: unreachable)")
        value = _safe(self._queue_depth)
        depth.add_metric([], -1 if value is None else value)
        yield depth
        if self._journal_backlog is not None:
            backlog = GaugeMetricFamily(
                "waihu_journal_backlog", "Call results and attempt changes waiting in this machine's journal"
            )
            backlog.add_metric([], _safe(self._journal_backlog) or 0)
            yield backlog


def redis_queue_depth(client: Any, queue: str) -> Callable[[], int]:
    """Messages waiting in a Celery queue on Redis (plus those reserved for later: ETA/unacked)."""

    def depth() -> int:
        return int(client.llen(queue)) + int(client.hlen("unacked"))

    return depth


def _safe(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001  (a scrape must not fail because Redis or the disk hiccups)
        return None


class DialingCollector(Collector):
    """Fleet-wide figures from the database, read at each scrape (the web server's view)."""

    def __init__(self, engine: Any, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.now = now

    def collect(self):
        from sqlalchemy import func, select

        from bot.campaigns.models import CallAttempt
        from bot.core.db.engine import session_scope

        now = self.now()
        try:
            with session_scope(self.engine) as session:
                by_status = session.execute(select(CallAttempt.status, func.count()).group_by(CallAttempt.status)).all()
                last_minute = session.execute(
                    select(func.count())
                    .select_from(CallAttempt)
                    .where(
                        CallAttempt.dialed_at >= now - timedelta(minutes=1),
                        CallAttempt.dialed_at <= now,
                        CallAttempt.status.in_(("dialing", "completed", "failed")),
                    )
                ).scalar_one()
                cancelled = session.execute(
                    select(CallAttempt.outcome, func.count())
                    .where(CallAttempt.status == "cancelled")
                    .group_by(CallAttempt.outcome)
                ).all()
                missed = session.execute(
                    select(CallAttempt.callback_outcome, func.count())
                    .where(CallAttempt.callback_outcome.like("missed:%"))
                    .group_by(CallAttempt.callback_outcome)
                ).all()
        except Exception:  # noqa: BLE001  (the database is down: say so rather than fail the scrape)
            up = GaugeMetricFamily("waihu_db_up", "1 if the database answered this scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("waihu_db_up", "1 if the database answered this scrape")
        up.add_metric([], 1)
        yield up
        attempts = GaugeMetricFamily(
            "waihu_db_attempts", "Call attempts by status (dialing = calls in flight)", labels=["status"]
        )
        for status, count in by_status:
            attempts.add_metric([status], count)
        yield attempts
        per_minute = GaugeMetricFamily("waihu_db_dials_last_minute", "Dials in the last minute, all workers")
        per_minute.add_metric([], last_minute)
        yield per_minute
        t0 = CounterMetricFamily(
            "waihu_db_attempts_cancelled", "Attempts cancelled before the dial, by reason", labels=["reason"]
        )
        for reason, count in cancelled:
            t0.add_metric([reason or "unknown"], count)
        yield t0
        callbacks = CounterMetricFamily(
            "waihu_db_callbacks_missed", "Booked callbacks not dialled in their grace, by reason", labels=["reason"]
        )
        for outcome, count in missed:
            callbacks.add_metric([outcome.split(":", 1)[1]], count)
        yield callbacks


def serve_worker_metrics(port: int, collectors: Sequence[Collector] = ()) -> None:
    """The worker's /metrics on `port` (a daemon thread), with the extra collectors."""
    for collector in collectors:
        REGISTRY.register(collector)
    start_http_server(port)
    log.info("metrics on :%d/metrics", port)


def registry_with(*collectors: Collector) -> CollectorRegistry:
    """A registry of these collectors only (the web server's database view)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry
