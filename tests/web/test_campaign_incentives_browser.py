"""Issue 16 items 6 and 7 in a browser: the campaign form lists every problem at once; the
campaign page, a call's detail and the A/B report show per audience pack the incentive the
robot says. Screenshots go to tests/artifacts/screenshots/."""
from __future__ import annotations

import pytest

from bot.campaigns.experiment_design import build_experiments, parse_text_arm
from bot.core.db.engine import session_scope
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_form_problems_and_incentives_per_pack_in_the_browser(page_for, console, db, keyring):
    arms = build_experiments(incentives=[parse_text_arm("--incentive-arm", a, scoped=True) for a in
                                         ["车主:驾乘险=一份免费的驾乘意外险", "车主:道路救援=一次免费道路救援",
                                          "global:红包=一个十元红包"]])
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 6), "宝妈-华南": ("宝妈", 4),
                                                              "养老-华北": ("养老", 3)},
                                           name="分人群利益点", experiments=arms)
    attempt_id = log_graded_call(db, campaign_id, leads["宝妈-华南"][0], "A")

    ops = page_for("ops")
    ops.goto(f"{console.url}/ops/campaigns/{campaign_id}")
    table = ops.inner_text("#incentives-table")
    assert "一份免费的驾乘意外险" in table and "一个十元红包" in table and "本任务的利益点 A/B" in table
    no_unmasked_phone(ops)
    shot(ops, "ops-8-campaign-incentives-per-pack")

    ops.goto(f"{console.url}/ops/campaigns")
    ops.fill('input[name="name"]', "多处错误")
    ops.fill('input[name="lines"]', "5")
    ops.fill("textarea[name=slots]", "上午=09:30-12:00\n夜间=20:00-22:00\n中午=12点-14点")
    ops.click("summary")
    ops.fill("textarea[name=incentive_arms]", "红包=十元红包")
    ops.click('#campaign-form button[type="submit"]')
    ops.wait_for_selector("ul.problems")
    problems = ops.inner_text("ul.problems")
    assert "拨打时段“夜间=20:00-22:00”：超出合规拨打窗口" in problems and "请注明用于哪个人群包" in problems
    assert "线索名单：请至少选择一个线索名单" in problems and "窗口“12点-14点”" in problems
    shot(ops, "ops-9-campaign-form-every-problem")

    manager = page_for("manager")
    manager.goto(f"{console.url}/calls/{attempt_id}")
    said = manager.inner_text("#call-incentive")
    assert "一个十元红包" in said and "企微邀请里的利益点：一个十元红包" in said
    shot(manager, "manager-7-call-incentive")
    manager.goto(f"{console.url}/reports?campaign_id={campaign_id}")
    assert "一次免费的理赔绿色通道服务" not in manager.inner_text("#incentives-table")  # 养老 gets the global arm
    shot(manager, "manager-8-report-incentives-per-pack")
