"""Issues 16/18 item 4 in a browser: the campaign page shows the caller-number pool (number,
归属地, 今日已用/上限, 已休息 with its reason, the deferral notice when every number is
capped); the call page shows the callee's 归属地 and the caller number used; the manager's
report shows connect rate per caller number and local vs non-local. Screenshots go to
tests/artifacts/screenshots/."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from bot.campaigns.caller_numbers import add_caller_number, set_rested, take_caller_number
from bot.campaigns.models import CallAttempt
from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import USERS, console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
NANJING, SHANGHAI, SHENZHEN = "02512345678", "02161234567", "075512345678"


def test_campaign_and_call_pages_show_regions_and_the_pool(page_for, console, db, keyring):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 6)}, name="号码池")
        add_caller_number(session, campaign_id, NANJING, 2)
        add_caller_number(session, campaign_id, SHANGHAI, 1)
        add_caller_number(session, campaign_id, SHENZHEN, 5)
        set_rested(session, campaign_id, SHENZHEN, True, "接通率 8%（近 50 通）远低于号码池 40%", utc_now())
        for lead_id in leads["车主-华东"]:
            session.execute(
                update(Lead)
                .where(Lead.id == lead_id)
                .values(province="江苏", city="南京市", timezone="Asia/Shanghai", region_source="column")
            )
        for _ in range(3):
            take_caller_number(session, campaign_id, "江苏", "南京市", utc_now())
    attempt_id = log_graded_call(db, campaign_id, leads["车主-华东"][0], "A")
    with session_scope(db) as session:
        session.execute(
            update(CallAttempt).where(CallAttempt.id == attempt_id).values(caller_number=NANJING, caller_match="city")
        )

    ops = page_for("ops")
    ops.goto(f"{console.url}/ops/campaigns/{campaign_id}")
    pool = ops.inner_text("#caller-numbers")
    assert "主叫号码池" in pool
    assert "02512345678\t江苏 南京市\t2/2\t今日已满" in pool
    assert "02161234567\t上海市\t1/1\t今日已满" in pool
    assert "已休息 接通率 8%（近 50 通）远低于号码池 40%" in pool
    assert "所有主叫号码今日已达上限或已休息，拨打已顺延" in ops.inner_text("#caller-numbers-deferred")
    no_unmasked_phone(ops)
    shot(ops, "ops-11-campaign-caller-numbers")

    ops.goto(f"{console.url}/calls/{attempt_id}")
    assert ops.inner_text("#call-region") == "江苏 南京市 （名单城市列）"
    assert ops.inner_text("#call-caller-number") == "02512345678（本市号码）"
    no_unmasked_phone(ops)
    shot(ops, "ops-12-call-region")

    manager = page_for("manager")
    manager.goto(f"{console.url}/reports?campaign_id={campaign_id}")
    assert "本市号码" in manager.inner_text("#caller-locality")
    assert "02512345678" in manager.inner_text("#caller-numbers")
    shot(manager, "manager-10-report-caller-numbers")
