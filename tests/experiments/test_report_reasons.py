"""Issue 16, managers (items 8–10): every verdict of the report says why, in every output; a
factor is judged only on metrics it can move (the others are checks, 核对项); and "how many
more" is said in days at the recent pace, or "差异太小，不值得继续等" beyond the horizon.

The campaigns here are built with exact rates (lead i of an arm is graded by i mod 100), so
the statistics are what the test says they are, not a random draw."""
from __future__ import annotations

import csv
import html
import io
import math
import zlib
from datetime import datetime, timedelta, timezone

from bot.campaigns.experiment_design import build_experiments
from bot.campaigns.models import Campaign
from bot.campaigns.service import campaign_arms, create_campaign
from bot.cli.console import console
from bot.cli.report_commands import print_tables, write_csv
from bot.core.db.engine import session_scope
from bot.experiments.report import HORIZON_DAYS, MIN_SAMPLE_SIZE, build_report
from bot.experiments.report_html import render_report_html
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.experiments.data import Outcome, add_audience_leads, attempt_row, write_attempts
from tests.experiments.test_report import SLOTS, VARIANTS, arm_of

DAY1 = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai


def exact_campaign(session, keyring, *, name: str, leads: int, days: int, answered, grade,
                   experiments: dict | None = None) -> int:
    """`leads` leads dialled once each, spread evenly over `days` days; `answered(arms, i)` and
    `grade(arms, i)` decide lead i of its time-slot arm. Returns the campaign id."""
    people = add_audience_leads(session, keyring, pack=f"p-{name}", audience=f"a-{name}", scene="车主", count=leads,
                                first_phone=zlib.crc32(name.encode()) % 1000 * 10_000)
    campaign = create_campaign(session, name=name, packs=[f"p-{name}"], variants=VARIANTS, time_slots=SLOTS,
                               experiments=experiments)
    arms = campaign_arms(campaign)
    seen: dict[str, int] = {}
    rows = []
    for k, (lead_id, phone) in enumerate(people):
        lead_arms = arms.for_lead(lead_id)
        i = seen[lead_arms["time_slot"]] = seen.get(lead_arms["time_slot"], -1) + 1
        if answered(lead_arms, i):
            outcome = Outcome("answered", grade(lead_arms, i), 40.0 + i % 7, False)
        else:
            outcome = Outcome("no_answer", None, None, False)
        at = DAY1 + timedelta(days=k % days, minutes=k % 97)
        rows.append(attempt_row(campaign.id, lead_id, 1, keyring.hash_phone(phone), lead_arms, outcome, at))
    write_attempts(session.connection(), rows)
    return campaign.id


def report_of(db, campaign_id: int, **kwargs) -> dict:
    with session_scope(db) as session:
        return build_report(session, session.get(Campaign, campaign_id), **kwargs)


def cli_text(report: dict) -> str:
    with console.capture() as captured:
        print_tables(report)
    return captured.get()


def every_comparison(report: dict):
    for factor in report["factors"]:
        for table in [factor["overall"], *factor["by_audience"]]:
            for arm in table["arms"]:
                for key, comparison in arm["vs_control"].items():
                    yield factor, arm, key, comparison


# ---- item 8: say why everywhere -----------------------------------------------------------------


def test_a_too_small_sample_says_why_it_is_inconclusive_everywhere(db, keyring) -> None:
    """傍晚's A rate is a quarter of 上午's (p far below 0.05, chance to win ~0%), but the larger arm
    has fewer than 150 A calls: 尚无定论, and every output says that this is why."""
    with session_scope(db) as session:
        campaign_id = exact_campaign(session, keyring, name="few", leads=400, days=4, answered=lambda arms, i: True,
                                     grade=lambda arms, i: "A" if i % 100 < (30 if arms["time_slot"] == "上午" else 8)
                                     else "C")
    report = report_of(db, campaign_id, factor="time_slot")
    a_rate = arm_of(report["factors"][0]["overall"], "傍晚")["vs_control"]["a_rate"]
    assert a_rate["p_adjusted"] < 0.01 and a_rate["chance_to_win"] < 0.01 and a_rate["lift"] < -0.5
    assert a_rate["decision"] == "inconclusive"
    reason = a_rate["reason"]
    assert reason.startswith("数据还太少") and f"至少一组到 {MIN_SAMPLE_SIZE}" in reason and "看似显著" in reason
    assert reason in a_rate["hint"]
    # one reason per verdict, for every comparison of the report
    for _, _, _, comparison in every_comparison(report):
        assert comparison["reason"] and comparison["decision_label"]

    text = cli_text(report)
    assert "结论说明" in text and "傍晚 · A 类率：尚无定论：数据还太少" in text.replace("\n", "")
    assert reason in html.unescape(render_report_html(report))
    rows = list(csv.DictReader(io.StringIO(_csv(report))))
    row = next(r for r in rows if r["breakdown"] == "overall" and r["arm"] == "傍晚" and r["metric"] == "a_rate")
    assert row["reason"] == reason


def _csv(report: dict) -> str:
    out = io.StringIO()
    write_csv(report, out)
    return out.getvalue()


def test_a_decided_verdict_says_why_too(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id = exact_campaign(session, keyring, name="many", leads=1600, days=4, answered=lambda arms, i: True,
                                     grade=lambda arms, i: "A" if i % 100 < (40 if arms["time_slot"] == "上午" else 20)
                                     else "C")
    report = report_of(db, campaign_id, factor="time_slot")
    a_rate = arm_of(report["factors"][0]["overall"], "傍晚")["vs_control"]["a_rate"]
    assert a_rate["decision"] == "lose"
    assert a_rate["reason"].startswith("校正后 p") and "低于 0.05" in a_rate["reason"] and "计数已够" in a_rate["reason"]
    assert f"傍晚 · A 类率：{a_rate['hint']}" in cli_text(report).replace("\n", "")


# ---- item 9: only metrics a factor can move -----------------------------------------------------


def test_script_and_incentive_connect_rates_are_checks_not_verdicts(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id = exact_campaign(session, keyring, name="checks", leads=1200, days=4,
                                     answered=lambda arms, i: i % 10 < 6, grade=lambda arms, i: "A" if i % 3 else "C")
    report = report_of(db, campaign_id)
    script = next(f for f in report["factors"] if f["factor"] == "script")
    slot = next(f for f in report["factors"] if f["factor"] == "time_slot")
    assert set(script["checks"]) == {"connect_rate"} and "接听" in script["checks"]["connect_rate"]
    assert slot["checks"] == {}  # the time slot does decide who picks up
    connect = arm_of(script["overall"], "benefit_first")["vs_control"]["connect_rate"]
    assert connect["check"] and connect["decision"] == "check" and connect["decision_label"] == "核对项"
    assert connect["p_adjusted"] == connect["p_value"]  # outside the corrected family
    assert "不下结论" in connect["reason"] and connect["leads_needed_per_arm"] is None
    assert arm_of(slot["overall"], "傍晚")["vs_control"]["connect_rate"]["decision"] in ("inconclusive", "win", "lose")
    assert not arm_of(script["overall"], "benefit_first")["vs_control"]["a_rate"]["check"]

    text = cli_text(report)
    assert "接通率（核对项）" in text and "核对项（话术在客户接听之后才开始，影响不了接通率）" in text
    html = render_report_html(report)
    assert "核对项" in html and "话术在客户接听之后才开始，影响不了接通率" in html


def test_incentive_and_welcome_are_judged_only_on_what_they_can_move(db, keyring) -> None:
    experiments = build_experiments(
        incentives=[{"name": "意外险", "text": "一份免费的驾乘意外险"}, {"name": "体检", "text": "一次免费体检"}],
        welcomes=[{"name": "热情", "text": "您好，我是您的专属顾问"}, {"name": "简洁", "text": "您好"}])
    with session_scope(db) as session:
        campaign_id = exact_campaign(session, keyring, name="offers", leads=600, days=3, experiments=experiments,
                                     answered=lambda arms, i: i % 10 < 6, grade=lambda arms, i: "A" if i % 3 else "C")
    report = report_of(db, campaign_id)
    incentive = next(f for f in report["factors"] if f["factor"] == "incentive")
    welcome = next(f for f in report["factors"] if f["factor"] == "welcome")
    assert set(incentive["checks"]) == {"connect_rate"}
    assert set(welcome["checks"]) == {m["key"] for m in report["metrics"]}  # sent after the add: moves none
    decisions = {key: c["decision"] for key, c in welcome["overall"]["arms"][1]["vs_control"].items()}
    assert set(decisions.values()) <= {"check", "check_alert"}
    assert any(line.startswith("【欢迎语】欢迎语在客户加好友之后才发送") for line in report["summary"])


def test_a_check_that_differs_is_flagged_not_declared_a_winner(db, keyring) -> None:
    """Connect rates that differ by script arm cannot be the script's doing: a check alert."""
    with session_scope(db) as session:
        campaign_id = exact_campaign(session, keyring, name="broken", leads=1600, days=4,
                                     answered=lambda arms, i: i % 10 < (7 if arms["script"] == "standard" else 3),
                                     grade=lambda arms, i: "A" if i % 3 else "C")
    report = report_of(db, campaign_id, factor="script")
    connect = arm_of(report["factors"][0]["overall"], "benefit_first")["vs_control"]["connect_rate"]
    assert connect["decision"] == "check_alert" and connect["decision_label"] == "核对项异常"
    assert "分组或拨打环节可能有问题" in connect["reason"]
    assert any("接通率（核对项）异常" in line for line in report["summary"])
    assert not any("接通率上落后" in line for line in report["summary"])


# ---- item 10: days at the current volume, or not worth waiting ----------------------------------


def test_how_long_still_is_in_days_at_the_recent_pace(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id = exact_campaign(
            session, keyring, name="pace", leads=1200, days=6, answered=lambda arms, i: True,
            grade=lambda arms, i: ("A" if i % 100 < (30 if arms["time_slot"] == "上午" else 34) else
                                   "B" if i % 100 < (50 if arms["time_slot"] == "上午" else 51) else "C"))
    report = report_of(db, campaign_id, factor="time_slot")
    table = report["factors"][0]["overall"]
    pace = table["pace"]
    assert pace["days"] == 6 and pace["through"] == "2026-11-29"
    control, evening = arm_of(table, "上午"), arm_of(table, "傍晚")
    assert pace["leads_per_day"]["上午"] * 6 == control["leads"] and pace["leads_per_day"]["傍晚"] * 6 == evening["leads"]

    a_rate = evening["vs_control"]["a_rate"]  # 30% → 34%: a real difference, not yet significant
    assert a_rate["decision"] == "inconclusive" and a_rate["leads_needed_per_arm"]
    needed = a_rate["leads_needed_per_arm"]
    expected = math.ceil(max((needed - arm["leads"]) / pace["leads_per_day"][arm["arm"]] for arm in (control, evening)))
    assert a_rate["days_needed"] == expected
    if expected <= HORIZON_DAYS:
        assert f"约再拨 {expected} 天" in a_rate["hint"] and a_rate["worth_waiting"] is True
    else:
        assert "差异太小，不值得继续等" in a_rate["hint"] and a_rate["worth_waiting"] is False
    assert "按最近 6 天的拨打量" in a_rate["hint"]

    ab_rate = evening["vs_control"]["ab_rate"]  # 50% → 51%: too small to be worth the wait
    assert ab_rate["decision"] == "inconclusive" and ab_rate["worth_waiting"] is False
    assert "差异太小，不值得继续等" in ab_rate["hint"]
    assert ab_rate["days_needed"] is None or ab_rate["days_needed"] > HORIZON_DAYS
    # a number of leads is never the whole answer: every wait is said in days or as not worth it
    for _, _, _, comparison in every_comparison(report):
        if comparison["leads_needed_per_arm"]:
            assert "天" in comparison["hint"] or "不值得" in comparison["hint"]
