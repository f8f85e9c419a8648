"""Issue 16 item 7 in the console: the campaign page, the call detail and the A/B report show
the incentive each audience pack is actually offered (per pack where it differs), never the
campaign's single incentive for packs that have their own."""
from __future__ import annotations

import html
import re

from sqlalchemy import select

from bot.audiences.models import AudiencePack
from bot.campaigns.experiment_design import build_experiments, parse_text_arm
from bot.campaigns.models import Campaign
from bot.campaigns.service import campaign_arms
from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from bot.wecom.models import WeComInvite
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import clients, console  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401


def row_of(page: str, audience: str) -> str:
    """The text of the incentive table's rows for one audience pack."""
    rows = re.findall(rf'<tr data-audience="{re.escape(audience)}">(.*?)</tr>', page, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(r)) for r in rows)


def test_pages_show_the_incentive_each_pack_is_offered(console, clients, db, keyring):
    arms = build_experiments(incentives=[parse_text_arm("--incentive-arm", a, scoped=True) for a in
                                         ["车主:驾乘险=一份免费的驾乘意外险", "车主:道路救援=一次免费道路救援"]])
    with session_scope(db) as session:
        tested, _ = seed_campaign(session, keyring, {"车主-华东": ("车主", 6), "宝妈-华南": ("宝妈", 4)},
                                  name="分人群利益点", experiments=arms)
        # the demo's campaign: one incentive, but 宝妈 and 养老 leads are offered their own
        single, leads = seed_campaign(session, keyring, {"宝妈-华北": ("宝妈", 3), "养老-华北": ("养老", 3),
                                                         "单身-华东": ("单身", 3)},
                                      name="统一利益点", incentive="一份免费的短期意外险", first_serial=100)
    ops, manager = clients("ops"), clients("manager")

    page = html.unescape(ops.get(f"/ops/campaigns/{single}").text)
    assert "统一利益点（仅用于没有自己利益点的人群包）：一份免费的短期意外险" in page
    assert "一份免费的儿童意外险" in row_of(page, "宝妈-华北") and "短期意外险" not in row_of(page, "宝妈-华北")
    assert "一次免费的理赔绿色通道服务" in row_of(page, "养老-华北")
    assert "一份免费的短期意外险" in row_of(page, "单身-华东") and "本任务的统一利益点" in row_of(page, "单身-华东")

    page = html.unescape(ops.get(f"/ops/campaigns/{tested}").text)
    car = row_of(page, "车主-华东")
    assert "一份免费的驾乘意外险" in car and "一次免费道路救援" in car and "50%" in car and "本任务的利益点 A/B" in car
    assert "一份免费的儿童意外险" in row_of(page, "宝妈-华南") and "驾乘" not in row_of(page, "宝妈-华南")
    assert "车主:驾乘险（一份免费的驾乘意外险）" in page

    # a graded call of each pack: its detail page says what it offered, as its invitation did
    with session_scope(db) as session:
        campaign = session.get(Campaign, single)
        keys = {lead.id: (pack.name, pack.scene) for lead, pack in session.execute(
            select(Lead, AudiencePack).join(AudiencePack, AudiencePack.id == Lead.audience_id)).all()}
        plans = {lead_id: campaign_arms(campaign).for_lead(lead_id, keys[lead_id])
                 for lead_id in (leads["宝妈-华北"][0], leads["单身-华东"][0])}
    calls = {lead_id: log_graded_call(db, single, lead_id, "A", arms=arms) for lead_id, arms in plans.items()}
    with session_scope(db) as session:
        sent = {i.attempt_id: i.incentive for i in session.execute(select(WeComInvite)).scalars()}
    assert sent[calls[leads["宝妈-华北"][0]]] == "一份免费的儿童意外险"
    assert sent[calls[leads["单身-华东"][0]]] == "一份免费的短期意外险"
    for attempt_id, text in sent.items():
        detail = html.unescape(manager.get(f"/calls/{attempt_id}").text)
        said = re.search(r'<dd id="call-incentive">(.*?)</dd>', detail, flags=re.S).group(1)
        assert text in said and "企微邀请里的利益点：" + text in said and "与当前规则不同" not in said
        assert manager.get(f"/api/v1/calls/{attempt_id}").json()["incentive"] == text

    report = html.unescape(manager.get(f"/reports?campaign_id={single}").text)
    assert "利益点（按人群包" in report
    assert "一份免费的儿童意外险" in row_of(report, "宝妈-华北")
    # the invitation sent is counted against the incentive the pack is offered
    assert re.search(r"一份免费的儿童意外险.*?\s1\s*$", row_of(report, "宝妈-华北").strip(), flags=re.S)
