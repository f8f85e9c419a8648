"""Sample ratio mismatch: do the arms hold the shares of units they were configured for?

Pearson chi-square of the observed counts against the configured weights, as GrowthBook's
checkSrm: arms with weight 0 are left out, fewer than two arms or no units gives p = 1.
An SRM means the split itself went wrong (a bug in assignment, an arm blocked more often
by the dialer…), so no lift read from that experiment can be trusted until it is found.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import chi2

# GrowthBook's default threshold: below it the report warns.
SRM_ALERT_P = 0.001


def srm_p_value(counts: Sequence[float], weights: Sequence[float]) -> float:
    pairs = [(count, weight) for count, weight in zip(counts, weights) if weight and weight > 0]
    if len(pairs) < 2:
        return 1.0
    total_units = sum(count for count, _ in pairs)
    if total_units == 0:
        return 1.0
    total_weight = sum(weight for _, weight in pairs)
    statistic = 0.0
    for count, weight in pairs:
        expected = weight / total_weight * total_units
        statistic += (count - expected) ** 2 / expected
    return float(chi2.sf(statistic, len(pairs) - 1))


def srm_alert(p_value: float) -> bool:
    return p_value < SRM_ALERT_P
