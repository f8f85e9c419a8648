"""Endpoints and deliveries as the CLI and the console manage them: add (secret shown once),
list, disable, the recent and dead deliveries, replay, and a signed test ping."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.webhooks.delivery import TIMEOUT_S, Claim, send
from bot.webhooks.events import EMITTED_FLAG, EVENT_TYPES, PING
from bot.webhooks.models import DEAD, DELIVERED, PENDING, WebhookDelivery, WebhookEndpoint, WebhookEvent
from bot.webhooks.signing import MIN_SECRET_CHARS, new_secret


@dataclass(frozen=True)
class EndpointView:
    id: int
    url: str
    event_types: list[str]
    active: bool
    description: str
    created_at: datetime
    pending: int
    delivered: int
    dead: int


@dataclass(frozen=True)
class DeliveryView:
    id: int
    endpoint_id: int
    url: str
    event_id: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            key: (value.isoformat() if isinstance(value, datetime) else value) for key, value in self.__dict__.items()
        }


def check_url(url: str) -> str:
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"webhook URL {text!r} is not an http(s) URL",
            details=["give the receiver's full address, e.g. https://crm.example.com/hooks/waihu"],
        )
    return text


def parse_event_types(values: Iterable[str]) -> list[str]:
    """`--events call.finished,lead.graded` (or repeated); `all` subscribes to every type."""
    chosen: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name == "all":
                chosen.extend(EVENT_TYPES)
            elif name not in EVENT_TYPES:
                raise UserError(
                    f"unknown webhook event type {name!r} (in --events)",
                    details=[f"known types: {', '.join(EVENT_TYPES)} (or `all`)"],
                )
            else:
                chosen.append(name)
    if not chosen:
        raise UserError("name the events to send with --events", details=[f"known types: {', '.join(EVENT_TYPES)}"])
    return list(dict.fromkeys(chosen))


def add_endpoint(
    session: Session,
    keyring: Any,
    url: str,
    event_types: Iterable[str],
    *,
    secret: str | None = None,
    description: str = "",
    by: str = "",
) -> tuple[WebhookEndpoint, str]:
    """A new active endpoint; returns it and its signing secret (generated when not given) — the
    only time the secret is readable outside the database."""
    checked_url, types = check_url(url), parse_event_types(event_types)
    if secret is not None and len(secret.strip()) < MIN_SECRET_CHARS:
        raise UserError(f"--secret is too short ({len(secret.strip())} characters); use at least {MIN_SECRET_CHARS}")
    secret = secret.strip() if secret else new_secret()
    endpoint = WebhookEndpoint(
        url=checked_url,
        secret_ciphertext=keyring.encrypt_text(secret),
        event_types=types,
        active=True,
        description=description[:200],
        created_by=by,
        created_at=utc_now(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def endpoint_or_error(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise UserError(f"no webhook endpoint with id {endpoint_id}", details=["see `waihu webhooks list`"])
    return endpoint


def disable_endpoint(session: Session, endpoint_id: int, *, now: datetime | None = None) -> WebhookEndpoint:
    """No new deliveries; pending ones wait (enable it again, or they stay undelivered)."""
    endpoint = endpoint_or_error(session, endpoint_id)
    endpoint.active, endpoint.disabled_at = False, now or utc_now()
    return endpoint


def list_endpoints(session: Session) -> list[EndpointView]:
    counts: dict[tuple[int, str], int] = {
        (endpoint_id, status): n
        for endpoint_id, status, n in session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count()).group_by(
                WebhookDelivery.endpoint_id, WebhookDelivery.status
            )
        )
    }
    return [
        EndpointView(
            e.id,
            e.url,
            list(e.event_types or []),
            bool(e.active),
            e.description or "",
            e.created_at,
            counts.get((e.id, PENDING), 0),
            counts.get((e.id, DELIVERED), 0),
            counts.get((e.id, DEAD), 0),
        )
        for e in session.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).scalars()
    ]


def list_deliveries(
    session: Session, *, dead_only: bool = False, limit: int = 50, since: datetime | None = None
) -> list[DeliveryView]:
    query = (
        select(WebhookDelivery, WebhookEndpoint.url, WebhookEvent.event_type)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if dead_only:
        query = query.where(WebhookDelivery.status == DEAD)
    if since is not None:
        query = query.where(WebhookDelivery.created_at >= since)
    return [
        DeliveryView(
            d.id,
            d.endpoint_id,
            url,
            d.event_id,
            event_type,
            d.status,
            d.attempts,
            d.next_attempt_at if d.status == PENDING else None,
            d.last_status_code,
            d.last_error,
            d.delivered_at,
            d.dead_at,
            d.created_at,
        )
        for d, url, event_type in session.execute(query).all()
    ]


def replay(session: Session, delivery_id: int, *, now: datetime | None = None) -> WebhookDelivery:
    """Send a dead (or delivered) delivery again, with the same delivery id (receivers dedupe on it),
    from attempt 1 of a fresh backoff schedule."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise UserError(f"no webhook delivery with id {delivery_id}", details=["see `waihu webhooks deliveries`"])
    if delivery.status == PENDING:
        raise UserError(
            f"delivery {delivery_id} is still pending (attempt {delivery.attempts}); it is sent again on its own"
        )
    _reset(delivery, now or utc_now())
    session.info[EMITTED_FLAG] = True
    return delivery


def replay_dead(session: Session, *, since: datetime | None = None, now: datetime | None = None) -> int:
    """Every dead delivery (that died at or after `since`) back to pending; returns how many."""
    query = update(WebhookDelivery).where(WebhookDelivery.status == DEAD)
    if since is not None:
        query = query.where(WebhookDelivery.dead_at >= since)
    now = now or utc_now()
    result = session.execute(
        query.values(
            status=PENDING, attempts=0, next_attempt_at=now, dead_at=None, replays=WebhookDelivery.replays + 1
        ).execution_options(synchronize_session=False)
    )
    session.info[EMITTED_FLAG] = True  # kick a pass after the commit, as an emit does
    return int(result.rowcount or 0)


def _reset(delivery: WebhookDelivery, now: datetime) -> None:
    delivery.status, delivery.attempts, delivery.next_attempt_at = PENDING, 0, now
    delivery.dead_at, delivery.delivered_at = None, None
    delivery.replays = (delivery.replays or 0) + 1


def erase_lead_events(session: Session, lead_ids: list[int]) -> int:
    """PIPL erasure (bot.erasure): the person's events go with their deliveries (sent or not)."""
    if not lead_ids:
        return 0
    doomed = select(WebhookEvent.id).where(WebhookEvent.payload["lead_id"].as_integer().in_(lead_ids))
    session.execute(
        delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(doomed)).execution_options(synchronize_session=False)
    )
    return int(
        session.execute(
            delete(WebhookEvent).where(WebhookEvent.id.in_(doomed)).execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )


def ping(
    url: str, secret: str, *, now: datetime | None = None, client: httpx.Client | None = None
) -> tuple[int | None, str | None]:
    """POST a signed `ping` event to `url` (not stored); returns (HTTP status, error)."""
    now = now or utc_now()
    claim = Claim(0, 1, check_url(url), b"", 0, PING, {"message": "waihu webhook test"}, now)
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
    try:
        answer = send(client, claim, secret, now)
    finally:
        if own:
            client.close()
    return answer.status_code, answer.error
