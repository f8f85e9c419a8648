"""How an invitation link reaches the customer by SMS.

`OutboxSms` (the default) writes the text to `wecom_sms_outbox` for whatever SMS gateway
the installation runs, and logs it (phone masked); `HttpSms` posts it to an HTTP gateway.
Both take the invite id as a reference, so a gateway can drop a text sent twice (a
delivery pass that died between sending and recording).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy.engine import Engine

from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.pii import PhoneKeyring, mask_phone
from bot.core.settings import get_settings
from bot.wecom.models import SmsOutbox

log = logging.getLogger(__name__)


class SmsError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class SmsReceipt:
    provider: str
    message_id: str


class SmsProvider(Protocol):
    name: str

    async def send(self, phone: str, text: str, *, invite_id: int) -> SmsReceipt: ...


@dataclass
class OutboxSms:
    """Queues the text in the database (phone encrypted) and logs it masked."""

    engine: Engine
    keyring: PhoneKeyring
    name: str = "outbox"

    async def send(self, phone: str, text: str, *, invite_id: int) -> SmsReceipt:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self._write, phone, text, invite_id)

    def _write(self, phone: str, text: str, invite_id: int) -> SmsReceipt:
        with session_scope(self.engine) as session:
            row = SmsOutbox(
                invite_id=invite_id,
                phone_ciphertext=self.keyring.encrypt_phone(phone),
                phone_masked=mask_phone(phone),
                text=text,
                status="queued",
                created_at=utc_now(),
            )
            session.add(row)
            session.flush()
            message_id = f"outbox-{row.id}"
        log.info("sms outbox %s → %s (invite %s): %s", message_id, mask_phone(phone), invite_id, text)
        return SmsReceipt(self.name, message_id)


@dataclass
class HttpSms:
    """POST {"phone", "text", "reference"} as JSON with a bearer token; 2xx means accepted
    (the JSON answer may carry "message_id"); 5xx and 429 are worth retrying."""

    url: str
    token: str = ""
    timeout_s: float = 10.0
    name: str = "http"

    async def send(self, phone: str, text: str, *, invite_id: int) -> SmsReceipt:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as http:
                response = await http.post(
                    self.url, json={"phone": phone, "text": text, "reference": f"invite-{invite_id}"}, headers=headers
                )
        except httpx.TransportError as exc:
            raise SmsError(f"SMS gateway unreachable: {type(exc).__name__}", retryable=True) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise SmsError(f"SMS gateway HTTP {response.status_code}", retryable=True)
        if not 200 <= response.status_code < 300:
            raise SmsError(f"SMS gateway refused the text: HTTP {response.status_code}", retryable=False)
        try:
            message_id = str(response.json().get("message_id", ""))
        except ValueError:
            message_id = ""
        log.info("sms http %s → %s (invite %s)", message_id or "accepted", mask_phone(phone), invite_id)
        return SmsReceipt(self.name, message_id)


def sms_from_settings(engine: Engine, keyring: PhoneKeyring) -> SmsProvider:
    settings = get_settings()
    if settings.sms_provider == "outbox":
        return OutboxSms(engine, keyring)
    if not settings.sms_url:
        raise UserError("WAIHU_SMS_PROVIDER=http needs WAIHU_SMS_URL (the gateway's send endpoint)")
    return HttpSms(settings.sms_url, settings.sms_token)
