"""Hand-off to a human (转人工) through the call runtime: the script's reply carries
`utter_handoff`, the runner transfers the call, and the outcome is graded, stored, booked.
A hand-off nobody took gets what the robot promised (顾问稍后给您回电): a call-back task for a
human advisor, not a robot callback.

The dialogue is a small scripted agent (the real model has no `request_human` intent yet):
it says the opening and asks for a good time; "转人工"/"真人" gets `utter_handoff`, a hostile
reply gets the opt-out close, anything else the WeCom ask.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.campaigns.models import CallAttempt, Campaign, TurnRow
from bot.campaigns.service import change_status, create_campaign
from bot.conversation.agent import BotLine, Parse
from bot.conversation.session import LeadContext
from bot.core.db.engine import session_scope
from bot.dialing.call_runner import CallResult, EventRouter, HandoffPolicy, assess, run_call
from bot.dialing.call_store import record_call
from bot.dialing.planner import plan_campaign
from bot.dnc.models import DoNotCall
from bot.wecom.advisor_models import AdvisorTask
from bot.wecom.advisor_tasks import HANDOFF_TASK, list_tasks
from bot.wecom.models import WeComInvite
from bot.wecom.offers import load_offers
from intents.callback_times import SHANGHAI
from intents.finished_call import Turn
from intents.followups import ADVISOR_CALLBACK, ADVISOR_CALLBACK_REASON, CALLBACK, DO_NOT_CALL, WECOM_INVITE
from telephony.carrier import Carrier
from telephony.clock import SimClock
from telephony.freeswitch.carrier import FreeSwitchCarrier
from telephony.freeswitch.esl import EslConnection
from telephony.simulator.advisors import AdvisorPool, AdvisorPoolConfig
from telephony.simulator.carrier import SimulatorCarrier
from telephony.simulator.personas import SimulatorConfig, load_simulator_config
from tests.conftest import run
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_call_runner import callee
from tests.dialing.test_planner import MORNING, add_pack
from tests.telephony.fake_freeswitch import FakeFreeSwitch

LINES = {
    "utter_opening": "王先生您好，这里是安心保险服务平台的人工智能合成语音，本次通话会录音。",
    "utter_ask_good_time": "现在方便聊两句吗？",
    "utter_ask_wecom": "方便加一下顾问的企业微信吗？",
    "utter_handoff": "好的，我这就为您转接人工顾问，请稍等。",
    "utter_handoff_failed": "抱歉，顾问们正在忙，稍后会有顾问给您回电。",
    "utter_close_opt_out": "好的，以后不再打扰您，再见。",
}


class ScriptedAgent:
    """Just enough of DialogueAgent for CallSession."""

    script_variants: tuple[str, ...] = ()

    async def parse(self, text: str, now: datetime | None = None) -> Parse:
        if "人工" in text or "真人" in text:
            intent = "request_human"
        elif "骗子" in text:
            intent = "hostile"
        else:
            intent = "affirm"
        return Parse(text, intent, 0.95)

    async def start_conversation(self, sender_id: str, slots: dict[str, Any]) -> list[BotLine]:
        return self._lines("utter_opening", "utter_ask_good_time")

    async def respond(self, sender_id: str, parse: Parse) -> list[BotLine]:
        if parse.intent == "request_human":
            return self._lines("utter_handoff")
        if parse.intent == "hostile":
            return self._lines("utter_close_opt_out")
        return self._lines("utter_ask_wecom")

    def render(self, response: str, slots: dict[str, Any]) -> str:
        return LINES[response]

    async def forget(self, sender_id: str) -> None:
        pass

    def _lines(self, *names: str) -> list[BotLine]:
        return [BotLine(name, LINES[name]) for name in names]


PERSONAS = """\
personas:
  wants_a_human:
    reply_delay_s: [0.5, 1.0]
    steps:
      utter_ask_good_time:
        replies: {你好，帮我转人工吧: 1}
      utter_ask_wecom:
        replies: {我要找真人: 1}
      utter_ask_callback_time:
        replies: {明天上午吧: 1}
announcements:
  vacant_number: {您拨打的号码是空号: 1}
audience_packs:
  default:
    answer_by_hour: {0-23: 1.0}
    ring_s: [1, 2]
    persona_mix: {wants_a_human: 1}
"""


@pytest.fixture()
def personas(tmp_path: Path) -> SimulatorConfig:
    path = tmp_path / "personas.yml"
    path.write_text(PERSONAS, encoding="utf-8")
    return load_simulator_config(path)


def planned_attempt(db, keyring) -> int:
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-h", 1)
        create_campaign(session, name="handoff", packs=["pack-h"], lines=1)
        campaign = change_status(session, "handoff", "start", now=MORNING)
        [attempt_id] = plan_campaign(session, campaign, MORNING).created
    return attempt_id


async def simulated_call(
    personas: SimulatorConfig, pool: AdvisorPool, call_id: str, wait_s: float = 20.0
) -> tuple[CallResult, SimulatorCarrier]:
    clock = SimClock(MORNING)
    carrier = SimulatorCarrier(personas, clock=clock, seed=5, advisors=pool)
    router = EventRouter(carrier)
    try:
        result = await run_call(
            carrier,
            router,
            ScriptedAgent(),
            call_id=call_id,
            phone="13800000000",
            lead=LeadContext(surname="王", gender="M"),
            clock=clock.now,
            handoff=HandoffPolicy(target="advisors", wait_s=wait_s),
            event_timeout_s=10,
        )
        await asyncio.sleep(0)
        return result, carrier
    finally:
        await router.aclose()
        await carrier.aclose()


def stored(db, attempt_id: int) -> tuple[CallAttempt, list[TurnRow]]:
    with session_scope(db) as session:
        attempt = session.get(CallAttempt, attempt_id)
        turns = (
            session.execute(select(TurnRow).where(TurnRow.attempt_id == attempt_id).order_by(TurnRow.seq))
            .scalars()
            .all()
        )
        session.expunge_all()
    return attempt, turns


def test_a_free_advisor_takes_the_call_handed_off_graded_b_and_logged(db, keyring, personas) -> None:
    attempt_id = planned_attempt(db, keyring)
    pool = AdvisorPool(AdvisorPoolConfig(advisors=1, pick_up_s=(3.0, 3.0)))
    result, carrier = run(simulated_call(personas, pool, f"attempt-{attempt_id}"))

    assert result.handoff == "handed_off" and result.handoff_agent == "顾问1"
    assert result.hangup_by is None  # nobody hung up: the advisor has the call
    assert [t.response for t in result.turns if t.speaker == "bot"][-1] == "utter_handoff"
    assert result.outcome.grade.grade == "B" and result.outcome.grade.rule == "asked_for_human"
    assert not any(f.action == CALLBACK for f in result.outcome.followups)
    assert pool.outcomes == {"handed_off": 1}

    with session_scope(db) as session:
        record_call(session, session.get(CallAttempt, attempt_id), result)
    attempt, turns = stored(db, attempt_id)
    assert (attempt.status, attempt.outcome, attempt.handoff, attempt.grade) == (
        "completed",
        "answered",
        "handed_off",
        "B",
    )
    assert attempt.grade_reason == "B：要求转人工" and attempt.callback_at is None
    assert any(f["action"] == WECOM_INVITE for f in attempt.followups)
    assert [(t.speaker, t.response or t.intent) for t in turns][-2:] == [
        ("callee", "request_human"),
        ("bot", "utter_handoff"),
    ]


def test_nobody_free_says_so_and_an_advisor_not_the_robot_calls_back(db, keyring, personas) -> None:
    attempt_id = planned_attempt(db, keyring)
    pool = AdvisorPool(AdvisorPoolConfig(advisors=0))
    result, carrier = run(simulated_call(personas, pool, f"attempt-{attempt_id}", wait_s=15))

    assert result.handoff == "handoff_failed" and result.handoff_reason == "no_advisor"
    bot_lines = [t.response for t in result.turns if t.speaker == "bot"]
    assert bot_lines[-2:] == ["utter_handoff", "utter_handoff_failed"]
    assert result.hangup_by == "bot" and carrier.call(f"attempt-{attempt_id}").ended_by == "robot"
    assert result.outcome.grade.grade == "B"
    [callback] = [f for f in result.outcome.followups if f.action == ADVISOR_CALLBACK]
    assert callback.reason == ADVISOR_CALLBACK_REASON
    assert not any(f.action == CALLBACK for f in result.outcome.followups)  # no robot booking
    # the callee waited the whole 15 s on hold before the robot came back
    assert result.talk_time_s >= 15

    with session_scope(db) as session:
        record_call(session, session.get(CallAttempt, attempt_id), result)
    attempt, _ = stored(db, attempt_id)
    assert (attempt.handoff, attempt.grade) == ("handoff_failed", "B")
    assert attempt.callback_at is None  # the dialer's callback lane never sees it
    assert attempt.history_outcome == "busy"  # the robot keeps off the number (busy cool-down)
    assert any(f["action"] == ADVISOR_CALLBACK and f["reason"] == ADVISOR_CALLBACK_REASON for f in attempt.followups)

    with session_scope(db) as session:
        task = session.execute(select(AdvisorTask).where(AdvisorTask.attempt_id == attempt_id)).scalar_one()
        assert (task.kind, task.status, task.invite_id) == (HANDOFF_TASK, "open", None)
        assert task.advisor_userid == load_offers().advisor_for(None).userid  # the pack's (here: default) advisor
        # The window the robot promised: 30 minutes after the call, two hours long, inside calling hours.
        assert (task.call_from, task.due_at) == (callback.window_start, callback.window_end)
        assert task.call_from - attempt.ended_at == timedelta(minutes=30)
        assert task.due_at - task.call_from == timedelta(hours=2)
        assert task.due_at.astimezone(SHANGHAI).hour == 12  # 10:30–12:30 Shanghai
        # The B call's WeCom invitation is its own row; the call-back task does not replace it.
        assert session.execute(select(WeComInvite).where(WeComInvite.attempt_id == attempt_id)).scalar_one()
        [row] = list_tasks(session, advisor_userid=task.advisor_userid, now=callback.window_start)
        assert (row.kind, row.status_label, row.grade, row.overdue) == ("handoff", "待回电", "B", False)
        assert row.phone_masked == "138****0000" and row.call_from == callback.window_start
        # Not called back by the due time: it shows overdue (managers see every advisor's tasks).
        [late] = list_tasks(session, now=callback.window_end + timedelta(minutes=1))
        assert late.overdue and late.status == "open"

    # No robot attempt, neither when the window opens nor when the task is overdue nor the next days.
    for later in (
        callback.window_start,
        callback.window_start + timedelta(minutes=10),
        callback.window_end,
        callback.window_end + timedelta(days=2),
    ):
        with session_scope(db) as session:
            campaign = session.get(Campaign, session.get(CallAttempt, attempt_id).campaign_id)
            plan = plan_campaign(session, campaign, later)
            assert plan.created == [] and plan.callbacks == 0, (later, plan.skipped)
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(CallAttempt)).scalar_one() == 1


def test_storing_the_failed_hand_off_twice_makes_one_task(db, keyring, personas) -> None:
    attempt_id = planned_attempt(db, keyring)
    result, _ = run(
        simulated_call(personas, AdvisorPool(AdvisorPoolConfig(advisors=0)), f"attempt-{attempt_id}", wait_s=5)
    )
    for replay in (result, dataclasses.replace(result, turns=[])):  # the turns are stored once
        with session_scope(db) as session:
            record_call(session, session.get(CallAttempt, attempt_id), replay)
    with session_scope(db) as session:
        [task] = session.execute(select(AdvisorTask).where(AdvisorTask.attempt_id == attempt_id)).scalars().all()
        assert task.kind == HANDOFF_TASK
        # …and the database refuses a second task of the kind for the call whatever the code does.
        twin = AdvisorTask(
            attempt_id=attempt_id,
            lead_id=task.lead_id,
            campaign_id=task.campaign_id,
            advisor_userid=task.advisor_userid,
            kind=HANDOFF_TASK,
            status="open",
            due_at=task.due_at,
            reveals=0,
        )
        session.add(twin)
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()


def test_an_opt_out_in_the_same_call_gets_no_call_back_task(db, keyring) -> None:
    attempt_id = planned_attempt(db, keyring)
    result = hostile_hand_off(f"attempt-{attempt_id}")
    with session_scope(db) as session:
        record_call(session, session.get(CallAttempt, attempt_id), result)
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(AdvisorTask)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(DoNotCall)).scalar_one() == 1
        attempt = session.get(CallAttempt, attempt_id)
        assert (attempt.handoff, attempt.history_outcome, attempt.callback_at) == ("handoff_failed", "opt_out", None)


def test_a_time_the_callee_named_becomes_the_advisors_window_not_a_robot_callback() -> None:
    named_from = datetime(2026, 11, 25, 15, 0, tzinfo=SHANGHAI)
    result = CallResult(
        "c",
        answered=True,
        answered_at=MORNING,
        ended_at=MORNING + timedelta(seconds=60),
        hangup_by="bot",
        handoff="handoff_failed",
        handoff_reason="no_advisor",
    )
    result.turns = [
        Turn("bot", LINES["utter_ask_good_time"], response="utter_ask_good_time", seq=1),
        Turn(
            "callee",
            "在忙，明天下午三点打给我",
            intent="callback_request",
            confidence=0.9,
            seq=2,
            entities=(
                {
                    "entity": "callback_time",
                    "value": "明天下午三点",
                    "start_at": named_from.isoformat(),
                    "end_at": (named_from + timedelta(hours=1)).isoformat(),
                },
            ),
        ),
        Turn("bot", "好的", response="utter_ask_wecom", seq=3),
        Turn("callee", "转人工", intent="request_human", confidence=0.9, seq=4),
        Turn("bot", LINES["utter_handoff"], response="utter_handoff", seq=5),
        Turn("bot", LINES["utter_handoff_failed"], response="utter_handoff_failed", seq=6),
    ]
    outcome = assess(result)
    assert not any(f.action == CALLBACK for f in outcome.followups)
    [callback] = [f for f in outcome.followups if f.action == ADVISOR_CALLBACK]
    assert (callback.window_start, callback.window_end) == (named_from, named_from + timedelta(hours=1))
    assert callback.reason.startswith(ADVISOR_CALLBACK_REASON) and "明天下午三点" in callback.reason


def hostile_hand_off(call_id: str) -> CallResult:
    result = CallResult(
        call_id,
        answered=True,
        answered_at=MORNING,
        ended_at=MORNING + timedelta(seconds=40),
        hangup_by="bot",
        handoff="handoff_failed",
        handoff_reason="no_advisor",
    )
    result.turns = [
        Turn("bot", LINES["utter_ask_good_time"], response="utter_ask_good_time", seq=1),
        Turn("callee", "骗子，转人工", intent="hostile", confidence=0.9, seq=2),
        Turn("bot", LINES["utter_handoff"], response="utter_handoff", seq=3),
    ]
    result.outcome = assess(result)
    return result


def test_a_hostile_callee_gets_no_callback_even_when_the_hand_off_fails() -> None:
    outcome = hostile_hand_off("c").outcome
    assert outcome.grade.grade == "C"
    assert [f.action for f in outcome.followups] == [DO_NOT_CALL]


def test_freeswitch_hand_off_bridges_with_uuid_transfer() -> None:
    async def scenario(outcome: str, wait_s: float):
        switch = FakeFreeSwitch()
        port = await switch.start()
        switch.outcomes["13900000000"] = "answer"
        switch.transfer_outcomes["8001"] = outcome
        connection = await EslConnection.connect("127.0.0.1", port, "ClueCon")
        carrier = FreeSwitchCarrier(connection, gateway="gw", caller_id="02100000000")
        await carrier.start()
        router = EventRouter(carrier)
        talker = asyncio.ensure_future(callee(switch, {"utter_ask_good_time": "我要跟真人说"}))
        try:
            result = await run_call(
                carrier,
                router,
                ScriptedAgent(),
                call_id="fs-1",
                phone="13900000000",
                lead=LeadContext(),
                clock=lambda: datetime.now(timezone.utc),
                audio_for=lambda line: f"/prompts/{line.response}.wav",
                event_timeout_s=10,
                handoff=HandoffPolicy(target="8001 XML default", wait_s=wait_s, line_wait_s=0.1),
            )
            return result, list(switch.commands)
        finally:
            talker.cancel()
            await router.aclose()
            await connection.close()
            await switch.stop()

    taken, commands = run(scenario("bridge", 2.0))
    assert taken.handoff == "handed_off" and taken.handoff_agent.startswith("advisor-")
    transfer = next(c for c in commands if c.startswith("api uuid_transfer"))
    assert transfer.endswith(" 8001 XML default")
    # the hand-off line went out before the transfer, and the robot never hung up on the advisor
    assert commands.index(next(c for c in commands if c.endswith("/prompts/utter_handoff.wav aleg"))) < commands.index(
        transfer
    )
    assert not any(c.startswith("api uuid_kill") for c in commands)
    assert taken.outcome.grade.grade == "B"

    missed, commands = run(scenario("queue", 0.3))
    assert missed.handoff == "handoff_failed" and missed.handoff_reason == "no_advisor"
    assert any(c.endswith(" park inline") for c in commands)
    assert any(c.endswith("/prompts/utter_handoff_failed.wav aleg") for c in commands)
    assert any(c.startswith("api uuid_kill") for c in commands) and missed.hangup_by == "bot"
    assert any(f.action == ADVISOR_CALLBACK for f in missed.outcome.followups)


def test_callee_hanging_up_on_hold_is_a_failed_hand_off_with_an_advisor_callback() -> None:
    async def scenario():
        switch = FakeFreeSwitch()
        port = await switch.start()
        switch.outcomes["13900000000"] = "answer"
        switch.transfer_outcomes["8001"] = "NO_USER_RESPONSE"  # the queue gives up and hangs up
        connection = await EslConnection.connect("127.0.0.1", port, "ClueCon")
        carrier: Carrier = FreeSwitchCarrier(connection, gateway="gw", caller_id="02100000000")
        await carrier.start()
        router = EventRouter(carrier)
        talker = asyncio.ensure_future(callee(switch, {"utter_ask_good_time": "转人工"}))
        try:
            return await run_call(
                carrier,
                router,
                ScriptedAgent(),
                call_id="fs-2",
                phone="13900000000",
                lead=LeadContext(),
                clock=lambda: datetime.now(timezone.utc),
                audio_for=lambda line: f"/prompts/{line.response}.wav",
                event_timeout_s=10,
                handoff=HandoffPolicy(target="8001", wait_s=2, line_wait_s=0.1),
            )
        finally:
            talker.cancel()
            await router.aclose()
            await connection.close()
            await switch.stop()

    result = run(scenario())
    assert result.handoff == "handoff_failed" and result.handoff_reason == "call_ended"
    assert result.cause == "NO_USER_RESPONSE" and result.hangup_by == "callee"
    assert [t.response for t in result.turns if t.speaker == "bot"][-1] == "utter_handoff"  # nothing more was said
    assert any(f.action == ADVISOR_CALLBACK for f in result.outcome.followups)
