"""A campaign's experiment design: factors, arms with weights, holdout, seeds, bandit.

Four factors are randomised independently per lead: `script` (the campaign's script
variants), `time_slot` (its call-time slots), `incentive` (利益点: the text the robot
offers) and `welcome` (欢迎语: the WeCom welcome script). Script and slot arms live in
their own campaign columns (the dialer reads them); the rest is the JSON document
`campaigns.experiments`:

    {"incentives": [{"name": "意外险", "text": "一份免费的驾乘意外险", "weight": 1}, …],
     "welcomes":   [{"name": "热情", "text": "您好，我是…", "weight": 1}, …],
     "holdout": 0.05,                       # share of leads never dialled
     "seeds": {"script": "…", …},           # optional; defaults below
     "bandit": {"factor": "script", "floor": 0.1, "min_leads": 100,
                "metric": "ab_rate", "periods": [{"from": ISO, "weights": {…}}, …]}}

Seeds default to `campaign-<id>-<factor>` (the script and slot seeds predate this module
and keep their spelling), so anyone can recompute a lead's arms with GrowthBook's hash.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from bot.campaigns.problems import ProblemList, problem

FACTORS = ("script", "time_slot", "incentive", "welcome")
HOLDOUT = "holdout"
FACTOR_LABELS = {"script": "话术版本", "time_slot": "拨打时段", "incentive": "利益点", "welcome": "欢迎语"}
_DEFAULT_SEED_SUFFIX = {
    "script": "script",
    "time_slot": "slot",
    "incentive": "incentive",
    "welcome": "welcome",
    HOLDOUT: "holdout",
}


class BanditDefaults(TypedDict):
    floor: float
    min_leads: int
    metric: str


# Thompson sampling defaults: every arm keeps at least `floor` of the traffic, weights move
# once a day, and only once every arm has `min_leads` dialled leads.
BANDIT_DEFAULTS: BanditDefaults = {"floor": 0.1, "min_leads": 100, "metric": "ab_rate"}
BANDIT_FACTORS = FACTORS


def factor_arms(campaign: Any, factor: str) -> list[dict]:
    """The configured arms of one factor of a campaign: [{"name", "weight", …}, …]."""
    experiments = campaign.experiments or {}
    if factor == "script":
        return list(campaign.script_variants or [{"name": "standard", "weight": 1}])
    if factor == "time_slot":
        return list(campaign.time_slots or [])
    if factor == "incentive":
        # Per-pack arms may share a name (驾乘险 for 车主 and for 单身): one arm of the factor.
        unique: dict[str, dict] = {}
        for arm in experiments.get("incentives") or []:
            unique.setdefault(arm["name"], arm)
        return list(unique.values())
    if factor == "welcome":
        return list(experiments.get("welcomes") or [])
    raise ValueError(f"unknown factor {factor!r}")


def default_seed(campaign_id: int, factor: str) -> str:
    return f"campaign-{campaign_id}-{_DEFAULT_SEED_SUFFIX[factor]}"


def seed_for(campaign_id: int, experiments: Mapping[str, Any] | None, factor: str) -> str:
    seeds = (experiments or {}).get("seeds") or {}
    return seeds.get(factor) or default_seed(campaign_id, factor)


GLOBAL_SCOPE = "global"
# --incentive-arm SCOPE:NAME=TEXT[*WEIGHT]: SCOPE an audience pack (name or scene, as in
# dialogs/wecom/offers.yml) or `global` (every pack). Stored as the arm's "audience" key;
# a global arm has none (campaigns made before scopes read as global, as they behaved).
INCENTIVE_ARM_SYNTAX = "PACK:NAME=TEXT[*WEIGHT] or global:NAME=TEXT[*WEIGHT]"
INCENTIVE_ARM_EXAMPLE = "车主:驾乘险=一份免费的驾乘意外险"


def parse_text_arm(option: str, value: str, *, scoped: bool = False) -> dict:
    """NAME=TEXT[*WEIGHT] (e.g. 意外险=一份免费的驾乘意外险*2) → {"name", "text", "weight"}.

    scoped (incentive arms): SCOPE:NAME=TEXT[*WEIGHT], SCOPE an audience pack (name or
    scene) or `global`; adds {"audience": SCOPE} unless global. Raises CampaignProblems."""
    name, sep, rest = value.partition("=")
    scope = None
    if scoped and sep:
        head, colon, tail = name.replace("：", ":").partition(":")
        if colon:
            scope, name = head.strip(), tail
    if not sep or not name.strip() or not rest.strip():
        syntax, example = (
            (INCENTIVE_ARM_SYNTAX, INCENTIVE_ARM_EXAMPLE)
            if scoped
            else ("NAME=TEXT[*WEIGHT]", "意外险=一份免费的驾乘意外险*2")
        )
        raise problem(
            option,
            value,
            f"expected {syntax}, e.g. {example}",
            f"格式应为 {syntax.replace('PACK', '人群包').replace('NAME', '名称').replace('TEXT', '文本').replace('WEIGHT', '权重')}，例如 {example}",
        )
    if scoped and not scope:
        raise problem(
            option,
            value,
            f"say whose leads this arm is for: {scope_hint(name.strip(), rest.strip())}",
            f"请注明用于哪个人群包：{scope_hint(name.strip(), rest.strip(), chinese=True)}",
        )
    text, weight = rest, 1.0
    head, star, tail = rest.rpartition("*")
    if star:
        try:
            text, weight = head, float(tail)
        except ValueError:
            text, weight = rest, 1.0  # a '*' inside the text, no weight
    if not math.isfinite(weight) or weight <= 0:
        raise problem(option, value, "the weight after '*' must be a number above 0", "“*”后的权重须为大于 0 的数字")
    if not text.strip():
        raise problem(option, value, "the text after '=' is empty", "“=”后的文本为空")
    arm: dict[str, Any] = {"name": name.strip(), "text": text.strip(), "weight": weight}
    if scope and scope.lower() != GLOBAL_SCOPE:
        arm["audience"] = scope
    return arm


def scope_hint(name: str, text: str, *, chinese: bool = False) -> str:
    if chinese:
        return (
            f"某个人群包（名称或场景，如 车主）写作 车主:{name}={text}；"
            f"所有人群包写作 global:{name}={text}（替换 dialogs/wecom/offers.yml 中各人群包自己的利益点）"
        )
    return (
        f"one audience pack (name or scene, e.g. 车主) as 车主:{name}={text}, or every pack as "
        f"global:{name}={text} (replacing each pack's own incentives in dialogs/wecom/offers.yml)"
    )


def arm_scope(arm: Mapping[str, Any]) -> str:
    """The audience pack (name or scene) an incentive arm is for, or `global`."""
    return arm.get("audience") or GLOBAL_SCOPE


def incentive_arms_for(experiments: Mapping[str, Any] | None, audience_keys: Sequence[str]) -> list[dict]:
    """The campaign's incentive arms for a lead of this audience pack: the arms scoped to its
    name, else to its scene (audience_keys in that order), else the global arms (possibly
    none: then the pack's own incentives of dialogs/wecom/offers.yml apply)."""
    arms = list((experiments or {}).get("incentives") or [])
    for key in audience_keys:
        scoped = [arm for arm in arms if arm.get("audience") == key]
        if scoped:
            return scoped
    return [arm for arm in arms if not arm.get("audience")]


def incentive_scopes(experiments: Mapping[str, Any] | None) -> list[str]:
    """The scopes the campaign's incentive arms are given for, in order (`global` included)."""
    return list(dict.fromkeys(arm_scope(arm) for arm in (experiments or {}).get("incentives") or []))


def build_experiments(
    *,
    incentives: list[dict] | None = None,
    welcomes: list[dict] | None = None,
    holdout: float = 0.0,
    bandit_factor: str | None = None,
    bandit_floor: float | None = None,
) -> dict:
    """The `campaigns.experiments` document, checked; CampaignProblems names every option at fault."""
    problems = ProblemList()
    document: dict[str, Any] = {}
    for key, option, arms in (("incentives", "--incentive-arm", incentives), ("welcomes", "--welcome-arm", welcomes)):
        if not arms:
            continue
        seen: set[tuple[str, str]] = set()
        for arm in arms:
            scope = arm_scope(arm)
            if (scope, arm["name"]) in seen:
                where = "" if scope == GLOBAL_SCOPE or key != "incentives" else f" for {scope}"
                where_zh = "" if scope == GLOBAL_SCOPE or key != "incentives" else f"（{scope}）"
                problems.add(
                    option,
                    arm["name"],
                    f"the arm name is given twice{where}; names must be unique: rename one",
                    f"组名重复{where_zh}；组名须唯一，请改名",
                )
            seen.add((scope, arm["name"]))
        document[key] = [dict(arm) for arm in arms]
    if not (isinstance(holdout, (int, float)) and 0 <= holdout < 1):
        problems.add(
            "--holdout",
            holdout,
            "a share of leads between 0 and 1, e.g. 0.05 for 5%",
            "应为 0 到 1 之间的比例（控制台填百分比，如 5 表示 5%）",
        )
    elif holdout:
        document["holdout"] = float(holdout)
    if bandit_factor:
        if bandit_factor not in BANDIT_FACTORS:
            problems.add(
                "--bandit",
                bandit_factor,
                f"one of {', '.join(BANDIT_FACTORS)}",
                f"应为 {'、'.join(FACTOR_LABELS[f] for f in BANDIT_FACTORS)} 之一",
            )
        floor = BANDIT_DEFAULTS["floor"] if bandit_floor is None else bandit_floor
        if not 0 < floor < 1:
            problems.add(
                "--bandit-floor",
                floor,
                "the least share any arm keeps, between 0 and 1, e.g. 0.1",
                "每组至少保留的流量比例，应在 0 到 1 之间，例如 0.1",
            )
        document["bandit"] = {**BANDIT_DEFAULTS, "factor": bandit_factor, "floor": float(floor), "periods": []}
    problems.raise_any()
    return document


def check_bandit_arms(document: Mapping[str, Any], arms_by_factor: Mapping[str, list]) -> None:
    """A bandit needs at least two arms in its factor, and a floor they can all keep."""
    bandit = document.get("bandit")
    if not bandit or bandit["factor"] not in BANDIT_FACTORS:
        return
    arms = arms_by_factor.get(bandit["factor"]) or []
    if bandit["factor"] == "incentive":
        arms = list({arm["name"]: arm for arm in arms}.values())  # an arm named alike in several packs is one
    if len(arms) < 2:
        raise problem(
            "--bandit",
            bandit["factor"],
            f"that factor has {len(arms)} arm(s); give at least two",
            f"该因素只有 {len(arms)} 组；至少需要两组",
        )
    if bandit["floor"] * len(arms) >= 1:
        raise problem(
            "--bandit-floor",
            f"{bandit['floor']:g}",
            f"with {len(arms)} arms the floors would take all the traffic; use less than {1 / len(arms):.2f}",
            f"共 {len(arms)} 组，最低流量加起来占满了全部流量；请小于 {1 / len(arms):.2f}",
        )


def current_bandit_weights(experiments: Mapping[str, Any] | None) -> tuple[str, dict[str, float]] | None:
    """(factor, weights) of the bandit's latest reweighting, if it has reweighted."""
    bandit = (experiments or {}).get("bandit")
    if not bandit or not bandit.get("periods"):
        return None
    return bandit["factor"], dict(bandit["periods"][-1]["weights"])


# What ops type for arms, in the CLI and the console alike. Each raises CampaignProblems.
_WINDOW = re.compile(r"^(\d{1,2}):([0-5]\d)-(\d{1,2}):([0-5]\d)$")


def _window_ok(window: str) -> bool:
    """HH:MM-HH:MM on a 24-hour clock, the start before the end."""
    match = _WINDOW.match(window)
    if not match:
        return False
    start_h, start_m, end_h, end_m = (int(g) for g in match.groups())
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    return start_h < 24 and end <= 24 * 60 and start < end


def parse_variant(value: str) -> dict:
    name, _, weight_text = value.partition(":")
    try:
        weight = float(weight_text) if weight_text else 1.0
    except ValueError:
        weight = float("nan")
    if not name.strip() or not (math.isfinite(weight) and weight > 0):
        raise problem(
            "--variant",
            value,
            "expected NAME or NAME:WEIGHT (a weight above 0), e.g. benefit_first:1",
            "应为 名称 或 名称:权重（权重大于 0），例如 benefit_first:1",
        )
    return {"name": name.strip(), "weight": weight}


def parse_slot(value: str) -> dict:
    """上午=09:30-12:00 or 傍晚=18:00-20:00*2 (weight after '*'); every problem of the slot at once."""
    name, sep, rest = value.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise problem(
            "--slot",
            value,
            "expected NAME=HH:MM-HH:MM[,HH:MM-HH:MM][*WEIGHT], e.g. 傍晚=18:00-20:00",
            "格式应为 名称=开始-结束[,开始-结束][*权重]，例如 傍晚=18:00-20:00",
        )
    problems = ProblemList()
    windows_text, star, weight_text = rest.partition("*")
    windows = [w.strip() for w in windows_text.split(",") if w.strip()]
    weight = 1.0
    if star:
        try:
            weight = float(weight_text)
        except ValueError:
            weight = float("nan")
        if not (math.isfinite(weight) and weight > 0):
            problems.add(
                "--slot", value, "the weight after '*' must be a number above 0", "“*”后的权重须为大于 0 的数字"
            )
    bad = [w for w in windows if not _window_ok(w)]
    if not windows:
        problems.add(
            "--slot",
            value,
            "no calling window; write one as HH:MM-HH:MM, e.g. 18:00-20:00",
            "缺少拨打窗口；写作 开始-结束，例如 18:00-20:00",
        )
    for window in bad:
        problems.add(
            "--slot",
            value,
            f"the window {window!r} is not HH:MM-HH:MM with the start before the end (24-hour clock, e.g. 18:00-20:00)",
            f"窗口“{window}”不是 开始-结束（24 小时制，开始早于结束，例如 18:00-20:00）",
        )
    problems.raise_any()
    return {"name": name.strip(), "windows": windows, "weight": weight}


def check_arm_lists(variants: Sequence[Mapping[str, Any]], slots: Sequence[Mapping[str, Any]]) -> None:
    """Names given twice among the script variants or the time slots."""
    problems = ProblemList()
    for option, arms, what, what_zh in (
        ("--variant", variants, "script variant", "话术版本"),
        ("--slot", slots, "time slot", "拨打时段"),
    ):
        names = [arm["name"] for arm in arms]
        for name in dict.fromkeys(n for n in names if names.count(n) > 1):
            problems.add(
                option,
                name,
                f"this {what} is given twice; give each once (the weight sets its share)",
                f"该{what_zh}重复填写；每个只写一次（用权重调整比例）",
            )
    problems.raise_any()
