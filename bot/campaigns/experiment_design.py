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
from collections.abc import Mapping
from typing import Any, TypedDict

from bot.core.errors import UserError

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
        return list(experiments.get("incentives") or [])
    if factor == "welcome":
        return list(experiments.get("welcomes") or [])
    raise ValueError(f"unknown factor {factor!r}")


def default_seed(campaign_id: int, factor: str) -> str:
    return f"campaign-{campaign_id}-{_DEFAULT_SEED_SUFFIX[factor]}"


def seed_for(campaign_id: int, experiments: Mapping[str, Any] | None, factor: str) -> str:
    seeds = (experiments or {}).get("seeds") or {}
    return seeds.get(factor) or default_seed(campaign_id, factor)


def parse_text_arm(option: str, value: str) -> dict:
    """NAME=TEXT[*WEIGHT] (e.g. 意外险=一份免费的驾乘意外险*2) → {"name", "text", "weight"}."""
    name, sep, rest = value.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise UserError(f"{option} {value!r}: expected NAME=TEXT[*WEIGHT], e.g. 意外险=一份免费的驾乘意外险*2")
    text, weight = rest, 1.0
    head, star, tail = rest.rpartition("*")
    if star:
        try:
            text, weight = head, float(tail)
        except ValueError:
            text, weight = rest, 1.0  # a '*' inside the text, no weight
    if not math.isfinite(weight) or weight <= 0:
        raise UserError(f"{option} {value!r}: the weight after '*' must be a number above 0")
    if not text.strip():
        raise UserError(f"{option} {value!r}: the text after '=' is empty")
    return {"name": name.strip(), "text": text.strip(), "weight": weight}


def build_experiments(
    *,
    incentives: list[dict] | None = None,
    welcomes: list[dict] | None = None,
    holdout: float = 0.0,
    bandit_factor: str | None = None,
    bandit_floor: float | None = None,
) -> dict:
    """The `campaigns.experiments` document, checked; UserError names the option at fault."""
    document: dict[str, Any] = {}
    for key, option, arms in (("incentives", "--incentive-arm", incentives), ("welcomes", "--welcome-arm", welcomes)):
        if not arms:
            continue
        names = [arm["name"] for arm in arms]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise UserError(f"{option}: the arm name {duplicate!r} is given twice; names must be unique")
        document[key] = [dict(arm) for arm in arms]
    if not (isinstance(holdout, (int, float)) and 0 <= holdout < 1):
        raise UserError(f"--holdout {holdout!r}: a share of leads between 0 and 1, e.g. 0.05 for 5%")
    if holdout:
        document["holdout"] = float(holdout)
    if bandit_factor:
        if bandit_factor not in BANDIT_FACTORS:
            raise UserError(f"--bandit {bandit_factor!r}: one of {', '.join(BANDIT_FACTORS)}")
        floor = BANDIT_DEFAULTS["floor"] if bandit_floor is None else bandit_floor
        if not 0 < floor < 1:
            raise UserError(f"--bandit-floor {floor!r}: the least share any arm keeps, between 0 and 1, e.g. 0.1")
        document["bandit"] = {**BANDIT_DEFAULTS, "factor": bandit_factor, "floor": float(floor), "periods": []}
    return document


def check_bandit_arms(document: Mapping[str, Any], arms_by_factor: Mapping[str, list]) -> None:
    """A bandit needs at least two arms in its factor, and a floor they can all keep."""
    bandit = document.get("bandit")
    if not bandit:
        return
    arms = arms_by_factor.get(bandit["factor"]) or []
    if len(arms) < 2:
        raise UserError(f"--bandit {bandit['factor']}: that factor has {len(arms)} arm(s); give at least two")
    if bandit["floor"] * len(arms) >= 1:
        raise UserError(
            f"--bandit-floor {bandit['floor']:g}: with {len(arms)} arms the floors would take all the "
            f"traffic; use less than {1 / len(arms):.2f}"
        )


def current_bandit_weights(experiments: Mapping[str, Any] | None) -> tuple[str, dict[str, float]] | None:
    """(factor, weights) of the bandit's latest reweighting, if it has reweighted."""
    bandit = (experiments or {}).get("bandit")
    if not bandit or not bandit.get("periods"):
        return None
    return bandit["factor"], dict(bandit["periods"][-1]["weights"])


# What ops type for arms, in the CLI and the console alike.
def parse_variant(value: str) -> dict:
    name, _, weight = value.partition(":")
    try:
        return {"name": name.strip(), "weight": float(weight) if weight else 1.0}
    except ValueError:
        raise UserError(f"--variant {value!r}: expected NAME or NAME:WEIGHT, e.g. benefit_first:1") from None


def parse_slot(value: str) -> dict:
    """上午=09:30-12:00 or 傍晚=18:00-20:00*2 (weight after '*')."""
    name, sep, rest = value.partition("=")
    if not sep or not name.strip() or not rest:
        raise UserError(f"--slot {value!r}: expected NAME=HH:MM-HH:MM[,HH:MM-HH:MM][*WEIGHT], e.g. 傍晚=18:00-20:00")
    windows, _, weight = rest.partition("*")
    try:
        return {
            "name": name.strip(),
            "windows": [w.strip() for w in windows.split(",") if w.strip()],
            "weight": float(weight) if weight else 1.0,
        }
    except ValueError:
        raise UserError(f"--slot {value!r}: the weight after '*' must be a number") from None
