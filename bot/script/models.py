"""What the script domain stores: published versions of the script writers' project."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text

from bot.core.db.base import Base, JsonDocument, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")


class ScriptPublication(Base):
    """A script variant released for campaigns: the whole dialogs/ project as it was when
    published (every text file), its fingerprint and the model trained from it. The newest
    publication is "the published version" the editor diffs against."""

    __tablename__ = "script_publications"
    __table_args__ = (Index("ix_script_publications_variant", "variant"),)

    id = Column(_Id, primary_key=True)
    variant = Column(String(100), nullable=False)
    fingerprint = Column(String(64), nullable=False)
    model_file = Column(String(200), nullable=False)
    files = Column(JsonDocument, nullable=False, default=dict)  # {"domain/responses.yml": "…text…"}
    note = Column(Text, nullable=False, default="")
    published_by = Column(String(100), nullable=False)
    published_at = Column(UtcDateTime, nullable=False, default=utc_now)
