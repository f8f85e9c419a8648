"""The experiment statistics agree with GrowthBook's own published test values.

Every reference case names its source in the GrowthBook repository
(github.com/growthbook/growthbook, read at commit 8f1db4456915a8e7b7faf23d5632ca7219d2f469):
the file and the test that asserts the value. GrowthBook rounds to 5 decimals (its
DECIMALS); we require agreement to 4.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bot.experiments.corrections import adjust, benjamini_hochberg, holm
from bot.experiments.power import minimum_detectable_effect, power, sample_size_per_arm
from bot.experiments.sequential import sequential_test
from bot.experiments.srm import srm_alert, srm_p_value
from bot.experiments.statistics import (BASELINE_ZERO, ZERO_VARIANCE, Proportion, Ratio, SampleMean,
                                        bayesian_test, frequentist_test)

GB_FREQUENTIST = "packages/stats/tests/frequentist/test_tests.py"
GB_BAYESIAN = "packages/stats/tests/bayesian/test_tests.py"
GB_GBSTATS = "packages/stats/tests/test_gbstats.py"
GB_SRM = "packages/back-end/test/stats.test.ts"
GB_CORRECTIONS = "packages/shared/test/experiments.test.ts"
GB_POWER = "packages/shared/test/power.test.ts"


def close(actual: float, expected: float, places: int = 4) -> bool:
    return round(actual - expected, places) == 0


def assert_close(actual, expected, places: int = 4) -> None:
    if isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_close(a, e, places)
        return
    assert abs(actual - expected) < 0.5 * 10 ** -places, f"{actual} != {expected} to {places} places"


# ---------------------------------------------------------------- frequentist (Welch t)


def test_issue_example_two_proportions() -> None:
    """GB_FREQUENTIST TestTwoSidedTTest.test_two_sided_ttest_binom: 14/28 vs 16/30."""
    result = frequentist_test(Proportion(n=28, conversions=14), Proportion(n=30, conversions=16))
    assert_close(result.lift, 0.06667)
    assert_close(result.ci, (-0.47767, 0.61101))
    assert_close(result.p_value, 0.80707)
    assert_close(result.standard_error, 0.2717)
    assert result.error is None


def test_sample_means_relative_and_absolute() -> None:
    """GB_FREQUENTIST TestTwoSidedTTest.test_two_sided_ttest and .test_two_sided_ttest_absolute."""
    control = SampleMean(n=3407, total=1396.87, sum_squares=52377.9767)
    treatment = SampleMean(n=3461, total=2422.7, sum_squares=134698.29)
    relative = frequentist_test(control, treatment)
    assert_close(relative.lift, 0.70732)
    assert_close(relative.ci, (-0.03526, 1.44989))
    assert_close(relative.p_value, 0.06191)
    assert_close(relative.standard_error, 0.37879)
    absolute = frequentist_test(control, treatment, relative=False)
    assert_close(absolute.lift, 0.29)
    assert_close(absolute.ci, (0.04538, 0.53462))
    assert_close(absolute.p_value, 0.02016)


def test_too_few_units_gives_growthbooks_uninformative_result() -> None:
    """GB_FREQUENTIST TestTwoSidedTTest.test_two_sided_ttest_missing_variance: n=2 whose sums
    give a negative variance → the default output (lift 0, p 1) with the zero-variance message."""
    control = SampleMean(n=2, total=1396.87, sum_squares=52377.9767)
    treatment = SampleMean(n=3461, total=2422.7, sum_squares=134698.29)
    result = frequentist_test(control, treatment)
    assert (result.lift, result.ci, result.p_value, result.error) == (0.0, (0.0, 0.0), 1.0, ZERO_VARIANCE)
    assert frequentist_test(Proportion(50, 0), Proportion(50, 3)).error == ZERO_VARIANCE  # 0/50: no variance
    baseline_zero = frequentist_test(SampleMean(3, 0.0, 2.0), SampleMean(3, 1.0, 1.0))
    assert baseline_zero.error == BASELINE_ZERO


def test_ratio_metric_per_unit_delta_method() -> None:
    """GB_GBSTATS TestAnalyzeMetricDfFrequentist.test_get_metric_dfs_frequentist_ratio and
    TestAnalyzeMetricDf(Bayesian).test_get_metric_dfs_bayesian_ratio (RATIO_STATISTICS_DF:
    count numerator and denominator per user)."""
    control = Ratio(100, SampleMean(100, 270, 848.79), SampleMean(100, 510, 810), sum_products=-900)
    treatment = Ratio(120, SampleMean(120, 300, 869), SampleMean(120, 500, 800), sum_products=-905)
    assert_close(control.mean, 0.529411765, 8)
    assert_close(treatment.mean, 0.6, 8)
    frequentist = frequentist_test(control, treatment)
    assert_close(frequentist.lift, 0.133333333, 8)
    assert_close(frequentist.p_value, 0.610663339, 8)
    bayesian = bayesian_test(control, treatment)
    assert_close(bayesian.chance_to_win, 0.694926359, 8)
    assert_close(bayesian.risk_treatment, 0.050934045, 8)


def test_ratio_of_per_lead_counts_is_not_a_proportion_of_calls() -> None:
    """Why calls are not treated as independent trials: when some leads never pick up and
    are dialled again and again, connected/dials varies far more between samples of leads
    than n_calls Bernoulli trials would. The delta-method standard error matches the spread
    seen over 400 repeated samples; the per-call binomial one understates it."""
    rng = np.random.default_rng(11)
    ratios, delta_se, naive_se = [], [], []
    for _ in range(400):
        reachable = rng.random(500) < 0.4
        dials = rng.integers(1, 5, 500)
        connected = np.where(reachable, rng.binomial(dials, 0.7), 0)
        ratio = Ratio(500, SampleMean(500, connected.sum(), (connected ** 2).sum()),
                      SampleMean(500, dials.sum(), (dials ** 2).sum()), (connected * dials).sum())
        calls = Proportion(int(dials.sum()), int(connected.sum()))
        ratios.append(ratio.mean)
        delta_se.append(math.sqrt(ratio.variance / ratio.n))
        naive_se.append(math.sqrt(calls.variance / calls.n))
    spread = float(np.std(ratios, ddof=1))
    assert abs(float(np.mean(delta_se)) / spread - 1) < 0.1
    assert float(np.mean(naive_se)) < 0.75 * spread


# ---------------------------------------------------------------- sequential


def test_sequential_proportions_default_tuning() -> None:
    """GB_FREQUENTIST TestSequentialTTest.test_sequential_test_runs_prop (tuning 5000)."""
    result = sequential_test(Proportion(3000, 1396), Proportion(3461, 2422))
    assert_close(result.lift, 0.50386)
    assert_close(result.ci, (0.40098, 0.60675))
    assert_close(result.p_value, 0.0)
    assert_close(result.standard_error, 0.03386)


def test_sequential_sample_means_tuning_1000() -> None:
    """GB_FREQUENTIST TestSequentialTTest.test_sequential_test_runs (tuning 1000)."""
    control = SampleMean(3000, 1396.87, 52377.9767)
    treatment = SampleMean(3461, 2422.7, 134698.29)
    result = sequential_test(control, treatment, tuning=1000)
    assert_close(result.lift, 0.50336)
    assert_close(result.ci, (-0.55844, 1.56516))
    assert result.p_value == 1.0


def test_sequential_interval_is_tightest_near_the_tuning_sample() -> None:
    """GB_FREQUENTIST TestSequentialTTest.test_sequential_test_tuning_as_expected."""
    control = SampleMean(3000, 1396.87, 52377.9767)
    treatment = SampleMean(3461, 2422.7, 134698.29)
    width = {tuning: (lambda ci: ci[1] - ci[0])(sequential_test(control, treatment, tuning=tuning).ci)
             for tuning in (10, 6461, 10000)}
    assert width[10] > width[10000] > width[6461]
    fixed = frequentist_test(control, treatment).ci
    assert width[6461] > fixed[1] - fixed[0]  # always valid costs width


# ---------------------------------------------------------------- Bayesian


def test_bayesian_proportions_flat_prior() -> None:
    """GB_BAYESIAN TestBinom.test_bayesian_binomial_ab_test: 49/100 vs 51/100."""
    result = bayesian_test(Proportion(100, 49), Proportion(100, 51))
    assert_close(result.lift, 0.04082)
    assert_close(result.ci, (-0.24779, 0.32943))
    assert_close(result.standard_error, 0.14725)
    assert_close(result.chance_to_win, 0.60918)
    assert_close((result.risk_control, result.risk_treatment), (0.0814, 0.04058))


def test_bayesian_sample_means_flat_prior() -> None:
    """GB_BAYESIAN TestNorm.test_bayesian_gaussian_ab_test."""
    result = bayesian_test(SampleMean(10, 100, 1002.25), SampleMean(10, 105, 1111.5))
    assert_close(result.lift, 0.05)
    assert_close(result.ci, (-0.02, 0.12))
    assert_close(result.chance_to_win, 0.91923)
    assert_close((result.risk_control, result.risk_treatment), (0.05131, 0.00131))


def test_bayesian_missing_data_and_inverse_metrics() -> None:
    """GB_BAYESIAN TestBinom.test_missing_data (no units: chance to win 0.5, lift 0); an
    inverse (lower-is-better) metric swaps the chance and the risks."""
    empty = bayesian_test(Proportion(0, 0), Proportion(0, 0))
    assert (empty.chance_to_win, empty.lift) == (0.5, 0.0)
    normal = bayesian_test(Proportion(100, 49), Proportion(100, 51))
    inverse = bayesian_test(Proportion(100, 49), Proportion(100, 51), inverse=True)
    assert inverse.chance_to_win == pytest.approx(1 - normal.chance_to_win)
    assert (inverse.risk_control, inverse.risk_treatment) == pytest.approx((normal.risk_treatment,
                                                                            normal.risk_control))


# ---------------------------------------------------------------- SRM


@pytest.mark.parametrize("counts, weights, expected", [
    ([1000, 1200], [0.5, 0.5], 0.000020079),   # simple 2-way test
    ([135, 115], [0.5, 0.5], 0.205903211),     # another 2-way test
    ([310, 98], [0.75, 0.25], 0.647434186),    # uneven weights
    ([1000], [0.5, 0.5], 1),                   # not enough valid variations
    ([1000, 900, 800], [1, 0, 0], 1),          # not enough valid weights
    ([1000, 1200, 900], [0.5, 0.5, 0], 0.000020079),  # skip empty weights
    ([0, 0, 0], [0.34, 0.33, 0.33], 1),        # skip if all users are 0
    ([0, 10, 10], [0.34, 0.33, 0.33], 0.005790624),   # use empty users in the test
    ([500, 500, 600], [0.34, 0.33, 0.33], 0.000592638),  # more than 2 variations
    ([500, 500], [0.5, 0.5], 1),               # completely equal
])
def test_srm_matches_growthbook(counts, weights, expected) -> None:
    """GB_SRM "calculates SRM correctly" (GrowthBook's checkSrm, 9 decimals there)."""
    assert_close(srm_p_value(counts, weights), expected, 8)


def test_srm_alert_threshold() -> None:
    assert srm_alert(srm_p_value([1000, 1200], [1, 1]))  # p = 0.00002
    assert not srm_alert(srm_p_value([135, 115], [1, 1]))


# ---------------------------------------------------------------- Holm and Benjamini–Hochberg


def test_holm_matches_growthbook() -> None:
    """GB_CORRECTIONS "pvalue correction method" / "does HB procedure correctly": GrowthBook
    returns [0.03, 0.05, 0.12, 0.12, 1, 1] for input indices [3, 0, 2, 1, 4, 5]."""
    adjusted = holm([0.01, 0.04, 0.03, 0.005, 0.55, 0.6])
    assert_close([adjusted[i] for i in (3, 0, 2, 1, 4, 5)], [0.03, 0.05, 0.12, 0.12, 1, 1], 8)


def test_benjamini_hochberg_matches_growthbook() -> None:
    """GB_CORRECTIONS "does BH procedure correctly": [0.964, 0.964, 0.7532, 0.2415, 0.2415,
    0.0245, 0.0245] for input indices [3, 0, 4, 1, 6, 2, 5]."""
    adjusted = benjamini_hochberg([0.898, 0.138, 0.007, 0.964, 0.538, 0.006, 0.138])
    assert_close([adjusted[i] for i in (3, 0, 4, 1, 6, 2, 5)],
                 [0.964, 0.964, 0.7532, 0.2415, 0.2415, 0.0245, 0.0245], 8)


def test_corrections_on_two_metrics() -> None:
    """GB_CORRECTIONS "pvals and CIs adjusted in place": 0.025 and 0.03 → Holm 0.05 and 0.05,
    BH 0.03 and 0.03."""
    assert adjust([0.025, 0.03], "holm") == pytest.approx([0.05, 0.05])
    assert adjust([0.025, 0.03], "bh") == pytest.approx([0.03, 0.03])
    assert adjust([0.025, 0.03], "none") == [0.025, 0.03]
    with pytest.raises(ValueError):
        adjust([0.1], "bonferroni")  # type: ignore[arg-type]


# ---------------------------------------------------------------- power and MDE

MEAN_METRIC = dict(mean=10, variance=3909.9997749994377)


def test_power_and_mde_fixed_horizon() -> None:
    """GB_POWER "calculates power correctly" (0.52144) and "calculates two-tailed mde
    correctly" (0.07027): mean 10, 400,000 users over 3 variations, 5% lift."""
    assert_close(power(effect=0.05, n_total=400000, arms=3, **MEAN_METRIC), 0.52144)
    assert_close(minimum_detectable_effect(n_total=400000, arms=3, **MEAN_METRIC), 0.07027)


def test_power_and_mde_sequential() -> None:
    """GB_POWER "calculates sequential power correctly" (0.20596) and "calculates sequential
    mde correctly" (0.12821), tuning 5000."""
    assert_close(power(effect=0.05, n_total=400000, arms=3, tuning=5000, **MEAN_METRIC), 0.20596)
    assert_close(minimum_detectable_effect(n_total=400000, arms=3, tuning=5000, **MEAN_METRIC), 0.12821)


@pytest.mark.parametrize("week, ctr_power, ctr_mde, revenue_power, revenue_mde", [
    (1, 0.073, 0.36767, 0.17053, 1.26769),
    (2, 0.0965, 0.24505, 0.29389, 0.71941),
    (9, 0.26666, 0.10796, 0.85213, 0.27647),
])
def test_power_weeks_table(week, ctr_power, ctr_mde, revenue_power, revenue_mde) -> None:
    """GB_POWER "checks power": powerSolution / mdeSolution for a 10% conversion rate (5% lift)
    and a mean of 0.1 with variance 0.5 (30% lift), 4,500 users a week over 3 variations."""
    n = 4500 * week
    assert_close(power(0.1, 0.1 * 0.9, 0.05, n, 3), ctr_power)
    assert_close(minimum_detectable_effect(0.1, 0.1 * 0.9, n, 3), ctr_mde)
    assert_close(power(0.1, 0.5, 0.3, n, 3), revenue_power)
    assert_close(minimum_detectable_effect(0.1, 0.5, n, 3), revenue_mde)


def test_sample_size_reaches_the_power_and_no_less_does() -> None:
    n = sample_size_per_arm(0.3, 0.21, 0.1)
    assert power(0.3, 0.21, 0.1, 2 * n) >= 0.8 > power(0.3, 0.21, 0.1, 2 * (n - 1))
    sequential = sample_size_per_arm(0.3, 0.21, 0.1, tuning=5000)
    assert sequential > n  # always-valid intervals need more leads
    assert sample_size_per_arm(0.3, 0.21, 0.0) is None
    assert minimum_detectable_effect(0.3, 0.21, n_total=10) is None  # too few for any lift
