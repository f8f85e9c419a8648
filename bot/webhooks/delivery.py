"""Sending due deliveries: claim atomically, POST signed JSON with httpx, record the answer.

Retry on network errors, timeouts, 5xx, 408 and 429, with exponential backoff and jitter
(10 s, 30 s, 2 min, 10 min, 1 h, 3 h, 6 h: 8 attempts over about 10 hours); any other 4xx
(410 Gone, 401 …) is dead at once, and so is the last failed attempt — the dead-letter list
(`waihu webhooks deliveries --dead`, the console's 死信) from which `replay` sends again.

The claim counts the attempt and moves `next_attempt_at` past a lease in one conditional
UPDATE (PostgreSQL also takes the rows FOR UPDATE SKIP LOCKED), so two workers never send one
delivery at once; the answer is recorded only by the claim that sent it. Time is whatever
`now` the caller passes (the project's clock), so tests drive the backoff without sleeping.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from bot.core.db.engine import session_scope
from bot.webhooks.models import DEAD, DELIVERED, PENDING, WebhookDelivery, WebhookEndpoint, WebhookEvent
from bot.webhooks.signing import signature

log = logging.getLogger(__name__)

# Wait after failed attempt n (1-based) before attempt n + 1; MAX_ATTEMPTS = len + 1.
BACKOFF_S: tuple[float, ...] = (10, 30, 120, 600, 3600, 3 * 3600, 6 * 3600)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
JITTER = 0.2  # up to +20 %: receivers coming back after an outage do not get every retry at once
TIMEOUT_S = 10.0
LEASE = timedelta(seconds=120)  # a claimed delivery is due again after this if its worker died mid-send
RETRYABLE_4XX = frozenset({408, 429})
USER_AGENT = "waihu-webhooks/1"


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    attempt: int  # this attempt's number (1-based)
    url: str
    secret_ciphertext: bytes
    event_id: int
    event_type: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass
class PassReport:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"claimed": self.claimed, "delivered": self.delivered, "retrying": self.retrying, "dead": self.dead}


def backoff(attempt: int, rng: random.Random | None = None) -> timedelta:
    """How long to wait after failed attempt `attempt` (1-based), with jitter."""
    base = BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1]
    return timedelta(seconds=base * (1 + JITTER * (rng or random).random()))


def body_of(claim: Claim) -> bytes:
    """The JSON body, identical on every attempt (the signature changes with the timestamp)."""
    envelope = {
        "id": claim.event_id,
        "type": claim.event_type,
        "created_at": claim.created_at.isoformat(),
        "data": claim.payload,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def headers_for(secret: str, event_type: str, delivery_id: int, body: bytes, now: datetime) -> dict[str, str]:
    stamp = int(now.timestamp())
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Waihu-Event": event_type,
        "X-Waihu-Delivery": str(delivery_id),
        "X-Waihu-Timestamp": str(stamp),
        "X-Waihu-Signature": signature(secret, stamp, body),
    }


def claim_due(engine: Engine, now: datetime, limit: int = 50, lease: timedelta = LEASE) -> list[Claim]:
    """Take up to `limit` due deliveries of active endpoints for this worker."""
    claims: list[Claim] = []
    with session_scope(engine) as session:
        query = (
            select(WebhookDelivery.id, WebhookDelivery.attempts)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                WebhookEndpoint.active.is_(True),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
        for delivery_id, attempts in session.execute(query).all():
            taken = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == PENDING,
                    WebhookDelivery.attempts == attempts,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .values(attempts=attempts + 1, next_attempt_at=now + lease, last_attempt_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not taken:
                continue  # another worker's (SQLite: it committed between our read and write)
            row = session.execute(
                select(WebhookEndpoint.url, WebhookEndpoint.secret_ciphertext, WebhookEvent)
                .join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .where(WebhookDelivery.id == delivery_id)
            ).one()
            url, secret_ciphertext, event = row
            claims.append(
                Claim(
                    delivery_id,
                    attempts + 1,
                    url,
                    bytes(secret_ciphertext),
                    event.id,
                    event.event_type,
                    dict(event.payload or {}),
                    event.created_at,
                )
            )
    return claims


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        code = self.status_code
        return code is None or code >= 500 or code in RETRYABLE_4XX or 300 <= code < 400


def send(client: httpx.Client, claim: Claim, secret: str, now: datetime) -> Answer:
    body = body_of(claim)
    try:
        response = client.post(
            claim.url, content=body, headers=headers_for(secret, claim.event_type, claim.delivery_id, body, now)
        )
    except httpx.HTTPError as exc:
        return Answer(None, f"{type(exc).__name__}: {str(exc)[:300] or 'no answer'}")
    if 200 <= response.status_code < 300:
        return Answer(response.status_code, None)
    return Answer(response.status_code, f"HTTP {response.status_code}: {response.text[:300]}")


def record(engine: Engine, claim: Claim, answer: Answer, now: datetime, rng: random.Random | None = None) -> str:
    """Store the answer for the claim that sent it; returns delivered | retrying | dead | stale."""
    values: dict[str, Any] = {"last_status_code": answer.status_code, "last_error": answer.error}
    if answer.ok:
        outcome, values["status"], values["delivered_at"] = DELIVERED, DELIVERED, now
    elif answer.retryable and claim.attempt < MAX_ATTEMPTS:
        outcome, values["next_attempt_at"] = "retrying", now + backoff(claim.attempt, rng)
    else:
        outcome, values["status"], values["dead_at"] = DEAD, DEAD, now
    with session_scope(engine) as session:
        done = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == claim.delivery_id,
                WebhookDelivery.status == PENDING,
                WebhookDelivery.attempts == claim.attempt,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
    return outcome if done else "stale"


def deliver_due(
    engine: Engine,
    decrypt: Any,
    *,
    now: datetime,
    client: httpx.Client | None = None,
    limit: int = 50,
    rng: random.Random | None = None,
    max_batches: int = 20,
) -> PassReport:
    """One delivery pass: claim what is due at `now`, send, record; until nothing is due (or
    `max_batches`). `decrypt` turns an endpoint's stored secret into text (PhoneKeyring.decrypt_text)."""
    report = PassReport()
    own_client = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
    try:
        for _ in range(max_batches):
            claims = claim_due(engine, now, limit)
            if not claims:
                break
            report.claimed += len(claims)
            for claim in claims:
                answer = send(client, claim, decrypt(claim.secret_ciphertext), now)
                outcome = record(engine, claim, answer, now, rng)
                if outcome == DELIVERED:
                    report.delivered += 1
                elif outcome == "retrying":
                    report.retrying += 1
                elif outcome == DEAD:
                    report.dead += 1
                    log.warning(
                        "webhook delivery %s dead after %d attempt(s): %s",
                        claim.delivery_id,
                        claim.attempt,
                        answer.error,
                    )
                if answer.error:
                    report.errors.append(f"delivery {claim.delivery_id}: {answer.error}")
    finally:
        if own_client:
            client.close()
    return report
