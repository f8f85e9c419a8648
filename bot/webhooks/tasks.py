"""Celery task: the webhook delivery pass, every few seconds from beat and kicked after each
commit that emitted an event (in worker processes; `bot.dialing.tasks` schedules it).

A pass with no endpoint configured finds nothing due and costs one query.
"""

from __future__ import annotations

import logging
import time

from celery.signals import worker_init

from bot.webhooks.events import on_commit
from telephony.celery_app import app

log = logging.getLogger(__name__)

DELIVER_EVERY_S = 5.0  # real seconds between scheduled passes


@app.task(name="waihu.deliver_webhooks")
def deliver_webhooks() -> dict:
    return run_delivery_pass()


def run_delivery_pass(limit: int = 50) -> dict:
    """One pass with the settings' database, key and clock (also `waihu webhooks deliver`)."""
    from bot.core.clock import clock_from_settings
    from bot.core.db.engine import open_database
    from bot.core.pii import keyring_for_engine
    from bot.webhooks.delivery import deliver_due

    engine = open_database()
    keyring = keyring_for_engine(engine)
    report = deliver_due(engine, keyring.decrypt_text, now=clock_from_settings().now(), limit=limit)
    if report.claimed:
        log.info("webhooks: %s", report.as_json())
    return report.as_json()


KICK_EVERY_S = 1.0  # at most one kicked pass per second per process: a busy dialer commits many calls a second
_last_kick = 0.0


def _kick() -> None:
    global _last_kick
    if time.monotonic() - _last_kick < KICK_EVERY_S:
        return  # the pass just sent (or the next scheduled one) takes this event too
    _last_kick = time.monotonic()
    deliver_webhooks.apply_async(retry=False)


@worker_init.connect
def _kick_after_commits(**_kwargs) -> None:
    on_commit(_kick)
