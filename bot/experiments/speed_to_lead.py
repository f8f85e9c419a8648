"""Speed to lead, per campaign: how long from the moment a person left their number (留资,
Lead.lead_left_at) to the campaign's first dial of them — p50, p95 and the share dialled within
an hour — for the priority lane's leads (API leads) and the batch's apart.

One aggregate query per campaign on the first attempts (attempt_no = 1, the attempts' unique
key), so a large campaign costs one index range and no rows in Python on PostgreSQL
(percentile_cont); SQLite has no percentile function, so there the seconds come back one
number per lead and are ranked here (SQLite campaigns are the small, one-machine ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt, CampaignPack
from bot.leads.models import PRIORITY_LANE, Lead

WITHIN_S = 3600.0  # the customers' playbook: call within an hour of 留资
LANES = {PRIORITY_LANE: "priority", 0: "batch"}


@dataclass(frozen=True)
class SpeedToLead:
    lane: str  # priority (API leads) | batch
    leads: int  # leads of the campaign's packs with a 留资 time
    dialled: int  # …of which the campaign has dialled
    p50_s: float | None  # seconds from 留资 to the first dial
    p95_s: float | None
    within_hour: int  # dialled within WITHIN_S of 留资

    @property
    def within_hour_share(self) -> float | None:
        return self.within_hour / self.dialled if self.dialled else None

    def as_json(self) -> dict:
        return {
            "lane": self.lane,
            "leads": self.leads,
            "dialled": self.dialled,
            "p50_seconds": None if self.p50_s is None else round(self.p50_s, 1),
            "p95_seconds": None if self.p95_s is None else round(self.p95_s, 1),
            "within_1h": self.within_hour,
            "within_1h_share": None if self.within_hour_share is None else round(self.within_hour_share, 4),
        }


def speed_to_lead(session: Session, campaign_id: int) -> list[SpeedToLead]:
    """One row per lane that has leads with a 留资 time (priority first); empty if none has."""
    counts = dict(
        session.execute(
            select(Lead.priority, func.count())
            .join(CampaignPack, and_(CampaignPack.pack_id == Lead.pack_id, CampaignPack.campaign_id == campaign_id))
            .where(Lead.lead_left_at.isnot(None))
            .group_by(Lead.priority)
        ).all()
    )
    if not counts:
        return []
    postgres = session.get_bind().dialect.name == "postgresql"
    seconds = (
        func.extract("epoch", CallAttempt.dialed_at - Lead.lead_left_at)
        if postgres
        else (func.julianday(CallAttempt.dialed_at) - func.julianday(Lead.lead_left_at)) * 86400.0
    )
    first_dials = (
        select(Lead.priority.label("priority"), cast(seconds, Float).label("seconds"))
        .join(Lead, Lead.id == CallAttempt.lead_id)
        .where(
            CallAttempt.campaign_id == campaign_id,
            CallAttempt.attempt_no == 1,
            CallAttempt.dialed_at.isnot(None),
            Lead.lead_left_at.isnot(None),
        )
        .subquery()
    )
    rows = []
    if postgres:
        aggregate = session.execute(
            select(
                first_dials.c.priority,
                func.count(),
                func.percentile_cont(0.5).within_group(first_dials.c.seconds),
                func.percentile_cont(0.95).within_group(first_dials.c.seconds),
                func.sum(case((first_dials.c.seconds <= WITHIN_S, 1), else_=0)),
            ).group_by(first_dials.c.priority)
        ).all()
        found = {priority: (int(n), p50, p95, int(within or 0)) for priority, n, p50, p95, within in aggregate}
    else:
        by_lane: dict[int, list[float]] = {}
        for priority, value in session.execute(select(first_dials.c.priority, first_dials.c.seconds)):
            by_lane.setdefault(priority, []).append(float(value))
        found = {
            priority: (
                len(values),
                _percentile(sorted(values), 0.5),
                _percentile(sorted(values), 0.95),
                sum(1 for v in values if v <= WITHIN_S),
            )
            for priority, values in by_lane.items()
        }
    for priority in sorted(counts, reverse=True):
        dialled, p50, p95, within = found.get(priority, (0, None, None, 0))
        rows.append(
            SpeedToLead(
                LANES.get(priority, str(priority)),
                int(counts[priority]),
                dialled,
                None if p50 is None else float(p50),
                None if p95 is None else float(p95),
                within,
            )
        )
    return rows


def _percentile(ordered: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
