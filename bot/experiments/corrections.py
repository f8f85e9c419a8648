"""Multiple-testing corrections over a family of p-values (goal metrics × arms).

Holm–Bonferroni (the default: controls the family-wise error rate, so "any winner at all"
is wrong at most alpha of the time) and Benjamini–Hochberg (controls the false discovery
rate; more power when many metrics are compared). Both as GrowthBook's
adjustPValuesHolmBonferroni / adjustPValuesBenjaminiHochberg compute them: adjusted
p-values, monotone, capped at 1, returned in the input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Correction = Literal["holm", "bh", "none"]
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")


def holm(p_values: Sequence[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(p_values[i] * (m - rank), 1.0))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for rank, i in enumerate(order):  # rank 0 is the largest p-value
        running = min(running, min(p_values[i] * m / (m - rank), 1.0))
        adjusted[i] = running
    return adjusted


def adjust(p_values: Sequence[float], method: Correction = "holm") -> list[float]:
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return list(p_values)
    raise ValueError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")
