"""Issue 16 item 16 in a browser: ops corrects a call's grade on the call page (twice: the
history shows both, with the robot's grade kept), and the manager's A/B report counts the
corrected call per arm. Screenshots go to tests/artifacts/screenshots/."""
from __future__ import annotations

import pytest

from bot.core.db.engine import session_scope
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import USERS, console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_ops_corrects_a_grade_and_the_report_counts_it(page_for, console, db, keyring):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 6)}, name="人工更正")
    attempt_id = log_graded_call(db, campaign_id, leads["车主-华东"][0], "C")

    ops = page_for("ops")
    ops.goto(f"{console.url}/calls/{attempt_id}")
    ops.select_option('#grade-form select[name="grade"]', "B")
    ops.fill('#grade-form input[name="reason"]', "客户问了保费，应为可能有意向")
    ops.click('#grade-form button[type="submit"]')
    ops.wait_for_selector('tr[data-correction="1"]')
    ops.select_option('#grade-form select[name="grade"]', "A")
    ops.fill('#grade-form input[name="reason"]', "回访确认有明确意向")
    ops.click('#grade-form button[type="submit"]')
    ops.wait_for_selector('tr[data-correction="2"]')
    history = ops.inner_text("#grade-corrections")
    assert "机器人原评：C 明确拒绝" in history
    assert "客户问了保费，应为可能有意向" in history and "回访确认有明确意向" in history
    assert history.count(USERS["ops"]) == 2
    assert "A 有明确意向" in ops.inner_text("#call-grade") and "机器人原评 C" in ops.inner_text("#call-grade")
    no_unmasked_phone(ops)
    shot(ops, "ops-10-call-grade-corrected")

    manager = page_for("manager")
    manager.goto(f"{console.url}/reports?campaign_id={campaign_id}")
    assert "人工更正" in manager.inner_text("#report-summary")
    assert any("人工更正 1 通" in manager.inner_text(f"section.factor[data-factor='{factor}'] table.report-table")
               for factor in ("script", "time_slot"))
    shot(manager, "manager-9-report-grade-corrections")
