"""Issue 18 item 5, system side: the `advisor_adds` add mode. An A/B mobile lead of such a
campaign gets an advisor task instead of an SMS; only the assigned advisor can see the clear
number and every look is audited; WeCom's add callback (no State, fired by the local WeCom
test server over HTTP) closes the task; the funnel counts the mode's own stages; erasure
takes the tasks and the audit. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.campaigns.service import set_add_mode
from bot.cli.app import app
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.erasure import forget_phone
from bot.leads.models import Lead
from bot.users.models import User
from bot.users.service import add_user
from bot.wecom.advisor_models import AdvisorTask, RevealAudit
from bot.wecom.advisor_tasks import NotYourTask, list_tasks, mark_done, reveal_number, task_code
from bot.wecom.funnel import wecom_funnel
from bot.wecom.models import SmsOutbox, WeComEvent, WeComInvite
from tests.conftest import run
from tests.db_fixtures import TEST_SECRET, db, database_url, keyring, migrated_engine  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign, wecom  # noqa: F401

ADVISOR = "anxin_advisor01"  # dialogs/wecom/offers.yml: advisor.userid


def _advisor_campaign(db, keyring, name="顾问添加测试", leads=4):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"车主-华东": ("车主", leads)}, name=name)
        set_add_mode(session, name, "advisor_adds")
        advisor = add_user(session, "xiao.an", "advisor-pass-1", "advisor")
        advisor.wecom_userid = ADVISOR
        other = add_user(session, "lao.wang", "advisor-pass-2", "advisor")
        other.wecom_userid = "another_advisor"
        add_user(session, "boss", "manager-pass-1", "manager")
    return campaign_id, packs["车主-华东"]


def _user(session, name: str) -> User:
    return session.execute(select(User).where(User.name == name)).scalar_one()


def test_advisor_adds_gives_tasks_not_sms_and_only_the_assigned_advisor_sees_the_number(db, keyring, wecom):
    campaign_id, leads = _advisor_campaign(db, keyring)
    attempts = [log_graded_call(db, campaign_id, lead, grade) for lead, grade in zip(leads, "ABAC")]

    with session_scope(db) as session:
        invites = {i.attempt_id: i for i in session.execute(select(WeComInvite)).scalars()}
        assert set(invites) == set(attempts[:3])  # grade C: no invitation
        assert {(i.channel, i.status) for i in invites.values()} == {("advisor_adds", "assigned")}
        tasks = list_tasks(session, advisor_userid=ADVISOR)
        assert [t.lead_id for t in tasks] == leads[:3]
        assert all(t.phone_masked.startswith("139****") and t.status == "open" for t in tasks)
        assert list_tasks(session, advisor_userid="another_advisor") == []

    report = run(wecom.deliver())  # the delivery pass leaves advisor_adds invitations alone
    assert report.delivered == 0
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(SmsOutbox)).scalar_one() == 0
        assert wecom.server.contact_ways == {}

    task_id = tasks[0].task_id
    with session_scope(db) as session:
        for name in ("lao.wang", "boss"):
            with pytest.raises(NotYourTask):
                reveal_number(session, keyring, task_id, _user(session, name), ip="10.0.0.9")
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(RevealAudit)).scalar_one() == 0
        phone = reveal_number(session, keyring, task_id, _user(session, "xiao.an"), ip="10.0.0.7", user_agent="UA")
        lead = session.get(Lead, leads[0])
        assert phone == keyring.decrypt_phone(lead.phone_ciphertext) and len(phone) == 11
    with session_scope(db) as session:
        audit = session.execute(select(RevealAudit)).scalars().all()
        assert [(a.task_id, a.user_name, a.ip, a.user_agent) for a in audit] == [(task_id, "xiao.an", "10.0.0.7", "UA")]
        task = session.get(AdvisorTask, task_id)
        assert task.reveals == 1 and task.first_revealed_at is not None


def test_the_add_callback_closes_the_task_by_remark_code_or_the_only_revealed_task(db, keyring, wecom):
    campaign_id, leads = _advisor_campaign(db, keyring, name="回调测试")
    for lead in leads[:3]:
        log_graded_call(db, campaign_id, lead, "A")
    with session_scope(db) as session:
        first, second, third = list_tasks(session, advisor_userid=ADVISOR)
        advisor = _user(session, "xiao.an")
        reveal_number(session, keyring, first.task_id, advisor)
        reveal_number(session, keyring, second.task_id, advisor)

    # Two revealed tasks: the remark's task code says which one this add is.
    sent = run(wecom.server.simulate_advisor_add(ADVISOR, remark=f"王先生 {task_code(second.task_id)}"))
    assert sent.status_code == 200
    run(wecom.wait_processed())
    with session_scope(db) as session:
        task = session.get(AdvisorTask, second.task_id)
        assert (task.status, task.external_userid) == ("added", sent.external_userid)
        assert "task code" in task.matched_by
        invite = session.get(WeComInvite, task.invite_id)
        assert invite.status in ("added", "welcomed") and invite.added_at is not None
        assert session.get(AdvisorTask, first.task_id).status == "open"

    # No code, one revealed open task left: that is the one.
    sent = run(wecom.server.simulate_advisor_add(ADVISOR))
    run(wecom.wait_processed())
    with session_scope(db) as session:
        task = session.get(AdvisorTask, first.task_id)
        assert (task.status, task.external_userid) == ("added", sent.external_userid)
        assert task.matched_by == "the advisor's only revealed open task"
        assert session.get(AdvisorTask, third.task_id).status == "open"  # never revealed: not guessed

    # No code and no revealed task: unmatched, said why; an unrelated member's add is ignored.
    run(wecom.server.simulate_advisor_add(ADVISOR))
    run(wecom.server.simulate_advisor_add("someone_else"))
    run(wecom.wait_processed())
    with session_scope(db) as session:
        events = session.execute(select(WeComEvent).order_by(WeComEvent.id)).scalars().all()
        assert [e.status for e in events[-2:]] == ["unmatched", "ignored"]
        assert "0 revealed open tasks" in events[-2].note
        # The advisor's 已添加 still closes it; the funnel counts each stage of the mode.
        mark_done(session, third.task_id, _user(session, "xiao.an"))
        with pytest.raises(NotYourTask):
            mark_done(session, first.task_id, _user(session, "lao.wang"))
    with session_scope(db) as session:
        funnel = wecom_funnel(session, campaign_id)
    assert funnel["add_mode"] == "advisor_adds" and funnel["add_mode_label"] == "顾问主动添加"
    assert funnel["stages"] == ["graded_ab", "task_created", "revealed", "done", "added", "welcomed"]
    total = funnel["total"]
    assert (total["graded_ab"], total["task_created"], total["revealed"], total["done"], total["added"]) == (
        3,
        3,
        2,
        3,
        2,
    )
    assert total["sent"] == 0 and total["rates"]["revealed"] == round(2 / 3, 4)


def test_a_link_campaign_keeps_its_stages_and_sms(db, keyring, wecom):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"宝妈": ("宝妈", 2)}, name="链接测试")
    for lead in packs["宝妈"]:
        log_graded_call(db, campaign_id, lead, "A")
    run(wecom.deliver())
    with session_scope(db) as session:
        funnel = wecom_funnel(session, campaign_id)
        assert session.execute(select(func.count()).select_from(AdvisorTask)).scalar_one() == 0
    assert funnel["add_mode"] == "link" and funnel["stages"] == ["graded_ab", "invited", "sent", "added", "welcomed"]
    assert (funnel["total"]["invited"], funnel["total"]["sent"], funnel["total"]["task_created"]) == (2, 2, 0)


def test_forget_erases_the_persons_tasks_and_reveals(db, keyring, wecom):
    campaign_id, leads = _advisor_campaign(db, keyring, name="删除测试", leads=2)
    for lead in leads:
        log_graded_call(db, campaign_id, lead, "A")
    with session_scope(db) as session:
        tasks = list_tasks(session, advisor_userid=ADVISOR)
        phone = reveal_number(session, keyring, tasks[0].task_id, _user(session, "xiao.an"))
        reveal_number(session, keyring, tasks[1].task_id, _user(session, "xiao.an"))
    with session_scope(db) as session:
        forget_phone(session, keyring, phone)
    with session_scope(db) as session:
        left = session.execute(select(AdvisorTask.lead_id)).scalars().all()
        audited = session.execute(select(RevealAudit.lead_id)).scalars().all()
    assert left == [leads[1]] and audited == [leads[1]]


def test_cli_add_mode_status_and_tasks(db, database_url, keyring, monkeypatch):
    campaign_id, leads = _advisor_campaign(db, keyring, name="命令行测试", leads=1)
    log_graded_call(db, campaign_id, leads[0], "A")
    for key, value in {
        "WAIHU_DATABASE_URL": database_url,
        "WAIHU_SECRET_KEY": TEST_SECRET,
        "COLUMNS": os.environ.get("COLUMNS", "200"),
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    bad = runner.invoke(app, ["campaign", "update", "命令行测试", "--add-mode", "carrier_pigeon"])
    # A UserError: `waihu` (bot.cli.app.main) prints it as one line, no traceback.
    assert bad.exit_code != 0 and isinstance(bad.exception, UserError)
    assert "--add-mode: unknown add mode 'carrier_pigeon'; use link" in str(bad.exception)
    status = runner.invoke(app, ["campaign", "status", "命令行测试", "--json"])
    assert status.exit_code == 0 and '"add_mode": "advisor_adds"' in status.stdout
    tasks = runner.invoke(app, ["wecom", "tasks"])
    assert tasks.exit_code == 0, tasks.output
    assert "顾问任务" in tasks.stdout and "加好友" in tasks.stdout and "139****" in tasks.stdout
    with session_scope(db) as session:
        clear = keyring.decrypt_phone(session.get(Lead, leads[0]).phone_ciphertext)
    assert clear not in tasks.stdout  # masked for ops
    ok = runner.invoke(app, ["campaign", "update", "命令行测试", "--add-mode", "link"])
    assert ok.exit_code == 0 and "add mode link" in ok.stdout


def test_create_refuses_an_unknown_add_mode(db, keyring):
    from bot.campaigns.problems import CampaignProblems
    from bot.campaigns.service import create_campaign

    with session_scope(db) as session:
        seed_campaign(session, keyring, {"单身": ("单身", 1)}, name="已有")
        with pytest.raises((CampaignProblems, UserError)) as caught:
            create_campaign(session, name="新任务", packs=["pack-单身"], add_mode="fax")
    assert "--add-mode" in str(caught.value) or "--add-mode" in " ".join(getattr(caught.value, "details", []))


def test_a_person_who_opted_out_is_not_revealed_and_the_task_is_cancelled(db, keyring):
    from bot.dnc.service import add_entry
    from bot.wecom.advisor_tasks import OptedOut, cancel_opted_out

    campaign_id, leads = _advisor_campaign(db, keyring, name="退订测试", leads=2)
    for lead in leads:
        log_graded_call(db, campaign_id, lead, "A")
    with session_scope(db) as session:
        first, second = list_tasks(session, advisor_userid=ADVISOR)
        add_entry(
            session, session.get(Lead, first.lead_id).phone_hash, scope="opt_out", reason="别再打了", source="test"
        )
    with session_scope(db) as session:
        with pytest.raises(OptedOut):
            reveal_number(session, keyring, first.task_id, _user(session, "xiao.an"))
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(RevealAudit)).scalar_one() == 0
        assert cancel_opted_out(session) == 1
    with session_scope(db) as session:
        assert [t.task_id for t in list_tasks(session, advisor_userid=ADVISOR)] == [second.task_id]
        assert session.get(AdvisorTask, first.task_id).status == "cancelled"
