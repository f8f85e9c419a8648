"""Issue 17 item 2 in a browser: leads routed to people by dialogs/routing.yml show on the
advisors' task page (人工跟进线索) with masked numbers; the assigned advisor reveals one
(audited, shown once) and marks it done, another advisor's lead is not theirs; the manager
sees every routed lead and the audit and downloads the human queue as CSV, masked.
Screenshots go to tests/artifacts/screenshots/."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.dialing.routing import set_route
from bot.dialing.routing_models import DONE, HUMAN, LeadRoute, RouteReveal
from bot.leads.models import Lead
from bot.users.service import add_user, set_wecom_userid
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import MOBILE, console  # noqa: F401
from tests.web.test_advisor_tasks import ADVISORS
from tests.web.test_advisor_tasks_browser import advisor_page
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.wecom.conftest import _test_secret, seed_campaign  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ROUTED_AT = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


def seed_routes(db, keyring) -> tuple[int, int]:
    with session_scope(db) as session:
        _, packs = seed_campaign(session, keyring, {"车主-华东": ("车主", 2)}, name="分流")
        for user, (password, userid) in ADVISORS.items():
            add_user(session, user, password, "advisor")
            set_wecom_userid(session, user, userid)
        mine, other = packs["车主-华东"]
        set_route(
            session, mine, HUMAN, "dialogs/routing.yml:4", "留资 0–7 天", ROUTED_AT, advisor=ADVISORS["xiao.an"][1]
        )
        set_route(session, other, HUMAN, "dialogs/routing.yml:4", "留资 0–7 天", ROUTED_AT, advisor="another_advisor")
    return mine, other


def test_advisor_reveals_a_routed_lead_and_the_manager_exports_the_queue(browser, page_for, console, db, keyring):
    mine, other = seed_routes(db, keyring)
    with session_scope(db) as session:
        clear = keyring.decrypt_phone(session.get(Lead, mine).phone_ciphertext)

    context, advisor = advisor_page(browser, console, "xiao.an")
    try:
        advisor.goto(f"{console.url}/advisor/tasks")
        advisor.wait_for_selector("#routed-leads")
        assert advisor.locator(f'#routed-leads tr[data-lead="{other}"]').count() == 0  # another advisor's lead
        no_unmasked_phone(advisor)
        shot(advisor, "advisor-4-routed-leads-masked")
        advisor.click(f"#reveal-lead-{mine}")
        advisor.wait_for_selector(f"#revealed-lead-{mine}")
        assert advisor.inner_text(f"#revealed-lead-{mine}") == clear
        assert MOBILE.findall(advisor.inner_text("#routed-leads")) == [clear]
        shot(advisor, "advisor-5-routed-lead-revealed-once")
        advisor.click(f"#route-done-{mine}")
        advisor.wait_for_selector(".flash.success")
        assert "已标记为跟进完成" in advisor.inner_text(".flash.success")
        assert clear not in advisor.content()
        assert advisor.locator(f'tr[data-lead="{mine}"]').count() == 0
    finally:
        context.close()

    manager = page_for("manager")
    manager.goto(f"{console.url}/advisor/tasks")
    assert manager.locator(f'#routed-leads tr[data-lead="{other}"]').count() == 1
    assert "xiao.an" in manager.inner_text("#routed-reveal-audit")
    assert manager.locator(f"#reveal-lead-{other}").count() == 0  # no reveal for managers
    no_unmasked_phone(manager)
    shot(manager, "manager-14-routed-leads-and-audit")
    cookies = {c["name"]: c["value"] for c in manager.context.cookies()}
    csv = httpx.get(f"{console.url}/advisor/routes.csv", cookies=cookies)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    body = csv.content.decode("utf-8-sig")
    assert body.splitlines()[0].startswith('"线索编号","客户","手机号","分流"')
    assert str(other) in body and "人工跟进" in body and not MOBILE.findall(body)

    with session_scope(db) as session:
        assert [r.lead_id for r in session.execute(select(RouteReveal)).scalars()] == [mine]
        assert session.execute(select(LeadRoute.status).where(LeadRoute.lead_id == mine)).scalar() == DONE
