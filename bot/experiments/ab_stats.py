"""`waihu ab stats`: the statistics on counts an analyst gives, for checking against other tools.

Input (JSON): {"alpha": 0.05, "method": "frequentist" | "bayesian" | "sequential",
"correction": "holm" | "bh" | "none" (optional, default holm), "tuning": 5000 (sequential,
optional), "arms": [{"name": str, "n": int, "conversions": int, "weight": float}, …]}; the
first arm is the control. Each arm's n units are independent and each converted or not
(a proportion).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeGuard

from bot.core.errors import UserError
from bot.experiments.corrections import CORRECTIONS, adjust
from bot.experiments.sequential import DEFAULT_TUNING, sequential_test
from bot.experiments.srm import SRM_ALERT_P, srm_alert, srm_p_value
from bot.experiments.statistics import Proportion, bayesian_test, frequentist_test

METHODS = ("frequentist", "bayesian", "sequential")


def load_input(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON (column {exc.colno}: {exc.msg})") from None
    return parse_input(document, where=str(path))


def parse_input(document: Any, where: str = "input") -> dict:
    """The checked input; a UserError names the field at fault and what it must be."""

    def bad(field: str, message: str) -> UserError:
        return UserError(f"{where}: {field}: {message}")

    if not isinstance(document, dict):
        raise bad("(top level)", 'must be a JSON object with "arms"')
    unknown = set(document) - {"alpha", "method", "correction", "tuning", "arms"}
    if unknown:
        raise bad(sorted(unknown)[0], "unknown field; expected alpha, method, correction, tuning, arms")
    alpha = document.get("alpha", 0.05)
    if not _number(alpha) or not 0 < alpha < 1:
        raise bad("alpha", f"must be a number between 0 and 1, e.g. 0.05; got {alpha!r}")
    method = document.get("method", "frequentist")
    if method not in METHODS:
        raise bad("method", f"must be one of {', '.join(METHODS)}; got {method!r}")
    correction = document.get("correction", "holm")
    if correction not in CORRECTIONS:
        raise bad("correction", f"must be one of {', '.join(CORRECTIONS)}; got {correction!r}")
    tuning = document.get("tuning", DEFAULT_TUNING)
    if not _number(tuning) or tuning <= 0:
        raise bad("tuning", f"must be a positive number (the sample size to tune for); got {tuning!r}")
    arms = document.get("arms")
    if not isinstance(arms, list) or len(arms) < 2:
        raise bad("arms", "must be a list of at least two arms (the first is the control)")
    parsed, names = [], set()
    for i, arm in enumerate(arms):
        field = f"arms[{i}]"
        if not isinstance(arm, dict):
            raise bad(field, "must be an object with name, n, conversions")
        extra = set(arm) - {"name", "n", "conversions", "weight"}
        if extra:
            raise bad(f"{field}.{sorted(extra)[0]}", "unknown field; expected name, n, conversions, weight")
        name = arm.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad(f"{field}.name", "must be a non-empty text")
        if name in names:
            raise bad(f"{field}.name", f"{name!r} is used by an earlier arm; names must be unique")
        names.add(name)
        n = arm.get("n")
        if not _integer(n) or n < 0:
            raise bad(f"{field}.n", f"must be a whole number ≥ 0; got {n!r}")
        conversions = arm.get("conversions")
        if not _integer(conversions) or conversions < 0:
            raise bad(f"{field}.conversions", f"must be a whole number ≥ 0; got {conversions!r}")
        if conversions > n:
            raise bad(f"{field}.conversions", f"must be ≤ n ({n}); got {conversions}")
        weight = arm.get("weight", 1)
        if not _number(weight) or weight <= 0:
            raise bad(f"{field}.weight", f"must be a number > 0; got {weight!r}")
        parsed.append({"name": name, "n": int(n), "conversions": int(conversions), "weight": float(weight)})
    return {"alpha": float(alpha), "method": method, "correction": correction, "tuning": float(tuning), "arms": parsed}


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> TypeGuard[float]:
    return _number(value) and float(value).is_integer()


def ab_stats(spec: dict) -> dict:
    """Every treatment arm against the control (arms[0])."""
    alpha, method = spec["alpha"], spec["method"]
    arms = spec["arms"]
    control = Proportion(arms[0]["n"], arms[0]["conversions"])
    rows: list[dict] = [{**arms[0], "control": True, "rate": control.mean}]
    for arm in arms[1:]:
        treatment = Proportion(arm["n"], arm["conversions"])
        bayes = bayesian_test(control, treatment, alpha=alpha)
        row = {
            **arm,
            "control": False,
            "rate": treatment.mean,
            "chance_to_win": bayes.chance_to_win,
            "risk": bayes.risk_treatment,
            "risk_control": bayes.risk_control,
        }
        if method == "bayesian":
            row.update(lift_rel=bayes.lift, ci_rel=list(bayes.ci), p_value=None, error=bayes.error)
        else:
            test = (
                sequential_test(control, treatment, alpha=alpha, tuning=spec["tuning"])
                if method == "sequential"
                else frequentist_test(control, treatment, alpha=alpha)
            )
            row.update(lift_rel=test.lift, ci_rel=list(test.ci), p_value=test.p_value, error=test.error)
        rows.append(row)
    treatments = rows[1:]
    if method != "bayesian":
        for row, adjusted in zip(
            treatments, adjust([r["p_value"] for r in treatments], spec["correction"]), strict=True
        ):
            row["p_adjusted"] = adjusted
    else:
        for row in treatments:
            row["p_adjusted"] = None
    srm = srm_p_value([a["n"] for a in arms], [a["weight"] for a in arms])
    return {
        "method": method,
        "alpha": alpha,
        "correction": spec["correction"],
        "tuning": spec["tuning"] if method == "sequential" else None,
        "srm_p_value": srm,
        "srm_alert": srm_alert(srm),
        "srm_alert_below": SRM_ALERT_P,
        "arms": rows,
    }
