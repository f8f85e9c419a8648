from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String

from bot.core.db.base import Base, JsonDocument, UtcDateTime, utc_now

# Scenes and tiers ops use today; other values are allowed (a new scene should not need a release).
KNOWN_SCENES = ("车主", "宝妈", "银行", "单身", "养老", "少儿", "医疗", "企业主")
TIERS = ("普通", "中等", "绩优", "高绩优")


class AudiencePack(Base):
    __tablename__ = "audience_packs"

    id = Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    scene = Column(String(40))
    tier = Column(String(20))
    attributes = Column(JsonDocument, nullable=False, default=dict)
    created_at = Column(UtcDateTime, nullable=False, default=utc_now)
