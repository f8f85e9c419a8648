"""WeCom add-friend data: one invitation per graded A/B call, every callback event we
accepted, the nonces of recent callbacks (replay guard) and the SMS outbox.

An invitation's life: pending (created with the call log) → delivering → sent (contact-way
link made and sent by SMS, or handed to an advisor) → added (the customer added the
advisor; `State` of the callback matched) → welcoming (claimed for the one welcome) →
welcomed (the welcome message went out within WeCom's 20 s). `failed` when delivery gave up; `deleted` when the friendship ended.
`assigned` (advisor_adds mode): no link; an advisor task (bot.wecom.advisor_models) until the add.
`skipped` when the lead cannot be invited at all (a landline): never delivered, the reason in `last_error`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, LargeBinary, String, Text

from bot.core.db.base import Base, JsonDocument, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

INVITE_STATUSES = (
    "pending",
    "assigned",
    "delivering",
    "sent",
    "added",
    "welcoming",
    "welcomed",
    "failed",
    "deleted",
    "skipped",
)
EVENT_STATUSES = ("received", "processed", "unmatched", "ignored", "failed")


class WeComInvite(Base):
    __tablename__ = "wecom_invites"
    __table_args__ = (
        Index("ix_wecom_invites_campaign_id", "campaign_id"),
        Index("ix_wecom_invites_lead_id", "lead_id"),
        Index("ix_wecom_invites_status", "status"),
    )

    id = Column(_Id, primary_key=True)
    attempt_id = Column(_Id, ForeignKey("call_attempts.id", ondelete="CASCADE"), nullable=False, unique=True)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    campaign_id = Column(_Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    grade = Column(String(1), nullable=False)
    audience = Column(String(200))  # audience pack name at the time of the call
    # The attempt's arms plus the incentive and welcome arms the invite was made under.
    arms = Column(JsonDocument, nullable=False, default=dict)
    incentive = Column(Text)  # the text promised in the call (利益点)
    incentive_key = Column(String(200))
    welcome_key = Column(String(200))  # which welcome script: "<audience>/<grade>/<name>"
    welcome_text = Column(Text)  # rendered for this lead, sent on add
    welcome_attachments = Column(JsonDocument, nullable=False, default=list)  # WeCom attachments JSON
    advisor_userid = Column(String(64))
    advisor_name = Column(String(100))
    channel = Column(String(20), nullable=False, default="sms")  # sms | advisor | advisor_adds
    # ≤ 30 chars, identifies the call and arms, HMAC-signed (bot.wecom.state)
    state = Column(String(30), nullable=False, unique=True)
    contact_way_id = Column(String(64))  # add_contact_way config_id
    link = Column(Text)  # the 联系我 QR code URL
    status = Column(String(20), nullable=False, default="pending")
    tries = Column(Integer, nullable=False, default=0)
    next_try_at = Column(UtcDateTime)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    sent_at = Column(UtcDateTime)
    added_at = Column(UtcDateTime)
    welcomed_at = Column(UtcDateTime)
    deleted_at = Column(UtcDateTime)
    external_userid = Column(String(64))
    tags = Column(JsonDocument, nullable=False, default=list)  # tag names marked on the customer
    last_error = Column(Text)


class WeComEvent(Base):
    """A callback that passed the signature, time and replay checks. The SHA-256 of the
    decrypted message makes a redelivery of the same event a no-op."""

    __tablename__ = "wecom_events"
    __table_args__ = (
        Index("ix_wecom_events_state", "state"),
        Index("ix_wecom_events_status", "status"),
    )

    id = Column(_Id, primary_key=True)
    message_sha256 = Column(String(64), nullable=False, unique=True)
    change_type = Column(String(40), nullable=False)
    state = Column(String(64))
    user_id = Column(String(64))  # the advisor (member) who was added
    external_userid = Column(String(64))
    welcome_code = Column(Text)  # valid for 20 s after event_time, once
    event_time = Column(UtcDateTime)  # CreateTime of the event
    received_at = Column(UtcDateTime, nullable=False, default=utc_now)
    processed_at = Column(UtcDateTime)
    welcome_sent_at = Column(UtcDateTime)
    status = Column(String(20), nullable=False, default="received")
    invite_id = Column(_Id, ForeignKey("wecom_invites.id", ondelete="SET NULL"))
    note = Column(Text)  # why unmatched / ignored / skipped, for the log reader


class WeComCallbackNonce(Base):
    """Nonces of recent callbacks: a second request with the same nonce inside the
    accepted time window is a replay. Rows older than the window are pruned."""

    __tablename__ = "wecom_callback_nonces"
    __table_args__ = (Index("ix_wecom_callback_nonces_seen_at", "seen_at"),)

    nonce = Column(String(64), primary_key=True)
    timestamp = Column(BigInteger, nullable=False)
    seen_at = Column(UtcDateTime, nullable=False, default=utc_now)


class SmsOutbox(Base):
    """Invitation texts written by the default SMS provider for an SMS gateway to send."""

    __tablename__ = "wecom_sms_outbox"
    __table_args__ = (Index("ix_wecom_sms_outbox_status", "status"),)

    id = Column(_Id, primary_key=True)
    invite_id = Column(_Id, ForeignKey("wecom_invites.id", ondelete="CASCADE"), nullable=False)
    phone_ciphertext = Column(LargeBinary, nullable=False)
    phone_masked = Column(String(20), nullable=False)
    text = Column(Text, nullable=False)
    status = Column(String(20), nullable=False, default="queued")  # queued | sent | failed
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    sent_at = Column(UtcDateTime)
