"""Issue 17 item 4 in a browser: the manager's report shows the conversion metrics (成交率,
每线索保费, 每次拨打保费 with intervals) and the full funnel 拨打 → 接通 → A/B → 邀请 → 添加 →
成交 → 保费, overall and per arm, and the funnel downloads as CSV.
Screenshot: tests/artifacts/screenshots/manager-11-report-conversions.png."""

from __future__ import annotations

import io
from csv import reader

import httpx
import pytest

from bot.core.db.engine import session_scope
from bot.experiments.conversions import ConversionIn, record_conversions
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.experiments.test_conversions import build_campaign
from tests.web.conftest import console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_report_shows_conversions_and_the_full_funnel(page_for, console, db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, leads = build_campaign(session, keyring)
        record_conversions(
            session,
            keyring,
            [
                ConversionIn("B-1", "百万医疗", "1000", "2026-11-27 15:00", phone=leads[0][1]),
                ConversionIn("B-2", "重疾险", "500", "2026-11-26 15:00", phone=leads[2][1]),
                ConversionIn("B-3", "重疾险", "2000", "2026-11-26 15:00", phone=leads[3][1]),
            ],
            source="api",
        )
    manager = page_for("manager")
    manager.goto(f"{console.url}/reports?campaign_id={campaign_id}")
    manager.wait_for_selector("#funnel")
    overall = manager.inner_text("#funnel tr[data-funnel='overall']")
    assert overall.split() == ["全部", "6", "5", "3", "0", "0", "3", "3,500.00", "50.0%"]
    standard = manager.inner_text("#funnel tr[data-funnel='script:standard']")
    assert "1,500.00" in standard and "66.7%" in standard
    summary = manager.inner_text("#report-summary")
    assert "成交率" in summary and "每次拨打保费" in summary and "583.33 元" in summary  # 3,500 ÷ 6 leads
    no_unmasked_phone(manager)
    shot(manager, "manager-11-report-conversions")

    cookies = {cookie["name"]: cookie["value"] for cookie in manager.context.cookies()}
    csv = httpx.get(
        f"{console.url}/api/v1/reports/conversion-funnel.csv", params={"campaign_id": campaign_id}, cookies=cookies
    )
    assert csv.status_code == 200, csv.text
    rows = list(reader(io.StringIO(csv.content.decode("utf-8-sig"))))
    assert rows[0] == ["分组", "拨打", "接通", "A/B", "邀请", "添加", "成交", "保费（元）", "成交率"]
    assert rows[1][:8] == ["全部", "6", "5", "3", "0", "0", "3", "3500"]
