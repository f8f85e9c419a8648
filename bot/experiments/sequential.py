"""Always-valid inference: GrowthBook's asymptotic confidence sequences.

A fixed-horizon p-value read every day finds a "winner" in an A/A test far more often
than alpha; a confidence sequence holds at every look (Waudby-Smith et al., "Time-uniform
central limit theory and asymptotic confidence sequences", arXiv 2103.06476v7, eq. 9 for
the interval, eq. 155 for the always-valid p-value, eq. 161 for rho). The tuning
parameter is the sample size (both arms) at which the interval is tightest; GrowthBook's
default is 5000.
"""

from __future__ import annotations

import math

from bot.experiments.statistics import FrequentistResult, UnitStatistic, effect

DEFAULT_TUNING = 5000.0


def sequential_rho(alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    """Mixing variance that makes the sequence tightest at n = `tuning` (eq. 161)."""
    return math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)


def sequential_halfwidth(unit_variance: float, n: float, alpha: float, rho: float) -> float:
    """Half-width of the two-sided asymptotic confidence sequence after n units (eq. 9);
    `unit_variance` is n·se² of the estimate."""
    nr2 = n * rho**2
    return math.sqrt(unit_variance) * math.sqrt(2 * (nr2 + 1) * math.log(math.sqrt(nr2 + 1) / alpha) / (n * rho) ** 2)


def sequential_test(
    control: UnitStatistic,
    treatment: UnitStatistic,
    *,
    alpha: float = 0.05,
    tuning: float = DEFAULT_TUNING,
    relative: bool = True,
) -> FrequentistResult:
    """Two-sided sequential test: the lift, its confidence sequence and the always-valid p."""
    moments = effect(control, treatment, relative=relative)
    if isinstance(moments, str):
        return FrequentistResult.unavailable(moments)
    n = moments.n
    rho = sequential_rho(alpha, tuning)
    unit_variance = moments.standard_error**2 * n
    halfwidth = sequential_halfwidth(unit_variance, n, alpha, rho)
    # The e-value of the mixture martingale; p = min(1, 1/e) (eq. 155, reparameterised).
    st2 = moments.estimate**2 * n / moments.standard_error**2
    tr2p1 = n * rho**2 + 1
    log_e = rho**2 * st2 / (2 * tr2p1) - 0.5 * math.log(tr2p1)
    p_value = 1.0 if log_e <= 0 else math.exp(-log_e)
    return FrequentistResult(
        moments.estimate, (moments.estimate - halfwidth, moments.estimate + halfwidth), p_value, moments.standard_error
    )
