"""Call recordings (one WAV per connected call) and the audit of who listened to which.

A recording is filed by attempt id only (`<yyyy>/<mm>/<attempt id>.wav` under the
recordings directory), never by phone number, and goes with its call: ON DELETE CASCADE
from the attempt, so `waihu leads forget` and the retention purge leave no orphan row.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Index, Integer, String

from bot.core.db.base import Base, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_retain_until", "retain_until"),)

    id = Column(_Id, primary_key=True)
    attempt_id = Column(_Id, ForeignKey("call_attempts.id", ondelete="CASCADE"), nullable=False, unique=True)
    path = Column(String(200), nullable=False)  # relative to the recordings directory
    duration_s = Column(Float, nullable=False)
    bytes = Column(BigInteger, nullable=False)
    format = Column(String(20), nullable=False, default="wav")
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    retain_until = Column(UtcDateTime, nullable=False)


class RecordingAudit(Base):
    """One listen or download of a call's recording: who, when, which call (no phone)."""

    __tablename__ = "recording_audit"
    __table_args__ = (Index("ix_recording_audit_attempt_id", "attempt_id"),)

    id = Column(_Id, primary_key=True)
    attempt_id = Column(_Id, ForeignKey("call_attempts.id", ondelete="CASCADE"), nullable=False)
    user_id = Column(_Id, ForeignKey("users.id", ondelete="SET NULL"))
    user_name = Column(String(100), nullable=False)
    action = Column(String(20), nullable=False)  # listen | download
    at = Column(UtcDateTime, nullable=False, default=utc_now)
    ip = Column(String(64))
