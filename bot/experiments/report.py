"""The manager's comparison report: per factor and arm (and per audience pack), every
metric with its interval, the lift against the control arm, the corrected p-value, the
chance to win and a decision hint in Chinese, plus the sample-ratio check.

`build_report(session, campaign, …)` returns one plain, JSON-serialisable dict; the CLI
(`waihu report`), the HTML report and the web console all render that dict. Its shape:

    {"campaign": {id, name, status, started_at}, "generated_at", "filters": {factor,
     audience, since, until}, "settings": {method, method_label, alpha, correction,
     tuning}, "metrics": [{key, label, role, higher_is_better, unit, explanation}],
     "wecom_available": bool, "holdout": {share, leads} | None,
     "overview": {leads, dials, handoffs, metrics: {key: {value, ci, numerator, denominator}}},
     "factors": [{factor, label, seed, control, bandit, arms_configured,
                  checks: {metric key: why this factor cannot move it},
                  "overall": TABLE, "by_audience": [{audience_id, audience, **TABLE}],
                  "daily": [{day, leads: {arm: n}, metrics: {key: {arm: value}},
                             lift: {key: {arm: {lift, ci}}}}]}],
     "summary": [Chinese sentences]}
    TABLE = {"srm": {p_value, alert, checked, message},
             "pace": {days, through, leads_per_day: {arm: new leads a day}},
             "arms": [{arm, weight, control,
             leads, dials, handoffs, metrics: {key: {value, ci, numerator, denominator}},
             vs_control: {key: {lift, ci, p_value, p_adjusted, chance_to_win, risk,
                                risk_control, error, check, decision, decision_label, reason,
                                hint, leads_needed_per_arm, days_needed, worth_waiting}}}]}

Every verdict carries its `reason` (one Chinese sentence: why 胜出 / 落后 / 尚无定论 / 核对项)
and a `hint` (the verdict, the reason and what to do next). A metric the factor cannot move
(bot.experiments.metrics.CANNOT_MOVE: a script cannot change who picks up) is a check
(decision "check", or "check_alert" when its arms clearly differ), outside the corrected
family and never a verdict. "How long still": the leads each arm still needs, turned into
days at the pace of the last PACE_DAYS days with dials (new leads a day per arm); beyond
HORIZON_DAYS the difference is too small to be worth the wait.

The unit of analysis is the lead: a lead counts from its first dial in the window, and
every rate is a ratio (or proportion) over leads (bot.experiments.metrics). The default
method is the sequential test, because managers read the report every day and a
fixed-horizon p-value read daily finds false winners; `method="frequentist"` gives the
fixed-horizon Welch test and `"bayesian"` decides on the chance to win.

`handoffs` counts the calls whose callee asked for a human: {"handed_off": n (an advisor
took the call), "handoff_failed": n (nobody was free: advisor callback booked)} — plain
counts of calls, next to the metrics rather than among them. `corrected` counts the calls
whose grade a person corrected (人工更正): the A and A+B rates use the latest correction
instead of the robot's grade.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.audiences.models import AudiencePack
from bot.campaigns.experiment_design import FACTOR_LABELS, FACTORS, HOLDOUT, factor_arms, seed_for
from bot.campaigns.models import Campaign, ExperimentHoldout
from bot.core.errors import UserError
from bot.experiments import lead_metrics
from bot.experiments.caller_number_report import caller_number_checks, caller_number_lines
from bot.experiments.conversion_report import conversion_lines, conversion_overview, funnel
from bot.experiments.corrections import CORRECTIONS, Correction, adjust
from bot.experiments.lead_metrics import CORRECTED, COUNTS, Cell, add_sums, lead_cells
from bot.experiments.metrics import CONVERSION_METRICS, METRICS, Metric, checks_for, statistic_for
from bot.experiments.power import sample_size_per_arm
from bot.experiments.sequential import DEFAULT_TUNING, sequential_test
from bot.experiments.sop_report import sequence_arms, sequence_lines
from bot.experiments.speed_to_lead import speed_to_lead
from bot.experiments.srm import SRM_ALERT_P, srm_alert, srm_p_value
from bot.experiments.statistics import Proportion, Ratio, UnitStatistic, bayesian_test, frequentist_test, rate_interval

SHANGHAI = ZoneInfo("Asia/Shanghai")
METHODS = ("sequential", "frequentist", "bayesian")
METHOD_LABELS = {
    "sequential": "序贯检验（可每天查看结果，反复查看不会增加误判）",
    "frequentist": "固定样本检验（Welch t 检验；只适合在预定样本量时看一次）",
    "bayesian": "贝叶斯（胜出概率 ≥ 95% 判为胜出）",
}
CORRECTION_LABELS = {"holm": "Holm 多重比较校正", "bh": "Benjamini–Hochberg 多重比较校正", "none": "不做多重比较校正"}
DECISION_LABELS = {
    "win": "胜出",
    "lose": "落后",
    "inconclusive": "尚无定论",
    "different": "有差异",
    "check": "核对项",
    "check_alert": "核对项异常",
}
BAYES_DECISIVE = 0.95
# GrowthBook's default minimum sample size (DEFAULT_MIN_SAMPLE_SIZE): no decision until the
# larger arm's metric total (calls connected, A calls, opt-outs…) reaches it and neither arm
# is at 0. Below it the normal approximation is too rough for rare events: on A/A data the
# opt-out guardrail (a few dozen events) came out "significant" 9% of the time at alpha 5%.
MIN_SAMPLE_SIZE = 150
TINY_LIFT = 0.01  # below this relative difference "how many more leads" stops being useful
TARGET_POWER = 0.8
# The pace "how many more days" is read at: new leads a day per arm over the last days with dials.
PACE_DAYS = 7
# A wait longer than this is not worth it: the difference is too small to matter.
HORIZON_DAYS = 90
# A check (a metric the factor cannot move) is flagged only at SRM's strictness: at alpha 5%
# one check in twenty would cry wolf on a correct split.
CHECK_ALERT_P = SRM_ALERT_P
UNRECORDED = "（未记录）"
ERROR_LABELS = {
    "ZERO_NEGATIVE_VARIANCE": "数据不足（某组该指标全为同一个值，例如还没有接通的通话）",
    "BASELINE_VARIATION_ZERO": "对照组该指标为 0，无法计算相对提升",
}


@dataclass(frozen=True)
class ReportSettings:
    method: str = "sequential"
    alpha: float = 0.05
    correction: str = "holm"
    tuning: float = DEFAULT_TUNING

    def check(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"--method {self.method!r}: one of {', '.join(METHODS)}")
        if not 0 < self.alpha < 0.5:
            raise UserError(f"--alpha {self.alpha!r}: a significance level such as 0.05")
        if self.correction not in CORRECTIONS:
            raise UserError(f"--correction {self.correction!r}: one of {', '.join(CORRECTIONS)}")


def build_report(
    session: Session,
    campaign: Campaign,
    *,
    factor: str | None = None,
    audience: str | None = None,
    since: date | datetime | str | None = None,
    until: date | datetime | str | None = None,
    method: str = "sequential",
    alpha: float = 0.05,
    correction: str = "holm",
) -> dict:
    """The comparison report of one campaign as a plain dict (see the module docstring).

    factor: only this factor (script, time_slot, incentive, welcome); audience: only the
    leads of this audience pack (by name); since/until: attempts dialled from `since` and
    before `until` — a date is a day in Asia/Shanghai (`until` a date: to the end of that
    day), a datetime without a time zone is Shanghai time, ISO text is read as either."""
    settings = ReportSettings(method, alpha, correction)
    settings.check()
    since = report_moment(since, "since", end_of_day=False)
    until = report_moment(until, "until", end_of_day=True)
    if since is not None and until is not None and since >= until:
        raise UserError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    factors = _factors_to_report(campaign, factor)
    audience_ids = _audience_filter(session, audience)
    cells = lead_cells(session, campaign.id, since=since, until=until, audience_ids=audience_ids)
    audiences = _audience_names(session, {c.audience_id for c in cells if c.audience_id is not None})
    wecom = lead_metrics.wecom_invites_table() is not None
    metrics = [m for m in METRICS if wecom or m.key != "wecom_add_rate"]
    # Conversions (issue 17, item 4): their metrics once the campaign has a matched policy.
    conversions = conversion_overview(session, campaign.id)
    if conversions["available"]:
        metrics += CONVERSION_METRICS
    experiments = campaign.experiments or {}
    bandit = experiments.get("bandit")
    window = _pace_window(cells)
    report_factors = []
    for name in factors:
        configured = factor_arms(campaign, name)
        report_factors.append(
            _factor_report(
                cells,
                name,
                configured,
                metrics,
                settings,
                audiences,
                bandit if bandit and bandit.get("factor") == name else None,
                seed_for(campaign.id, experiments, name),
                window,
            )
        )
    overview_sums = add_sums(cells)
    report: dict[str, Any] = {
        "campaign": {
            "id": campaign.id,
            "name": campaign.name,
            "status": campaign.status,
            "started_at": _iso(campaign.started_at),
        },
        "generated_at": _iso(datetime.now(timezone.utc)),
        "filters": {"factor": factor, "audience": audience, "since": _iso(since), "until": _iso(until)},
        "settings": {
            "method": method,
            "method_label": METHOD_LABELS[method],
            "alpha": alpha,
            "correction": correction,
            "correction_label": CORRECTION_LABELS[correction],
            "tuning": settings.tuning if method == "sequential" else None,
            "srm_alert_below": SRM_ALERT_P,
        },
        "metrics": [
            {
                "key": m.key,
                "label": m.label,
                "role": m.role,
                "higher_is_better": m.higher_is_better,
                "unit": m.unit,
                "explanation": m.explanation,
            }
            for m in metrics
        ],
        "wecom_available": wecom,
        "holdout": _holdout(session, campaign),
        "overview": {
            "leads": int(overview_sums["leads"]),
            "dials": int(overview_sums["dials"]),
            "handoffs": _handoffs(overview_sums),
            "corrected": int(overview_sums[CORRECTED]),
            "metrics": _arm_metrics(overview_sums, metrics, alpha),
            "funnel": funnel(overview_sums),
        },
        "conversions": conversions,
        "factors": report_factors,
        # Speed to lead (issue 17): 留资 → first dial, per lane; one aggregate query.
        "speed_to_lead": [row.as_json() for row in speed_to_lead(session, campaign.id)],
        # WeCom follow-up sequences (issue 17): the sequence as a factor, per arm; three aggregates.
        "sequences": [arm.as_json() for arm in sequence_arms(session, campaign.id)],
        # Connect rate per caller number and local vs non-local (checks, not arms); one aggregate query.
        "caller_numbers": caller_number_checks(session, campaign.id, since, until),
    }
    report["summary"] = _summary(report)
    return _json_safe(report)


# ---------------------------------------------------------------- inputs


def report_moment(value: date | datetime | str | None, option: str, *, end_of_day: bool) -> datetime | None:
    """A filter bound as an aware datetime (see build_report)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise UserError(
                f"--{option} {value!r}: a date (2026-11-24) or a time (2026-11-24T09:30, 2026-11-24T09:30+08:00)"
            ) from None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=SHANGHAI)
    start = datetime(value.year, value.month, value.day, tzinfo=SHANGHAI)
    return start + timedelta(days=1) if end_of_day else start


def _factors_to_report(campaign: Campaign, factor: str | None) -> list[str]:
    tested = [f for f in FACTORS if len(factor_arms(campaign, f)) >= 2]
    if factor is None:
        return tested
    if factor not in FACTORS:
        raise UserError(f"--factor {factor!r}: one of {', '.join(FACTORS)}")
    if factor not in tested:
        raise UserError(
            f"campaign '{campaign.name}' does not test {factor} (it has fewer than two arms); "
            f"it tests: {', '.join(tested) or 'nothing'}"
        )
    return [factor]


def _audience_filter(session: Session, audience: str | None) -> list[int] | None:
    if audience is None:
        return None
    found = session.execute(select(AudiencePack.id).where(AudiencePack.name == audience)).scalar_one_or_none()
    if found is None:
        known = session.execute(select(AudiencePack.name).order_by(AudiencePack.name)).scalars().all()
        raise UserError(f"--audience {audience!r}: no such audience pack; known: {', '.join(known) or 'none'}")
    return [found]


def _audience_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(AudiencePack.id, AudiencePack.name).where(AudiencePack.id.in_(ids))).all())


def _holdout(session: Session, campaign: Campaign) -> dict | None:
    share = float((campaign.experiments or {}).get(HOLDOUT) or 0.0)
    if not share:
        return None
    held = session.execute(
        select(func.count()).select_from(ExperimentHoldout).where(ExperimentHoldout.campaign_id == campaign.id)
    ).scalar_one()
    return {"share": share, "leads": int(held)}


# ---------------------------------------------------------------- one factor


def _factor_report(
    cells: list[Cell],
    factor: str,
    configured: list[dict],
    metrics: list[Metric],
    settings: ReportSettings,
    audiences: Mapping[int, str],
    bandit: dict | None,
    seed: str,
    window: PaceWindow,
) -> dict:
    names = [arm["name"] for arm in configured]
    weights = {arm["name"]: float(arm.get("weight", 1)) for arm in configured}
    seen = {cell.arms.get(factor) or UNRECORDED for cell in cells}
    names += sorted(seen - set(names))  # arms in the data the design no longer lists (weight 0)
    control = names[0]
    bandit_moved = bool(bandit and bandit.get("periods"))
    checks = {key: why for key, why in checks_for(factor).items() if key in {m.key for m in metrics}}
    overall = _table(cells, factor, names, weights, control, metrics, settings, bandit_moved, checks, window)
    by_audience = []
    for audience_id in sorted({c.audience_id for c in cells}, key=lambda a: (a is None, a or 0)):
        subset = [c for c in cells if c.audience_id == audience_id]
        table = _table(subset, factor, names, weights, control, metrics, settings, bandit_moved, checks, window)
        by_audience.append(
            {
                "audience_id": audience_id,
                "audience": audiences.get(audience_id, "（未分人群包）") if audience_id else "（未分人群包）",
                **table,
            }
        )
    # Each table group is one family for the correction: the overall comparison, and all
    # the audience-pack breakdowns together.
    _correct_and_decide([overall], metrics, settings)
    _correct_and_decide(by_audience, metrics, settings)
    return {
        "factor": factor,
        "label": FACTOR_LABELS[factor],
        "seed": seed,
        "control": control,
        "arms_configured": [
            {
                "name": a["name"],
                "weight": weights[a["name"]],
                **({"text": a["text"]} if "text" in a else {}),
                **({"windows": a["windows"]} if "windows" in a else {}),
            }
            for a in configured
        ],
        "bandit": bandit,
        "checks": checks,
        "overall": overall,
        "by_audience": by_audience,
        "daily": _daily(cells, factor, names, control, metrics, settings),
    }


def _sums_by_arm(cells: Iterable[Cell], factor: str, names: Sequence[str]) -> dict[str, dict[str, float]]:
    grouped: dict[str, list[Cell]] = {name: [] for name in names}
    for cell in cells:
        grouped.setdefault(cell.arms.get(factor) or UNRECORDED, []).append(cell)
    return {name: add_sums(grouped[name]) for name in names}


def _handoffs(sums: Mapping[str, float]) -> dict[str, int]:
    return {name: int(sums[name]) for name in COUNTS}


def _arm_metrics(sums: Mapping[str, float], metrics: Sequence[Metric], alpha: float) -> dict:
    out = {}
    for metric in metrics:
        stat = statistic_for(metric, sums)
        lo, hi = rate_interval(stat, alpha)
        out[metric.key] = {
            "value": stat.mean,
            "ci": [lo, hi],
            "numerator": sums[metric.numerator],
            "denominator": sums[metric.denominator] if metric.denominator else sums["leads"],
        }
    return out


def _table(
    cells: list[Cell],
    factor: str,
    names: Sequence[str],
    weights: Mapping[str, float],
    control: str,
    metrics: Sequence[Metric],
    settings: ReportSettings,
    bandit_moved: bool,
    checks: Mapping[str, str],
    window: PaceWindow,
) -> dict:
    sums = _sums_by_arm(cells, factor, names)
    pace = _pace(cells, factor, names, window)
    arms = []
    for name in names:
        row: dict[str, Any] = {
            "arm": name,
            "weight": weights.get(name, 0.0),
            "control": name == control,
            "leads": int(sums[name]["leads"]),
            "dials": int(sums[name]["dials"]),
            "handoffs": _handoffs(sums[name]),
            "corrected": int(sums[name][CORRECTED]),
            "metrics": _arm_metrics(sums[name], metrics, settings.alpha),
            # dialled → connected → A/B → invited → added → converted → premium, in leads
            "funnel": funnel(sums[name]),
            "vs_control": {},
        }
        if name != control:
            for metric in metrics:
                comparison = _compare(
                    statistic_for(metric, sums[control]), statistic_for(metric, sums[name]), metric, settings
                )
                comparison["_check"] = checks.get(metric.key)
                comparison["_pace"] = (pace[control], pace[name])
                comparison["_window"] = window
                row["vs_control"][metric.key] = comparison
        arms.append(row)
    return {
        "srm": _srm([a["leads"] for a in arms], [weights.get(n, 0.0) for n in names], bandit_moved),
        "pace": {"days": window.days, "through": window.through, "leads_per_day": pace},
        "arms": arms,
    }


def _srm(leads: list[int], weights: list[float], bandit_moved: bool) -> dict:
    if bandit_moved:
        return {
            "p_value": None,
            "alert": False,
            "checked": False,
            "message": "多臂老虎机模式：流量按效果每天调整，不按固定比例做样本比例（SRM）检查。",
        }
    p_value = srm_p_value(leads, weights)
    alert = srm_alert(p_value)
    message = (
        f"样本比例失衡（SRM）告警：各组已拨打线索数与设定比例不符（p = {p_value:.2g} < {SRM_ALERT_P}）。"
        "分组或拨打环节可能出了问题（例如某组线索被拦截得更多、某时段拨不完），先排查原因，结论暂不可信。"
        if alert
        else f"样本比例正常（SRM 检验 p = {p_value:.2g}）。"
    )
    return {"p_value": p_value, "alert": alert, "checked": True, "message": message}


def _interval_test(control: UnitStatistic, treatment: UnitStatistic, settings: ReportSettings):
    """The lift and interval of the report's method (the Bayesian one gives its credible interval)."""
    if settings.method == "sequential":
        return sequential_test(control, treatment, alpha=settings.alpha, tuning=settings.tuning)
    if settings.method == "frequentist":
        return frequentist_test(control, treatment, alpha=settings.alpha)
    return bayesian_test(control, treatment, alpha=settings.alpha)


def _compare(control: UnitStatistic, treatment: UnitStatistic, metric: Metric, settings: ReportSettings) -> dict:
    bayes = bayesian_test(control, treatment, alpha=settings.alpha, inverse=metric.higher_is_better is False)
    if settings.method == "bayesian":
        lift, ci, p_value, error = bayes.lift, bayes.ci, None, bayes.error
    else:
        test = _interval_test(control, treatment, settings)
        lift, ci, p_value, error = test.lift, test.ci, test.p_value, test.error
    return {
        "lift": lift,
        "ci": list(ci),
        "p_value": p_value,
        "p_adjusted": p_value,
        "chance_to_win": bayes.chance_to_win,
        "risk": bayes.risk_treatment,
        "risk_control": bayes.risk_control,
        "error": error,
        "_control": control,
        "_treatment": treatment,
    }


def _correct_and_decide(tables: list[dict], metrics: Sequence[Metric], settings: ReportSettings) -> None:
    by_key = {m.key: m for m in metrics}
    family = [
        comparison
        for table in tables
        for arm in table["arms"]
        for key, comparison in arm["vs_control"].items()
        if by_key[key].in_correction
        and comparison["_check"] is None
        and comparison["error"] is None
        and comparison["p_value"] is not None
    ]
    if family:
        correction = cast(Correction, settings.correction)  # one of CORRECTIONS (ReportSettings.check)
        for comparison, adjusted in zip(family, adjust([c["p_value"] for c in family], correction), strict=False):
            comparison["p_adjusted"] = adjusted
    for table in tables:
        for arm in table["arms"]:
            for key, comparison in arm["vs_control"].items():
                _decide(comparison, by_key[key], arm["arm"], settings, max(len(family), 1), table["srm"]["alert"])


def _decide(
    comparison: dict, metric: Metric, arm: str, settings: ReportSettings, family_size: int, srm_alerted: bool
) -> None:
    control, treatment = comparison.pop("_control"), comparison.pop("_treatment")
    check, pace, window = comparison.pop("_check"), comparison.pop("_pace"), comparison.pop("_window")
    comparison.update(check=check is not None, leads_needed_per_arm=None, days_needed=None, worth_waiting=None)
    if check is not None:
        _decide_check(comparison, metric, arm, settings, check, control, treatment)
        return
    if comparison["error"]:
        reason = ERROR_LABELS.get(comparison["error"], "数据不足")
        _verdict(comparison, "inconclusive", reason, f"尚无定论：{reason}。")
        return
    control_total, treatment_total = _metric_total(control), _metric_total(treatment)
    if not control_total or not treatment_total or max(control_total, treatment_total) < MIN_SAMPLE_SIZE:
        reason = (
            f"数据还太少（{metric.label}的计数对照组 {control_total:,.0f}、本组 {treatment_total:,.0f}；"
            f"至少一组到 {MIN_SAMPLE_SIZE} 且两组都不为 0 才下结论）"
        )
        if _looks_significant(comparison, metric, settings):
            reason += f"，{_evidence(comparison, settings)} 看似显著，但计数这么少时并不可靠"
        wait = _wait_for_sample(comparison, control, treatment, pace, window, settings, family_size)
        _verdict(comparison, "inconclusive", reason, f"尚无定论：{reason}。{wait}")
        return
    lift = comparison["lift"]
    significant = _looks_significant(comparison, metric, settings)
    if not significant:
        decision = "inconclusive"
    elif metric.higher_is_better is None:
        decision = "different"
    else:
        decision = "win" if (lift > 0) == metric.higher_is_better else "lose"
    lo, hi = comparison["ci"]
    direction = "高" if lift > 0 else "低"
    evidence = _evidence(comparison, settings)
    caution = "（注意：本组 SRM 告警，结论暂不可信）" if srm_alerted else ""
    counts = f"计数已够（{metric.label}：对照组 {control_total:,.0f}、本组 {treatment_total:,.0f}）"
    if settings.method == "bayesian":
        threshold = (
            f"胜出概率{'不低于' if lift > 0 else '不高于'} {BAYES_DECISIVE if lift > 0 else 1 - BAYES_DECISIVE:.0%}"
        )
    else:
        threshold = f"低于 {settings.alpha}"
    if decision == "inconclusive":
        if settings.method == "bayesian":
            reason = f"{evidence}，在 {1 - BAYES_DECISIVE:.0%} 到 {BAYES_DECISIVE:.0%} 之间：还分不出高下"
        else:
            reason = f"{evidence}，不低于 {settings.alpha}：差异可能只是偶然"
        wait = _still_needed(comparison, control, treatment, settings, family_size, pace, window)
        _verdict(comparison, decision, reason, f"尚无定论：{reason}。{wait}")
        return
    reason = f"{evidence}（{threshold}），{counts}"
    if decision == "win":
        hint = (
            f"胜出：{arm}的{metric.label}比对照组{direction} {abs(lift):.1%}"
            f"（区间 {lo:+.1%} ~ {hi:+.1%}，{evidence}），可以考虑采用。{caution}"
        )
    elif decision == "lose":
        prefix = "护栏告警" if metric.role == "guardrail" else "落后"
        hint = (
            f"{prefix}：{arm}的{metric.label}比对照组{direction} {abs(lift):.1%}"
            f"（区间 {lo:+.1%} ~ {hi:+.1%}，{evidence}），不建议采用。{caution}"
        )
    else:
        hint = f"有差异：{arm}的{metric.label}比对照组{direction} {abs(lift):.1%}（{evidence}）。{caution}"
    _verdict(comparison, decision, reason + caution, hint)


def _verdict(comparison: dict, decision: str, reason: str, hint: str) -> None:
    comparison.update(decision=decision, decision_label=DECISION_LABELS[decision], reason=reason, hint=hint)


def _looks_significant(comparison: dict, metric: Metric, settings: ReportSettings) -> bool:
    if settings.method == "bayesian":
        chance = comparison["chance_to_win"]
        if chance is None:
            return False
        chance_up = chance if metric.higher_is_better is not False else 1 - chance
        return chance_up >= BAYES_DECISIVE or chance_up <= 1 - BAYES_DECISIVE
    return comparison["p_adjusted"] is not None and comparison["p_adjusted"] < settings.alpha


def _evidence(comparison: dict, settings: ReportSettings) -> str:
    if settings.method == "bayesian":
        return f"胜出概率 {comparison['chance_to_win']:.0%}"
    p_value = comparison["p_adjusted"]
    return "校正后 p < 0.001" if p_value < 0.001 else f"校正后 p = {p_value:.3f}"


def _decide_check(
    comparison: dict,
    metric: Metric,
    arm: str,
    settings: ReportSettings,
    why: str,
    control: UnitStatistic,
    treatment: UnitStatistic,
) -> None:
    """A metric the factor cannot move: its arms should not differ. Not a verdict; a clear
    difference (p below CHECK_ALERT_P with enough events) is flagged like an SRM."""
    control_total, treatment_total = _metric_total(control), _metric_total(treatment)
    enough = bool(control_total and treatment_total and max(control_total, treatment_total) >= MIN_SAMPLE_SIZE)
    p_value = comparison["p_value"]
    if settings.method == "bayesian" and comparison["chance_to_win"] is not None:
        chance = comparison["chance_to_win"]
        p_value = 2 * min(chance, 1 - chance)  # two-sided tail of the posterior, for the flag only
    if comparison["error"] or not enough or p_value is None:
        _verdict(
            comparison,
            "check",
            f"{why}，只作核对、不下结论（数据还少，暂不核对）",
            f"核对项：{why}，不作结论。",
        )
        return
    if p_value < CHECK_ALERT_P:
        reason = (
            f"{why}，两组本应没有差异，{arm}却{'高' if comparison['lift'] > 0 else '低'} {abs(comparison['lift']):.1%}"
            f"（p = {p_value:.2g} < {CHECK_ALERT_P}）：分组或拨打环节可能有问题（例如各组拨打的时间或名单不同），先排查"
        )
        _verdict(comparison, "check_alert", reason, f"核对项异常：{reason}。")
        return
    _verdict(
        comparison,
        "check",
        f"{why}，只作核对、不下结论：两组没有明显差异（p = {p_value:.2g}），分组正常",
        f"核对项：{why}，不作结论；两组没有明显差异，分组正常。",
    )


def _metric_total(stat: UnitStatistic) -> float:
    """The metric's count in one arm (its numerator summed over the leads)."""
    if isinstance(stat, Ratio):
        return stat.numerator.total
    if isinstance(stat, Proportion):
        return stat.conversions
    return stat.total


# ---------------------------------------------------------------- how long still


@dataclass(frozen=True)
class PaceWindow:
    """The days the pace is read over: `days` days up to and including `through` (the last
    local day with dials in the report's range)."""

    days: int
    through: str | None


def _pace_window(cells: Sequence[Cell]) -> PaceWindow:
    if not cells:
        return PaceWindow(0, None)
    first, last = date.fromisoformat(min(c.day for c in cells)), date.fromisoformat(max(c.day for c in cells))
    return PaceWindow(min(PACE_DAYS, (last - first).days + 1), last.isoformat())


def _pace(cells: Iterable[Cell], factor: str, names: Sequence[str], window: PaceWindow) -> dict[str, float]:
    """New leads dialled a day per arm over the window (a lead counts on its first dial's day)."""
    pace = dict.fromkeys(names, 0.0)
    if not window.days or window.through is None:
        return pace
    since = (date.fromisoformat(window.through) - timedelta(days=window.days - 1)).isoformat()
    for cell in cells:
        if since <= cell.day <= window.through:
            arm = cell.arms.get(factor) or UNRECORDED
            if arm in pace:
                pace[arm] += cell.sums["leads"] / window.days
    return pace


def _leads_needed(comparison: dict, control: UnitStatistic, settings: ReportSettings, family_size: int) -> int | None:
    """Leads per arm for 80% power at the current lift (None: not estimable or absurd)."""
    lift = abs(comparison["lift"] or 0.0)
    if lift < TINY_LIFT:
        return None
    # Holm spends alpha over the family; plan with the strictest level it may need.
    alpha = settings.alpha / family_size if settings.correction == "holm" else settings.alpha
    tuning = settings.tuning if settings.method == "sequential" else None
    return sample_size_per_arm(
        control.mean, control.variance, lift, alpha=alpha, target_power=TARGET_POWER, tuning=tuning
    )


def _wait(
    comparison: dict,
    shortfalls: Sequence[tuple[float, float]],
    window: PaceWindow,
    what: str,
    goal: str = "有八成把握下结论",
) -> str:
    """How many more days at the recent pace, given (leads still needed, new leads a day) per arm."""
    (_, control_pace), (_, treatment_pace) = shortfalls
    days = 0.0
    for more, per_day in shortfalls:
        if more <= 0:
            continue
        if per_day <= 0:
            comparison["worth_waiting"] = False
            return (
                f"{what}，但最近 {window.days} 天有一组没有新线索拨打：按现在的拨打量等不到结论，"
                "要下结论得给两组补充新线索。"
            )
        days = max(days, more / per_day)
    needed = math.ceil(days)
    comparison["days_needed"] = needed
    comparison["worth_waiting"] = needed <= HORIZON_DAYS
    recent = (
        f"按最近 {window.days} 天的拨打量（对照组每天约 {_per_day(control_pace)} 条、"
        f"本组约 {_per_day(treatment_pace)} 条新线索）"
    )
    if needed > HORIZON_DAYS:
        return f"差异太小，不值得继续等：{recent}，{what}，还要约 {needed:,} 天，超过 {HORIZON_DAYS} 天。"
    return f"{recent}，约再拨 {max(needed, 1)} 天{goal}（{what}）。"


def _per_day(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _still_needed(
    comparison: dict,
    control: UnitStatistic,
    treatment: UnitStatistic,
    settings: ReportSettings,
    family_size: int,
    pace: tuple[float, float],
    window: PaceWindow,
) -> str:
    lift = abs(comparison["lift"])
    if lift < TINY_LIFT:
        comparison["worth_waiting"] = False
        return "两组几乎没有差别（相对差异不到 1%）：差异太小，不值得继续等。"
    needed = _leads_needed(comparison, control, settings, family_size)
    if needed is None:
        comparison["worth_waiting"] = False
        return f"差异太小，不值得继续等：要分出 {lift:.1%} 这么小的差异，需要的线索多到不现实。"
    comparison["leads_needed_per_arm"] = needed
    more = needed - min(control.n, treatment.n)
    if more <= 0:
        comparison["worth_waiting"] = False
        return f"样本已足够发现 {lift:.1%} 的差异，但结果仍不显著，目前的差异很可能只是偶然。"
    return _wait(
        comparison,
        [(needed - control.n, pace[0]), (needed - treatment.n, pace[1])],
        window,
        f"按目前 {comparison['lift']:+.1%} 的差异，每组约需 {needed:,} 条已拨打线索，还差约 {more:,} 条",
    )


def _wait_for_sample(
    comparison: dict,
    control: UnitStatistic,
    treatment: UnitStatistic,
    pace: tuple[float, float],
    window: PaceWindow,
    settings: ReportSettings,
    family_size: int,
) -> str:
    """Below the minimum count: the days until one arm reaches it (at each arm's events per
    lead so far), and, if the current lift needs more leads than that, until the power does."""
    totals = (_metric_total(control), _metric_total(treatment))
    stats = (control, treatment)
    per_lead = [totals[i] / stats[i].n if stats[i].n else 0.0 for i in range(2)]
    if not any(per_lead):
        comparison["worth_waiting"] = None
        return "两组都还没有这项计数，暂时估计不出要多久。"
    pooled = sum(totals) / max(1, control.n + treatment.n)
    shortfalls = []
    for i in range(2):
        rate = per_lead[i] or pooled
        # leads until this arm has at least one event and the leading arm MIN_SAMPLE_SIZE
        target = MIN_SAMPLE_SIZE if totals[i] == max(totals) else 1
        shortfalls.append((max(0.0, (target - totals[i]) / rate), pace[i]))
    lift = abs(comparison["lift"] or 0.0)
    estimable = comparison["lift"] is not None and bool(control.mean) and control.variance > 0
    needed = _leads_needed(comparison, control, settings, family_size) if estimable else None
    if estimable and lift >= TINY_LIFT and needed is None:
        comparison["worth_waiting"] = False
        return f"差异太小，不值得继续等：要分出目前 {lift:.1%} 这么小的差异，需要的线索多到不现实。"
    if needed is not None and needed > min(control.n, treatment.n):
        comparison["leads_needed_per_arm"] = needed
        shortfalls = [(max(shortfalls[i][0], needed - stats[i].n), pace[i]) for i in range(2)]
        what = f"计数要到 {MIN_SAMPLE_SIZE}，且按目前 {comparison['lift']:+.1%} 的差异每组约需 {needed:,} 条已拨打线索"
        return _wait(comparison, shortfalls, window, what)
    text = _wait(comparison, shortfalls, window, f"计数要到 {MIN_SAMPLE_SIZE}", goal="计数可够")
    if lift < TINY_LIFT:
        text += "目前两组几乎没有差别（不到 1%），够数后若仍如此，就不值得再等。"
    return text


# ---------------------------------------------------------------- over time


def _daily(
    cells: list[Cell],
    factor: str,
    names: Sequence[str],
    control: str,
    metrics: Sequence[Metric],
    settings: ReportSettings,
) -> list[dict]:
    """Cumulative to the end of each local day: the leads dialled by then and what they had
    done by then (what the report showed that evening)."""
    days = sorted({c.day for c in cells})
    out = []
    for day in days:
        sums = _sums_by_arm([c for c in cells if c.day <= day], factor, names)
        point: dict[str, Any] = {
            "day": day,
            "leads": {n: int(sums[n]["leads"]) for n in names},
            "metrics": {},
            "lift": {},
        }
        for metric in metrics:
            stats = {n: statistic_for(metric, sums[n]) for n in names}
            point["metrics"][metric.key] = {n: stats[n].mean for n in names}
            point["lift"][metric.key] = {}
            for name in names:
                if name == control:
                    continue
                test = _interval_test(stats[control], stats[name], settings)
                point["lift"][metric.key][name] = {"lift": test.lift, "ci": list(test.ci), "error": test.error}
        out.append(point)
    return out


# ---------------------------------------------------------------- summary and output


def _summary(report: dict) -> list[str]:
    lines = []
    labels = {m["key"]: m["label"] for m in report["metrics"]}
    overview = report["overview"]
    lines.append(
        f"共 {overview['leads']:,} 条线索已拨打（{overview['dials']:,} 次拨打）。"
        f"检验方法：{report['settings']['method_label']}；{report['settings']['correction_label']}。"
    )
    if report["holdout"]:
        lines.append(
            f"留出对照（不拨打）比例 {report['holdout']['share']:.0%}，已留出 {report['holdout']['leads']:,} 条线索。"
        )
    if not report["wecom_available"]:
        lines.append("企微添加率暂不可用：企业微信模块尚未接入。")
    handoffs = overview["handoffs"]
    if any(handoffs.values()):
        lines.append(
            f"客户要求转人工 {sum(handoffs.values()):,} 次：已转人工 {handoffs['handed_off']:,} 次，"
            f"转人工失败（已预约顾问回电）{handoffs['handoff_failed']:,} 次。"
        )
    if overview["corrected"]:
        lines.append(f"人工更正等级 {overview['corrected']:,} 通：按更正后的等级统计。")
    lines.extend(speed_to_lead_lines(report.get("speed_to_lead") or []))
    lines.extend(sequence_lines(report.get("sequences") or []))
    lines.extend(conversion_lines(report.get("conversions"), overview.get("funnel")))
    lines.extend(caller_number_lines(report.get("caller_numbers"), report["settings"]["alpha"]))
    for factor in report["factors"]:
        overall = factor["overall"]
        if overall["srm"]["alert"]:
            lines.append(f"【{factor['label']}】{overall['srm']['message']}")
        findings = []
        for arm in overall["arms"]:
            for key, comparison in arm["vs_control"].items():
                if comparison["decision"] in ("win", "lose", "different"):
                    findings.append(
                        f"{arm['arm']}在{labels[key]}上{comparison['decision_label']}（{comparison['lift']:+.1%}）"
                    )
        checks = factor.get("checks") or {}
        if checks and set(checks) >= set(labels):
            why = "；".join(sorted(set(checks.values())))
            lines.append(f"【{factor['label']}】{why}：本报告的指标对它只作核对，不作结论。")
        for arm in overall["arms"]:
            for key, comparison in arm["vs_control"].items():
                if comparison["decision"] == "check_alert":
                    lines.append(f"【{factor['label']}】{labels[key]}（核对项）异常：{comparison['reason']}。")
        if findings:
            lines.append(f"【{factor['label']}】对照组为{factor['control']}：" + "；".join(findings) + "。")
        else:
            lines.append(f"【{factor['label']}】对照组为{factor['control']}：各组之间尚无显著差异。")
        for breakdown in factor["by_audience"]:
            notable = [
                f"{arm['arm']}{labels[key]}{comparison['decision_label']}（{comparison['lift']:+.1%}）"
                for arm in breakdown["arms"]
                for key, comparison in arm["vs_control"].items()
                if comparison["decision"] in ("win", "lose")
            ]
            if notable and len(factor["by_audience"]) > 1:
                lines.append(f"　· 人群包「{breakdown['audience']}」：" + "；".join(notable) + "。")
    return lines


def speed_to_lead_lines(rows: list[dict]) -> list[str]:
    """The report's 速联 lines: 留资 → first dial per lane, in minutes."""
    lines = []
    for row in rows:
        lane = "接口线索（优先通道）" if row["lane"] == "priority" else "批量名单"
        if not row["dialled"]:
            lines.append(f"速联：{lane}有留资时间的 {row['leads']:,} 条，尚未拨打。")
            continue
        lines.append(
            f"速联：{lane}有留资时间的 {row['leads']:,} 条，已拨 {row['dialled']:,} 条；从留资到首次拨打"
            f"中位 {_minutes(row['p50_seconds'])}、P95 {_minutes(row['p95_seconds'])}，"
            f"1 小时内拨打 {row['within_1h_share']:.0%}。"
        )
    return lines


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{seconds / 60:.1f} 分钟"
    return f"{seconds / 3600:.1f} 小时"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value
