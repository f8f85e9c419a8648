"""What experiments store besides the campaign's design: the leads held out of a campaign."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer

from bot.db.base import Base, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")


class ExperimentHoldout(Base):
    """A lead the hopper found in its campaign's holdout (never dialled). Whether a lead is
    held out is the hash of (holdout seed, lead id); this row only saves looking again."""

    __tablename__ = "experiment_holdouts"

    campaign_id = Column(_Id, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    lead_id = Column(_Id, ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
