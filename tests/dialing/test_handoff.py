"""Hand-off to a human (转人工) through the call runtime: the script's reply carries
`utter_handoff`, the runner transfers the call, and the outcome is graded, stored, booked.

The dialogue is a small scripted agent (the real model has no `request_human` intent yet):
it says the opening and asks for a good time; "转人工"/"真人" gets `utter_handoff`, a hostile
reply gets the opt-out close, anything else the WeCom ask.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.campaigns.models import CallAttempt, TurnRow
from bot.campaigns.service import change_status, create_campaign
from bot.conversation.agent import BotLine, Parse
from bot.conversation.session import LeadContext
from bot.core.db.engine import session_scope
from bot.dialing.call_runner import CallResult, EventRouter, HandoffPolicy, assess, run_call
from bot.dialing.call_store import record_call
from bot.dialing.planner import plan_campaign
from intents.finished_call import Turn
from intents.followups import ADVISOR_CALLBACK_REASON, CALLBACK, DO_NOT_CALL, WECOM_INVITE
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


async def simulated_call(personas: SimulatorConfig, pool: AdvisorPool, call_id: str,
                         wait_s: float = 20.0) -> tuple[CallResult, SimulatorCarrier]:
    clock = SimClock(MORNING)
    carrier = SimulatorCarrier(personas, clock=clock, seed=5, advisors=pool)
    router = EventRouter(carrier)
    try:
        result = await run_call(carrier, router, ScriptedAgent(), call_id=call_id, phone="13800000000",
                                lead=LeadContext(surname="王", gender="M"), clock=clock.now,
                                handoff=HandoffPolicy(target="advisors", wait_s=wait_s), event_timeout_s=10)
        await asyncio.sleep(0)
        return result, carrier
    finally:
        await router.aclose()
        await carrier.aclose()


def stored(db, attempt_id: int) -> tuple[CallAttempt, list[TurnRow]]:
    with session_scope(db) as session:
        attempt = session.get(CallAttempt, attempt_id)
        turns = session.execute(select(TurnRow).where(TurnRow.attempt_id == attempt_id)
                                .order_by(TurnRow.seq)).scalars().all()
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
    assert (attempt.status, attempt.outcome, attempt.handoff, attempt.grade) == ("completed", "answered", "handed_off", "B")
    assert attempt.grade_reason == "B：要求转人工" and attempt.callback_at is None
    assert any(f["action"] == WECOM_INVITE for f in attempt.followups)
    assert [(t.speaker, t.response or t.intent) for t in turns][-2:] == [("callee", "request_human"),
                                                                         ("bot", "utter_handoff")]


def test_nobody_free_says_so_books_an_advisor_callback_handoff_failed(db, keyring, personas) -> None:
    attempt_id = planned_attempt(db, keyring)
    pool = AdvisorPool(AdvisorPoolConfig(advisors=0))
    result, carrier = run(simulated_call(personas, pool, f"attempt-{attempt_id}", wait_s=15))

    assert result.handoff == "handoff_failed" and result.handoff_reason == "no_advisor"
    bot_lines = [t.response for t in result.turns if t.speaker == "bot"]
    assert bot_lines[-2:] == ["utter_handoff", "utter_handoff_failed"]
    assert result.hangup_by == "bot" and carrier.call(f"attempt-{attempt_id}").ended_by == "robot"
    assert result.outcome.grade.grade == "B"
    [callback] = [f for f in result.outcome.followups if f.action == CALLBACK]
    assert callback.reason == ADVISOR_CALLBACK_REASON
    # the callee waited the whole 15 s on hold before the robot came back
    assert result.talk_time_s >= 15

    with session_scope(db) as session:
        record_call(session, session.get(CallAttempt, attempt_id), result)
    attempt, _ = stored(db, attempt_id)
    assert (attempt.handoff, attempt.grade) == ("handoff_failed", "B")
    assert attempt.callback_at == callback.window_start
    assert attempt.callback_at - attempt.ended_at == timedelta(minutes=30)  # 10:30 Shanghai: inside calling hours
    assert any(f["action"] == CALLBACK and f["reason"] == ADVISOR_CALLBACK_REASON for f in attempt.followups)


def test_a_hostile_callee_gets_no_callback_even_when_the_hand_off_fails() -> None:
    result = CallResult("c", answered=True, answered_at=MORNING, ended_at=MORNING + timedelta(seconds=40),
                        handoff="handoff_failed", handoff_reason="no_advisor")
    result.turns = [Turn("bot", LINES["utter_ask_good_time"], response="utter_ask_good_time", seq=1),
                    Turn("callee", "骗子，转人工", intent="hostile", confidence=0.9, seq=2),
                    Turn("bot", LINES["utter_handoff"], response="utter_handoff", seq=3)]
    outcome = assess(result)
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
            result = await run_call(carrier, router, ScriptedAgent(), call_id="fs-1", phone="13900000000",
                                    lead=LeadContext(), clock=lambda: datetime.now(timezone.utc),
                                    audio_for=lambda line: f"/prompts/{line.response}.wav", event_timeout_s=10,
                                    handoff=HandoffPolicy(target="8001 XML default", wait_s=wait_s, line_wait_s=0.1))
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
    assert commands.index(next(c for c in commands if c.endswith("/prompts/utter_handoff.wav aleg"))) \
        < commands.index(transfer)
    assert not any(c.startswith("api uuid_kill") for c in commands)
    assert taken.outcome.grade.grade == "B"

    missed, commands = run(scenario("queue", 0.3))
    assert missed.handoff == "handoff_failed" and missed.handoff_reason == "no_advisor"
    assert any(c.endswith(" park inline") for c in commands)
    assert any(c.endswith("/prompts/utter_handoff_failed.wav aleg") for c in commands)
    assert any(c.startswith("api uuid_kill") for c in commands) and missed.hangup_by == "bot"
    assert any(f.action == CALLBACK for f in missed.outcome.followups)


def test_callee_hanging_up_on_hold_is_a_failed_hand_off_with_a_callback() -> None:
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
            return await run_call(carrier, router, ScriptedAgent(), call_id="fs-2", phone="13900000000",
                                  lead=LeadContext(), clock=lambda: datetime.now(timezone.utc),
                                  audio_for=lambda line: f"/prompts/{line.response}.wav", event_timeout_s=10,
                                  handoff=HandoffPolicy(target="8001", wait_s=2, line_wait_s=0.1))
        finally:
            talker.cancel()
            await router.aclose()
            await connection.close()
            await switch.stop()

    result = run(scenario())
    assert result.handoff == "handoff_failed" and result.handoff_reason == "call_ended"
    assert result.cause == "NO_USER_RESPONSE" and result.hangup_by == "callee"
    assert [t.response for t in result.turns if t.speaker == "bot"][-1] == "utter_handoff"  # nothing more was said
    assert any(f.action == CALLBACK for f in result.outcome.followups)
