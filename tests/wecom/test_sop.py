"""Follow-up sequences after the add (SOP), on SQLite and PostgreSQL, against the local WeCom
server over real HTTP: the file's mistakes with file:line, enrolment on the add, due steps sent
as add_msg_template with the right JSON, quiet hours, the weekly cap, the tracked link (302,
click recorded, contact tagged, branch followed), a deleted friend, an opt-out (DNC), and no
double send with two concurrent senders."""
from __future__ import annotations

import asyncio
import secrets
import string
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from bot.core.db.engine import session_scope
from bot.dnc.models import DoNotCall
from bot.leads.models import Lead
from bot.wecom import sop_links
from bot.wecom.dev.server import UvicornThread
from bot.wecom.models import WeComInvite
from bot.wecom.sequences import load_sequences, parse_sequences
from bot.wecom.sop import claim, next_allowed, on_purchase, on_reply, run_due
from bot.wecom.sop_models import SopClick, SopContactTag, SopEnrolment, SopStepSend
from intents.yaml_source import YamlError
from telephony.compliance.policy import default_policy
from tests.conftest import run
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign, wecom  # noqa: F401

SHANGHAI = timezone(timedelta(hours=8))
REPO_SEQUENCES = Path(__file__).resolve().parents[2] / "dialogs" / "wecom" / "sequences.yml"
POLICY = default_policy()
SEQUENCES = load_sequences(REPO_SEQUENCES)


# ---- the file ------------------------------------------------------------------------------------

BROKEN = """\
version: 1
redirect_base: https://waihu.example.com/r
audiences:
  default:
    A: [跟进A]
    B: [没有这个序列]
sequences:
  跟进A:
    steps:
      - day: 1
        at: "25:00"
        type: link
        text: "您好，点这里。回复退订不再接收。"
        link:
          title: 详情
      - day: 2
        at: "10:00"
        type: text
        text: "没有停止方式的营销消息"
      - day: 3
        at: "10:00"
        type: text
    branches:
      - on: click
        switch_to: 不存在
"""


def test_the_repos_sequences_file_is_valid_and_names_the_insurers_playbook():
    assert SEQUENCES.sequence_for("车主", "A", 1) == "车主跟进-A"
    steps = SEQUENCES.sequences["短险跟进-A"].steps
    assert [s.day for s in steps] == [1, 3, 7, 13] and steps[0].type == "link" and steps[0].link["url"]
    assert SEQUENCES.sequences["短险跟进-A"].branches == {"click": "点击后跟进", "purchase": "stop", "reply": "点击后跟进"}
    # B leads are split over two arms by a stable hash
    arms = {SEQUENCES.sequence_for("养老", "B", lead) for lead in range(200)}
    assert arms == {"短险跟进-B", "短险跟进-B快节奏"}


def test_every_mistake_in_the_file_is_named_with_its_line():
    with pytest.raises(YamlError) as caught:
        parse_sequences(BROKEN, "sequences.yml")
    problems = caught.value.problems
    text = "\n".join(problems)
    assert any(p.startswith("sequences.yml:11") and "not a time of day" in p for p in problems), text
    assert any(p.startswith("sequences.yml:14") and "url" in p for p in problems), text
    assert any(p.startswith("sequences.yml:19") and "退订" in p for p in problems), text
    assert any(p.startswith("sequences.yml:20") and "text is missing" in p for p in problems), text
    # cross references come once the steps are right; fix the steps and check them
    fixed = (BROKEN.replace('"25:00"', '"10:00"').replace("title: 详情", "title: 详情\n          url: https://e.com/x")
             .replace('"没有停止方式的营销消息"', '"回复退订不再接收"')
             .replace('        type: text\n    branches', '        type: text\n        text: "回复退订不再接收"\n    branches'))
    with pytest.raises(YamlError) as caught:
        parse_sequences(fixed, "sequences.yml")
    problems = caught.value.problems
    assert any(p.startswith("sequences.yml:6") and "没有这个序列" in p for p in problems), problems
    assert any("不存在" in p and p.startswith("sequences.yml:2") for p in problems), problems


def test_waihu_validate_reports_a_broken_sequences_file(tmp_path, monkeypatch):
    import shutil

    from typer.testing import CliRunner

    from bot.cli.app import app

    dialogs = tmp_path / "dialogs"
    shutil.copytree(REPO_SEQUENCES.parents[1], dialogs)
    (dialogs / "wecom" / "sequences.yml").write_text(BROKEN, encoding="utf-8")
    monkeypatch.setenv("WAIHU_DIALOGS_DIR", str(dialogs))
    result = CliRunner().invoke(app, ["validate", "--no-rasa"])
    assert result.exit_code == 1
    assert "sequences.yml:11" in result.output and "not a time of day" in result.output


# ---- the loop ------------------------------------------------------------------------------------


def added_contact(db, keyring, wecom, grade: str = "A", pack=("车主-华东", "车主"), serial: int = 0) -> SopEnrolment:
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {pack[0]: (pack[1], 1)}, name=f"加粉测试-{serial}",
                                           first_serial=serial)
    attempt_id = log_graded_call(db, campaign_id, leads[pack[0]][0], grade)
    assert run(wecom.deliver()).delivered == 1
    with session_scope(db) as session:
        invite = session.execute(select(WeComInvite).where(WeComInvite.attempt_id == attempt_id)).scalar_one()
    # letters only: a random hex id can hold 11 digits the webhook outbox takes for a phone number
    customer = "wm" + "".join(secrets.choice(string.ascii_letters) for _ in range(30))
    run(wecom.server.simulate_add(invite.state, external_userid=customer))
    run(wecom.wait_processed())
    with session_scope(db) as session:
        return session.execute(select(SopEnrolment).where(SopEnrolment.invite_id == invite.id)).scalar_one()


def sends(db, enrolment_id: int) -> list[SopStepSend]:
    with session_scope(db) as session:
        return list(
            session.execute(
                select(SopStepSend).where(SopStepSend.enrolment_id == enrolment_id).order_by(SopStepSend.due_at)
            ).scalars()
        )


def enrolment_of(db, enrolment_id: int) -> SopEnrolment:
    with session_scope(db) as session:
        return session.get(SopEnrolment, enrolment_id)


def local(day: datetime, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI).astimezone(timezone.utc)


def send_due(db, wecom, now: datetime):
    async def go():
        async with wecom.client() as client:
            return await run_due(db, client, sequences=SEQUENCES, policy=POLICY, now=now)

    return run(go())


def test_an_add_enrols_the_contact_and_due_steps_go_out_as_message_tasks(db, keyring, wecom):
    enrolment = added_contact(db, keyring, wecom)
    assert (enrolment.sequence, enrolment.arm, enrolment.state) == ("车主跟进-A", "车主跟进-A", "active")
    planned = sends(db, enrolment.id)
    added_day = enrolment.enrolled_at.astimezone(SHANGHAI)
    assert [s.due_at for s in planned] == [local(added_day + timedelta(days=1), 10), local(added_day + timedelta(days=3), 19, 30)]

    report = send_due(db, wecom, local(added_day + timedelta(days=1), 10, 1))
    assert report.sent == 1 and report.failed == 0
    [task] = wecom.server.message_tasks_to(enrolment.external_userid)
    assert task.body["chat_type"] == "single" and task.body["sender"] == "anxin_advisor01"
    assert task.body["external_userid"] == [enrolment.external_userid]
    assert "退订" in task.body["text"]["content"]
    [attachment] = task.body["attachments"]
    assert attachment["msgtype"] == "link" and attachment["link"]["title"] == "车主专享驾乘意外险"
    assert attachment["link"]["url"].startswith("https://waihu.example.com/r/")
    first = sends(db, enrolment.id)[0]
    assert first.status == "sent" and first.msgid == task.msgid
    # the same pass again sends nothing: a step goes out once
    assert send_due(db, wecom, local(added_day + timedelta(days=1), 10, 2)).sent == 0
    assert len(wecom.server.message_tasks_to(enrolment.external_userid)) == 1
    # the last step completes the enrolment
    assert send_due(db, wecom, local(added_day + timedelta(days=3), 19, 31)).sent == 1
    assert enrolment_of(db, enrolment.id).state == "completed"


def test_quiet_hours_move_a_step_to_the_next_opening_instead_of_dropping_it(db, keyring, wecom):
    evening = datetime(2026, 12, 8, 21, 30, tzinfo=SHANGHAI)
    assert next_allowed(evening, POLICY) == local(datetime(2026, 12, 9), 9)
    assert next_allowed(local(evening, 8, 59), POLICY) == local(evening, 9)
    enrolment = added_contact(db, keyring, wecom)
    first = sends(db, enrolment.id)[0]
    late = first.due_at + timedelta(hours=12)  # 22:00 local: the sender runs late, in quiet hours
    report = send_due(db, wecom, late)
    assert report.moved_quiet == 1 and report.sent == 0
    moved = sends(db, enrolment.id)[0]
    assert moved.status == "pending" and moved.moved_from == first.due_at
    assert moved.due_at == local(late.astimezone(SHANGHAI) + timedelta(days=1), 9)
    assert send_due(db, wecom, moved.due_at).sent == 1


def test_the_weekly_cap_skips_a_step_and_records_why(db, keyring, wecom):
    enrolment = added_contact(db, keyring, wecom)
    now = sends(db, enrolment.id)[0].due_at
    with session_scope(db) as session:  # three messages already this week (other sequences of the person)
        for index in range(POLICY.message_weekly_cap):
            session.add(SopStepSend(enrolment_id=enrolment.id, lead_id=enrolment.lead_id, sequence="earlier",
                                    step_index=index, step_type="text", due_at=now - timedelta(days=2),
                                    status="sent", sent_at=now - timedelta(days=2)))
    report = send_due(db, wecom, now)
    assert report.skipped_cap == 1 and report.sent == 0
    capped = next(s for s in sends(db, enrolment.id) if s.sequence == "车主跟进-A")
    assert capped.status == "skipped_cap" and "the cap is 3" in capped.note
    assert wecom.server.message_tasks_to(enrolment.external_userid) == []


@pytest.fixture()
def redirect_app(db, wecom):
    app = FastAPI()
    app.state.engine = db
    app.state.sop_config = lambda: (SEQUENCES, POLICY)
    app.state.sop_wecom_client = wecom.client()
    app.include_router(sop_links.router, prefix="/r")
    server = UvicornThread(app).start()
    yield server
    server.stop()


def test_a_click_on_a_tracked_link_redirects_records_tags_and_switches(db, keyring, wecom, redirect_app):
    enrolment = added_contact(db, keyring, wecom)
    send_due(db, wecom, sends(db, enrolment.id)[0].due_at)
    [task] = wecom.server.message_tasks_to(enrolment.external_userid)
    token = task.body["attachments"][0]["link"]["url"].rsplit("/", 1)[1]
    assert len(token) >= 24

    answer = httpx.get(f"{redirect_app.url}/r/{token}", headers={"user-agent": "MicroMessenger"})
    assert answer.status_code == 302 and answer.headers["location"] == "https://example.com/anxin/car"
    assert httpx.get(f"{redirect_app.url}/r/{'x' * 24}").status_code == 404

    after = enrolment_of(db, enrolment.id)
    assert (after.state, after.sequence, after.arm) == ("switched", "点击后跟进", "车主跟进-A")
    statuses = {(s.sequence, s.status) for s in sends(db, enrolment.id)}
    assert ("车主跟进-A", "cancelled") in statuses and ("点击后跟进", "pending") in statuses
    with session_scope(db) as session:
        [click] = session.execute(select(SopClick)).scalars().all()
        assert click.user_agent == "MicroMessenger"

    async def tagged():
        for _ in range(200):
            if "点击-车主险" in wecom.server.tag_names_of("anxin_advisor01", enrolment.external_userid):
                return True
            await asyncio.sleep(0.05)
        return False

    assert run(tagged())
    assert wecom.server.tag_names_of("anxin_advisor01", enrolment.external_userid)["点击-车主险"] == "跟进序列"
    with session_scope(db) as session:
        [tag] = session.execute(select(SopContactTag)).scalars().all()
        assert tag.tag == "点击-车主险"


def test_a_deleted_friend_stops_everything(db, keyring, wecom):
    enrolment = added_contact(db, keyring, wecom)
    run(wecom.server.simulate_delete(enrolment.external_userid, "anxin_advisor01", by_customer=True))
    run(wecom.wait_processed())
    after = enrolment_of(db, enrolment.id)
    assert (after.state, after.stop_reason) == ("stopped", "deleted")
    assert {s.status for s in sends(db, enrolment.id)} == {"cancelled"}
    assert send_due(db, wecom, datetime.now(timezone.utc) + timedelta(days=30)).sent == 0


def test_an_opt_out_reply_stops_everything_and_adds_the_number_to_dnc(db, keyring, wecom):
    enrolment = added_contact(db, keyring, wecom)
    with session_scope(db) as session:
        row = session.get(SopEnrolment, enrolment.id)
        outcome = on_reply(session, row, "别发了，退订", sequences=SEQUENCES, policy=POLICY,
                           now=datetime.now(timezone.utc))
    assert "opted out" in outcome and "139****" in outcome
    after = enrolment_of(db, enrolment.id)
    assert (after.state, after.stop_reason) == ("stopped", "opt_out")
    with session_scope(db) as session:
        lead = session.get(Lead, enrolment.lead_id)
        [entry] = session.execute(select(DoNotCall).where(DoNotCall.phone_hash == lead.phone_hash)).scalars().all()
        assert entry.scope == "opt_out" and entry.expires_at is None


def test_a_purchase_follows_the_purchase_branch(db, keyring, wecom):
    enrolment = added_contact(db, keyring, wecom)
    with session_scope(db) as session:
        outcomes = on_purchase(session, enrolment.lead_id, datetime.now(timezone.utc),
                               sequences=SEQUENCES, policy=POLICY)
    assert outcomes == ["stopped (purchase)"]
    assert enrolment_of(db, enrolment.id).stop_reason == "purchase"


def test_two_concurrent_senders_never_send_a_step_twice(db, keyring, wecom):
    if db.dialect.name != "postgresql":
        pytest.skip("concurrent claims are exercised on PostgreSQL; SQLite serialises writers")
    enrolments = [added_contact(db, keyring, wecom, pack=(f"车主-{i}", "车主"), serial=i * 10) for i in range(4)]
    now = max(sends(db, e.id)[0].due_at for e in enrolments)
    barrier = threading.Barrier(2)
    reports = []

    def sender():
        barrier.wait()
        reports.append(send_due(db, wecom, now))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.sent for r in reports) == 4
    for enrolment in enrolments:
        assert len(wecom.server.message_tasks_to(enrolment.external_userid)) == 1
    with session_scope(db) as session:
        assert session.execute(
            select(func.count()).select_from(SopStepSend).where(SopStepSend.status == "sent")
        ).scalar_one() == 4
        # and a claim on a step that is no longer pending loses
        first = session.execute(select(SopStepSend.id).where(SopStepSend.status == "sent")).scalars().first()
        assert not claim(session, first, now)


def test_a_matched_conversion_fires_the_purchase_branch(db, keyring, wecom):
    from bot.experiments.conversions import ConversionIn, record_conversions

    enrolment = added_contact(db, keyring, wecom)
    bought = datetime.now(timezone.utc) + timedelta(hours=2)
    with session_scope(db) as session:
        [result] = record_conversions(
            session, keyring, [ConversionIn("SOP-1", "短期意外险", "99", bought, phone="13900000001", row_number=1)],
            source="api",
        )
    assert result.status == "accepted" and result.lead_id == enrolment.lead_id
    after = enrolment_of(db, enrolment.id)
    assert (after.state, after.stop_reason) == ("stopped", "purchase")
    assert "pending" not in {s.status for s in sends(db, enrolment.id)}


def test_the_cli_shows_the_arms_and_ops_can_opt_a_contact_out(db, keyring, wecom, monkeypatch):
    import json

    from typer.testing import CliRunner

    from bot.cli.app import app

    enrolment = added_contact(db, keyring, wecom)
    monkeypatch.setenv("WAIHU_DATABASE_URL", db.url.render_as_string(hide_password=False))
    status = CliRunner().invoke(app, ["sop", "status", "--json"])
    assert status.exit_code == 0, status.output
    [arm] = json.loads(status.stdout)["arms"]
    assert (arm["arm"], arm["enrolled"], arm["converted"]) == ("车主跟进-A", 1, 0)
    out = CliRunner().invoke(app, ["sop", "opt-out", str(enrolment.id)])
    assert out.exit_code == 0 and "139****" in out.output and "13900000001" not in out.output
    assert enrolment_of(db, enrolment.id).stop_reason == "opt_out"
    missing = CliRunner().invoke(app, ["sop", "opt-out", "999999"])
    # (main() prints a UserError as one line and exits 1; the runner calls the app under it)
    assert missing.exit_code == 1 and "no follow-up enrolment 999999" in str(missing.exception)


def test_erasure_removes_the_persons_follow_up(db, keyring, wecom, redirect_app):
    from bot.erasure import forget_phone

    enrolment = added_contact(db, keyring, wecom)
    send_due(db, wecom, sends(db, enrolment.id)[0].due_at)
    [task] = wecom.server.message_tasks_to(enrolment.external_userid)
    assert httpx.get(task.body["attachments"][0]["link"]["url"].replace(
        "https://waihu.example.com", redirect_app.url)).status_code == 302
    with session_scope(db) as session:
        result = forget_phone(session, keyring, "13900000001")
    assert result.leads == 1
    with session_scope(db) as session:
        for model in (SopEnrolment, SopStepSend, SopClick, SopContactTag):
            assert session.execute(select(func.count()).select_from(model)).scalar_one() == 0, model.__name__


def test_the_ab_report_carries_the_sequence_factor(db, keyring, wecom):
    from bot.campaigns.models import Campaign
    from bot.experiments.report import build_report

    enrolment = added_contact(db, keyring, wecom)
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, enrolment.campaign_id))
    [arm] = report["sequences"]
    assert (arm["arm"], arm["enrolled"], arm["clicked"], arm["converted"]) == ("车主跟进-A", 1, 0, 0)
    assert any(line.startswith("跟进序列「车主跟进-A」：入组 1 人") for line in report["summary"])
