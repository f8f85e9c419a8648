"""Buying personas: whether a simulated lead buys a policy after the call, and for how much.

The simulator's callees end their calls with a grade; some of them later buy. The chance
depends on the grade (an A lead far more often than a C/D lead), on whether they added the
advisor on WeCom, and on the follow-up steps they received (`steps_received`: the follow-up
sequence feature passes its count; 0 without it). The product and its annual premium are
drawn from a per-product distribution. Deterministic: the same seed and lead give the same
policy, whatever else ran.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

# Chance that a lead of this grade buys within the month after the call (no add, no follow-up).
CONVERSION_BY_GRADE = {"A": 0.08, "B": 0.03, "C": 0.003, "D": 0.003}
# An advisor on WeCom doubles it (the customers' playbook: the add is where selling starts) …
ADDED_LIFT = 2.0
# … and each follow-up step received adds 15 % (compounded), up to MAX_STEPS steps.
STEP_LIFT = 1.15
MAX_STEPS = 6
MAX_PROBABILITY = 0.9


@dataclass(frozen=True)
class Product:
    name: str
    weight: float  # how often it is the one bought
    median_premium: float  # yuan a year
    spread: float  # sigma of the log-normal premium


PRODUCTS = (
    Product("百万医疗险", 5, 360.0, 0.35),
    Product("意外险", 3, 150.0, 0.4),
    Product("重疾险", 1.5, 4800.0, 0.5),
    Product("定期寿险", 0.5, 1800.0, 0.45),
)


@dataclass(frozen=True)
class SimulatedPolicy:
    policy_no: str
    product: str
    premium: float  # yuan, to the fen
    converted_at: datetime


def conversion_probability(grade: str | None, *, added: bool = False, steps_received: int = 0) -> float:
    """The chance that a lead with this (best) grade buys; the hook for follow-up sequences is
    `steps_received` (each step received lifts it by STEP_LIFT)."""
    base = CONVERSION_BY_GRADE.get(grade or "D", CONVERSION_BY_GRADE["D"])
    lift = (ADDED_LIFT if added else 1.0) * STEP_LIFT ** min(max(steps_received, 0), MAX_STEPS)
    return min(base * lift, MAX_PROBABILITY)


def simulated_policy(
    seed: int | str,
    lead_id: int,
    grade: str | None,
    called_at: datetime,
    *,
    added: bool = False,
    steps_received: int = 0,
) -> SimulatedPolicy | None:
    """The policy this lead buys after the call at `called_at`, or None. Same inputs, same answer."""
    rng = random.Random(f"{seed}|buyer|{lead_id}")
    if rng.random() >= conversion_probability(grade, added=added, steps_received=steps_received):
        return None
    product = rng.choices(PRODUCTS, weights=[p.weight for p in PRODUCTS])[0]
    premium = round(product.median_premium * math.exp(rng.gauss(0.0, product.spread)), 2)
    after = timedelta(hours=rng.uniform(2, 24 * 14))  # within two weeks of the call
    return SimulatedPolicy(f"SIM-{seed}-{lead_id}", product.name, max(premium, 1.0), called_at + after)
