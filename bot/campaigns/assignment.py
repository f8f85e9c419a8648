"""Deterministic arm assignment, reproducible outside the system.

GrowthBook's hashing v2: bucket = fnv1a32(str(fnv1a32(seed + id))) % 10000 / 10000,
FNV-1a 32-bit over UTF-8. A lead keeps its arm across retries and processes, and any
analyst can recompute it from (seed, lead id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193


def fnv1a32(text: str) -> int:
    value = FNV_OFFSET
    for byte in text.encode("utf-8"):
        value ^= byte
        value = (value * FNV_PRIME) & 0xFFFFFFFF
    return value


def bucket(seed: str, unit_id: str) -> float:
    """A number in [0, 1) fixed by (seed, id): GrowthBook hash version 2."""
    return (fnv1a32(str(fnv1a32(seed + unit_id))) % 10000) / 10000


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float


def assign(seed: str, unit_id: str, arms: Sequence[Arm]) -> str:
    """The arm for this unit; weights need not sum to 1."""
    return choose_arm(bucket(seed, unit_id), arms)


def choose_arm(point: float, arms: Sequence[Arm]) -> str:
    """The arm whose slice of [0, 1) holds `point`, slices in order and sized by weight
    (GrowthBook's chooseVariation over getBucketRanges at full coverage)."""
    if not arms:
        raise ValueError("no arms to assign")
    total = sum(arm.weight for arm in arms)
    if total <= 0:
        raise ValueError("arm weights must add up to more than zero")
    scaled = point * total
    cumulative = 0.0
    for arm in arms:
        cumulative += arm.weight
        if scaled < cumulative:
            return arm.name
    return arms[-1].name
