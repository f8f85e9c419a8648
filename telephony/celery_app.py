"""The Celery app object and its delivery guarantees; the application configures the rest.

Dial tasks are acknowledged only after they finish and are re-queued if their worker
dies, so a crash never loses an attempt; the attempt's compare-and-set claim in the
database makes a redelivered task a no-op, so it is never dialled twice. The tasks and the
beat schedule live with the application (`bot.dialing.tasks`), which calls `configure`
with the broker and queue from its settings: telephony reads no environment.
"""

from __future__ import annotations

from celery import Celery

EMBEDDED_BROKER = "memory://"  # one process: the demo's in-process worker and beat
PLAN_EVERY_S = 60.0  # the hopper refills every minute, like VICIdial's
# A dial task holds its message unacked from delivery to the end of its call: the countdown
# (≤ one tick), its CPS turn and a free line (each ≤ MAX_DIAL_WAIT_S, then it gives the
# attempt back), the call (≤ the longest call) and the result's write. The broker hands an
# unacked message to another worker after the visibility timeout, so it must outlast that;
# and no longer than needed, or a dead worker's prefetched dials wait that long (they
# waited an hour at 3600 s). A redelivered dial whose attempt is already claimed is a
# no-op, so erring short costs a log line, not a second call.
MAX_DIAL_WAIT_S = 120.0
VISIBILITY_MARGIN_S = 60.0  # real seconds on top: start-up, database retries, a slow loop
VISIBILITY_TIMEOUT_S = 3600  # the default when the application does not say


def plan_every_s(clock_speed: float = 1.0) -> float:
    """Every minute; on a simulated clock running faster (a dry run), every simulated
    minute, but no more often than once a second."""
    return max(1.0, PLAN_EVERY_S / max(clock_speed, 1e-9))


def visibility_timeout_s(longest_call_s: float, clock_speed: float = 1.0) -> int:
    """Real seconds a dial task may hold its message, from the longest call (seconds on the
    dialer's clock, which may run `clock_speed` times faster than real time)."""
    speed = clock_speed if 0 < clock_speed < float("inf") else 1.0
    task_s = PLAN_EVERY_S + 2 * MAX_DIAL_WAIT_S + longest_call_s
    return int(task_s / speed + VISIBILITY_MARGIN_S)


def configure(
    app: Celery,
    *,
    broker_url: str | None = None,
    queue: str = "waihu",
    visibility_timeout: float = VISIBILITY_TIMEOUT_S,
) -> Celery:
    app.conf.update(
        broker_url=broker_url or EMBEDDED_BROKER,
        task_default_queue=queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker takes one call at a time off the queue
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        enable_utc=True,
        timezone="UTC",
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": int(visibility_timeout)},
    )
    return app


def create_app(broker_url: str | None = None, queue: str = "waihu") -> Celery:
    """A Celery app with waihu's delivery guarantees (a client that only sends tasks, too)."""
    return configure(Celery("waihu"), broker_url=broker_url, queue=queue)


# The one app every task registers on; `bot.dialing.tasks` points it at the configured broker.
app = create_app()
