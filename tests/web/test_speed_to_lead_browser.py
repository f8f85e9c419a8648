"""Issue 17 item 1 in a browser: the manager's report shows 速联 — time from 留资 to the first dial
(p50/p95) and the share dialled within an hour — for a campaign that dials API leads.
Screenshot: tests/artifacts/screenshots/manager-10-report-speed-to-lead.png."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.campaigns.models import CallAttempt
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.dialing.planner import plan_campaign
from bot.leads.api_leads import LeadIn, add_leads
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # Tuesday 10:00 in Shanghai


def test_the_report_shows_time_from_lead_left_to_first_dial(page_for, console, db, keyring) -> None:
    waits = [1, 2, 3, 4, 75]  # minutes from 留资 to the dial
    leads = [
        LeadIn(phone=f"1360000{i:04d}", lead_left_at=NOW - timedelta(minutes=w), external_id=f"form-{i}")
        for i, w in enumerate(waits)
    ]
    add_leads(db, keyring, leads, audience="车主", now=NOW)
    with session_scope(db) as session:
        campaign = create_campaign(session, name="速联演示", packs=["API·车主"], lines=10, cps=5)
        change_status(session, "速联演示", "start", now=NOW - timedelta(days=1))
        created = plan_campaign(session, campaign, NOW).created
        for attempt in session.execute(select(CallAttempt).where(CallAttempt.id.in_(created))).scalars():
            attempt.status, attempt.dialed_at, attempt.history_outcome = "completed", NOW, "no_answer"
        campaign_id = campaign.id
    assert len(created) == 5

    manager = page_for("manager")
    manager.goto(f"{console.url}/reports?campaign_id={campaign_id}")
    manager.wait_for_selector("#speed-to-lead")
    row = manager.inner_text("#speed-to-lead tr[data-lane='priority']")
    assert "接口线索（优先通道）" in row and "3.0 分钟" in row and "80.0%" in row
    assert "速联：接口线索（优先通道）" in manager.inner_text("#report-summary")
    no_unmasked_phone(manager)
    shot(manager, "manager-10-report-speed-to-lead")
