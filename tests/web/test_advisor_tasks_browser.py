"""Issue 18 item 5 in a browser: the advisor opens 我的添加任务, clicks 显示号码 (the clear
number appears once, for their own task), then 标记已添加; the manager sees every task and
the reveal audit, masked. Screenshots go to tests/artifacts/screenshots/."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from bot.wecom.advisor_models import AdvisorTask, RevealAudit
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import MOBILE, console  # noqa: F401
from tests.web.test_advisor_tasks import ADVISORS, seed_advisor_tasks
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.wecom.conftest import _test_secret  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def advisor_page(browser, console, name: str):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{console.url}/login")
    page.fill('input[name="name"]', name)
    page.fill('input[name="password"]', ADVISORS[name][0])
    page.click('button[type="submit"]')
    page.wait_for_url(f"{console.url}/")
    return context, page


def test_advisor_reveals_and_marks_done_and_the_manager_sees_the_audit(browser, page_for, console, db, keyring):
    _, (task_id, other_task, _third) = seed_advisor_tasks(db, keyring, leads=3)
    with session_scope(db) as session:
        clear = keyring.decrypt_phone(session.get(Lead, session.get(AdvisorTask, task_id).lead_id).phone_ciphertext)

    context, advisor = advisor_page(browser, console, "xiao.an")
    try:
        advisor.click("text=我的添加任务")
        advisor.wait_for_selector("#advisor-tasks")
        no_unmasked_phone(advisor)
        shot(advisor, "advisor-1-task-list-masked")
        advisor.click(f"#reveal-{task_id}")
        advisor.wait_for_selector(f"#revealed-{task_id}")
        assert advisor.inner_text(f"#revealed-{task_id}") == clear
        assert MOBILE.findall(advisor.inner_text("#advisor-tasks")) == [clear]
        shot(advisor, "advisor-2-number-revealed-once")
        advisor.click(f"#done-{task_id}")
        advisor.wait_for_selector(".flash.success")
        assert "已标记为已添加" in advisor.inner_text(".flash.success")
        assert clear not in advisor.content()
        assert "已标记添加" in advisor.inner_text(f'tr[data-task="{task_id}"]')
        shot(advisor, "advisor-3-marked-done")
    finally:
        context.close()

    manager = page_for("manager")
    manager.goto(f"{console.url}/advisor/tasks")
    assert "顾问添加任务（全部顾问）" in manager.inner_text("h1")
    assert "xiao.an" in manager.inner_text("#reveal-audit")
    assert manager.locator("#reveal-1").count() == 0  # no reveal buttons for managers
    no_unmasked_phone(manager)
    shot(manager, "manager-10-advisor-tasks-and-reveal-audit")
    with session_scope(db) as session:
        assert len(session.execute(select(RevealAudit)).scalars().all()) == 1
        assert session.get(AdvisorTask, other_task).status == "open"
