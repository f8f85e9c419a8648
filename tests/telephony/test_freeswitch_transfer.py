"""Hand-off to a human over FreeSWITCH: `uuid_transfer` against the protocol-faithful fake switch."""
from __future__ import annotations

import asyncio

import pytest

from telephony.carrier import CALL_ENDED, NO_ADVISOR, REJECTED, Prompt
from tests.conftest import run
from tests.telephony.test_freeswitch_esl import connected, next_event

PHONE = "13812345678"


async def answered_call(transfer_outcomes: dict[str, str]):
    switch, connection, carrier = await connected()
    switch.outcomes[PHONE] = "answer"
    switch.transfer_outcomes.update(transfer_outcomes)
    channel = await carrier.dial("attempt-1", PHONE)
    await next_event(carrier, "answered")
    return switch, connection, carrier, channel


async def close(switch, connection) -> None:
    await connection.close()
    await switch.stop()


def test_transfer_bridges_to_an_advisor_and_the_robot_hears_no_more() -> None:
    async def scenario():
        switch, connection, carrier, channel = await answered_call({"advisors": "bridge"})
        result = await carrier.transfer("attempt-1", "advisors XML default", wait_s=2)
        bridged_to = switch.channels[channel].bridged_to
        await switch.say(channel, "你好我想问下保费")  # said to the advisor, not to the robot
        await switch.callee_hangs_up(channel)
        later = await next_event(carrier)
        await close(switch, connection)
        return switch, channel, result, bridged_to, later

    switch, channel, result, bridged_to, later = run(scenario())
    assert result.bridged and result.agent == bridged_to
    assert f"api uuid_transfer {channel} advisors XML default" in switch.commands
    assert later.kind == "hangup" and later.answered  # the call's end still arrives; no speech before it
    assert not any(c.startswith("api uuid_kill") for c in switch.commands)  # the robot never hangs up on the advisor


def test_transfer_bridging_after_a_wait_counts_as_taken() -> None:
    async def scenario():
        switch, connection, carrier, channel = await answered_call({"8001": "bridge:0.2"})
        result = await carrier.transfer("attempt-1", "8001", wait_s=2)
        bridged_to = switch.channels[channel].bridged_to
        await close(switch, connection)
        return result, bridged_to

    result, bridged_to = run(scenario())
    assert result.bridged and result.agent == bridged_to and 0.15 < result.waited_s < 1.5


def test_nobody_free_within_the_wait_takes_the_call_back_for_the_robot() -> None:
    async def scenario():
        switch, connection, carrier, channel = await answered_call({"advisors": "queue"})
        result = await carrier.transfer("attempt-1", "advisors", wait_s=0.3)
        # the robot talks again on the parked channel, and the callee is heard again
        await carrier.play("attempt-1", Prompt("utter_handoff_failed", "稍后顾问回电", "/prompts/failed.wav"))
        await switch.say(channel, "好的")
        speech = await next_event(carrier, "speech")
        await close(switch, connection)
        return switch, channel, result, speech

    switch, channel, result, speech = run(scenario())
    assert not result.bridged and result.reason == NO_ADVISOR and result.waited_s >= 0.3
    assert switch.commands.index(f"api uuid_transfer {channel} advisors") \
        < switch.commands.index(f"api uuid_transfer {channel} park inline") \
        < switch.commands.index(f"api uuid_broadcast {channel} /prompts/failed.wav aleg")
    assert speech.text == "好的"


def test_a_bridge_that_would_come_after_the_take_back_never_happens() -> None:
    async def scenario():
        switch, connection, carrier, channel = await answered_call({"advisors": "bridge:0.5"})
        result = await carrier.transfer("attempt-1", "advisors", wait_s=0.1)
        await carrier.hangup("attempt-1")
        await next_event(carrier, "hangup")
        bridged_to = switch.channels.get(channel)
        await close(switch, connection)
        return result, bridged_to

    result, bridged_to = run(scenario())
    assert result.reason == NO_ADVISOR and bridged_to is None


def test_the_dialplan_giving_up_ends_the_call() -> None:
    async def scenario():
        switch, connection, carrier, channel = await answered_call({"advisors": "NO_USER_RESPONSE"})
        result = await carrier.transfer("attempt-1", "advisors", wait_s=2)
        hangup = await next_event(carrier, "hangup")
        await close(switch, connection)
        return result, hangup

    result, hangup = run(scenario())
    assert not result.bridged and result.reason == CALL_ENDED and result.detail == "NO_USER_RESPONSE"
    assert hangup.cause == "NO_USER_RESPONSE" and hangup.answered


def test_callee_hanging_up_on_hold_ends_the_transfer() -> None:
    async def scenario():
        switch, connection, carrier, channel = await answered_call({"advisors": "queue"})
        task = asyncio.ensure_future(carrier.transfer("attempt-1", "advisors", wait_s=5))
        while not switch.channels[channel].transfers:  # on hold once the switch has taken the transfer
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        await switch.callee_hangs_up(channel)
        result = await task
        hangup = await next_event(carrier, "hangup")
        await close(switch, connection)
        return result, hangup

    result, hangup = run(scenario())
    assert result.reason == CALL_ENDED and result.waited_s < 2
    assert hangup.cause == "NORMAL_CLEARING"


def test_transfer_of_a_call_that_is_gone_or_a_bad_target() -> None:
    async def scenario():
        switch, connection, carrier, channel = await answered_call({})
        del switch.channels[channel]  # the switch lost it without telling us
        gone = await carrier.transfer("attempt-1", "advisors", wait_s=1)
        unknown = await carrier.transfer("attempt-9", "advisors", wait_s=1)
        with pytest.raises(ValueError):
            await carrier.transfer("attempt-1", "advisors\n\napi shutdown", wait_s=1)
        await close(switch, connection)
        return gone, unknown

    gone, unknown = run(scenario())
    assert gone.reason == REJECTED and "No such channel" in gone.detail
    assert unknown.reason == CALL_ENDED


def test_fake_switch_usage_reply_without_destination() -> None:
    async def scenario():
        switch, connection, carrier, channel = await answered_call({})
        reply = await connection.api(f"uuid_transfer {channel} -both")
        await close(switch, connection)
        return reply

    assert run(scenario()).startswith("-USAGE: <uuid> [-bleg|-both] <dest-exten>")
