"""The A/B report's caller-number checks: connect rate per caller number and local vs
non-local (figures, the summary line, the HTML's Chinese section)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.campaigns.caller_numbers import add_caller_number, set_rested
from bot.campaigns.models import CallAttempt, Campaign
from bot.core.db.engine import session_scope
from bot.experiments.caller_number_report import wilson
from bot.experiments.report import build_report
from bot.experiments.report_html import render_report_html
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack, running_campaign

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc)
NANJING, SHANGHAI = "02512345678", "02161234567"


def _dials(session, campaign_id, lead_ids, number, match, n, connected):
    for i in range(n):
        lead = lead_ids[i % len(lead_ids)]
        session.add(
            CallAttempt(
                campaign_id=campaign_id,
                lead_id=lead,
                attempt_no=1000 * len(match) + i + (0 if number == NANJING else 500),
                phone_hash=f"h{lead}",
                arms={"script": "standard"},
                status="completed",
                outcome="answered" if i < connected else "no_answer",
                history_outcome="answered" if i < connected else "no_answer",
                grade="D" if i < connected else None,
                caller_number=number,
                caller_match=match,
                scheduled_at=NOW - timedelta(hours=2),
                dialed_at=NOW - timedelta(hours=1, seconds=i),
            )
        )


def test_report_shows_connect_rate_per_caller_number_and_locality(db, keyring):
    with session_scope(db) as session:
        lead_ids = add_pack(session, keyring, "pack-a", 20)
        campaign = running_campaign(session)
        add_caller_number(session, campaign.id, NANJING, 300, now=NOW)
        add_caller_number(session, campaign.id, SHANGHAI, 300, now=NOW)
        set_rested(session, campaign.id, SHANGHAI, True, "接通率远低于号码池", NOW)
        _dials(session, campaign.id, lead_ids, NANJING, "city", 100, 40)
        _dials(session, campaign.id, lead_ids, NANJING, "province", 100, 30)
        _dials(session, campaign.id, lead_ids, SHANGHAI, "other", 200, 40)
        campaign_id = campaign.id
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id), method="frequentist")
    checks = report["caller_numbers"]
    per_number = {row["number"]: row for row in checks["numbers"]}
    assert (per_number[NANJING]["dials"], per_number[NANJING]["connected"]) == (200, 70)
    assert per_number[NANJING]["place"] == "江苏 南京市" and not per_number[NANJING]["rested"]
    assert per_number[SHANGHAI]["rate"] == 0.2 and per_number[SHANGHAI]["rested"]
    by_match = {row["match"]: row for row in checks["by_match"]}
    assert by_match["city"]["rate"] == 0.4 and by_match["province"]["rate"] == 0.3 and by_match["other"]["rate"] == 0.2
    assert checks["local"]["rate"] == 0.35 and checks["non_local"]["rate"] == 0.2
    assert checks["local"]["ci"] == list(wilson(70, 200))
    assert checks["local_vs_non_local_p"] < 0.001
    assert any(
        line.startswith("主叫号码：本地号码（本省）接通率 35.0%（200 通），外地号码 20.0%") and "差异显著" in line
        for line in report["summary"]
    )
    html = render_report_html(report)
    assert "主叫号码：接通率（检查项，非 A/B 分组）" in html
    assert 'data-number="02161234567"' in html and "已休息：接通率远低于号码池" in html


def test_no_pool_no_section(db, keyring):
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 2)
        campaign = running_campaign(session)
        report = build_report(session, campaign, method="frequentist")
    assert report["caller_numbers"] is None
    assert "主叫号码" not in render_report_html(report)
