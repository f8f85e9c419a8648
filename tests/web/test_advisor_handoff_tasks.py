"""Issue 17/18 on the console: a hand-off nobody took is on the advisor's task list as
转人工·回电 with its call-back window; the advisor reveals the number (audited) and marks it
已回电; past its due time it shows 已超时 to the managers, who see every advisor's tasks."""

from __future__ import annotations

from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.users.service import add_user, set_wecom_userid
from bot.wecom.advisor_models import AdvisorTask, RevealAudit
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import MOBILE, clients, console  # noqa: F401
from tests.web.test_advisor_tasks import ADVISORS, advisor_client
from tests.wecom.conftest import _test_secret, seed_campaign  # noqa: F401
from tests.wecom.test_advisor_handoff import log_failed_hand_off

OVERDUE = '<span class="warning">已超时</span>'


def test_the_advisor_calls_back_a_failed_hand_off_and_managers_see_it_overdue(console, clients, db, keyring):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"车主-华东": ("车主", 1)}, name="转人工回电页")
        for user, (password, userid) in ADVISORS.items():
            add_user(session, user, password, "advisor")
            set_wecom_userid(session, user, userid)
    log_failed_hand_off(db, campaign_id, packs["车主-华东"][0])  # 2026-11-24: long overdue by now
    with session_scope(db) as session:
        task = session.execute(select(AdvisorTask)).scalar_one()

    manager_page = clients("manager").get("/advisor/tasks")
    assert manager_page.status_code == 200 and f'data-task="{task.id}"' in manager_page.text
    assert 'task-handoff">转人工·回电' in manager_page.text
    assert OVERDUE in manager_page.text and "待回电" in manager_page.text
    assert "回电时段 2026-11-24 10:30" in manager_page.text and not MOBILE.findall(manager_page.text)

    xiao = advisor_client(console.url, "xiao.an")
    page = xiao.get("/advisor/tasks")
    assert 'task-handoff">转人工·回电' in page.text and "标记已回电" in page.text and "机器人不会代为回拨" in page.text
    assert f'data-task="{task.id}"' not in advisor_client(console.url, "lao.wang").get("/advisor/tasks").text
    shown = xiao.post(f"/advisor/tasks/{task.id}/reveal", headers={"Accept": "text/html"})
    assert shown.status_code == 200 and len(MOBILE.findall(shown.text)) == 1
    done = xiao.post(f"/advisor/tasks/{task.id}/done", headers={"Accept": "text/html"}, follow_redirects=True)
    assert done.status_code == 200 and f"任务 WH{task.id} 已标记为已回电" in done.text
    with session_scope(db) as session:
        assert session.get(AdvisorTask, task.id).status == "done"
        assert [a.user_name for a in session.execute(select(RevealAudit)).scalars()] == ["xiao.an"]
    after = clients("manager").get("/advisor/tasks")
    assert "已回电" in after.text and OVERDUE not in after.text
