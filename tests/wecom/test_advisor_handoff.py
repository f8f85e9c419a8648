"""Issue 17/18: a hand-off to a human (转人工) nobody took. The robot told the callee
"我请顾问稍后给您回电", so the call log makes a call-back task for a human advisor — the advisor
of the lead's audience pack, due by the end of the call-back window — next to whatever WeCom
invitation the call gets, never a robot callback. One promise, one task: a landline's own
call-back task, a replayed call and an earlier open call-back all end in one task. Runs on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.campaigns.models import CallAttempt
from bot.campaigns.service import campaign_arms, set_add_mode
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.dialing.call_runner import CallResult, assess
from bot.dialing.call_store import record_call
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import add_entry
from bot.leads.models import Lead
from bot.users.models import User
from bot.users.service import add_user
from bot.wecom import advisor_tasks
from bot.wecom.advisor_models import AdvisorTask
from bot.wecom.advisor_tasks import (
    CALLBACK_TASK,
    HANDOFF_TASK,
    OptedOut,
    cancel_opted_out,
    count_open_tasks,
    create_handoff_callback,
    list_tasks,
    mark_done,
    match_advisor_add,
    reveal_number,
    task_counts,
)
from bot.wecom.models import WeComInvite
from bot.wecom.offers import parse_offers
from intents.callback_times import SHANGHAI
from intents.finished_call import Turn
from intents.followups import ADVISOR_CALLBACK, WECOM_INVITE
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401

ADVISOR = "anxin_advisor01"  # dialogs/wecom/offers.yml: advisor.userid
# 10:00 in Shanghai: the advisor's window is 10:30–12:30 the same day.
CALL_ENDED = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
WINDOW = (datetime(2026, 11, 24, 10, 30, tzinfo=SHANGHAI), datetime(2026, 11, 24, 12, 30, tzinfo=SHANGHAI))


def failed_hand_off(call_id: str, ended_at: datetime) -> CallResult:
    """The callee asked for a human, nobody was free, the robot said so and hung up."""
    answered = ended_at - timedelta(seconds=45)
    result = CallResult(call_id, answered=True, hangup_by="bot", dialed_at=answered - timedelta(seconds=8),
                        answered_at=answered, ended_at=ended_at, handoff="handoff_failed",
                        handoff_reason="no_advisor")
    result.turns = [
        Turn("bot", "您好，这里是安心保险服务平台，AI合成语音", 0.0, "utter_opening", seq=1),
        Turn("bot", "现在方便聊两句吗？", 1.0, "utter_ask_good_time", seq=2),
        Turn("callee", "帮我转人工", 3.0, intent="request_human", confidence=0.95, seq=3),
        Turn("bot", "好的，我这就为您转接人工顾问，请稍等。", 4.0, "utter_handoff", seq=4),
        Turn("bot", "现在顾问都在忙，我请顾问稍后给您回电，请您留意接听。", 25.0, "utter_handoff_failed", seq=5),
    ]
    result.outcome = assess(result)
    return result


def log_failed_hand_off(db, campaign_id: int, lead_id: int, *, attempt_no: int = 1,
                        ended_at: datetime = CALL_ENDED) -> int:
    with session_scope(db) as session:
        from bot.campaigns.models import Campaign

        lead = session.get(Lead, lead_id)
        attempt = CallAttempt(campaign_id=campaign_id, lead_id=lead_id, attempt_no=attempt_no,
                              phone_hash=lead.phone_hash,
                              arms=campaign_arms(session.get(Campaign, campaign_id)).for_lead(lead_id),
                              status="dialing", history_outcome="scheduled", scheduled_at=ended_at,
                              dialed_at=ended_at - timedelta(minutes=1))
        session.add(attempt)
        session.flush()
        result = failed_hand_off(f"attempt-{attempt.id}", ended_at)
        assert [f.action for f in result.outcome.followups] == [WECOM_INVITE, ADVISOR_CALLBACK]
        record_call(session, attempt, result)
        return attempt.id


def tasks_of(session, lead_id: int) -> list[AdvisorTask]:
    return list(session.execute(select(AdvisorTask).where(AdvisorTask.lead_id == lead_id)
                                .order_by(AdvisorTask.id)).scalars())


def test_a_b_lead_gets_its_invitation_and_the_advisor_call_back_task(db, keyring):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"车主-华东": ("车主", 1)}, name="转人工回电")
    [lead_id] = packs["车主-华东"]
    attempt_id = log_failed_hand_off(db, campaign_id, lead_id)

    with session_scope(db) as session:
        [invite] = session.execute(select(WeComInvite)).scalars().all()
        assert (invite.attempt_id, invite.channel, invite.status) == (attempt_id, "sms", "pending")
        [task] = tasks_of(session, lead_id)
        assert (task.kind, task.attempt_id, task.invite_id, task.advisor_userid) == (
            HANDOFF_TASK, attempt_id, None, ADVISOR)
        assert (task.call_from, task.due_at) == WINDOW
        assert session.get(CallAttempt, attempt_id).callback_at is None
        # The WeCom add funnel is about invitations: the call-back is not an add task.
        assert task_counts(session, campaign_id) == {}
        assert count_open_tasks(session, ADVISOR) == 0
        task.first_revealed_at = task.created_at  # even revealed, a WeCom add never closes a call-back
        assert match_advisor_add(session, ADVISOR, [f"WH{task.id}"])[0] is None

        [row] = list_tasks(session, advisor_userid=ADVISOR, now=WINDOW[0])
        assert (row.kind, row.grade, row.audience, row.incentive) == ("handoff", "B", "车主-华东", None)
        assert datetime.fromisoformat(row.as_json()["call_from"]) == WINDOW[0] and not row.overdue
        assert list_tasks(session, now=WINDOW[1] + timedelta(seconds=1))[0].overdue

    with session_scope(db) as session:
        advisor = add_user(session, "xiao.an", "advisor-pass-1", "advisor")
        advisor.wecom_userid = ADVISOR
        phone = reveal_number(session, keyring, task.id, advisor, ip="10.0.0.7")
        assert phone == keyring.decrypt_phone(session.get(Lead, lead_id).phone_ciphertext)
        done = mark_done(session, task.id, advisor, now=WINDOW[0] + timedelta(minutes=5))
        assert done.status == "done"
    with session_scope(db) as session:
        [row] = list_tasks(session, advisor_userid=ADVISOR, now=WINDOW[1] + timedelta(hours=1))
        assert (row.status_label, row.overdue, row.reveals) == ("已回电", False, 1)


def test_a_second_call_in_the_campaign_gets_no_second_invitation_but_its_call_back(db, keyring):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"宝妈": ("宝妈", 1)}, name="二次转人工")
    [lead_id] = packs["宝妈"]
    first = log_graded_call(db, campaign_id, lead_id, "A", ended_at=CALL_ENDED - timedelta(days=3))
    second = log_failed_hand_off(db, campaign_id, lead_id, attempt_no=2)
    with session_scope(db) as session:
        invites = session.execute(select(WeComInvite.attempt_id)).scalars().all()
        assert invites == [first]  # one invitation per lead per campaign, as before
        [task] = tasks_of(session, lead_id)
        assert (task.kind, task.attempt_id, task.due_at) == (HANDOFF_TASK, second, WINDOW[1])


def test_a_landline_gets_one_call_back_task_due_by_the_hand_off_window(db, keyring):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"养老": ("养老", 1)}, name="座机转人工")
        lead = session.get(Lead, packs["养老"][0])
        lead.line_type, lead.phone_masked = "landline", "021****5678"
    attempt_id = log_failed_hand_off(db, campaign_id, lead.id)
    with session_scope(db) as session:
        [invite] = session.execute(select(WeComInvite)).scalars().all()
        assert (invite.channel, invite.status) == ("callback", "skipped")
        # The landline's call-back and the hand-off's are one promise: one task, the sooner due time.
        [task] = tasks_of(session, lead.id)
        assert (task.kind, task.invite_id, task.attempt_id) == (CALLBACK_TASK, invite.id, attempt_id)
        assert (task.call_from, task.due_at) == WINDOW
        [row] = list_tasks(session, campaign_id=campaign_id, now=WINDOW[0])
        assert (row.kind, row.status_label, row.phone_masked) == ("callback", "待回电", "021****5678")


def test_advisor_adds_lead_keeps_its_add_task_and_gets_the_call_back_too(db, keyring):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"车主-华南": ("车主", 1)}, name="顾问添加转人工")
        set_add_mode(session, "顾问添加转人工", "advisor_adds")
    [lead_id] = packs["车主-华南"]
    log_failed_hand_off(db, campaign_id, lead_id)
    with session_scope(db) as session:
        tasks = tasks_of(session, lead_id)
        assert [(t.kind, t.invite_id is not None) for t in tasks] == [("add", True), (HANDOFF_TASK, False)]
        add, call_back = tasks
        assert add.due_at - call_back.due_at > timedelta(hours=20)  # the add keeps its 24 h
        # A WeCom add without a code matches the revealed add task only, never the call-back.
        add.first_revealed_at = call_back.first_revealed_at = add.created_at
        assert match_advisor_add(session, ADVISOR, [])[0].id == add.id
        assert count_open_tasks(session, ADVISOR) == 1
        assert {row.kind for row in list_tasks(session, advisor_userid=ADVISOR)} == {"add", "handoff"}


def test_an_earlier_open_call_back_moves_to_the_newest_promise(db, keyring):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"单身": ("单身", 1)}, name="再次转人工")
    [lead_id] = packs["单身"]
    log_failed_hand_off(db, campaign_id, lead_id, ended_at=CALL_ENDED - timedelta(days=8))
    log_failed_hand_off(db, campaign_id, lead_id, attempt_no=2)
    with session_scope(db) as session:
        [task] = tasks_of(session, lead_id)  # still one open call-back for the person
        assert (task.status, task.call_from, task.due_at) == ("open", *WINDOW)


def test_someone_who_opts_out_later_is_not_called_back(db, keyring):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"银行": ("银行", 1)}, name="转人工后退订")
        add_user(session, "xiao.an", "advisor-pass-1", "advisor").wecom_userid = ADVISOR
    [lead_id] = packs["银行"]
    log_failed_hand_off(db, campaign_id, lead_id)
    with session_scope(db) as session:
        lead = session.get(Lead, lead_id)
        add_entry(session, lead.phone_hash, scope=SCOPE_OPT_OUT, reason="短信退订", source="sms")
    with session_scope(db) as session:
        [task] = tasks_of(session, lead_id)
        advisor = session.execute(select(User).where(User.name == "xiao.an")).scalar_one()
        with pytest.raises(OptedOut):
            reveal_number(session, keyring, task.id, advisor)
    with session_scope(db) as session:
        assert cancel_opted_out(session) == 1
    with session_scope(db) as session:
        assert tasks_of(session, lead_id)[0].status == "cancelled"
        assert list_tasks(session, advisor_userid=ADVISOR) == []


OFFERS = """\
advisor: {{userid: adv_default, name: 小安}}
sms: "您的{{incentive}}：{{link}} 拒收请回复R"
audiences:
  default:
    incentives:
      - {{name: 检视, text: 一次免费的保单检视}}
    welcome:
      any:
        - {{name: 标准, text: "{{callee_title}}您好，{{incentive}}请查收"}}
  {pack}:
    advisor: {{userid: adv_pack, name: 小李}}
"""


def test_the_task_goes_to_the_advisor_of_the_leads_audience_pack(db, keyring, monkeypatch):
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"车主-西南": ("车主", 2)}, name="按人群包顾问")
    leads = packs["车主-西南"]
    attempts = [log_graded_call(db, campaign_id, lead, "C") for lead in leads]
    offers = parse_offers(OFFERS.format(pack="车主-西南"), "offers.yml")
    with session_scope(db) as session:
        task = create_handoff_callback(session, session.get(CallAttempt, attempts[0]), *WINDOW, offers=offers)
        assert (task.advisor_userid, task.advisor_name) == ("adv_pack", "小李")
        again = create_handoff_callback(session, session.get(CallAttempt, attempts[0]), *WINDOW, offers=offers)
        assert again is task

    def broken_offers():
        raise UserError("offers.yml:3:1: not valid YAML")

    monkeypatch.setattr(advisor_tasks, "load_offers", broken_offers)
    with session_scope(db) as session:
        # A broken offers file does not lose the promise: the task is made, unassigned, for managers.
        task = create_handoff_callback(session, session.get(CallAttempt, attempts[1]), *WINDOW)
        assert (task.advisor_userid, task.kind, task.status) == ("", HANDOFF_TASK, "open")
    with session_scope(db) as session:
        assert len(list_tasks(session, campaign_id=campaign_id)) == 2


def test_ops_see_the_call_back_task_and_its_window_in_the_cli(db, database_url, keyring, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli.app import app
    from tests.db_fixtures import TEST_SECRET

    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"车主-华南": ("车主", 1)}, name="命令行转人工")
        set_add_mode(session, "命令行转人工", "advisor_adds")
    [lead_id] = packs["车主-华南"]
    log_failed_hand_off(db, campaign_id, lead_id)
    monkeypatch.setenv("WAIHU_DATABASE_URL", database_url)
    monkeypatch.setenv("WAIHU_SECRET_KEY", TEST_SECRET)
    shown = CliRunner().invoke(app, ["wecom", "tasks"])
    assert shown.exit_code == 0, shown.output
    assert "顾问任务" in shown.stdout and "加好友" in shown.stdout and "转人工·回电" in shown.stdout, shown.stdout
    # The hand-off task's window, in Beijing time as the callee heard it: 10:30–12:30.
    assert "11-24 10:30–12:30" in shown.stdout, shown.stdout
    with session_scope(db) as session:
        clear = keyring.decrypt_phone(session.get(Lead, lead_id).phone_ciphertext)
    assert clear not in shown.stdout
