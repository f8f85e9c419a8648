"""Audience packs with how many leads each holds: what the audience lists show.

Here and not in `bot.audiences`: audiences sit below leads (a lead names its pack).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.audiences.models import AudiencePack
from bot.leads.models import Lead


@dataclass(frozen=True)
class AudienceRow:
    name: str
    scene: str | None
    tier: str | None
    attributes: dict
    leads: int


def list_audiences(session: Session) -> list[AudienceRow]:
    counts = dict(session.execute(select(Lead.audience_id, func.count()).group_by(Lead.audience_id)).all())
    packs = session.execute(select(AudiencePack).order_by(AudiencePack.name)).scalars().all()
    return [AudienceRow(p.name, p.scene, p.tier, p.attributes or {}, counts.get(p.id, 0)) for p in packs]
