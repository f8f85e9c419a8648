"""Experiment design: reproducible assignment, arm shares, independent factors, the holdout,
incentive and welcome arms, and `waihu campaign create` with them.

Hash reference values: GrowthBook's SDK test cases (github.com/growthbook/growthbook @
8f1db445…, packages/sdk-js/test/cases.json, sections "hash" (version 2) and
"chooseVariation")."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from scipy.stats import chi2_contingency

from bot.campaigns.service import campaign_arms, incentive_text_for, welcome_text_for
from bot.core.errors import UserError
from bot.campaigns.assignment import Arm, bucket, choose_arm
from bot.campaigns.experiment_design import build_experiments, parse_text_arm
from bot.core.settings import PROJECT_ROOT


@pytest.mark.parametrize("seed, value, expected", [
    ("seed", "a", 0.0505), ("seed", "b", 0.2696), ("foo", "ab", 0.2575), ("foo", "def", 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 0.124), ("90850943850283058242805", "123", 0.7516),
    ("()**(%$##$%#$#", "___)((*\":&", 0.0128),
])
def test_hash_v2_matches_growthbook(seed: str, value: str, expected: float) -> None:
    assert bucket(seed, value) == expected


@pytest.mark.parametrize("point, weights, expected", [
    (0.2, [1, 1], 0), (0.4, [1, 1], 0), (0.6, [1, 1], 1), (0.8, [1, 1], 1), (0, [1, 1], 0), (0.5, [1, 1], 1),
    (0.5, [0.5, 0, 0.5], 2),  # "zero range"
    (0.39, [0.4, 0.6], 0), (0.4, [0.4, 0.6], 1),  # getBucketRange "uneven weights": [[0, 0.4], [0.4, 1]]
])
def test_choose_arm_matches_growthbooks_ranges(point: float, weights: list[float], expected: int) -> None:
    arms = [Arm(str(i), w) for i, w in enumerate(weights)]
    assert choose_arm(point, arms) == str(expected)


def campaign(**experiments) -> SimpleNamespace:
    """What campaign_arms reads from a Campaign row."""
    return SimpleNamespace(
        id=42, incentive=None,
        script_variants=[{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 3}],
        time_slots=[{"name": "上午", "windows": ["09:30-12:00"], "weight": 1},
                    {"name": "傍晚", "windows": ["18:00-20:00"], "weight": 1}],
        experiments=experiments)


DESIGN = dict(incentives=[{"name": "意外险", "text": "一份免费的驾乘意外险", "weight": 1},
                          {"name": "体检", "text": "一次免费的体检", "weight": 2},
                          {"name": "红包", "text": "一个十元红包", "weight": 1}],
              welcomes=[{"name": "简短", "text": "您好，我是您的专属顾问。", "weight": 1},
                        {"name": "详细", "text": "您好，我是您的专属顾问，之前电话里说的福利给您发来了。", "weight": 1}],
              holdout=0.1)


def test_shares_over_100000_leads_are_within_one_percent_of_the_weights() -> None:
    arms = campaign_arms(campaign(**DESIGN))
    leads = [arms.for_lead(lead_id) for lead_id in range(1, 100_001)]
    expected = {"script": {"standard": 0.25, "benefit_first": 0.75}, "time_slot": {"上午": 0.5, "傍晚": 0.5},
                "incentive": {"意外险": 0.25, "体检": 0.5, "红包": 0.25}, "welcome": {"简短": 0.5, "详细": 0.5}}
    for factor, shares in expected.items():
        counts = Counter(lead[factor] for lead in leads)
        for arm, share in shares.items():
            assert abs(counts[arm] / len(leads) - share) < 0.01, (factor, arm, counts)
    held_out = sum("holdout" in lead for lead in leads)
    assert abs(held_out / len(leads) - 0.1) < 0.01
    # Independent seeds: the script split is the same within each slot (no chi-square signal).
    table = Counter((lead["script"], lead["time_slot"]) for lead in leads)
    _, p_value, _, _ = chi2_contingency([[table[("standard", s)], table[("benefit_first", s)]] for s in ("上午", "傍晚")])
    assert p_value > 0.001
    holdout_by_slot = Counter(lead["time_slot"] for lead in leads if "holdout" in lead)
    assert abs(holdout_by_slot["上午"] / held_out - 0.5) < 0.02


def test_same_ids_and_seed_give_the_same_arms_in_another_process() -> None:
    here = {lead_id: campaign_arms(campaign(**DESIGN)).for_lead(lead_id) for lead_id in range(1, 3001)}
    program = (
        "import json\n"
        "from types import SimpleNamespace\n"
        "from bot.campaigns.service import campaign_arms\n"
        f"c = SimpleNamespace(id=42, incentive=None, script_variants={json.dumps(campaign().script_variants)},"
        f" time_slots={json.dumps(campaign().time_slots, ensure_ascii=False)}, experiments={json.dumps(DESIGN, ensure_ascii=False)})\n"
        "arms = campaign_arms(c)\n"
        "print(json.dumps({i: arms.for_lead(i) for i in range(1, 3001)}, ensure_ascii=False))\n")
    # A different hash seed for Python's own str hashing: nothing may depend on it.
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=120)
    assert result.returncode == 0, result.stderr
    there = {int(k): v for k, v in json.loads(result.stdout).items()}
    assert there == here


def test_arms_follow_the_documented_hash() -> None:
    """An analyst's recomputation from (seed, lead id) alone, without our code paths."""
    arms = campaign_arms(campaign(**DESIGN))
    for lead_id in (1, 77, 4096):
        point = bucket("campaign-42-script", str(lead_id))
        assert arms.for_lead(lead_id)["script"] == ("standard" if point < 0.25 else "benefit_first")
        assert ("holdout" in arms.for_lead(lead_id)) == (bucket("campaign-42-holdout", str(lead_id)) < 0.1)
    seeded = campaign_arms(campaign(**DESIGN, seeds={"script": "analyst-seed"}))
    assert seeded.seed("script") == "analyst-seed" and seeded.seed("welcome") == "campaign-42-welcome"


def test_factors_are_absent_unless_tested() -> None:
    plain = campaign_arms(campaign())
    assert set(plain.for_lead(7)) == {"script", "time_slot"}
    assert not any("holdout" in plain.for_lead(i) for i in range(1000))


def test_incentive_and_welcome_texts_for_a_lead() -> None:
    c = campaign(**DESIGN)
    arms = campaign_arms(c)
    texts = {incentive_text_for(c, arms.for_lead(i)) for i in range(200)}
    assert texts == {"一份免费的驾乘意外险", "一次免费的体检", "一个十元红包"}
    lead = arms.for_lead(5)
    assert welcome_text_for(c, lead) == {w["name"]: w["text"] for w in DESIGN["welcomes"]}[lead["welcome"]]
    single = campaign()
    single.incentive = "一份免费的驾乘意外险"
    assert incentive_text_for(single, campaign_arms(single).for_lead(5)) == "一份免费的驾乘意外险"
    assert welcome_text_for(single, campaign_arms(single).for_lead(5)) is None


def test_bandit_weights_replace_the_configured_ones_for_new_leads() -> None:
    moved = campaign(bandit={"factor": "script", "floor": 0.1, "min_leads": 100, "metric": "ab_rate",
                             "periods": [{"from": "2026-11-25T01:00:00+00:00",
                                          "weights": {"standard": 0.9, "benefit_first": 0.1}}]})
    arms = campaign_arms(moved)
    assert arms.sticky
    counts = Counter(arms.for_lead(i)["script"] for i in range(20_000))
    assert abs(counts["standard"] / 20_000 - 0.9) < 0.01
    assert not campaign_arms(campaign()).sticky


@pytest.mark.parametrize("value, expected", [
    ("意外险=一份免费的驾乘意外险", {"name": "意外险", "text": "一份免费的驾乘意外险", "weight": 1.0}),
    ("体检=一次免费的体检*2", {"name": "体检", "text": "一次免费的体检", "weight": 2.0}),
    ("星号=五*星服务", {"name": "星号", "text": "五*星服务", "weight": 1.0}),
])
def test_text_arm_option(value: str, expected: dict) -> None:
    assert parse_text_arm("--incentive-arm", value) == expected


@pytest.mark.parametrize("call, message", [
    (lambda: parse_text_arm("--incentive-arm", "没有等号"), "expected NAME=TEXT[*WEIGHT]"),
    (lambda: parse_text_arm("--incentive-arm", "红包=十元*0"), "must be a number above 0"),
    (lambda: build_experiments(holdout=10), "--holdout 10: a share of leads between 0 and 1"),
    (lambda: build_experiments(incentives=[{"name": "a", "text": "x", "weight": 1}] * 2), "given twice"),
    (lambda: build_experiments(bandit_factor="colour"), "--bandit colour: one of script"),
    (lambda: build_experiments(bandit_factor="script", bandit_floor=1.5), "--bandit-floor 1.5"),
])
def test_bad_design_options_are_one_clear_error(call, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("*", r"\*")):
        call()


def waihu(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli.app", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120,
                          env={**os.environ, "WAIHU_DATA_DIR": str(data), "COLUMNS": "200"})


def test_campaign_create_with_incentive_arms_holdout_and_bandit(tmp_path: Path) -> None:
    csv = tmp_path / "leads.csv"
    csv.write_bytes(("手机号,姓名,同意时间\n" + "".join(f"1390000{i:04d},李{i},2026-11-01 10:00\n"
                                                 for i in range(10))).encode("gbk"))
    data = tmp_path / "data"
    assert waihu(data, "leads", "upload", str(csv), "--pack", "p1").returncode == 0
    created = waihu(data, "campaign", "create", "c1", "--pack", "p1", "--variant", "standard",
                    "--variant", "benefit_first", "--incentive-arm", "global:意外险=一份免费的驾乘意外险",
                    "--incentive-arm", "global:体检=一次免费的体检*2", "--welcome-arm", "简短=您好，我是您的专属顾问。",
                    "--holdout", "0.05", "--bandit", "script")
    assert created.returncode == 0, created.stderr
    assert "incentives global:意外险, global:体检" in created.stdout and "holdout 5%" in created.stdout
    assert "bandit on script" in created.stdout
    for args, needle in [
        (("--incentive", "红包", "--incentive-arm", "global:a=b"), "either --incentive"),
        (("--holdout", "10"), "--holdout 10.0: a share of leads between 0 and 1"),
        (("--incentive-arm", "红包"), "expected PACK:NAME=TEXT"),
        (("--bandit", "incentive", "--incentive-arm", "global:a=b"), "--bandit incentive: that factor has 1 arm"),
    ]:
        result = waihu(data, "campaign", "create", "c2", "--pack", "p1", *args)
        assert result.returncode == 1 and needle in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_incentive_arms_are_assigned_within_the_leads_audience_pack() -> None:
    """Issue 16 item 7: a lead is split among its own pack's arms (name, then scene), else the
    global ones, else none (its pack's offers.yml incentive); one arm per name for the report."""
    from bot.campaigns.experiment_design import factor_arms

    arms = [parse_text_arm("--incentive-arm", a, scoped=True) for a in
            ["车主:驾乘险=一份免费的驾乘意外险", "车主:救援=一次免费道路救援*3", "宝妈-华南:儿童险=一份免费的儿童意外险",
             "单身:驾乘险=一份驾乘意外险"]]
    assert arms[2] == {"name": "儿童险", "text": "一份免费的儿童意外险", "weight": 1.0, "audience": "宝妈-华南"}
    split = campaign_arms(campaign(**build_experiments(incentives=arms)))
    car = Counter(split.for_lead(i, ("车主-华东", "车主"))["incentive"] for i in range(8000))
    assert set(car) == {"驾乘险", "救援"} and abs(car["救援"] / 8000 - 0.75) < 0.02
    assert {split.for_lead(i, ("宝妈-华南", "宝妈"))["incentive"] for i in range(200)} == {"儿童险"}
    assert all("incentive" not in split.for_lead(i, ("养老-华北", "养老")) for i in range(200))
    assert [a["name"] for a in factor_arms(campaign(**build_experiments(incentives=arms)), "incentive")] == [
        "驾乘险", "救援", "儿童险"]
    with_global = campaign(**build_experiments(incentives=arms + [parse_text_arm("--incentive-arm", "global:红包=一个红包",
                                                                                  scoped=True)]))
    assert {campaign_arms(with_global).for_lead(i, ("养老-华北", "养老"))["incentive"] for i in range(50)} == {"红包"}
    texts = {incentive_text_for(with_global, {"incentive": "驾乘险"}, keys) for keys in (("车主",), ("单身",))}
    assert texts == {"一份免费的驾乘意外险", "一份驾乘意外险"}
