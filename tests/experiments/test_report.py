"""The comparison report on the real database (SQLite and PostgreSQL): the SQL sums per lead
give the same statistics as summing the leads by hand, decisions and SRM warnings follow
the data, filters work, and `waihu report` prints it as tables, JSON, CSV and HTML."""
from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, delete, select

from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import campaign_arms, create_campaign
from bot.core.db.engine import create_database_engine, session_scope
from bot.core.db.migrate import upgrade
from bot.core.errors import UserError
from bot.experiments import lead_metrics
from bot.campaigns.experiment_design import build_experiments
from bot.experiments.metrics import METRICS_BY_KEY
from bot.experiments.report import build_report
from bot.experiments.report_html import render_report_html
from bot.experiments.sequential import sequential_test
from bot.experiments.statistics import Ratio, SampleMean, frequentist_test
from bot.core.pii import PhoneKeyring
from bot.core.settings import PROJECT_ROOT
from telephony.simulator.personas import load_simulator_config
from tests.db_fixtures import TEST_SECRET, db, database_url, keyring, migrated_engine  # noqa: F401
from tests.experiments.data import (Outcome, add_audience_leads, attempt_row, dial_time_in, simulated_outcome,
                                   write_attempts)

DAY1 = datetime(2026, 11, 24)  # a Tuesday (Shanghai dates)
VARIANTS = [{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}]
SLOTS = [{"name": "上午", "windows": ["09:30-12:00"], "weight": 1}, {"name": "傍晚", "windows": ["19:00-20:00"], "weight": 1}]
WINDOW = {"上午": "09:30-12:00", "傍晚": "19:00-20:00"}


def simulated_campaign(session, keyring, *, leads_per_pack: int = 600, days: int = 3, seed: int = 7,
                       name: str = "c", experiments: dict | None = None, drop_arm: str | None = None) -> tuple[int, list]:
    """Two audience packs (宝妈 answer far more at 19-20 h, 养老 in the morning), a campaign
    testing script and slot, each lead dialled on up to `days` days in its slot's window,
    outcomes from the simulator's answer model. Returns (campaign id, the attempt rows)."""
    config = load_simulator_config()
    leads = [(lead, phone, "宝妈") for lead, phone in add_audience_leads(
        session, keyring, pack="p-宝妈", audience="宝妈-华东", scene="宝妈", count=leads_per_pack, first_phone=0)]
    leads += [(lead, phone, "养老") for lead, phone in add_audience_leads(
        session, keyring, pack="p-养老", audience="养老-华北", scene="养老", count=leads_per_pack, first_phone=50_000)]
    campaign = create_campaign(session, name=name, packs=["p-宝妈", "p-养老"], variants=VARIANTS, time_slots=SLOTS,
                               experiments=experiments)
    arms = campaign_arms(campaign)
    rng = random.Random(seed)
    rows = []
    for lead_id, phone, scene in leads:
        lead_arms = arms.for_lead(lead_id)
        if "holdout" in lead_arms or lead_arms["script"] == drop_arm and rng.random() < 0.3:
            continue
        for attempt_no in range(1, days + 1):
            at = dial_time_in(WINDOW[lead_arms["time_slot"]], DAY1 + timedelta(days=attempt_no - 1), rng)
            outcome = simulated_outcome(config, seed, f"{campaign.id}-{lead_id}-{attempt_no}", phone, scene, at)
            rows.append(attempt_row(campaign.id, lead_id, attempt_no, keyring.hash_phone(phone), lead_arms, outcome,
                                    at.astimezone(timezone.utc)))
            if outcome.outcome == "answered":
                break  # a lead that was reached is not called again
    write_attempts(session.connection(), rows)
    return campaign.id, rows


def by_hand(rows: list[tuple], factor: str, arm: str, metric: str) -> Ratio:
    """The metric's statistic summed lead by lead in Python, not SQL."""
    per_lead: dict[int, dict] = defaultdict(lambda: defaultdict(float))
    for (_, lead_id, _, _, arms, _, outcome, history, grade, _, talk, *_rest) in rows:
        if arms[factor] != arm:
            continue
        lead = per_lead[lead_id]
        lead["dials"] += 1
        lead["connected"] += outcome == "answered"
        lead["a"] += grade == "A"
        lead["ab"] += grade in ("A", "B")
        lead["opt_out"] += history == "opt_out"
        lead["talk"] += talk or 0.0
    spec = METRICS_BY_KEY[metric]
    num = [lead[spec.numerator] for lead in per_lead.values()]
    den = [lead[spec.denominator] for lead in per_lead.values()]
    n = len(per_lead)
    return Ratio(n, SampleMean(n, sum(num), sum(x * x for x in num)), SampleMean(n, sum(den), sum(x * x for x in den)),
                 sum(x * y for x, y in zip(num, den)))


def arm_of(table: dict, name: str) -> dict:
    return next(arm for arm in table["arms"] if arm["arm"] == name)


def test_sql_sums_match_the_leads_summed_by_hand(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, rows = simulated_campaign(session, keyring, leads_per_pack=300)
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id), method="frequentist")
    json.dumps(report)  # plain JSON
    slot = next(f for f in report["factors"] if f["factor"] == "time_slot")
    evening = arm_of(slot["overall"], "傍晚")
    for metric in ("connect_rate", "a_rate", "ab_rate", "opt_out_rate", "talk_time"):
        control, treatment = by_hand(rows, "time_slot", "上午", metric), by_hand(rows, "time_slot", "傍晚", metric)
        assert arm_of(slot["overall"], "上午")["metrics"][metric]["value"] == pytest.approx(control.mean)
        expected = frequentist_test(control, treatment)
        got = evening["vs_control"][metric]
        assert got["lift"] == pytest.approx(expected.lift) and got["p_value"] == pytest.approx(expected.p_value)
        assert got["ci"] == pytest.approx(list(expected.ci))
    assert evening["leads"] == len({r[1] for r in rows if r[4]["time_slot"] == "傍晚"})
    assert evening["dials"] == sum(r[4]["time_slot"] == "傍晚" for r in rows)
    assert report["overview"]["dials"] == len(rows)
    # multiple calls per lead: the per-lead variance is not the per-call binomial one
    assert max(r[2] for r in rows) == 3


def test_audience_breakdown_finds_the_built_in_differences(db, keyring) -> None:
    """宝妈 answer at 19-20 h about twice as often as in the morning; 养老 the other way round.
    Overall they cancel out; per audience pack the report must say so."""
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring)
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))
    slot = next(f for f in report["factors"] if f["factor"] == "time_slot")
    assert slot["control"] == "上午" and slot["label"] == "拨打时段"
    decisions = {b["audience"]: arm_of(b, "傍晚")["vs_control"]["connect_rate"] for b in slot["by_audience"]}
    assert decisions["宝妈-华东"]["decision"] == "win" and decisions["宝妈-华东"]["lift"] > 0.3
    assert decisions["养老-华北"]["decision"] == "lose" and decisions["养老-华北"]["lift"] < -0.2
    assert decisions["宝妈-华东"]["hint"].startswith("胜出：傍晚的接通率比对照组高")
    assert decisions["宝妈-华东"]["p_adjusted"] >= decisions["宝妈-华东"]["p_value"]  # Holm never lowers p
    script = next(f for f in report["factors"] if f["factor"] == "script")
    assert all(arm_of(script["overall"], "benefit_first")["vs_control"][m]["decision"] == "inconclusive"
               for m in ("a_rate", "ab_rate"))  # no difference built into the script arms
    waiting = arm_of(script["overall"], "benefit_first")["vs_control"]["a_rate"]
    assert waiting["hint"].startswith("尚无定论") and waiting["decision_label"] == "尚无定论"
    # a script cannot move the connect rate: a check, not a verdict
    assert arm_of(script["overall"], "benefit_first")["vs_control"]["connect_rate"]["decision"] == "check"
    assert not slot["overall"]["srm"]["alert"] and not script["overall"]["srm"]["alert"]
    assert any("人群包「宝妈-华东」" in line for line in report["summary"])
    assert [d["day"] for d in slot["daily"]] == ["2026-11-24", "2026-11-25", "2026-11-26"]
    assert slot["daily"][-1]["leads"] == {a["arm"]: a["leads"] for a in slot["overall"]["arms"]}


def test_srm_alert_when_an_arm_loses_leads(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=500, days=1, drop_arm="benefit_first")
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))
    script = next(f for f in report["factors"] if f["factor"] == "script")
    assert script["overall"]["srm"]["alert"] and script["overall"]["srm"]["p_value"] < 0.001
    assert "样本比例失衡（SRM）告警" in script["overall"]["srm"]["message"]
    assert any("SRM" in line for line in report["summary"])
    slot = next(f for f in report["factors"] if f["factor"] == "time_slot")
    assert not slot["overall"]["srm"]["alert"]  # dropping script leads at random keeps the slot split


def test_filters_and_bad_filters(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, rows = simulated_campaign(session, keyring, leads_per_pack=200)
    with session_scope(db) as session:
        campaign = session.get(Campaign, campaign_id)
        only = build_report(session, campaign, factor="time_slot", audience="宝妈-华东")
        assert [f["factor"] for f in only["factors"]] == ["time_slot"]
        assert [b["audience"] for b in only["factors"][0]["by_audience"]] == ["宝妈-华东"]
        first_day = build_report(session, campaign, until="2026-11-24")
        assert first_day["overview"]["dials"] == sum(r[12] < datetime(2026, 11, 24, 16, tzinfo=timezone.utc) for r in rows)
        # The daily series is the report as it stood at the end of each day.
        full = next(f for f in build_report(session, campaign)["factors"] if f["factor"] == "time_slot")
        then = next(f for f in first_day["factors"] if f["factor"] == "time_slot")
        for key in ("connect_rate", "a_rate", "talk_time"):
            assert full["daily"][0]["metrics"][key] == pytest.approx(
                {arm["arm"]: arm["metrics"][key]["value"] for arm in then["overall"]["arms"]})
            assert full["daily"][0]["lift"][key]["傍晚"]["ci"] == pytest.approx(
                arm_of(then["overall"], "傍晚")["vs_control"][key]["ci"])
        later = build_report(session, campaign, since=datetime(2026, 11, 25), method="bayesian")
        assert later["overview"]["dials"] == sum(r[12] >= datetime(2026, 11, 24, 16, tzinfo=timezone.utc) for r in rows)
        assert later["settings"]["method"] == "bayesian"
        for kwargs, message in [({"factor": "incentive"}, "does not test incentive"),
                                ({"factor": "colour"}, "--factor 'colour'"),
                                ({"audience": "学生"}, "no such audience pack"),
                                ({"method": "magic"}, "--method 'magic'"),
                                ({"since": "yesterday"}, "--since 'yesterday'"),
                                ({"since": "2026-11-26", "until": "2026-11-25"}, "is not before")]:
            with pytest.raises(UserError, match=message):
                build_report(session, campaign, **kwargs)


def test_holdout_and_empty_campaign(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=100, days=0,
                                            experiments=build_experiments(holdout=0.2))
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))
    assert report["overview"]["leads"] == 0 and report["holdout"] == {"share": 0.2, "leads": 0}
    a_rate = arm_of(report["factors"][0]["overall"], "benefit_first")["vs_control"]["a_rate"]
    assert a_rate["decision"] == "inconclusive" and a_rate["error"] and a_rate["hint"].startswith("尚无定论：数据不足")
    assert a_rate["reason"].startswith("数据不足")


def test_wecom_add_rate_from_the_invites_table(db, keyring, monkeypatch) -> None:
    """The WeCom add rate per lead, read from a table with the columns bot.wecom.models'
    WeComInvite has (lead_id, campaign_id, added_at); a stand-in table here, so the test
    does not depend on issue 6's migration."""
    invites = Table("wecom_invites_report_test", MetaData(), Column("id", Integer, primary_key=True),
                    Column("lead_id", Integer), Column("campaign_id", Integer),
                    Column("added_at", DateTime(timezone=True)))
    invites.create(db, checkfirst=True)
    try:
        monkeypatch.setattr(lead_metrics, "wecom_invites_table", lambda: invites)
        with session_scope(db) as session:
            campaign_id, rows = simulated_campaign(session, keyring, leads_per_pack=200, days=1)
            answered = sorted({r[1] for r in rows if r[6] == "answered"})
            added = answered[::2]
            session.execute(invites.insert(), [{"lead_id": lead, "campaign_id": campaign_id,
                                                "added_at": datetime(2026, 11, 24, 5, tzinfo=timezone.utc)
                                                if lead in added else None} for lead in answered])
        with session_scope(db) as session:
            report = build_report(session, session.get(Campaign, campaign_id))
        assert report["wecom_available"] and "wecom_add_rate" in {m["key"] for m in report["metrics"]}
        overall = report["overview"]["metrics"]["wecom_add_rate"]
        assert overall["numerator"] == len(added) and overall["denominator"] == len({r[1] for r in rows})
    finally:
        with db.begin() as connection:
            invites.drop(connection)


def test_html_report_is_self_contained_chinese(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=200)
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))
    html = render_report_html(report)
    assert html.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in html
    assert "Chart.js v4" in html and "<script src" not in html and "http://" not in html.split("<script>")[0]
    for text in ("怎么读这份报告", "拨打时段（对照组：上午）", "按人群包细分", "相对提升随时间累计", "样本比例"):
        assert text in html
    embedded = html.split('<script type="application/json" id="report-data">')[1].split("</script>")[0]
    assert json.loads(embedded)["campaign"]["name"] == "c"


def test_waihu_report_cli(tmp_path: Path, keyring) -> None:
    url = f"sqlite:///{tmp_path / 'waihu.db'}"
    engine = create_database_engine(url)
    upgrade(engine)
    with session_scope(engine) as session:
        simulated_campaign(session, PhoneKeyring.from_secret(TEST_SECRET.encode()), leads_per_pack=150, name="双十一")
    engine.dispose()

    def waihu(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot.cli.app", "report", *args], capture_output=True, text=True,
                              cwd=PROJECT_ROOT, timeout=120,
                              env={**os.environ, "WAIHU_DATABASE_URL": url, "COLUMNS": "220"})

    tables = waihu("双十一")
    assert tables.returncode == 0, tables.stderr
    assert "拨打时段（对照组：上午）" in tables.stdout and "接通率" in tables.stdout and "按人群包" in tables.stdout
    as_json = json.loads(waihu("双十一", "--json", "--factor", "script").stdout)
    assert [f["factor"] for f in as_json["factors"]] == ["script"]
    rows = list(csv.DictReader(io.StringIO(waihu("双十一", "--csv").stdout)))
    assert {r["factor"] for r in rows} == {"script", "time_slot"} and {r["breakdown"] for r in rows} == {"overall", "audience"}
    assert any(r["decision_label"] == "尚无定论" for r in rows)
    page = tmp_path / "report.html"
    written = waihu("双十一", "--html", str(page))
    assert written.returncode == 0 and page.read_text(encoding="utf-8").count("<canvas") == 4
    for args, needle in [(("nope",), "no campaign named 'nope'"), (("双十一", "--json", "--csv"), "choose one of"),
                         (("双十一", "--factor", "welcome"), "does not test welcome"),
                         (("双十一", "--html", str(tmp_path / "missing" / "r.html")), "does not exist")]:
        failed = waihu(*args)
        assert failed.returncode == 1 and needle in failed.stderr and "Traceback" not in failed.stderr, failed.stderr


def test_sequential_is_the_default_and_wider_than_fixed_horizon(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, rows = simulated_campaign(session, keyring, leads_per_pack=200, days=1)
    with session_scope(db) as session:
        campaign = session.get(Campaign, campaign_id)
        default = build_report(session, campaign, factor="time_slot")
        fixed = build_report(session, campaign, factor="time_slot", method="frequentist")
    assert default["settings"]["method"] == "sequential"
    seq = arm_of(default["factors"][0]["overall"], "傍晚")["vs_control"]["connect_rate"]
    fix = arm_of(fixed["factors"][0]["overall"], "傍晚")["vs_control"]["connect_rate"]
    expected = sequential_test(by_hand(rows, "time_slot", "上午", "connect_rate"),
                               by_hand(rows, "time_slot", "傍晚", "connect_rate"))
    assert seq["ci"] == pytest.approx(list(expected.ci))
    assert seq["ci"][1] - seq["ci"][0] > fix["ci"][1] - fix["ci"][0]


def test_two_halves_on_one_snapshot_add_up_to_one_query(db, keyring, monkeypatch) -> None:
    """PostgreSQL sums a large campaign as two halves of its leads on two connections; the
    cells must be exactly those of one query (on SQLite there is only the one query)."""
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=150)
    monkeypatch.setattr(lead_metrics, "PARALLEL_MIN_LEAD_SPAN", 1)
    with session_scope(db) as session:
        if db.dialect.name == "postgresql":
            assert lead_metrics._split_point(session, campaign_id) is not None
        halves = lead_metrics.lead_cells(session, campaign_id)
        whole = lead_metrics.lead_cells(session, campaign_id, parallel=False)

    def keyed(cells):
        return {(tuple(sorted(c.arms.items(), key=lambda kv: kv[0])), c.audience_id, c.day): c.sums for c in cells}

    assert keyed(halves).keys() == keyed(whole).keys()
    for key, sums in keyed(whole).items():
        assert keyed(halves)[key] == pytest.approx(sums)


def test_html_report_draws_its_charts_offline_in_a_browser(db, keyring, tmp_path: Path) -> None:
    """Opened from disk with every network request refused: no script error, the four
    charts drawn from the embedded data, the metric selector redraws."""
    if db.dialect.name != "sqlite":
        pytest.skip("the page is the same for both databases; rendered once")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed in the venv")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=200)
    with session_scope(db) as session:
        page_file = tmp_path / "report.html"
        page_file.write_text(render_report_html(build_report(session, session.get(Campaign, campaign_id))),
                             encoding="utf-8")
    errors, requests = [], []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium),
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route("http*://**", lambda route: (requests.append(route.request.url), route.abort()))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(page_file.as_uri())
            assert page.evaluate("Object.keys(Chart.instances).length") == 4
            lift_points = page.evaluate("Chart.getChart('lift-1').data.datasets.at(-2).data.length")
            assert lift_points == 3  # three days
            page.select_option("select.metric-select.rate[data-factor='1']", "talk_time")
            label = page.evaluate("Chart.getChart('rate-1').options.scales.y.ticks.callback(30)")
            assert label == "30.0 秒"
        finally:
            browser.close()
    assert errors == [] and requests == []
