"""Barge-in in the simulator: an interrupting persona talks over the pitch — the robot's line
and the rest of its turn stop, the callee's words arrive — but never over the opening."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from telephony.carrier import CallEvent, Prompt
from telephony.clock import SimClock
from telephony.simulator.carrier import SimulatorCarrier
from telephony.simulator.personas import SimulatorConfig, load_simulator_config
from tests.conftest import run

YAML = """\
timing:
  speech_chars_per_s: 5
  callee_chars_per_s: 4
  endpointing_s: 0.7
personas:
  interrupter:
    reply_delay_s: [0.5, 0.5]
    steps:
      utter_opening:
        interrupt: {喂喂你是谁: 1}
        interrupt_after_s: 1.0
      utter_pitch:
        interrupt: {等一下多少钱: 1}
        interrupt_after_s: 2.0
      utter_ask_good_time:
        replies: {你说吧: 1}
      utter_ask_wecom:
        replies: {行: 1}
      utter_ask_callback_time:
        replies: {明天吧: 1}
announcements:
  vacant_number: {您拨打的号码是空号，请查证后再拨: 1}
audience_packs:
  default:
    answer_by_hour: {0-23: 1.0}
    ring_s: [2, 2]
    persona_mix: {interrupter: 1}
"""
OPENING = Prompt("utter_opening", "您好，我是安心保险的AI客服，本通电话有录音。", interruptible=False)
PITCH = Prompt("utter_pitch", "我们有一款少儿重疾险，保障一百多种重大疾病，每年只要几百元。")
ASK = Prompt("utter_ask_good_time", "请问您现在方便吗？")


def spoken_s(prompt: Prompt) -> float:
    return len(prompt.text) / 5  # speech_chars_per_s above


@pytest.fixture()
def config(tmp_path: Path) -> SimulatorConfig:
    path = tmp_path / "personas.yml"
    path.write_text(YAML, encoding="utf-8")
    return load_simulator_config(path)


async def one_call(carrier: SimulatorCarrier, turn: list[Prompt]) -> list[tuple[float, CallEvent]]:
    """Play `turn` on answer; then close. Each event with its time (s) since the answer."""
    await carrier.dial("c1", "13900000001")
    answered_at: datetime | None = None
    seen: list[tuple[float, CallEvent]] = []
    while True:
        event = await carrier.events.get()
        now = carrier.clock.now()
        answered_at = answered_at or (now if event.kind == "answered" else None)
        seen.append(((now - (answered_at or now)) / timedelta(seconds=1), event))
        if event.kind == "answered":
            for prompt in turn:
                await carrier.play("c1", prompt)
        elif event.kind == "speech":
            await carrier.play("c1", Prompt("utter_close_goodbye", "好的再见。"))
            await carrier.hangup("c1")
        elif event.kind == "hangup":
            return seen


def test_interrupting_persona_stops_the_pitch_and_the_rest_of_the_turn(config: SimulatorConfig) -> None:
    carrier = SimulatorCarrier(config, clock=SimClock(datetime(2026, 11, 24, 19, tzinfo=ZoneInfo("Asia/Shanghai"))))
    seen = run(one_call(carrier, [OPENING, PITCH, ASK]))
    timeline = [(round(at, 1), event.kind, event.text) for at, event in seen]
    kinds = [(kind, text) for _, kind, text in timeline]
    assert kinds[:3] == [("answered", ""), ("playback_done", ""), ("playback_done", "")]
    # The opening is heard whole, its interrupt ignored; the pitch is cut 2 s in.
    assert timeline[1][0] == round(spoken_s(OPENING), 1)
    assert timeline[2][0] == round(spoken_s(OPENING) + 2.0, 1)
    # The callee's words arrive once said and endpointed; the question after the pitch was
    # dropped: nothing else of the robot's turn plays before its reply (here: it hangs up).
    assert timeline[3][1] == "speech" and timeline[3][0] >= timeline[2][0] + 0.7
    assert [kind for _, kind, _ in timeline[4:]] == ["hangup"]
    said = [text for kind, text in kinds if kind == "speech"]
    assert len(said) == 1 and "多少钱" in said[0]  # ASR noise may add a filler
    assert carrier.barge_ins == 1
    assert carrier.call("c1").replies == said


def test_a_pitch_marked_non_interruptible_is_heard_whole(config: SimulatorConfig) -> None:
    carrier = SimulatorCarrier(config, clock=SimClock(datetime(2026, 11, 24, 19, tzinfo=ZoneInfo("Asia/Shanghai"))))
    pitch = Prompt(PITCH.response, PITCH.text, interruptible=False)
    seen = run(one_call(carrier, [OPENING, pitch, ASK]))
    done = [round(at, 1) for at, event in seen if event.kind == "playback_done"]
    ends = [spoken_s(OPENING), spoken_s(OPENING) + spoken_s(PITCH), spoken_s(OPENING) + spoken_s(PITCH) + spoken_s(ASK)]
    assert done[:3] == [round(end, 1) for end in ends]  # opening, pitch and question all played out
    said = [event.text for _, event in seen if event.kind == "speech"]
    assert len(said) == 1 and "你说吧" in said[0]  # the answer to the question, no interruption
    assert carrier.barge_ins == 0


def test_shipped_personas_include_an_interrupter_in_the_default_mix() -> None:
    config = load_simulator_config()
    interrupter = config.personas["interrupter"]
    assert interrupter.steps["utter_pitch"].interrupt.items
    assert "interrupter" in config.pack("default").persona_mix.items
