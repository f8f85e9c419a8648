"""What each lead did in a campaign, summed in SQL into a few cells the statistics can use.

The lead is the randomised unit, so the analysis needs per-lead numbers (dials,
connected calls, A and A+B calls, opt-outs, talk time, WeCom add) and, for every metric,
the sums over leads of the value, of its square and of its product with the metric's
denominator (a ratio metric's delta-method variance needs those). Those sums add up, so
one query groups the campaign's attempts by lead and then the leads by (arm of every
factor, audience pack, local day of the first dial): a few hundred cells instead of a
million rows, from which any factor, arm, audience pack or cumulative day is a sum in
Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping, Sequence

from sqlalchemy import Table, case, func, select
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt
from bot.experiments.design import FACTORS
from bot.leads.models import Lead

# Attempts that reached the carrier (failed: the worker died mid-call, still a dial).
DIALLED_STATUSES = ("completed", "failed")
ANSWERED = "answered"
OPT_OUT = "opt_out"
LOCAL_UTC_OFFSET_HOURS = 8  # Asia/Shanghai: no daylight saving since 1991

# Per-lead values and the sums kept of them: value, value², value × denominator.
SUMS = ("leads", "dials", "dials_sq", "connected", "connected_sq", "connected_dials", "a", "a_sq", "a_connected",
        "ab", "ab_sq", "ab_connected", "opt_out", "opt_out_sq", "opt_out_connected", "talk", "talk_sq",
        "talk_connected", "added")


@dataclass(frozen=True)
class Cell:
    """Leads sharing every arm, audience pack and first-dial day, with their sums."""

    arms: Mapping[str, str | None]  # factor → arm (None: the attempt did not record that factor)
    audience_id: int | None
    day: str  # YYYY-MM-DD of the lead's first dial, Asia/Shanghai
    sums: Mapping[str, float]


def add_sums(cells: Iterable[Cell]) -> dict[str, float]:
    total = dict.fromkeys(SUMS, 0.0)
    for cell in cells:
        for key in SUMS:
            total[key] += cell.sums[key]
    return total


def wecom_invites_table() -> Table | None:
    """The WeCom invitations table, when the WeCom module (issue 6) is installed."""
    try:
        from bot.wecom.models import WeComInvite  # noqa: PLC0415 (optional module)
    except ImportError:
        return None
    table = WeComInvite.__table__
    return table if {"lead_id", "campaign_id", "added_at"} <= set(table.c.keys()) else None


def lead_cells(session: Session, campaign_id: int, *, since: datetime | None = None, until: datetime | None = None,
               audience_ids: Sequence[int] | None = None, factors: Sequence[str] = FACTORS) -> list[Cell]:
    """The campaign's dialled leads (attempts dialled in [since, until)), summed per cell."""
    attempts = CallAttempt.__table__
    leads = Lead.__table__
    dialect = session.get_bind().dialect.name

    def counted(condition) -> object:
        return func.sum(case((condition, 1), else_=0))

    conditions = [attempts.c.campaign_id == campaign_id, attempts.c.status.in_(DIALLED_STATUSES),
                  attempts.c.dialed_at.isnot(None)]
    if since is not None:
        conditions.append(attempts.c.dialed_at >= since)
    if until is not None:
        conditions.append(attempts.c.dialed_at < until)
    # Grouped by lead and by the arms document as a whole: the arms are extracted once per
    # lead below, not once per attempt (JSON extraction is the costly part at a million rows).
    per_lead = (select(attempts.c.lead_id.label("lead_id"), attempts.c.arms.label("arms"),
                       func.count().label("dials"),
                       counted(attempts.c.outcome == ANSWERED).label("connected"),
                       counted(attempts.c.grade == "A").label("a"),
                       counted(attempts.c.grade.in_(("A", "B"))).label("ab"),
                       counted(attempts.c.history_outcome == OPT_OUT).label("opt_out"),
                       func.sum(case((attempts.c.outcome == ANSWERED, func.coalesce(attempts.c.talk_time_s, 0.0)),
                                     else_=0.0)).label("talk"),
                       func.min(attempts.c.dialed_at).label("first_dial"))
                .where(*conditions)
                .group_by(attempts.c.lead_id, attempts.c.arms)
                .subquery("per_lead"))
    arm_columns = [per_lead.c.arms[factor].as_string().label(factor) for factor in factors]
    day = _local_day(per_lead.c.first_dial, dialect).label("day")
    source = per_lead.join(leads, leads.c.id == per_lead.c.lead_id)
    invites = wecom_invites_table()
    if invites is not None:
        added_by_lead = (select(invites.c.lead_id.label("lead_id"),
                                func.max(case((invites.c.added_at.isnot(None), 1), else_=0)).label("added"))
                         .where(invites.c.campaign_id == campaign_id)
                         .group_by(invites.c.lead_id).subquery("added_by_lead"))
        source = source.outerjoin(added_by_lead, added_by_lead.c.lead_id == per_lead.c.lead_id)
        added = func.coalesce(added_by_lead.c.added, 0)
    else:
        added = None
    c = per_lead.c
    sums = [func.count().label("leads"), func.sum(c.dials).label("dials"), func.sum(c.dials * c.dials).label("dials_sq"),
            func.sum(c.connected).label("connected"), func.sum(c.connected * c.connected).label("connected_sq"),
            func.sum(c.connected * c.dials).label("connected_dials")]
    for name in ("a", "ab", "opt_out", "talk"):
        value = c[name]
        sums += [func.sum(value).label(name), func.sum(value * value).label(f"{name}_sq"),
                 func.sum(value * c.connected).label(f"{name}_connected")]
    sums.append((func.sum(added) if added is not None else func.sum(0)).label("added"))
    query = (select(*arm_columns, leads.c.audience_id, day, *sums).select_from(source)
             .group_by(*arm_columns, leads.c.audience_id, day))
    if audience_ids is not None:
        query = query.where(leads.c.audience_id.in_(list(audience_ids)))
    cells = []
    for row in session.execute(query).mappings():
        cells.append(Cell({factor: row[factor] for factor in factors}, row["audience_id"], str(row["day"]),
                          {key: float(row[key] or 0) for key in SUMS}))
    return cells


def _local_day(column, dialect: str):
    if dialect == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", column), "YYYY-MM-DD")
    # SQLite keeps UTC timestamps as text; Shanghai is a fixed +8 hours.
    return func.strftime("%Y-%m-%d", column, f"+{LOCAL_UTC_OFFSET_HOURS} hours")
