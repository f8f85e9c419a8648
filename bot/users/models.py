from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Integer, String

from bot.db.base import Base, UtcDateTime, utc_now

ROLES = ("ops", "writer", "manager", "admin")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('ops', 'writer', 'manager', 'admin')", name="role_known"),)

    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    password_hash = Column(String(200), nullable=False)
    role = Column(String(20), nullable=False)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
