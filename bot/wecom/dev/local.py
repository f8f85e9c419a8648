"""The whole add-friend loop on one machine: the WeCom test server and our callback
endpoint, each a real HTTP server on 127.0.0.1, for the demo and the tests.

    with LocalWeCom.start(engine) as wecom:
        report = await wecom.deliver()                     # contact ways + SMS (outbox)
        await wecom.simulate_adds(share=0.5, seed="demo")  # customers scan; WeCom calls back
        funnel = wecom_funnel(session, campaign_id)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.campaigns.assignment import bucket
from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.core.pii import PhoneKeyring
from bot.wecom.callback import CallbackEndpoint, create_callback_app, endpoint_for
from bot.wecom.client import RetryPolicy, WeComClient
from bot.wecom.dev.server import SentCallback, UvicornThread, WeComTestServer
from bot.wecom.events import EventProcessor
from bot.wecom.invites import DeliveryReport, deliver_pending_invites
from bot.wecom.models import WeComEvent, WeComInvite
from bot.wecom.offers import Offers
from bot.wecom.sms import OutboxSms, SmsProvider

FAST_RETRY = RetryPolicy(attempts=5, base_delay_s=0.05, max_delay_s=0.5)


@dataclass
class LocalWeCom:
    engine: Engine
    server: WeComTestServer
    callback: UvicornThread
    endpoint: CallbackEndpoint
    state_key: bytes
    keyring: PhoneKeyring
    retry: RetryPolicy = FAST_RETRY

    @classmethod
    def start(
        cls,
        engine: Engine,
        *,
        keyring: PhoneKeyring | None = None,
        state_key: bytes | None = None,
        clock: Callable[[], datetime] = utc_now,
        retry: RetryPolicy = FAST_RETRY,
        **processor_options: Any,
    ) -> LocalWeCom:
        """Both servers up, on one clock (`clock`: real time, or the demo's simulated time) for
        WeCom's CreateTime, the 20 s welcome window and the callback's time check."""
        if keyring is None:
            from bot.core.pii import keyring_from_settings

            keyring = keyring_from_settings()
        if state_key is None:
            from bot.wecom.state import state_key_from_settings

            state_key = state_key_from_settings()
        server = WeComTestServer(clock=lambda: clock().timestamp()).start()
        settings = server.settings()
        endpoint = endpoint_for(
            engine,
            settings,
            state_key=state_key,
            client=WeComClient(settings, retry=retry),
            clock=clock,
            **processor_options,
        )
        callback = UvicornThread(create_callback_app(endpoint)).start()
        server.callback_url = f"{callback.url}/wecom/callback"
        return cls(engine, server, callback, endpoint, state_key, keyring, retry)

    def stop(self) -> None:
        self.callback.stop()
        self.server.stop()

    def __enter__(self) -> LocalWeCom:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self, **changes: Any) -> WeComClient:
        """A client for the caller's event loop (close it, or use `async with`)."""
        return WeComClient(self.server.settings(), retry=changes.pop("retry", self.retry), **changes)

    async def deliver(
        self, *, sms: SmsProvider | None = None, offers: Offers | None = None, now: datetime | None = None
    ) -> DeliveryReport:
        """Delivery passes (200 invitations each, as beat runs them) until one finds nothing due."""
        total = DeliveryReport()
        async with self.client() as client:
            processor = EventProcessor(self.engine, client, self.state_key, clock=self.endpoint.processor.clock)
            while True:
                report = await deliver_pending_invites(
                    self.engine,
                    client,
                    sms or OutboxSms(self.engine, self.keyring),
                    keyring=self.keyring,
                    offers=offers,
                    processor=processor,
                    now=now,
                )
                for key, value in report.as_json().items():
                    setattr(total, key, getattr(total, key) + value)
                if not (report.delivered or report.retry_later or report.failed):
                    return total

    def sent_invites(self, campaign_id: int | None = None) -> list[tuple[int, str]]:
        with session_scope(self.engine) as session:
            query = select(WeComInvite.id, WeComInvite.state).where(WeComInvite.status == "sent")
            if campaign_id is not None:
                query = query.where(WeComInvite.campaign_id == campaign_id)
            return list(session.execute(query.order_by(WeComInvite.id)).all())

    async def simulate_adds(
        self, share: float, *, seed: str = "local-wecom", campaign_id: int | None = None, timeout_s: float = 60.0
    ) -> list[SentCallback]:
        """A reproducible share of the delivered invitations is taken up: each chosen
        customer adds the advisor; returns when every event was processed."""
        chosen = [state for invite_id, state in self.sent_invites(campaign_id) if bucket(seed, str(invite_id)) < share]
        sent = [await self.server.simulate_add(state) for state in chosen]
        await self.wait_processed(timeout_s)
        return sent

    async def wait_processed(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with session_scope(self.engine) as session:
                waiting = session.execute(
                    select(func.count()).select_from(WeComEvent).where(WeComEvent.status == "received")
                ).scalar_one()
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{waiting} WeCom event(s) still unprocessed after {timeout_s:.0f} s")
            await asyncio.sleep(0.05)
