from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Integer, String, UniqueConstraint

from bot.core.db.base import Base, PhoneHash, UtcDateTime, utc_now

SCOPE_OPT_OUT = "opt_out"  # hard opt-out: permanent, whole tenant
SCOPE_SOFT_DECLINE = "soft_decline"  # 不需要/不感兴趣: no marketing calls until expires_at
SCOPES = (SCOPE_OPT_OUT, SCOPE_SOFT_DECLINE)


class DoNotCall(Base):
    """One entry per (phone hash, scope). Holds no phone number: it must outlive a PIPL erasure."""

    __tablename__ = "do_not_call"
    __table_args__ = (
        UniqueConstraint("phone_hash", "scope", name="uq_do_not_call_phone_hash_scope"),
        CheckConstraint("scope IN ('opt_out', 'soft_decline')", name="scope_known"),
        CheckConstraint("scope = 'soft_decline' OR expires_at IS NULL", name="opt_out_is_permanent"),
        Index("ix_do_not_call_phone_hash", "phone_hash"),
    )

    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    phone_hash = Column(PhoneHash, nullable=False)
    scope = Column(String(20), nullable=False)
    reason = Column(String(200), nullable=False, default="")
    source = Column(String(200), nullable=False, default="manual")
    # The call that produced the entry; a plain id until call attempts get their table.
    source_call_id = Column(BigInteger)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
    expires_at = Column(UtcDateTime)  # null = permanent
