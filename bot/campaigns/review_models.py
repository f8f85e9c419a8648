"""A script writer's label for a caller turn from the review queue (bot.campaigns.review)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Text

from bot.core.db.base import Base, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

# added: written to the tool's NLU file; duplicate: a training file already had it;
# in_test_set: a test file says it (never trained on); skipped: not speech, or not worth it.
REVIEW_OUTCOMES = ("added", "duplicate", "in_test_set", "skipped")


class ReviewLabel(Base):
    """One decision per turn (unique): the turn leaves the queue. Deleted with the turn (and so
    with its call, and with the person when `waihu leads forget` erases them)."""

    __tablename__ = "review_labels"

    id = Column(_Id, primary_key=True)
    turn_id = Column(_Id, ForeignKey("turns.id", ondelete="CASCADE"), nullable=False, unique=True)
    intent = Column(String(60))  # null when skipped
    outcome = Column(String(20), nullable=False)
    example_text = Column(Text, nullable=False, default="")  # the masked text, as written (or refused)
    labelled_by = Column(String(100), nullable=False)
    labelled_at = Column(UtcDateTime, nullable=False, default=utc_now)
