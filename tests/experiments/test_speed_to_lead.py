"""The report's speed to lead (留资 → first dial) per campaign and lane, on SQLite and PostgreSQL:
p50/p95 and the share dialled within an hour, in the JSON, the summary and the HTML report."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.dialing.planner import plan_campaign
from bot.experiments.report import build_report
from bot.experiments.report_html import render_report_html
from bot.experiments.speed_to_lead import speed_to_lead
from bot.leads.api_leads import LeadIn, add_leads
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401

MORNING = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # Tuesday 10:00 in Shanghai
# Minutes from 留资 to the first dial of each of the five API leads.
WAITS = [2, 3, 4, 10, 90]


def test_time_from_lead_left_to_first_dial(db, keyring) -> None:
    leads = [
        LeadIn(phone=f"1360000{i:04d}", lead_left_at=MORNING - timedelta(minutes=w), external_id=f"w{i}")
        for i, w in enumerate(WAITS)
    ]
    leads.append(LeadIn(phone="13600009999", lead_left_at=MORNING - timedelta(hours=3), external_id="not-yet"))
    add_leads(db, keyring, leads, audience="车主", now=MORNING)
    with session_scope(db) as session:
        campaign = create_campaign(session, name="speed", packs=["API·车主"], lines=5, cps=5)
        change_status(session, "speed", "start", now=MORNING - timedelta(days=1))
        created = plan_campaign(session, campaign, MORNING).created  # five lines: the sixth waits
        for attempt in session.execute(select(CallAttempt).where(CallAttempt.id.in_(created))).scalars():
            attempt.status, attempt.dialed_at, attempt.history_outcome = "completed", MORNING, "no_answer"
        campaign_id = campaign.id
    with session_scope(db) as session:
        (row,) = speed_to_lead(session, campaign_id)
        report = build_report(session, session.get(Campaign, campaign_id))
    planned_waits = sorted(WAITS)  # the newest five were planned (not the 3-hour-old one)
    assert (row.lane, row.leads, row.dialled) == ("priority", 6, 5)
    # Linear interpolation between ranks, as PostgreSQL's percentile_cont: SQLite must agree.
    assert abs(row.p50_s - 60 * planned_waits[2]) < 1
    assert abs(row.p95_s - 60 * (planned_waits[3] + 0.8 * (planned_waits[4] - planned_waits[3]))) < 1
    assert row.within_hour == 4 and row.within_hour_share == 0.8
    assert report["speed_to_lead"][0]["within_1h_share"] == 0.8
    line = next(text for text in report["summary"] if text.startswith("速联"))
    assert "已拨 5 条" in line and "中位 4.0 分钟" in line and "1 小时内拨打 80%" in line
    html = render_report_html(report)
    assert "速联：从留资到首次拨打" in html and "接口线索（优先通道）" in html


def test_a_campaign_without_lead_left_times_has_no_speed_section(db, keyring, tmp_path) -> None:
    from tests.dialing.test_planner import add_pack

    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 3)
        campaign = create_campaign(session, name="plain", packs=["pack-a"])
        assert speed_to_lead(session, campaign.id) == []
        report = build_report(session, campaign)
    assert report["speed_to_lead"] == [] and "速联" not in render_report_html(report)
