"""One call from dial to database: the FreeSWITCH adapter (against the protocol-faithful
fake switch), the real dialogue model, grading, follow-ups and the call log."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from sqlalchemy import select

from bot.dialing.call_store import record_call
from bot.dialing.call_runner import EventRouter, run_call
from bot.dialing.planner import plan_campaign
from bot.campaigns.models import CallAttempt, TurnRow
from bot.campaigns.service import change_status, create_campaign
from bot.conversation.session import LeadContext
from bot.core.db.engine import session_scope
from bot.dnc.service import dnc_state
from telephony.freeswitch.carrier import FreeSwitchCarrier
from telephony.freeswitch.esl import EslConnection
from tests.conftest import run
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.telephony.fake_freeswitch import FakeFreeSwitch
from tests.dialing.test_planner import MORNING, add_pack


async def callee(switch: FakeFreeSwitch, replies: dict[str, str]) -> None:
    """Answers each question the robot plays with the scripted reply for that prompt."""
    answered: set[tuple[str, int]] = set()
    while True:
        await asyncio.sleep(0.01)
        for channel in list(switch.channels.values()):
            for index, path in enumerate(channel.broadcasts):
                prompt = path.rsplit("/", 1)[-1].removesuffix(".wav")
                if prompt in replies and (channel.uuid, index) not in answered:
                    answered.add((channel.uuid, index))
                    await switch.say(channel.uuid, replies[prompt])


def clock() -> datetime:
    return MORNING


async def one_call(agent, phone: str, replies: dict[str, str], call_id: str):
    switch = FakeFreeSwitch()
    port = await switch.start()
    switch.outcomes[phone] = "answer"
    connection = await EslConnection.connect("127.0.0.1", port, "ClueCon")
    carrier = FreeSwitchCarrier(connection, gateway="gw", caller_id="02100000000")
    await carrier.start()
    router = EventRouter(carrier)
    talker = asyncio.ensure_future(callee(switch, replies))
    try:
        return await run_call(carrier, router, agent, call_id=call_id, phone=phone,
                              lead=LeadContext(surname="王", gender="M"), clock=clock,
                              audio_for=lambda line: f"/prompts/{line.response}.wav", event_timeout_s=10)
    finally:
        talker.cancel()
        await router.aclose()
        await connection.close()
        await switch.stop()


def test_a_refusal_is_graded_logged_and_put_on_the_soft_decline_list(db, keyring, dialogue_agent) -> None:
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 1)
        create_campaign(session, name="autumn", packs=["pack-a"], lines=1)
        campaign = change_status(session, "autumn", "start", now=MORNING)
        [attempt_id] = plan_campaign(session, campaign, MORNING).created

    result = run(one_call(dialogue_agent, "13800000000", {"utter_ask_good_time": "不需要谢谢"}, f"attempt-{attempt_id}"))
    assert result.answered and result.hangup_by == "bot"
    assert result.outcome.grade.grade == "C"
    assert [t.response for t in result.turns if t.speaker == "bot"][-1] == "utter_close_refuse"

    with session_scope(db) as session:
        attempt = session.get(CallAttempt, attempt_id)
        record_call(session, attempt, result)
    with session_scope(db) as session:
        attempt = session.get(CallAttempt, attempt_id)
        assert (attempt.status, attempt.outcome, attempt.grade) == ("completed", "answered", "C")
        assert attempt.history_outcome == "soft_decline"
        turns = session.execute(select(TurnRow).where(TurnRow.attempt_id == attempt_id)
                                .order_by(TurnRow.seq)).scalars().all()
        assert [t.speaker for t in turns][:3] == ["bot", "bot", "callee"]
        assert turns[2].intent == "refuse"
        state = dnc_state(session, attempt.phone_hash, MORNING)
        assert not state.opt_out and state.soft_until is not None and state.soft_until > MORNING
        # the number is not planned again by any campaign
        assert plan_campaign(session, change_status(session, "autumn", "pause", now=MORNING), MORNING).created == []


def test_an_agreement_is_grade_a(db, keyring, dialogue_agent) -> None:
    result = run(one_call(dialogue_agent, "13900000000",
                          {"utter_ask_good_time": "嗯你说", "utter_ask_wecom": "好的你加我吧"}, "attempt-a"))
    assert result.outcome.grade.grade == "A"
    assert any(f.action == "wecom_invite" for f in result.outcome.followups)
    assert result.turns[-1].response == "utter_close_success"
