"""The report's metrics, each a statistic over leads (the randomised unit).

Per-call rates are ratio metrics per lead (Σ numerator / Σ denominator over the arm's
leads, delta-method variance), never proportions of calls: one lead dialled five times is
one unit, not five independent trials.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bot.experiments.statistics import Proportion, Ratio, SampleMean, UnitStatistic

Role = Literal["goal", "guardrail", "secondary"]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # what a manager reads
    numerator: str  # a per-lead value in bot.experiments.lead_metrics.SUMS
    denominator: str | None  # None: a proportion of leads
    role: Role
    higher_is_better: bool | None  # None: neither direction is a win (talk time)
    unit: Literal["percent", "seconds", "yuan"]
    explanation: str

    @property
    def in_correction(self) -> bool:
        """Guardrails are watched on their own, as in GrowthBook (not in the corrected family)."""
        return self.role != "guardrail"


METRICS: tuple[Metric, ...] = (
    Metric("connect_rate", "接通率", "connected", "dials", "goal", True, "percent", "接通次数 ÷ 拨打次数"),
    Metric("a_rate", "A 类率", "a", "connected", "goal", True, "percent", "评为 A（有明确意向）的通话 ÷ 接通次数"),
    Metric("ab_rate", "A+B 类率", "ab", "connected", "goal", True, "percent", "评为 A 或 B（有意向）的通话 ÷ 接通次数"),
    Metric(
        "wecom_add_rate", "企微添加率", "added", None, "goal", True, "percent", "添加了企业微信的线索 ÷ 已拨打的线索"
    ),
    Metric(
        "opt_out_rate",
        "拒访率（护栏）",
        "opt_out",
        "connected",
        "guardrail",
        False,
        "percent",
        "明确要求别再打（进入免打扰）的通话 ÷ 接通次数；越低越好",
    ),
    Metric(
        "talk_time",
        "平均通话时长",
        "talk",
        "connected",
        "secondary",
        None,
        "seconds",
        "接通通话的总时长 ÷ 接通次数（秒）",
    ),
)
# Conversions (issue 17, item 4): shown when the campaign has policies attributed to it.
# Converted leads ÷ dialled leads is a proportion of leads; premium per lead is the mean of a
# per-lead value (a ratio over leads whose denominator is 1 per lead, so its delta-method
# variance is the sample variance); premium per dial is a ratio of two per-lead sums
# (premium ÷ dials) with delta-method variance, like the per-call rates.
PER_LEAD = "leads"
CONVERSION_METRICS: tuple[Metric, ...] = (
    Metric("conversion_rate", "成交率", "converted", None, "goal", True, "percent", "成交的线索 ÷ 已拨打的线索"),
    Metric(
        "premium_per_lead",
        "每线索保费",
        "premium",
        PER_LEAD,
        "secondary",
        True,
        "yuan",
        "归因到本任务的保费合计 ÷ 已拨打的线索（元）",
    ),
    Metric(
        "premium_per_dial",
        "每次拨打保费",
        "premium",
        "dials",
        "secondary",
        True,
        "yuan",
        "归因到本任务的保费合计 ÷ 拨打次数（元）",
    ),
)
METRICS_BY_KEY = {metric.key: metric for metric in (*METRICS, *CONVERSION_METRICS)}


def statistic_for(metric: Metric, sums: Mapping[str, float]) -> UnitStatistic:
    leads = int(sums["leads"])
    if metric.denominator is None:
        return Proportion(leads, sums[metric.numerator])
    if metric.denominator == PER_LEAD:
        return SampleMean(leads, sums[metric.numerator], sums[f"{metric.numerator}_sq"])
    num, den = metric.numerator, metric.denominator
    return Ratio(
        leads,
        SampleMean(leads, sums[num], sums[f"{num}_sq"]),
        SampleMean(leads, sums[den], sums[f"{den}_sq"]),
        sums[f"{num}_{den}"],
    )


# What each factor can move. The callee hears the script and the incentive only after picking
# up, so neither can change the connect rate; the welcome is sent only after the WeCom add, so
# it moves none of these. Such a metric is still shown for the factor, but as a check (核对项):
# its arms should not differ, and a clear difference points at the split or the dialling (as a
# sample-ratio mismatch does), never at the factor — it is not a verdict.
CANNOT_MOVE: dict[str, dict[str, str]] = {
    "script": {"connect_rate": "话术在客户接听之后才开始，影响不了接通率"},
    "incentive": {"connect_rate": "利益点在接通之后才说出，影响不了接通率"},
    "welcome": {metric.key: "欢迎语在客户加好友之后才发送，影响不了通话和加好友" for metric in METRICS},
}


def checks_for(factor: str) -> dict[str, str]:
    """The metrics `factor` cannot move (metric key → why), shown for it as checks only."""
    return dict(CANNOT_MOVE.get(factor, {}))
