"""CallSession against the real trained model: the call flow a callee hears."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from bot.conversation.session import CallEnded, CallSession, LeadContext
from bot.core.errors import UserError
from bot.script.lint import AI_WORD, OPENING_ELEMENTS, SYNTHESIS_WORD
from tests.conftest import run


class FakeClock:
    """Advances one second per reading, so turn offsets are predictable."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_opening_is_compliant_and_personal(dialogue_agent) -> None:
    async def call():
        session = CallSession(dialogue_agent, LeadContext(surname="王", gender="M"))
        return await session.start()

    reply = run(call())
    assert [line.response for line in reply.lines] == ["utter_opening", "utter_ask_good_time"]
    opening = reply.lines[0].text
    assert opening.startswith("王先生您好")
    assert "安心保险服务平台" in opening  # the institution slot's value, not a placeholder
    assert AI_WORD.search(opening) and SYNTHESIS_WORD.search(opening)
    for element, pattern, _ in OPENING_ELEMENTS:
        assert pattern.search(opening), element
    assert not reply.end_call


def test_script_variant_changes_the_opening_and_pitch(dialogue_agent) -> None:
    async def opening_and_pitch(variant: str):
        session = CallSession(dialogue_agent, LeadContext(surname="李", gender="F", script_variant=variant,
                                                          incentive="一次免费保单检视"))
        start = await session.start()
        pitch = await session.hear("嗯你说吧")
        return start.lines[0].text, pitch.lines[0].text

    standard = run(opening_and_pitch("standard"))
    benefit_first = run(opening_and_pitch("benefit_first"))
    assert standard[0] != benefit_first[0] and standard[1] != benefit_first[1]
    assert "一次免费保单检视" in standard[1] and "一次免费保单检视" in benefit_first[1]
    assert benefit_first[0].startswith("李女士您好")


def test_unknown_variant_is_refused(dialogue_agent) -> None:
    session = CallSession(dialogue_agent, LeadContext(script_variant="no_such_variant"))
    with pytest.raises(UserError, match="unknown script variant 'no_such_variant'.*standard, benefit_first"):
        run(session.start())


def test_robot_question_is_answered_truthfully_and_call_goes_on(dialogue_agent) -> None:
    async def call():
        session = CallSession(dialogue_agent, LeadContext(surname="张", gender="M"))
        await session.start()
        return session, await session.hear("你是不是机器人啊")

    session, reply = run(call())
    assert reply.intent == "ask_is_robot" and reply.confidence > 0.5
    assert reply.lines[0].response == "utter_answer_is_robot"
    assert "人工智能" in reply.lines[0].text
    assert reply.lines[-1].response == "utter_ask_good_time"  # back to the open question
    assert not reply.end_call and not session.ended


def test_opt_out_confirms_once_and_ends(dialogue_agent) -> None:
    async def call():
        session = CallSession(dialogue_agent, LeadContext())
        await session.start()
        await session.hear("嗯你说")
        reply = await session.hear("别再给我打电话了")
        return session, reply

    session, reply = run(call())
    assert reply.intent == "stop_calling"
    assert [line.response for line in reply.lines] == ["utter_close_opt_out"]
    assert reply.end_call and session.ended and session.hangup_by == "bot"
    with pytest.raises(CallEnded):
        run(session.hear("喂"))


def test_silence_reprompts_once_then_ends(dialogue_agent) -> None:
    async def call():
        session = CallSession(dialogue_agent, LeadContext())
        await session.start()
        await session.hear("可以")  # now at the WeCom question
        first = await session.silence()
        second = await session.hear("   ")  # blank ASR text is silence too
        return session, first, second

    session, first, second = run(call())
    assert [line.response for line in first.lines] == ["utter_reprompt_silence", "utter_ask_wecom"]
    assert "专属顾问" in first.lines[1].text  # the advisor slot's initial value, not a crash
    assert not first.end_call
    assert [line.response for line in second.lines] == ["utter_close_silence"]
    assert second.end_call and session.hangup_by == "bot"


def test_speech_resets_the_silence_count(dialogue_agent) -> None:
    async def call():
        session = CallSession(dialogue_agent, LeadContext())
        await session.start()
        await session.silence()
        await session.hear("喂你好")
        return session, await session.silence()

    session, reply = run(call())
    assert not reply.end_call and reply.lines[0].response == "utter_reprompt_silence"


def test_turns_are_recorded_with_times(dialogue_agent) -> None:
    clock = FakeClock()

    async def call():
        session = CallSession(dialogue_agent, LeadContext(), call_id="call-turns", clock=clock)
        await session.start()
        await session.hear("你们是哪个公司的")
        await session.hangup("callee")
        return session

    session = run(call())
    speakers = [t.speaker for t in session.turns]
    assert speakers == ["bot", "bot", "callee", "bot", "bot"]
    assert [t.seq for t in session.turns] == [1, 2, 3, 4, 5]
    offsets = [t.offset_ms for t in session.turns]
    assert offsets == sorted(offsets) and offsets[0] == 1000
    callee = session.turns[2]
    assert callee.intent == "ask_identity" and callee.confidence is not None
    assert session.hangup_by == "callee" and session.talk_time_s > 0


def test_low_confidence_reply_goes_to_fallback(dialogue_agent) -> None:
    async def call():
        session = CallSession(dialogue_agent, LeadContext())
        await session.start()
        return await session.hear("氨基酸的结构式")

    reply = run(call())
    assert reply.intent == "nlu_fallback"
    assert [line.response for line in reply.lines] == ["utter_fallback", "utter_ask_good_time"]


def test_concurrent_sessions_do_not_mix(dialogue_agent) -> None:
    """Many calls on one agent at once: each follows its own path."""
    paths = {
        "agree": (["嗯方便", "好的你加我吧"], "utter_close_success"),
        "refuse": (["不需要谢谢"], "utter_close_refuse"),
        "opt_out": (["以后别打了"], "utter_close_opt_out"),
        "callback": (["在开会呢", "明天下午再打"], "utter_close_callback"),
    }

    async def one(index: int, kind: str):
        replies, expected_close = paths[kind]
        session = CallSession(dialogue_agent, LeadContext(surname="陈"), call_id=f"concurrent-{index}")
        await session.start()
        last = None
        for text in replies:
            await asyncio.sleep(0)
            last = await session.hear(text)
        return kind, last.lines[-1].response, session.ended

    async def many():
        kinds = list(paths) * 10
        return await asyncio.gather(*(one(i, k) for i, k in enumerate(kinds)))

    results = run(many())
    assert len(results) == 40
    for kind, last_response, ended in results:
        assert last_response == paths[kind][1], kind
        assert ended
    # finished calls are dropped from the in-memory tracker store
    assert not any(dialogue_agent.holds_in_memory(f"concurrent-{i}") for i in range(40))
