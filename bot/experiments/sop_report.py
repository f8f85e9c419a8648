"""The follow-up sequence as an A/B factor: per sequence arm (the sequence a contact was first
assigned), enrolled contacts, click rate and conversion rate — conversions of enrolled leads
after their enrolment (bot.experiments.conversions), with a Wilson interval on each rate so a
manager does not read noise as a winner."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Float, cast, func, select
from sqlalchemy.orm import Session

from bot.experiments.conversion_models import Conversion
from bot.wecom.sop import sequence_figures
from bot.wecom.sop_models import SopEnrolment


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound for small counts and rates near 0)."""
    if trials <= 0:
        return 0.0, 0.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class SequenceArm:
    arm: str
    enrolled: int
    sent: int
    skipped_cap: int
    clicked: int
    converted: int
    premium: Decimal
    stopped: dict[str, int]
    completed: int

    @property
    def click_rate(self) -> float:
        return self.clicked / self.enrolled if self.enrolled else 0.0

    @property
    def conversion_rate(self) -> float:
        return self.converted / self.enrolled if self.enrolled else 0.0

    def click_interval(self) -> tuple[float, float]:
        return wilson_interval(self.clicked, self.enrolled)

    def conversion_interval(self) -> tuple[float, float]:
        return wilson_interval(self.converted, self.enrolled)

    def as_json(self) -> dict:
        return {
            "arm": self.arm,
            "enrolled": self.enrolled,
            "sent": self.sent,
            "skipped_cap": self.skipped_cap,
            "clicked": self.clicked,
            "click_rate": round(self.click_rate, 4),
            "converted": self.converted,
            "conversion_rate": round(self.conversion_rate, 4),
            "premium": float(self.premium),
            "completed": self.completed,
            "stopped": dict(self.stopped),
        }


def sequence_arms(session: Session, campaign_id: int | None = None) -> list[SequenceArm]:
    where = [SopEnrolment.campaign_id == campaign_id] if campaign_id is not None else []
    converted = {
        arm: (int(leads), Decimal(str(round(premium or 0.0, 2))))
        for arm, leads, premium in session.execute(
            select(
                SopEnrolment.arm,
                func.count(func.distinct(Conversion.lead_id)),
                # summed as float (SQLite has no decimal type), back to yuan and fen below
                func.sum(cast(Conversion.premium, Float)),
            )
            .join(Conversion, Conversion.lead_id == SopEnrolment.lead_id)
            .where(Conversion.converted_at >= SopEnrolment.enrolled_at, *where)
            .group_by(SopEnrolment.arm)
        ).all()
    }
    return [
        SequenceArm(
            arm=f.arm,
            enrolled=f.enrolled,
            sent=f.sent,
            skipped_cap=f.skipped_cap,
            clicked=f.clicked,
            converted=converted.get(f.arm, (0, Decimal(0)))[0],
            premium=converted.get(f.arm, (0, Decimal(0)))[1],
            stopped=dict(f.stopped),
            completed=f.completed,
        )
        for f in sequence_figures(session, campaign_id)
    ]


def sequence_lines(rows: list[dict]) -> list[str]:
    """The report's 跟进序列 lines: per sequence arm, enrolled, click and conversion rates with
    their 95% intervals (two arms whose intervals do not overlap are said to differ)."""
    lines = []
    for row in rows:
        click = wilson_interval(row["clicked"], row["enrolled"])
        conversion = wilson_interval(row["converted"], row["enrolled"])
        lines.append(
            f"跟进序列「{row['arm']}」：入组 {row['enrolled']:,} 人，已发送 {row['sent']:,} 条；点击率 "
            f"{row['click_rate']:.1%}（{click[0]:.1%}–{click[1]:.1%}），成交率 {row['conversion_rate']:.1%}"
            f"（{conversion[0]:.1%}–{conversion[1]:.1%}）。"
        )
    if len(rows) >= 2:
        best = max(rows, key=lambda r: r["conversion_rate"])
        low = wilson_interval(best["converted"], best["enrolled"])[0]
        beaten = [r["arm"] for r in rows if r is not best and wilson_interval(r["converted"], r["enrolled"])[1] < low]
        if beaten:
            lines.append(
                f"跟进序列：「{best['arm']}」的成交率高于{'、'.join(f'「{a}」' for a in beaten)}（95% 区间不重叠）。"
            )
        else:
            lines.append("跟进序列：各序列的成交率尚无显著差异（95% 区间重叠）。")
    return lines
