"""Rest a caller number whose connect rate fell far below its pool's (a scheduled check).

Carriers and callees' phones flag numbers that call a lot (骚扰电话 marks): such a number's
connect rate drops while its pool's holds. Over its last RECENT_DIALS dials (at least that
many: fewer say too little), a number is rested and flagged when it connects far less than
the rest of its pool over the same stretch of time: a one-sided two-proportion z-test
(p < ALPHA) AND at least MIN_RELATIVE_DROP lower — significant and large, so a number is
never rested for noise nor for a small real difference. A person un-rests it
(`waihu campaign numbers unrest`) once the mark is cleared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from scipy.stats import norm
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt, CallerNumber

RECENT_DIALS = 50
ALPHA = 0.01
MIN_RELATIVE_DROP = 0.3
CONNECTED = "answered"
_DIALLED = ("completed", "failed")


@dataclass(frozen=True)
class NumberHealth:
    campaign_id: int
    number: str
    dials: int
    connected: int
    pool_dials: int
    pool_connected: int
    p_value: float

    @property
    def rate(self) -> float:
        return self.connected / self.dials if self.dials else 0.0

    @property
    def pool_rate(self) -> float:
        return self.pool_connected / self.pool_dials if self.pool_dials else 0.0

    @property
    def failing(self) -> bool:
        return (
            self.dials >= RECENT_DIALS
            and self.pool_dials >= RECENT_DIALS
            and self.p_value < ALPHA
            and self.rate <= (1 - MIN_RELATIVE_DROP) * self.pool_rate
        )

    def reason(self) -> str:
        return (
            f"接通率 {self.rate:.0%}（近 {self.dials} 通）远低于号码池 {self.pool_rate:.0%}"
            f"（{self.pool_dials} 通），p={self.p_value:.2g}"
        )


def lower_one_sided_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """P-value of H1: rate 1 < rate 2 (pooled two-proportion z-test)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return float(norm.cdf(z))


def number_health(session: Session, campaign_id: int, number: str) -> NumberHealth | None:
    recent = session.execute(
        select(CallAttempt.outcome, CallAttempt.dialed_at)
        .where(
            CallAttempt.campaign_id == campaign_id,
            CallAttempt.caller_number == number,
            CallAttempt.status.in_(_DIALLED),
            CallAttempt.dialed_at.isnot(None),
        )
        .order_by(CallAttempt.dialed_at.desc())
        .limit(RECENT_DIALS)
    ).all()
    if not recent:
        return None
    since = min(dialed_at for _, dialed_at in recent)
    pool_dials, pool_connected = session.execute(
        select(func.count(), func.coalesce(func.sum(case((CallAttempt.outcome == CONNECTED, 1), else_=0)), 0)).where(
            CallAttempt.campaign_id == campaign_id,
            CallAttempt.caller_number.isnot(None),
            CallAttempt.caller_number != number,
            CallAttempt.status.in_(_DIALLED),
            CallAttempt.dialed_at >= since,
        )
    ).one()
    connected = sum(1 for outcome, _ in recent if outcome == CONNECTED)
    p = lower_one_sided_p(connected, len(recent), int(pool_connected), int(pool_dials))
    return NumberHealth(campaign_id, number, len(recent), connected, int(pool_dials), int(pool_connected), p)


def rest_failing_numbers(session: Session, now: datetime) -> list[NumberHealth]:
    """Check every number in use of every pool; rest (and flag, with the figures) those failing."""
    rows = session.execute(select(CallerNumber).where(CallerNumber.rested == 0)).scalars().all()
    rested = []
    for row in rows:
        health = number_health(session, row.campaign_id, row.number)
        if health is not None and health.failing:
            row.rested, row.rested_reason, row.rested_at = 1, health.reason(), now
            rested.append(health)
    session.flush()
    return rested
