from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Integer, String, text

from bot.core.db.base import Base, UtcDateTime, utc_now

_Id = BigInteger().with_variant(Integer, "sqlite")

# advisor (顾问): sees and works their own WeCom add tasks (advisor_adds mode, migration 0018).
ROLES = ("ops", "writer", "manager", "admin", "advisor")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('ops', 'writer', 'manager', 'admin', 'advisor')", name="role_known"),)

    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    password_hash = Column(String(200), nullable=False)
    role = Column(String(20), nullable=False)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    # Raised by logout, a new password and a new role: sessions of an older generation end.
    session_generation = Column(Integer, nullable=False, default=0, server_default=text("0"))
    # An advisor's WeCom userid (成员 UserID): whose add tasks are theirs (migration 0018).
    wecom_userid = Column(String(64), unique=True)


class ApiToken(Base):
    """A bearer token acting as its user (same role) on the JSON API, within its scopes. Only a
    SHA-256 of the token is stored: the token is 256 random bits, so a fast hash is enough and
    lookups stay one index probe."""

    __tablename__ = "api_tokens"

    id = Column(_Id, primary_key=True)
    user_id = Column(_Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    label = Column(String(100), nullable=False)
    token_hash = Column(String(64), nullable=False, unique=True)
    # First characters of the token (e.g. "wh_3f9a"), so a user can tell their tokens apart.
    prefix = Column(String(16), nullable=False)
    # Space-separated scopes (bot.users.tokens.SCOPES), chosen when the token is made.
    scopes = Column(String(200), nullable=False, default="", server_default="")
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    last_used_at = Column(UtcDateTime)
    revoked_at = Column(UtcDateTime)
