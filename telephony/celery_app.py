"""The Celery app: broker from WAIHU_BROKER_URL (Redis in production), tasks acks-late.

Dial tasks are acknowledged only after they finish and are re-queued if their worker
dies, so a crash never loses an attempt; the attempt's compare-and-set claim in the
database makes a redelivered task a no-op, so it is never dialled twice. The tasks
themselves live with the application (bot.campaigns.tasks) and register on this app.
"""
from __future__ import annotations

import os

from celery import Celery

EMBEDDED_BROKER = "memory://"  # one process: the demo's in-process worker and beat
PLAN_EVERY_S = 60.0  # the hopper refills every minute, like VICIdial's


def plan_every_s() -> float:
    """Every minute; on a simulated clock running faster (a dry run), every simulated
    minute, but no more often than once a second."""
    speed = float(os.environ.get("WAIHU_CLOCK_SPEED", "1")) if os.environ.get("WAIHU_CLOCK_START") else 1.0
    return max(1.0, PLAN_EVERY_S / speed)


def create_app(broker_url: str | None = None) -> Celery:
    app = Celery("waihu")
    app.conf.update(
        broker_url=broker_url or os.environ.get("WAIHU_BROKER_URL") or EMBEDDED_BROKER,
        # One queue per installation (WAIHU_QUEUE), so two deployments can share a Redis.
        task_default_queue=os.environ.get("WAIHU_QUEUE", "waihu"),
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
        # A call lasts minutes; the broker must not hand an unacked dial to another worker
        # while the first is still talking.
        broker_transport_options={"visibility_timeout": 3600},
        beat_schedule={
            "plan-dials": {"task": "waihu.plan_dials", "schedule": plan_every_s()},
            "reconcile-attempts": {"task": "waihu.reconcile_attempts", "schedule": plan_every_s()},
            # WeCom invitations (bot.wecom.tasks), by name: telephony does not import bot
            "deliver-wecom-invites": {"task": "waihu.deliver_wecom_invites", "schedule": plan_every_s()},
        },
    )
    return app


app = create_app()
