"""Connect rate per caller number and local vs non-local, for the A/B report (as checks).

These are checks, not A/B arms: the number a dial shows is chosen by the callee's region
(local first), not at random, so a difference between local and non-local calls mixes the
number's effect with the regions'. The report says so and shows the figures with their
95 % Wilson intervals and a two-sided two-proportion test, per call (each dial's pickup).

One aggregate query over the campaign's dialled attempts (campaign, caller number) — the
same rows the report's window already reads, grouped in the database.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from scipy.stats import norm
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.campaigns.caller_numbers import CITY, OTHER, PROVINCE, PoolEntry, pool
from bot.campaigns.models import CallAttempt

CONNECTED = "answered"
MATCH_LABELS = {CITY: "本市号码", PROVINCE: "本省外市号码", OTHER: "外省号码"}
_DIALLED = ("completed", "failed")
_Z95 = 1.959963984540054


def wilson(connected: int, dials: int) -> tuple[float, float]:
    if dials == 0:
        return (0.0, 0.0)
    p = connected / dials
    centre = p + _Z95**2 / (2 * dials)
    spread = _Z95 * math.sqrt(p * (1 - p) / dials + _Z95**2 / (4 * dials**2))
    denominator = 1 + _Z95**2 / dials
    return ((centre - spread) / denominator, (centre + spread) / denominator)


def two_sided_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    if n1 == 0 or n2 == 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return float(2 * norm.sf(abs((x1 / n1 - x2 / n2) / se)))


def _row(dials: int, connected: int) -> dict:
    low, high = wilson(connected, dials)
    return {
        "dials": dials,
        "connected": connected,
        "rate": connected / dials if dials else None,
        "ci": [low, high],
    }


def caller_number_checks(
    session: Session, campaign_id: int, since: datetime | None = None, until: datetime | None = None
) -> dict | None:
    """None when the campaign dialled nothing with a pool number (no pool, or not yet)."""
    query = (
        select(
            CallAttempt.caller_number,
            CallAttempt.caller_match,
            func.count(),
            func.coalesce(func.sum(case((CallAttempt.outcome == CONNECTED, 1), else_=0)), 0),
        )
        .where(
            CallAttempt.campaign_id == campaign_id,
            CallAttempt.caller_number.isnot(None),
            CallAttempt.status.in_(_DIALLED),
        )
        .group_by(CallAttempt.caller_number, CallAttempt.caller_match)
    )
    if since is not None:
        query = query.where(CallAttempt.dialed_at >= since)
    if until is not None:
        query = query.where(CallAttempt.dialed_at < until)
    rows = session.execute(query).all()
    if not rows:
        return None
    per_number: dict[str, list[int]] = {}
    per_match: dict[str, list[int]] = {CITY: [0, 0], PROVINCE: [0, 0], OTHER: [0, 0]}
    for number, match, dials, connected in rows:
        per_number.setdefault(number, [0, 0])
        per_number[number][0] += int(dials)
        per_number[number][1] += int(connected)
        bucket = per_match.setdefault(match or OTHER, [0, 0])
        bucket[0] += int(dials)
        bucket[1] += int(connected)
    entries: dict[str, PoolEntry] = {e.number: e for e in pool(session, campaign_id, datetime.now(timezone.utc))}
    numbers = []
    for number, (dials, connected) in sorted(per_number.items(), key=lambda item: -item[1][0]):
        entry = entries.get(number)
        numbers.append(
            {
                "number": number,  # ours, not the callee's: shown in full
                "place": entry.place if entry else "未知",
                "rested": bool(entry and entry.rested),
                "rested_reason": entry.rested_reason if entry else None,
                **_row(dials, connected),
            }
        )
    local = [per_match[CITY][0] + per_match[PROVINCE][0], per_match[CITY][1] + per_match[PROVINCE][1]]
    non_local = per_match[OTHER]
    p_value = two_sided_p(local[1], local[0], non_local[1], non_local[0])
    return {
        "numbers": numbers,
        "by_match": [
            {"match": match, "label": MATCH_LABELS[match], **_row(*per_match[match])}
            for match in (CITY, PROVINCE, OTHER)
            if per_match[match][0]
        ],
        "local": _row(*local),
        "non_local": _row(*non_local),
        "local_vs_non_local_p": p_value,
    }


def caller_number_lines(checks: dict | None, alpha: float = 0.05) -> list[str]:
    """The report summary's lines (Chinese, for managers)."""
    if not checks:
        return []
    local, non_local = checks["local"], checks["non_local"]
    lines = []
    if local["dials"] and non_local["dials"]:
        p = checks["local_vs_non_local_p"]
        verdict = "差异显著" if p is not None and p < alpha else "差异不显著"
        lines.append(
            f"主叫号码：本地号码（本省）接通率 {local['rate']:.1%}（{local['dials']:,} 通），"
            f"外地号码 {non_local['rate']:.1%}（{non_local['dials']:,} 通），{verdict}（p={p:.2g}）；"
            "号码按地区选择而非随机分配，仅作检查参考。"
        )
    rested = [row["number"] for row in checks["numbers"] if row["rested"]]
    if rested:
        lines.append(f"已休息的主叫号码：{'、'.join(rested)}（接通率远低于号码池）。")
    return lines
