"""Follow-up sequences after the add (SOP): who is enrolled in which sequence, every step's
send, the tracked links and their clicks, and the tags a click put on the contact.

An enrolment's life: active → switched (an event moved the contact to another sequence: the
row keeps the first sequence and arm, `sequence` names the current one) → completed (every
step done) or stopped (deleted friend, opt-out, a branch to `stop`; `stop_reason` says which).
A step send: pending → sending (claimed by one sender; the claim is one conditional UPDATE,
so two workers never both send it) → sent | skipped_cap (the weekly cap was reached) |
failed; cancelled when the enrolment stops or switches. Quiet hours move `due_at`, they do
not skip the step (`moved_from` keeps the planned time).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint

from bot.core.db.base import Base, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

ENROLMENT_STATES = ("active", "switched", "stopped", "completed")
SEND_STATUSES = ("pending", "sending", "sent", "skipped_cap", "skipped_quiet", "failed", "cancelled")
STOP_REASONS = ("deleted", "opt_out", "purchase", "branch", "ops")


class SopEnrolment(Base):
    __tablename__ = "sop_enrolments"
    __table_args__ = (
        Index("ix_sop_enrolments_lead_id", "lead_id"),
        Index("ix_sop_enrolments_state", "state"),
        Index("ix_sop_enrolments_external_userid", "external_userid"),
    )

    id = Column(_Id, primary_key=True)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    invite_id = Column(_Id, ForeignKey("wecom_invites.id", ondelete="CASCADE"), nullable=False, unique=True)
    campaign_id = Column(_Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    external_userid = Column(String(64), nullable=False)
    advisor_userid = Column(String(64), nullable=False)
    audience = Column(String(200))
    grade = Column(String(1), nullable=False)
    arm = Column(String(100), nullable=False)  # the sequence first assigned (the A/B arm)
    sequence = Column(String(100), nullable=False)  # the sequence now followed
    state = Column(String(20), nullable=False, default="active")
    stop_reason = Column(String(20))
    enrolled_at = Column(UtcDateTime, nullable=False, default=utc_now)
    sequence_started_at = Column(UtcDateTime, nullable=False, default=utc_now)  # day 0 of `sequence`
    ended_at = Column(UtcDateTime)


class SopStepSend(Base):
    __tablename__ = "sop_step_sends"
    __table_args__ = (
        UniqueConstraint("enrolment_id", "sequence", "step_index", name="uq_sop_step_sends_step"),
        Index("ix_sop_step_sends_status_due_at", "status", "due_at"),
        Index("ix_sop_step_sends_lead_id", "lead_id"),
    )

    id = Column(_Id, primary_key=True)
    enrolment_id = Column(_Id, ForeignKey("sop_enrolments.id", ondelete="CASCADE"), nullable=False)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    sequence = Column(String(100), nullable=False)
    step_index = Column(Integer, nullable=False)
    step_type = Column(String(20), nullable=False)
    due_at = Column(UtcDateTime, nullable=False)
    moved_from = Column(UtcDateTime)  # the planned time, when quiet hours moved it
    status = Column(String(20), nullable=False, default="pending")
    claimed_at = Column(UtcDateTime)
    sent_at = Column(UtcDateTime)
    msgid = Column(String(100))  # add_msg_template's msgid
    note = Column(Text)


class SopLink(Base):
    """A tracked link in one sent step: GET /r/{token} records the click and redirects to `url`."""

    __tablename__ = "sop_links"

    id = Column(_Id, primary_key=True)
    token = Column(String(64), nullable=False, unique=True)
    enrolment_id = Column(_Id, ForeignKey("sop_enrolments.id", ondelete="CASCADE"), nullable=False)
    send_id = Column(_Id, ForeignKey("sop_step_sends.id", ondelete="CASCADE"), nullable=False)
    url = Column(Text, nullable=False)
    tag = Column(String(100))
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)


class SopClick(Base):
    __tablename__ = "sop_clicks"
    __table_args__ = (Index("ix_sop_clicks_link_id", "link_id"),)

    id = Column(_Id, primary_key=True)
    link_id = Column(_Id, ForeignKey("sop_links.id", ondelete="CASCADE"), nullable=False)
    enrolment_id = Column(_Id, ForeignKey("sop_enrolments.id", ondelete="CASCADE"), nullable=False)
    clicked_at = Column(UtcDateTime, nullable=False, default=utc_now)
    user_agent = Column(String(300))


class SopContactTag(Base):
    __tablename__ = "sop_contact_tags"
    __table_args__ = (UniqueConstraint("enrolment_id", "tag", name="uq_sop_contact_tags_tag"),)

    id = Column(_Id, primary_key=True)
    enrolment_id = Column(_Id, ForeignKey("sop_enrolments.id", ondelete="CASCADE"), nullable=False)
    tag = Column(String(100), nullable=False)
    marked_in_wecom = Column(Integer, nullable=False, default=0)  # 1 once mark_tag succeeded
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
