"""Tables of the web console: API tokens for automation and published script versions."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text

from bot.db.base import Base, JsonDocument, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")


class ApiToken(Base):
    """A bearer token acting as its user (same role). Only a SHA-256 of the token is stored:
    the token is 256 random bits, so a fast hash is enough and lookups stay one index probe."""

    __tablename__ = "api_tokens"

    id = Column(_Id, primary_key=True)
    user_id = Column(_Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    label = Column(String(100), nullable=False)
    token_hash = Column(String(64), nullable=False, unique=True)
    # First characters of the token (e.g. "wh_3f9a"), so a user can tell their tokens apart.
    prefix = Column(String(16), nullable=False)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    last_used_at = Column(UtcDateTime)
    revoked_at = Column(UtcDateTime)


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
