"""The report's conversion parts: the full funnel per arm and the conversions counted apart.

Funnel (each stage a count of leads, premium in yuan): dialled → connected → A/B → invited
→ added → converted → premium (拨打 → 接通 → A/B → 邀请 → 添加 → 成交 → 保费). Every count comes
from the report's lead cells (bot.experiments.lead_metrics), so the funnel costs no query of
its own; the conversions counted apart (matched to a lead of the campaign but outside the
attribution window) take one small aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.orm import Session

from bot.experiments.conversion_models import Conversion

# (stage, the lead-cell sum it reads, Chinese label)
FUNNEL_STAGES: tuple[tuple[str, str, str], ...] = (
    ("dialled", "leads", "拨打"),
    ("connected", "connected_leads", "接通"),
    ("ab", "ab_leads", "A/B"),
    ("invited", "invited", "邀请"),
    ("added", "added", "添加"),
    ("converted", "converted", "成交"),
    ("premium", "premium", "保费"),
)
FUNNEL_LABELS = {stage: label for stage, _, label in FUNNEL_STAGES}


def funnel(sums: Mapping[str, float]) -> dict[str, float]:
    """Leads at each stage (premium: yuan, to the fen)."""
    return {
        stage: round(float(sums[key]), 2) if stage == "premium" else int(sums[key]) for stage, key, _ in FUNNEL_STAGES
    }


def conversion_overview(session: Session, campaign_id: int) -> dict[str, Any]:
    """Policies matched to the campaign: attributed (a connected call within the window) and
    unattributed (the last connected call was earlier: counted apart, not in any arm)."""
    conversions = Conversion.__table__
    attributed = conversions.c.attempt_id.isnot(None)
    premium = cast(conversions.c.premium, Float)
    row = session.execute(
        select(
            func.count().label("policies"),
            func.sum(case((attributed, 1), else_=0)).label("attributed"),
            func.sum(case((attributed, premium), else_=0.0)).label("attributed_premium"),
            func.sum(case((attributed, 0), else_=1)).label("unattributed"),
            func.sum(case((attributed, 0.0), else_=premium)).label("unattributed_premium"),
        ).where(conversions.c.campaign_id == campaign_id)
    ).one()
    return {
        "available": bool(row.policies),
        "policies": int(row.policies or 0),
        "attributed": int(row.attributed or 0),
        "attributed_premium": round(float(row.attributed_premium or 0), 2),
        "unattributed": int(row.unattributed or 0),
        "unattributed_premium": round(float(row.unattributed_premium or 0), 2),
    }


def conversion_lines(overview: Mapping[str, Any] | None, funnel_counts: Mapping[str, float] | None) -> list[str]:
    """Chinese summary sentences for the manager."""
    if not overview or not overview.get("available"):
        return []
    lines = [
        f"成交 {overview['attributed']:,} 单，保费 {overview['attributed_premium']:,.2f} 元（归因到本任务最近一次接通的通话）。"
    ]
    if overview["unattributed"]:
        lines.append(
            f"另有 {overview['unattributed']:,} 单（保费 {overview['unattributed_premium']:,.2f} 元）"
            "距最近一次接通超过归因窗口，单独计数，不计入各组。"
        )
    if funnel_counts:
        lines.append(
            "漏斗：" + " → ".join(f"{FUNNEL_LABELS[s]} {_shown(s, funnel_counts[s])}" for s, _, _ in FUNNEL_STAGES)
        )
    return lines


def _shown(stage: str, value: float) -> str:
    return f"{value:,.2f} 元" if stage == "premium" else f"{int(value):,}"
