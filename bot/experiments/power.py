"""Planning: power, minimum detectable effect and the sample an arm still needs.

GrowthBook's frequentist power calculation (shared/src/power/power.ts:
powerEstFrequentist, findMdeFrequentist), relative effects, two-sided, optionally for the
sequential test (the confidence sequence is wider, so the same power needs more units).
`mean` and `variance` are per unit (per lead): for a proportion p they are p and p(1−p);
for a ratio metric the ratio and its delta-method variance.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from bot.experiments.sequential import sequential_halfwidth, sequential_rho

norm = NormalDist()  # the standard normal (stdlib: no scipy call overhead in the searches below)

DEFAULT_POWER = 0.8
# Above this, "how many more leads" is no longer a useful answer.
MAX_SAMPLE = 10**9


def frequentist_variance(
    var_a: float, mean_a: float, n_a: float, var_b: float, mean_b: float, n_b: float, relative: bool = True
) -> float:
    """Variance of the (relative) difference, by the delta method (arms independent)."""
    if relative:
        return var_b / (mean_a**2 * n_b) + var_a * mean_b**2 / (mean_a**4 * n_a)
    return var_b / n_b + var_a / n_a


def _standard_error(
    mean: float, variance: float, effect: float, n_total: float, arms: int, alpha: float, tuning: float | None
) -> float:
    n_arm = n_total / arms
    fixed = frequentist_variance(variance, mean, n_arm, variance, mean * (1 + effect), n_arm)
    if not tuning:
        return math.sqrt(fixed)
    # Sequential: scale the fixed-horizon error by the confidence sequence's width over
    # the normal quantile's, at the pair's sample size.
    n_pair = 2 * n_total / arms
    return math.sqrt(_sequential_variance(fixed, n_pair, alpha, tuning))


def _sequential_variance(variance: float, n: float, alpha: float, tuning: float) -> float:
    """What the fixed-horizon variance `variance` of an estimate over n units becomes under
    the confidence sequence (GrowthBook's sequentialPowerSequentialVariance)."""
    rho = sequential_rho(alpha, tuning)
    z_sequential = sequential_halfwidth(n, n, alpha, rho)  # √n·√(discriminant)
    z_star = norm.inv_cdf(1 - alpha / 2)
    standard_error = math.sqrt(variance / n) * z_sequential / z_star
    return n * standard_error**2


def power_of(effect: float, standard_error: float, alpha: float = 0.05, two_tailed: bool = True) -> float:
    z_star = norm.inv_cdf(1 - alpha / 2) if two_tailed else norm.inv_cdf(1 - alpha)
    standardized = effect / standard_error
    power = 1 - norm.cdf(z_star - standardized)
    if two_tailed:
        power += norm.cdf(-z_star - standardized)
    return power


def power(
    mean: float,
    variance: float,
    effect: float,
    n_total: float,
    arms: int = 2,
    alpha: float = 0.05,
    tuning: float | None = None,
) -> float:
    """Chance that a relative lift of `effect` is found significant with n_total units split
    evenly over `arms` arms (each treatment vs control)."""
    return power_of(effect, _standard_error(mean, variance, effect, n_total, arms, alpha, tuning), alpha)


def minimum_detectable_effect(
    mean: float,
    variance: float,
    n_total: float,
    arms: int = 2,
    alpha: float = 0.05,
    target_power: float = DEFAULT_POWER,
    tuning: float | None = None,
) -> float | None:
    """The smallest positive relative lift found with `target_power`; None if no lift is
    (too few units for this variance)."""
    if target_power <= alpha:
        raise ValueError("power must be greater than alpha")
    n_arm = n_total / arms
    z = norm.inv_cdf(1 - alpha / 2) - norm.inv_cdf(1 - target_power)
    v = _sequential_variance(variance, 2 * n_arm, alpha, tuning) if tuning else variance
    if n_arm <= v * z**2 / mean**2:
        return None
    sigma2 = v / n_arm
    a = 1 - z**2 * sigma2 / mean**2
    b = -2 * mean
    c = mean**2 - z**2 * sigma2
    root = (-b + math.sqrt(b**2 - 4 * a * c)) / (2 * a)
    return (root - mean) / mean


def sample_size_per_arm(
    mean: float,
    variance: float,
    effect: float,
    arms: int = 2,
    alpha: float = 0.05,
    target_power: float = DEFAULT_POWER,
    tuning: float | None = None,
) -> int | None:
    """Units per arm for `target_power` at a relative lift of `effect` (either sign);
    None when it would take more than MAX_SAMPLE."""
    if mean == 0 or variance <= 0 or effect == 0:
        return None

    def enough(n_arm: int) -> bool:
        return power(mean, variance, effect, n_arm * arms, arms, alpha, tuning) >= target_power

    low, high = 2, 4
    while not enough(high):
        low, high = high, high * 2
        if high > MAX_SAMPLE:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high
