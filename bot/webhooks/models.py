"""Webhook endpoints (the CRMs' URLs), the events the robot emitted, and one delivery per
(endpoint, event).

Events and their deliveries are the transactional outbox: they are inserted in the same
transaction as the change they announce (a call's result, a grade, a WeCom add), so an
event is never lost and never sent for a change that was rolled back. A delivery is
`pending` until a 2xx answer (`delivered`) or until it gives up (`dead`: a permanent 4xx or
the last attempt failed); `waihu webhooks replay` puts a dead one back to `pending`.

This package sits below the flows that emit (campaigns, wecom, dialing): it references
their rows by id only and imports none of them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, LargeBinary, String, Text

from bot.core.db.base import Base, JsonDocument, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
DELIVERY_STATUSES = (PENDING, DELIVERED, DEAD)


class WebhookEndpoint(Base):
    """A receiver URL, its signing secret (encrypted with the installation key) and the event
    types it subscribes to."""

    __tablename__ = "webhook_endpoints"

    id = Column(_Id, primary_key=True)
    url = Column(Text, nullable=False)
    secret_ciphertext = Column(LargeBinary, nullable=False)  # PhoneKeyring.encrypt_text of the secret
    event_types = Column(JsonDocument, nullable=False, default=list)  # ["call.finished", …]
    active = Column(Boolean, nullable=False, default=True)
    description = Column(String(200), nullable=False, default="")
    created_by = Column(String(100), nullable=False, default="")
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    disabled_at = Column(UtcDateTime)


class WebhookEvent(Base):
    """Something that happened, as the receivers get it (`data`); phone numbers masked only."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_created_at", "created_at"),)

    id = Column(_Id, primary_key=True)
    event_type = Column(String(40), nullable=False)
    payload = Column(JsonDocument, nullable=False, default=dict)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)


class WebhookDelivery(Base):
    """One event to one endpoint: its attempts, the last answer and when to try next.

    A claim moves `next_attempt_at` forward by a lease and counts the attempt in one
    conditional UPDATE, so two workers never send the same delivery at once; a worker that
    dies mid-send leaves it due again when the lease ends (at least once, never lost)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id"),
    )

    id = Column(_Id, primary_key=True)
    endpoint_id = Column(_Id, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False)
    event_id = Column(_Id, ForeignKey("webhook_events.id", ondelete="CASCADE"), nullable=False)
    status = Column(String(20), nullable=False, default=PENDING)
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(UtcDateTime, nullable=False, default=utc_now)
    last_attempt_at = Column(UtcDateTime)
    last_status_code = Column(Integer)
    last_error = Column(Text)
    delivered_at = Column(UtcDateTime)
    dead_at = Column(UtcDateTime)
    replays = Column(Integer, nullable=False, default=0)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
