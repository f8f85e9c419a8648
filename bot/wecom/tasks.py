"""Celery task: the WeCom delivery pass, every minute from beat (telephony.celery_app).

A worker registers it by importing this module: `celery -A bot.dialing.tasks worker
-I bot.wecom.tasks …` (or an `import bot.wecom.tasks` in bot.dialing.tasks). Without WeCom credentials
(WAIHU_WECOM_CORP_ID / WAIHU_WECOM_SECRET) it does nothing and says so once.
"""

from __future__ import annotations

import asyncio
import logging

from telephony.celery_app import app

log = logging.getLogger(__name__)
_warned_unconfigured = False


@app.task(name="waihu.deliver_wecom_invites")
def deliver_wecom_invites() -> dict:
    global _warned_unconfigured
    from bot.wecom.config import wecom_settings

    settings = wecom_settings()
    if not settings.configured:
        if not _warned_unconfigured:
            log.warning("WeCom is not configured (WAIHU_WECOM_CORP_ID, WAIHU_WECOM_SECRET): invitations stay pending")
            _warned_unconfigured = True
        return {"skipped": "wecom not configured"}
    return asyncio.run(run_delivery_pass(settings))


async def run_delivery_pass(settings=None) -> dict:
    """One pass with everything from settings: database, secret, SMS provider, clock."""
    from bot.core.clock import clock_from_settings
    from bot.core.db.engine import open_database
    from bot.core.pii import keyring_from_settings
    from bot.wecom.client import WeComClient
    from bot.wecom.config import wecom_settings
    from bot.wecom.events import EventProcessor
    from bot.wecom.invites import deliver_pending_invites
    from bot.wecom.sms import sms_from_settings
    from bot.wecom.state import state_key_from_settings

    settings = (settings or wecom_settings()).require_api()
    engine, keyring = open_database(), keyring_from_settings()
    clock = clock_from_settings()
    async with WeComClient(settings) as client:
        processor = EventProcessor(engine, client, state_key_from_settings())
        report = await deliver_pending_invites(
            engine, client, sms_from_settings(engine, keyring), keyring=keyring, processor=processor, now=clock.now()
        )
    return report.as_json()


@app.task(name="waihu.send_sop_steps")
def send_sop_steps() -> dict:
    """The follow-up sequences' due steps (bot.wecom.sop), every minute from beat."""
    global _warned_unconfigured
    from bot.wecom.config import wecom_settings

    settings = wecom_settings()
    if not settings.configured:
        if not _warned_unconfigured:
            log.warning("WeCom is not configured (WAIHU_WECOM_CORP_ID, WAIHU_WECOM_SECRET): follow-up steps wait")
            _warned_unconfigured = True
        return {"skipped": "wecom not configured"}
    return asyncio.run(run_sop_pass(settings))


async def run_sop_pass(settings=None, *, engine=None, now=None) -> dict:
    """One pass of due follow-up steps with everything from settings (the clock may be simulated)."""
    from bot.core.clock import clock_from_settings
    from bot.core.db.engine import open_database
    from bot.wecom.client import WeComClient
    from bot.wecom.config import wecom_settings
    from bot.wecom.sop import default_sop_config, run_due

    settings = (settings or wecom_settings()).require_api()
    sequences, policy = default_sop_config()
    async with WeComClient(settings) as client:
        report = await run_due(
            engine or open_database(),
            client,
            sequences=sequences,
            policy=policy,
            now=now or clock_from_settings().now(),
        )
    return report.as_json()
