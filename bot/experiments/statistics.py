"""Two-arm comparisons computed the way GrowthBook's stats engine (gbstats) computes them.

Our own implementation of GrowthBook's published formulas (gbstats is not a dependency:
it needs pydantic 2, which Rasa's pins forbid), checked against gbstats' test values in
tests/test_experiment_statistics.py.

- The unit is the randomised unit (for us: the lead). A unit's data is summarised by
  sufficient statistics: a proportion (n, conversions), a sample mean (n, sum, sum of
  squares) or a ratio of two per-unit sums (numerator and denominator sample means plus
  the sum of their products), so per-call rates such as connected per dial are ratio
  metrics with delta-method variance, not independent trials.
- Relative lift (treatment − control) / |control| with delta-method variance; absolute
  difference with var_a/n_a + var_b/n_b.
- Frequentist: Welch t with Welch–Satterthwaite degrees of freedom (two-sided).
- Bayesian: Gaussian on the lift with a flat (improper) prior: chance to win, risk
  (expected loss of choosing each arm) and the credible interval.
The sequential test is in bot.experiments.sequential.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Union

from scipy.stats import t

STANDARD_NORMAL = NormalDist()

# GrowthBook's own messages for the cases it cannot analyse (gbstats/messages.py).
ZERO_VARIANCE = "ZERO_NEGATIVE_VARIANCE"
BASELINE_ZERO = "BASELINE_VARIATION_ZERO"


@dataclass(frozen=True)
class Proportion:
    """n units, `conversions` of which converted (each unit 0 or 1)."""

    n: int
    conversions: float

    @property
    def mean(self) -> float:
        return self.conversions / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        # GrowthBook: p(1 − p), the population variance of a 0/1 unit.
        return self.mean * (1 - self.mean)


@dataclass(frozen=True)
class SampleMean:
    """A per-unit value: n units, the sum of their values and of their squares."""

    n: int
    total: float
    sum_squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.sum_squares - self.total**2 / self.n) / (self.n - 1)


@dataclass(frozen=True)
class Ratio:
    """Sum of a numerator over sum of a denominator, both measured per unit (e.g. connected
    calls / dials per lead). `sum_products` is Σ numerator·denominator over the units."""

    n: int
    numerator: SampleMean
    denominator: SampleMean
    sum_products: float

    @property
    def mean(self) -> float:
        return self.numerator.total / self.denominator.total if self.denominator.total else 0.0

    @property
    def covariance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.sum_products - self.numerator.total * self.denominator.total / self.n) / (self.n - 1)

    @property
    def variance(self) -> float:
        """Per-unit variance of the ratio by the delta method (what n units divide)."""
        if self.denominator.mean == 0 or self.n <= 1:
            return 0.0
        return variance_of_ratio(
            self.numerator.mean,
            self.numerator.variance,
            self.denominator.mean,
            self.denominator.variance,
            self.covariance,
        )


UnitStatistic = Union[Proportion, SampleMean, Ratio]


def variance_of_ratio(mean_m: float, var_m: float, mean_d: float, var_d: float, cov_md: float) -> float:
    """Var(M / D) by the delta method."""
    if mean_d == 0:
        return 0.0
    return var_m / mean_d**2 + var_d * mean_m**2 / mean_d**4 - 2 * cov_md * mean_m / mean_d**3


@dataclass(frozen=True)
class Effect:
    """Point estimate and standard error of treatment vs control."""

    estimate: float
    standard_error: float
    dof: float  # Welch–Satterthwaite
    n: int  # units in both arms
    relative: bool


def effect(control: UnitStatistic, treatment: UnitStatistic, *, relative: bool = True) -> Effect | str:
    """The effect's moments, or the reason there is none (GrowthBook's message code)."""
    var_a, var_b = control.variance, treatment.variance
    if var_a <= 0 or var_b <= 0:
        return ZERO_VARIANCE
    mean_a, mean_b = control.mean, treatment.mean
    if mean_a == 0:
        return BASELINE_ZERO
    if relative:
        estimate = (mean_b - mean_a) / abs(mean_a)
        # delta method for mean_b / mean_a, the arms independent
        variance = variance_of_ratio(mean_b, var_b / treatment.n, mean_a, var_a / control.n, 0.0)
    else:
        estimate = mean_b - mean_a
        variance = var_b / treatment.n + var_a / control.n
    if variance <= 0:
        return ZERO_VARIANCE
    return Effect(estimate, math.sqrt(variance), welch_dof(control, treatment), control.n + treatment.n, relative)


def welch_dof(control: UnitStatistic, treatment: UnitStatistic) -> float:
    """Welch–Satterthwaite degrees of freedom from the per-unit variances."""
    va, vb, na, nb = control.variance, treatment.variance, control.n, treatment.n
    return (vb / nb + va / na) ** 2 / (vb**2 / (nb**2 * (nb - 1)) + va**2 / (na**2 * (na - 1)))


@dataclass(frozen=True)
class FrequentistResult:
    lift: float
    ci: tuple[float, float]
    p_value: float
    standard_error: float
    error: str | None = None

    @classmethod
    def unavailable(cls, reason: str) -> FrequentistResult:
        """GrowthBook's uninformative output: no lift, p = 1."""
        return cls(0.0, (0.0, 0.0), 1.0, 0.0, reason)


def frequentist_test(
    control: UnitStatistic, treatment: UnitStatistic, *, alpha: float = 0.05, relative: bool = True
) -> FrequentistResult:
    """Two-sided Welch t-test on the (relative) difference."""
    moments = effect(control, treatment, relative=relative)
    if isinstance(moments, str):
        return FrequentistResult.unavailable(moments)
    t_stat = moments.estimate / moments.standard_error
    p_value = 2 * (1 - float(t.cdf(abs(t_stat), moments.dof)))
    halfwidth = float(t.ppf(1 - alpha / 2, moments.dof)) * moments.standard_error
    return FrequentistResult(
        moments.estimate, (moments.estimate - halfwidth, moments.estimate + halfwidth), p_value, moments.standard_error
    )


@dataclass(frozen=True)
class BayesianResult:
    lift: float
    ci: tuple[float, float]  # credible interval
    chance_to_win: float
    risk_control: float  # expected loss (in lift) of keeping control if treatment is better
    risk_treatment: float  # expected loss of choosing treatment if it is worse
    standard_error: float
    error: str | None = None

    @classmethod
    def unavailable(cls, reason: str) -> BayesianResult:
        return cls(0.0, (0.0, 0.0), 0.5, 0.0, 0.0, 0.0, reason)


def bayesian_test(
    control: UnitStatistic,
    treatment: UnitStatistic,
    *,
    alpha: float = 0.05,
    relative: bool = True,
    inverse: bool = False,
) -> BayesianResult:
    """Gaussian posterior on the lift with a flat prior: N(estimate, se²).

    `inverse`: lower is better (a guardrail such as the opt-out rate): chance to win is
    then P(lift < 0) and the two risks swap."""
    moments = effect(control, treatment, relative=relative)
    if isinstance(moments, str):
        return BayesianResult.unavailable(moments)
    mu, sigma = moments.estimate, moments.standard_error
    posterior = NormalDist(mu, sigma)
    chance = 1 - posterior.cdf(0.0)
    if inverse:
        chance = 1 - chance
    lo, hi = posterior.inv_cdf(alpha / 2), posterior.inv_cdf(1 - alpha / 2)
    risk_control, risk_treatment = risks(mu, sigma)
    if inverse:
        risk_control, risk_treatment = risk_treatment, risk_control
    return BayesianResult(mu, (lo, hi), chance, risk_control, risk_treatment, sigma)


def risks(mu: float, sigma: float) -> tuple[float, float]:
    """(risk of control, risk of treatment) for a lift ~ N(mu, sigma²): the expected lift
    given up by the choice, P(other is better)·E[|lift| on that side]. GrowthBook takes the
    means of the truncated normals; in closed form, with z = mu/sigma:
    P(X > 0)·E[X | X > 0] = mu·Φ(z) + sigma·φ(z) and −P(X < 0)·E[X | X < 0] = sigma·φ(z) − mu·Φ(−z)."""
    z = mu / sigma
    if abs(z) > 37:  # one tail is exactly 0 in float64
        return max(mu, 0.0), max(-mu, 0.0)
    density = sigma * STANDARD_NORMAL.pdf(z)
    return mu * STANDARD_NORMAL.cdf(z) + density, density - mu * STANDARD_NORMAL.cdf(-z)


def rate_interval(stat: UnitStatistic, alpha: float = 0.05) -> tuple[float, float]:
    """Normal interval for one arm's rate or mean (what the report draws per arm)."""
    if stat.n <= 0:
        return (0.0, 0.0)
    halfwidth = STANDARD_NORMAL.inv_cdf(1 - alpha / 2) * math.sqrt(max(stat.variance, 0.0) / stat.n)
    return (stat.mean - halfwidth, stat.mean + halfwidth)
