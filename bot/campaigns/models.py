"""Campaigns, their call attempts and the turns of each call."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text

from bot.core.db.base import Base, JsonDocument, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

# Campaign life cycle: draft → running ⇄ paused → stopped (or completed when no lead is left).
CAMPAIGN_STATUSES = ("draft", "running", "paused", "stopped", "completed")
# Attempt life cycle. The transition scheduled → dialing is a compare-and-set in the
# database: whichever worker wins it dials; a redelivered task finds "dialing" and stops.
ATTEMPT_STATUSES = ("scheduled", "dialing", "completed", "failed", "cancelled")
IN_FLIGHT = ("scheduled", "dialing")


class Campaign(Base):
    __tablename__ = "campaigns"

    id = Column(_Id, primary_key=True)
    name = Column(String(200), nullable=False, unique=True)
    status = Column(String(20), nullable=False, default="draft")
    lines = Column(Integer, nullable=False, default=10)  # max concurrent calls
    cps = Column(Float, nullable=False, default=2.0)  # new calls per second
    compliance_profile = Column(String(200), nullable=False, default="CN_INSURANCE_DEFAULT")
    compliance_overrides = Column(JsonDocument, nullable=False, default=dict)  # stricter only
    retry_policy = Column(JsonDocument, nullable=False, default=dict)
    # [{"name": "standard", "weight": 1}, …] and [{"name": "上午", "windows": ["09:30-12:00"], "weight": 1}, …]
    script_variants = Column(JsonDocument, nullable=False, default=list)
    time_slots = Column(JsonDocument, nullable=False, default=list)
    incentive = Column(Text)
    # How an A/B callee gets onto WeCom, and so what the robot promises: link | advisor_adds
    # (migration 0017; the script says the lines of this mode, landline callees the callback lines).
    add_mode = Column(String(20), nullable=False, default="link", server_default="link")
    # Incentive and welcome arms, holdout share, seeds, bandit state (bot.campaigns.experiment_design).
    experiments = Column(JsonDocument, nullable=False, default=dict, server_default=text("'{}'"))
    # Where the hopper's scans of untried and tried leads stopped ({"untried": lead id,
    # "tried": [iso time, lead id]}): the next tick goes on from there, round the list.
    planner_cursor = Column(JsonDocument, nullable=False, default=dict, server_default=text("'{}'"))
    created_by = Column(String(100), nullable=False, default="")
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    started_at = Column(UtcDateTime)
    stopped_at = Column(UtcDateTime)


class CampaignPack(Base):
    __tablename__ = "campaign_packs"

    campaign_id = Column(_Id, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    pack_id = Column(_Id, ForeignKey("lead_packs.id", ondelete="CASCADE"), primary_key=True)


class CallAttempt(Base):
    """One dial of one lead. (campaign, lead, attempt number) is the idempotency key."""

    __tablename__ = "call_attempts"
    __table_args__ = (
        UniqueConstraint("campaign_id", "lead_id", "attempt_no"),
        Index("ix_call_attempts_campaign_id_status", "campaign_id", "status"),
        # per-number history across campaigns, for the compliance caps
        Index("ix_call_attempts_phone_hash_scheduled_at", "phone_hash", "scheduled_at"),
        Index("ix_call_attempts_lead_id", "lead_id"),
        Index(
            "ix_call_attempts_callback_pending",
            "callback_at",
            postgresql_where=text("callback_at IS NOT NULL AND callback_outcome IS NULL"),
            sqlite_where=text("callback_at IS NOT NULL AND callback_outcome IS NULL"),
        ),
    )

    id = Column(_Id, primary_key=True)
    campaign_id = Column(_Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    attempt_no = Column(Integer, nullable=False)
    phone_hash = Column(String(64), nullable=False)
    arms = Column(JsonDocument, nullable=False, default=dict)  # {"script": "standard", "time_slot": "上午"}
    status = Column(String(20), nullable=False, default="scheduled")
    # answered, or a call status (no_answer, powered_off, …), or worker_lost
    outcome = Column(String(40))
    # What the compliance rules read from this attempt: opt_out, soft_decline, busy,
    # a call status, answered; "scheduled" while in flight (it already counts for caps).
    history_outcome = Column(String(40), nullable=False, default="scheduled")
    grade = Column(String(1))
    grade_reason = Column(Text)
    followups = Column(JsonDocument, nullable=False, default=list)
    callback_at = Column(UtcDateTime)
    # A booked callback, once settled by the reconciler: "dialled" (a later attempt went out
    # inside its grace) or "missed:<reason>"; null while pending or when none was booked.
    callback_outcome = Column(String(60))
    hangup_by = Column(String(10))
    # The callee asked for a human: handed_off (an advisor took the call) or handoff_failed
    # (nobody free in time: advisor callback booked); null otherwise.
    handoff = Column(String(20))
    talk_time_s = Column(Float)
    carrier_call_id = Column(String(100))
    worker = Column(String(100))
    scheduled_at = Column(UtcDateTime, nullable=False, default=utc_now)
    dialed_at = Column(UtcDateTime)
    answered_at = Column(UtcDateTime)
    ended_at = Column(UtcDateTime)
    # When the reconciler last re-sent this planned attempt (its queue message was lost).
    requeued_at = Column(UtcDateTime)


class TurnRow(Base):
    """A call's turn as stored (the turn itself is `intents.finished_call.Turn`)."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("attempt_id", "seq"),)

    id = Column(_Id, primary_key=True)
    attempt_id = Column(_Id, ForeignKey("call_attempts.id", ondelete="CASCADE"), nullable=False)
    seq = Column(Integer, nullable=False)
    speaker = Column(String(10), nullable=False)  # bot | callee
    text = Column(Text, nullable=False)
    response = Column(String(100))  # the script line a bot turn came from
    intent = Column(String(40))
    confidence = Column(Float)
    entities = Column(JsonDocument, nullable=False, default=list)
    offset_ms = Column(Integer, nullable=False)


class GradeCorrection(Base):
    """A person's correction of a call's grade (人工更正). The attempt keeps the robot's
    grade; the latest correction (highest id) is the grade that counts in the report.
    Every correction is kept, so the call page shows the history."""

    __tablename__ = "grade_corrections"
    __table_args__ = (Index("ix_grade_corrections_attempt_id", "attempt_id"),)

    id = Column(_Id, primary_key=True)
    attempt_id = Column(_Id, ForeignKey("call_attempts.id", ondelete="CASCADE"), nullable=False)
    old_grade = Column(String(1))  # the grade in force before this correction (robot's or an earlier one)
    new_grade = Column(String(1), nullable=False)
    reason = Column(String(200), nullable=False)
    corrected_by = Column(String(100), nullable=False)  # the user's login name
    corrected_at = Column(UtcDateTime, nullable=False, default=utc_now)


class ExperimentHoldout(Base):
    """A lead the hopper found in its campaign's holdout (never dialled). Whether a lead is
    held out is the hash of (holdout seed, lead id); this row only saves looking again."""

    __tablename__ = "experiment_holdouts"

    campaign_id = Column(_Id, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
