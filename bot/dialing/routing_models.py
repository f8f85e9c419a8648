"""Where a lead is worked (issue 17 item 2): one current route per lead, from dialogs/routing.yml.

`human`/`advisor` routes that are `open` keep the robot off the lead (the planner's scans
leave them out); they show on the advisors' task page. A lead without a row is the robot's (`ai`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text

from bot.core.db.base import Base, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

HUMAN, ADVISOR, AI = "human", "advisor", "ai"
ROUTES = (HUMAN, ADVISOR, AI)
OPEN, DONE = "open", "done"
# Routes that take the lead away from the robot while open.
HELD_ROUTES = (HUMAN, ADVISOR)


class LeadRoute(Base):
    __tablename__ = "lead_routes"
    __table_args__ = (Index("ix_lead_routes_status_route", "status", "route"),)

    id = Column(_Id, primary_key=True)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False, unique=True)
    route = Column(String(10), nullable=False)  # human | advisor | ai
    rule = Column(String(300), nullable=False)  # file:line of the rule that routed it
    reason = Column(Text, nullable=False)
    routed_at = Column(UtcDateTime, nullable=False, default=utc_now)
    advisor_userid = Column(String(64))
    status = Column(String(10), nullable=False, default=OPEN)  # open | done
    done_at = Column(UtcDateTime)


class RouteReveal(Base):
    """One look at a routed lead's clear number (人工跟进线索): who, when, from where — the same
    audit as the advisors' add tasks; erased with the person (bot.erasure)."""

    __tablename__ = "route_reveals"
    __table_args__ = (Index("ix_route_reveals_lead_id", "lead_id"),)

    id = Column(_Id, primary_key=True)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False)
    user_id = Column(_Id, ForeignKey("users.id", ondelete="SET NULL"))
    user_name = Column(String(100), nullable=False)
    revealed_at = Column(UtcDateTime, nullable=False, default=utc_now)
    ip = Column(String(64))
    user_agent = Column(String(300))
