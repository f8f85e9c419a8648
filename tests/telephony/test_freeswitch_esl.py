"""FreeSWITCH carrier over the Event Socket, against a protocol-faithful fake switch."""
from __future__ import annotations

import asyncio

import pytest

from telephony.carrier import CARRIER_LOST, CallEvent, Prompt
from telephony.freeswitch.carrier import FreeSwitchCarrier
from telephony.hangup_causes import status_for_hangup
from telephony.freeswitch.esl import EslConnection, EslConnectionLost, EslError
from tests.conftest import run
from tests.telephony.fake_freeswitch import FakeFreeSwitch


async def next_event(carrier: FreeSwitchCarrier, kind: str | None = None, timeout: float = 3.0) -> CallEvent:
    while True:
        event = await asyncio.wait_for(carrier.events.get(), timeout)
        if kind is None or event.kind == kind:
            return event


async def connected(fmt: str = "plain", **kwargs):
    switch = FakeFreeSwitch()
    port = await switch.start()
    connection = await EslConnection.connect("127.0.0.1", port, "ClueCon")
    carrier = FreeSwitchCarrier(connection, gateway="gw", caller_id="02112345678", **kwargs)
    if fmt == "json":
        await connection.subscribe("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB",
                                   "DETECTED_SPEECH", "PLAYBACK_STOP", fmt="json")
    else:
        await carrier.start()
    return switch, connection, carrier


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_answered_call_with_chinese_speech_and_barge_in(fmt: str) -> None:
    async def scenario():
        switch, connection, carrier = await connected(fmt)
        switch.outcomes["13812345678"] = "answer"
        channel = await carrier.dial("attempt-1", "13812345678")
        answered = await next_event(carrier)
        await carrier.play("attempt-1", Prompt("utter_opening", "您好", "/prompts/opening.wav"))
        await switch.say(channel, "你是机器人吗", nlsml=(fmt == "plain"))
        speech = await next_event(carrier, "speech")
        await carrier.hangup("attempt-1")
        hangup = await next_event(carrier, "hangup")
        await connection.close()
        await switch.stop()
        return switch, channel, answered, speech, hangup

    switch, channel, answered, speech, hangup = run(scenario())
    assert answered == CallEvent("attempt-1", "answered", answered=True)
    assert speech.text == "你是机器人吗"
    if fmt == "plain":
        assert speech.confidence == pytest.approx(0.87)
    originate = next(c for c in switch.commands if c.startswith("bgapi originate"))
    assert f"origination_uuid={channel}" in originate and "waihu_call_id=attempt-1" in originate
    assert "sofia/gateway/gw/13812345678 &park()" in originate and "\nJob-UUID: " in originate
    assert f"api uuid_broadcast {channel} /prompts/opening.wav aleg" in switch.commands
    assert f"api uuid_break {channel} all" in switch.commands  # barge-in stopped the prompt
    assert hangup.cause == "NORMAL_CLEARING" and hangup.status is None and hangup.answered


@pytest.mark.parametrize("cause, status", [
    ("USER_BUSY", "line_busy"), ("NO_ANSWER", "no_answer"), ("UNALLOCATED_NUMBER", "vacant_number"),
    ("SUBSCRIBER_ABSENT", "powered_off"), ("CALL_REJECTED", "call_restricted"),
    ("NETWORK_OUT_OF_ORDER", "unreachable"),
])
def test_failed_originate_maps_cause_to_status(cause: str, status: str) -> None:
    async def scenario():
        switch, connection, carrier = await connected()
        switch.outcomes["13900000000"] = cause
        await carrier.dial("attempt-2", "13900000000")
        event = await next_event(carrier)
        await connection.close()
        await switch.stop()
        return event

    event = run(scenario())
    assert (event.kind, event.cause, event.status, event.answered) == ("hangup", cause, status, False)


def test_callee_hangs_up_mid_call() -> None:
    async def scenario():
        switch, connection, carrier = await connected()
        switch.outcomes["13700000000"] = "answer"
        channel = await carrier.dial("attempt-3", "13700000000")
        await next_event(carrier, "answered")
        await switch.callee_hangs_up(channel, "NORMAL_CLEARING")
        event = await next_event(carrier, "hangup")
        with pytest.raises(KeyError, match="no live channel"):
            await carrier.play("attempt-3", Prompt("utter_pitch", "…", "/prompts/x.wav"))
        await connection.close()
        await switch.stop()
        return event

    event = run(scenario())
    assert event.answered and event.status is None


def test_dropped_connection_mid_call_reports_every_live_call() -> None:
    async def scenario():
        switch, connection, carrier = await connected()
        switch.outcomes["13600000000"] = "answer"
        switch.outcomes["13600000001"] = "answer"
        await carrier.dial("a", "13600000000")
        await carrier.dial("b", "13600000001")
        await next_event(carrier, "answered")
        await next_event(carrier, "answered")
        await switch.drop_connections()
        lost = {(await next_event(carrier, "hangup")).call_id for _ in range(2)}
        with pytest.raises(EslConnectionLost):
            await connection.api("status")
        await switch.stop()
        return lost, carrier

    lost, carrier = run(scenario())
    assert lost == {"a", "b"}


def test_lost_events_carry_carrier_lost_status() -> None:
    async def scenario():
        switch, connection, carrier = await connected()
        switch.outcomes["13500000000"] = "answer"
        await carrier.dial("c", "13500000000")
        await next_event(carrier, "answered")
        await switch.drop_connections()
        event = await next_event(carrier, "hangup")
        await switch.stop()
        return event

    event = run(scenario())
    assert event.status == CARRIER_LOST and event.answered


def test_wrong_password_is_refused() -> None:
    async def scenario():
        switch = FakeFreeSwitch(password="secret")
        port = await switch.start()
        try:
            with pytest.raises(EslError, match="refused the password"):
                await EslConnection.connect("127.0.0.1", port, "ClueCon")
        finally:
            await switch.stop()

    run(scenario())


def test_api_errors_and_exit_disconnect_notice() -> None:
    async def scenario():
        switch, connection, carrier = await connected()
        assert "is ready" in await connection.api("status")
        with pytest.raises(EslError, match="Command not found"):
            await connection.api("no_such_command")
        await connection.close()
        await switch.stop()
        return switch

    switch = run(scenario())
    assert switch.commands[-1] == "exit"


def test_hangup_status_rules() -> None:
    assert status_for_hangup("NORMAL_CLEARING", answered=True) is None
    assert status_for_hangup("NORMAL_CLEARING", answered=False) == "unreachable"
    assert status_for_hangup("USER_BUSY", answered=False) == "line_busy"


def test_dial_rejects_non_digit_numbers() -> None:
    async def scenario():
        switch, connection, carrier = await connected()
        with pytest.raises(ValueError):
            await carrier.dial("x", "138 1234 5678; rm -rf")
        await connection.close()
        await switch.stop()

    run(scenario())


def test_recording_starts_on_answer_and_stops_at_the_robots_hang_up(tmp_path) -> None:
    """uuid_record <uuid> start <path> when the call is answered, stop <path> before uuid_kill;
    the switch writes the file (the fake does too, into a folder that exists)."""
    folder = tmp_path / "switch" / "2026" / "12"
    folder.mkdir(parents=True)
    path = str(folder / "7.wav")

    async def scenario():
        switch, connection, carrier = await connected()
        switch.outcomes["13812345678"] = "answer"
        channel = await carrier.dial("attempt-7", "13812345678", recording_path=path)
        await next_event(carrier, "answered")
        records_at_answer = list(switch.channels[channel].records)
        await carrier.hangup("attempt-7")
        records = list(switch.channels[channel].records) if channel in switch.channels else None
        await next_event(carrier, "hangup")
        await connection.close()
        await switch.stop()
        return switch, channel, records_at_answer, records

    switch, channel, at_answer, records = run(scenario())
    assert at_answer == [("start", path)]  # recording before the robot's first word
    start, stop, kill = (f"api uuid_record {channel} start {path}", f"api uuid_record {channel} stop {path}",
                         f"api uuid_kill {channel} NORMAL_CLEARING")
    assert start in switch.commands and stop in switch.commands
    assert switch.commands.index(start) < switch.commands.index(stop) < switch.commands.index(kill)
    assert (tmp_path / "switch" / "2026" / "12" / "7.wav").stat().st_size > 44


def test_callee_hang_up_closes_the_recording_without_a_stop(tmp_path) -> None:
    path = str(tmp_path / "8.wav")

    async def scenario():
        switch, connection, carrier = await connected()
        switch.outcomes["13700000008"] = "answer"
        channel = await carrier.dial("attempt-8", "13700000008", recording_path=path)
        await next_event(carrier, "answered")
        await switch.callee_hangs_up(channel)
        await next_event(carrier, "hangup")
        await connection.close()
        await switch.stop()
        return switch

    switch = run(scenario())
    assert [c for c in switch.commands if "uuid_record" in c] == [f"api uuid_record {_uuid_of(switch)} start {path}"]


def _uuid_of(switch: FakeFreeSwitch) -> str:
    originate = next(c for c in switch.commands if c.startswith("bgapi originate"))
    return originate.split("origination_uuid=", 1)[1].split(",", 1)[0]


def test_unanswered_call_is_not_recorded_and_bad_paths_are_refused(tmp_path) -> None:
    async def scenario():
        switch, connection, carrier = await connected()
        switch.outcomes["13900000009"] = "USER_BUSY"
        await carrier.dial("attempt-9", "13900000009", recording_path=str(tmp_path / "9.wav"))
        await next_event(carrier, "hangup")
        with pytest.raises(ValueError, match="recording_path"):
            await carrier.dial("attempt-10", "13900000010", recording_path="/rec/x.wav; uuid_kill all")
        await connection.close()
        await switch.stop()
        return switch

    switch = run(scenario())
    assert not any("uuid_record" in c for c in switch.commands)
