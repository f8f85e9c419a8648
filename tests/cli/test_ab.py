"""`waihu ab stats` and `waihu ab power` as an analyst runs them.

Reference values are GrowthBook's (github.com/growthbook/growthbook @ 8f1db445…):
packages/stats/tests/frequentist/test_tests.py TestTwoSidedTTest.test_two_sided_ttest_binom
and TestSequentialTTest.test_sequential_test_runs_prop, packages/stats/tests/bayesian/
test_tests.py TestBinom.test_bayesian_binomial_ab_test, packages/back-end/test/stats.test.ts
"calculates SRM correctly".
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.settings import PROJECT_ROOT


def waihu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli.app", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120, env={**os.environ, "COLUMNS": "200"})


def stats_json(tmp_path: Path, document: dict) -> dict:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = waihu("ab", "stats", str(path), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def arm(name: str, n: int, conversions: int, weight: float = 1) -> dict:
    return {"name": name, "n": n, "conversions": conversions, "weight": weight}


def test_frequentist_issue_example(tmp_path: Path) -> None:
    out = stats_json(tmp_path, {"alpha": 0.05, "method": "frequentist", "arms": [arm("A", 28, 14), arm("B", 30, 16)]})
    control, treatment = out["arms"]
    assert control["control"] and control["rate"] == 0.5
    assert round(treatment["lift_rel"], 5) == 0.06667
    assert [round(x, 5) for x in treatment["ci_rel"]] == [-0.47767, 0.61101]
    assert round(treatment["p_value"], 5) == 0.80707
    assert treatment["p_adjusted"] == treatment["p_value"]  # one comparison: Holm leaves it
    assert 0.5 < treatment["chance_to_win"] < 0.7 and treatment["risk"] > 0
    assert out["srm_p_value"] > 0.5 and out["srm_alert"] is False


def test_sequential_and_bayesian_methods(tmp_path: Path) -> None:
    sequential = stats_json(tmp_path, {"method": "sequential", "arms": [arm("A", 3000, 1396), arm("B", 3461, 2422)]})
    assert [round(x, 5) for x in sequential["arms"][1]["ci_rel"]] == [0.40098, 0.60675]
    bayesian = stats_json(tmp_path, {"method": "bayesian", "arms": [arm("A", 100, 49), arm("B", 100, 51)]})
    treatment = bayesian["arms"][1]
    assert round(treatment["chance_to_win"], 5) == 0.60918
    assert round(treatment["risk"], 5) == 0.04058 and round(treatment["risk_control"], 4) == 0.0814
    assert [round(x, 5) for x in treatment["ci_rel"]] == [-0.24779, 0.32943]
    assert treatment["p_value"] is None and treatment["p_adjusted"] is None


def test_three_arms_holm_and_srm_alert(tmp_path: Path) -> None:
    out = stats_json(tmp_path, {"arms": [arm("A", 1000, 300), arm("B", 1200, 420), arm("C", 1000, 310)]})
    b, c = out["arms"][1], out["arms"][2]
    assert b["p_value"] < c["p_value"]
    assert b["p_adjusted"] == pytest.approx(min(1, 2 * b["p_value"]))  # smallest p × 2 arms
    assert c["p_adjusted"] == pytest.approx(max(b["p_adjusted"], c["p_value"]))
    assert out["srm_alert"] is True  # 1000/1200/1000 against equal weights: p < 0.001
    weighted = stats_json(tmp_path, {"arms": [arm("A", 310, 100, 0.75), arm("B", 98, 30, 0.25)]})
    assert round(weighted["srm_p_value"], 6) == 0.647434


@pytest.mark.parametrize("document, message", [
    ({"arms": [arm("A", 28, 14), arm("B", 30, 31)]}, "arms[1].conversions: must be ≤ n (30); got 31"),
    ({"arms": [arm("A", 28, 14)]}, "arms: must be a list of at least two arms"),
    ({"method": "bootstrap", "arms": [arm("A", 2, 1), arm("B", 2, 1)]}, "method: must be one of"),
    ({"alpha": 5, "arms": [arm("A", 2, 1), arm("B", 2, 1)]}, "alpha: must be a number between 0 and 1"),
    ({"arms": [arm("A", 2, 1), {"name": "B", "n": 2.5, "conversions": 1}]}, "arms[1].n: must be a whole number"),
    ({"arms": [arm("A", 2, 1), arm("A", 2, 1)]}, "arms[1].name: 'A' is used by an earlier arm"),
    ({"arms": [arm("A", 2, 1), arm("B", 2, 1, weight=0)]}, "arms[1].weight: must be a number > 0"),
    ({"arms": [arm("A", 2, 1), {**arm("B", 2, 1), "users": 3}]}, "arms[1].users: unknown field"),
])
def test_bad_input_names_the_field(tmp_path: Path, document: dict, message: str) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = waihu("ab", "stats", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{path}: {message}" in " ".join(result.stderr.split()), result.stderr


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text('{"arms": [\n  {"name": "A",, }\n]}', encoding="utf-8")
    result = waihu("ab", "stats", str(path))
    assert result.returncode == 1 and f"{path}:2: not valid JSON" in result.stderr


def test_human_output_and_power(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"arms": [arm("A", 28, 14), arm("B", 30, 16)]}), encoding="utf-8")
    table = waihu("ab", "stats", str(path))
    assert table.returncode == 0 and "A (control)" in table.stdout and "+6.67%" in table.stdout
    planned = waihu("ab", "power", "--rate", "0.3", "--lift", "0.1", "--leads", "20000", "--json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["leads_per_arm"] > 3000 and 0 < plan["mde"] < 0.1 and plan["power"] > 0.8
    sequential = json.loads(waihu("ab", "power", "--rate", "0.3", "--lift", "0.1", "--sequential", "--json").stdout)
    assert sequential["leads_per_arm"] > plan["leads_per_arm"]
    refused = waihu("ab", "power", "--rate", "30")
    assert refused.returncode == 1 and "--rate must be between 0 and 1" in refused.stderr
