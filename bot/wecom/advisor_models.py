"""advisor_adds mode: the advisor adds the callee by phone in WeCom from a task, and every
look at the clear number is audited.

A task's life: open (created with the call log for an A/B mobile lead of an `advisor_adds`
campaign, assigned to the advisor of the lead's audience pack) → done (the advisor marked
it 已添加) → added (WeCom's add_external_contact callback for that advisor matched it);
`cancelled` when the lead can no longer be added (erased, opted out). A task keeps its
WeComInvite (channel `advisor_adds`, status `assigned`), so the funnel, the welcome and
the tags work as for a link.

`kind` says what the advisor is to do: `add` (advisor_adds, above), `callback` (a landline
A/B callee: the advisor calls back; invitation of channel `callback`) or `handoff` (the callee
asked for a human and nobody was free: the robot promised an advisor's call back). A
`handoff` task has no invitation (`invite_id` null: the call may have its own invitation),
its window is `call_from` … `due_at`, and there is at most one per call (attempt, kind).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, UniqueConstraint

from bot.core.db.base import Base, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

TASK_STATUSES = ("open", "done", "added", "cancelled")
TASK_KINDS = ("add", "callback", "handoff")


class AdvisorTask(Base):
    __tablename__ = "advisor_tasks"
    __table_args__ = (
        Index("ix_advisor_tasks_advisor_userid", "advisor_userid"),
        Index("ix_advisor_tasks_lead_id", "lead_id"),
        Index("ix_advisor_tasks_status", "status"),
        UniqueConstraint("attempt_id", "kind"),  # one task of a kind per call: storing it twice makes one
    )

    id = Column(_Id, primary_key=True)
    # The invitation the task belongs to; null for a `handoff` call-back (not a WeCom invitation).
    invite_id = Column(_Id, ForeignKey("wecom_invites.id", ondelete="CASCADE"), nullable=True, unique=True)
    attempt_id = Column(_Id, ForeignKey("call_attempts.id", ondelete="CASCADE"), nullable=False)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    campaign_id = Column(_Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False)
    advisor_userid = Column(String(64), nullable=False)  # the advisor's WeCom userid (offers: advisor)
    advisor_name = Column(String(100))
    kind = Column(String(20), nullable=False, default="add", server_default="add")  # TASK_KINDS
    status = Column(String(20), nullable=False, default="open")
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    call_from = Column(UtcDateTime)  # a call-back window's start (handoff: not before this time)
    due_at = Column(UtcDateTime, nullable=False)
    first_revealed_at = Column(UtcDateTime)
    reveals = Column(Integer, nullable=False, default=0)
    done_at = Column(UtcDateTime)
    done_by = Column(_Id, ForeignKey("users.id", ondelete="SET NULL"))
    added_at = Column(UtcDateTime)
    external_userid = Column(String(64))
    matched_by = Column(String(200))  # how the add callback was tied to this task (remark code, only task …)


class RevealAudit(Base):
    """One look at a task's clear number: who, when, from where. Kept as long as the lead is;
    erased with the person (bot.erasure)."""

    __tablename__ = "reveal_audit"
    __table_args__ = (
        Index("ix_reveal_audit_task_id", "task_id"),
        Index("ix_reveal_audit_lead_id", "lead_id"),
    )

    id = Column(_Id, primary_key=True)
    task_id = Column(_Id, ForeignKey("advisor_tasks.id", ondelete="CASCADE"), nullable=False)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    user_id = Column(_Id, ForeignKey("users.id", ondelete="SET NULL"))
    user_name = Column(String(100), nullable=False)
    revealed_at = Column(UtcDateTime, nullable=False, default=utc_now)
    ip = Column(String(64))
    user_agent = Column(String(300))
