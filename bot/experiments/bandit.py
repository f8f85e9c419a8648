"""Bandit mode: move new leads towards a factor's better arms, once a day (Thompson sampling).

Each arm's decision metric (by default the A+B rate per connected call, a ratio metric per
lead) has a Gaussian posterior N(mean, variance / leads) under a flat prior; the chance
that each arm is best is estimated from 10,000 draws, seeded by campaign and day so the
same data give the same weights. Every arm keeps at least `floor` of the traffic, so a
slow starter can still come back and the comparison stays estimable. Weights move only
once every arm has `min_leads` dialled leads, and at most once per local day; each
reweighting is kept in campaigns.experiments["bandit"]["periods"]. The dial planner reads
the latest weights for leads it has not tried yet; tried leads keep their first arms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.orm import Session

from bot.campaigns.assignment import fnv1a32
from bot.campaigns.experiment_design import factor_arms
from bot.campaigns.models import Campaign
from bot.experiments.lead_metrics import add_sums, lead_cells
from bot.experiments.metrics import METRICS_BY_KEY, statistic_for
from bot.experiments.statistics import UnitStatistic

SHANGHAI = ZoneInfo("Asia/Shanghai")
DRAWS = 10_000


def best_arm_probabilities(stats: Sequence[UnitStatistic], seed: int, draws: int = DRAWS) -> list[float]:
    """P(arm k has the highest metric) under independent Gaussian posteriors."""
    rng = np.random.default_rng(seed)
    means = np.array([s.mean for s in stats])
    sds = np.array([math.sqrt(max(s.variance, 0.0) / s.n) if s.n else 0.0 for s in stats])
    samples = rng.normal(means, sds, size=(draws, len(stats)))
    wins = np.bincount(samples.argmax(axis=1), minlength=len(stats))
    return (wins / draws).tolist()


def with_floor(probabilities: Sequence[float], floor: float) -> list[float]:
    """Weights proportional to the probabilities, none below `floor`, adding up to 1."""
    weights = np.asarray(probabilities, dtype=float)
    if len(weights) * floor >= 1:
        raise ValueError(f"a floor of {floor} leaves nothing to share among {len(weights)} arms")
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(weights), 1 / len(weights))
    floored = np.zeros(len(weights), dtype=bool)
    while True:
        newly = (weights < floor) & ~floored
        if not newly.any():
            return weights.tolist()
        floored |= newly
        free = ~floored
        weights[floored] = floor
        free_total = weights[free].sum()
        remaining = 1 - floor * floored.sum()
        weights[free] = weights[free] / free_total * remaining if free_total > 0 else remaining / free.sum()


def refresh_bandit_weights(session: Session, campaign: Campaign, now: datetime) -> bool:
    """Reweight the campaign's bandit factor if a new local day has begun and every arm
    has enough leads; True if the weights moved."""
    experiments = campaign.experiments or {}
    bandit = experiments.get("bandit")
    if not bandit:
        return False
    periods = list(bandit.get("periods") or [])
    today = now.astimezone(SHANGHAI).date()
    if periods and datetime.fromisoformat(periods[-1]["from"]).astimezone(SHANGHAI).date() >= today:
        return False
    factor = bandit["factor"]
    names = [arm["name"] for arm in factor_arms(campaign, factor)]
    cells = lead_cells(session, campaign.id, factors=(factor,))
    metric = METRICS_BY_KEY[bandit.get("metric", "ab_rate")]
    stats = [statistic_for(metric, add_sums(c for c in cells if c.arms[factor] == name)) for name in names]
    if any(s.n < bandit.get("min_leads", 100) for s in stats) or any(s.variance <= 0 for s in stats):
        return False
    probabilities = best_arm_probabilities(stats, seed=fnv1a32(f"campaign-{campaign.id}-bandit-{today.isoformat()}"))
    weights = with_floor(probabilities, bandit["floor"])
    periods.append(
        {
            "from": now.isoformat(),
            "weights": dict(zip(names, weights)),
            "best_arm_probabilities": dict(zip(names, probabilities)),
            "leads": {name: s.n for name, s in zip(names, stats)},
        }
    )
    # A new document, so the JSON column is seen as changed.
    campaign.experiments = {**experiments, "bandit": {**bandit, "periods": periods}}
    return True
