"""The simulator carrier: simulated callees on a fast clock, seeded and reproducible.

The last test drives real conversations through the dialogue agent; it is the
reference for how the dialer drives a carrier.
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
import re
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from bot.conversation.session import CallSession, LeadContext
from bot.core.settings import PROJECT_ROOT
from intents.announcements import detect_announcement
from telephony.carrier import SILENCE, CallEvent, Prompt
from telephony.simulator.carrier import SimulatorCarrier
from telephony.clock import RealClock, SimClock, run_on
from telephony.simulator.personas import (
    CLOSING_PREFIX, KNOWN_STEPS, AudienceProfile, PersonaConfigError, SimulatorConfig, Weighted,
    load_simulator_config,
)
from tests.conftest import run

UTC = timezone.utc
# Monday 2026-11-23 in Asia/Shanghai (UTC+8) at a given local hour.
def shanghai(hour: int, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC) - timedelta(hours=8)


MONDAY, SATURDAY = 23, 28

# A test-only YAML: one pack that answers far more in the evening, big announcement shares.
TEST_YAML = """\
timing:
  silence_timeout_s: 8
personas:
  yes_man:
    reply_delay_s: [0.5, 1.0]
    steps:
      utter_ask_good_time:
        replies: {嗯你说: 1, 可以你说吧: 1}
      utter_ask_wecom:
        replies: {行你加吧: 1}
      utter_ask_callback_time:
        replies: {明天上午吧: 1}
  quiet:
    steps:
      utter_ask_good_time: {silence: 1.0}
      utter_ask_wecom: {silence: 1.0}
      utter_ask_callback_time: {hangup: 1.0}
announcements:
  vacant_number: {您拨打的号码是空号，请查证后再拨: 1, 您波打的号码是孔号: 1}
  powered_off: [您拨打的电话已关机, 宁拨打的电话已观机]
audience_packs:
  default:
    answer_by_hour: {0-23: 0.5}
    ring_s: [2, 10]
    persona_mix: {yes_man: 1, quiet: 1}
  晚间:
    answer_by_hour:
      0-9: 0.05
      10: 0.2
      11-18: 0.3
      19: 0.7
      20-23: 0.1
    weekend_factor: 0.5
  空号多:
    answer_by_hour: {0-23: 1.0}
    announcements:
      vacant_number: 0.2
      powered_off: {share: 0.1, per_attempt: 0.5}
"""


@pytest.fixture()
def test_config(tmp_path: Path) -> SimulatorConfig:
    path = tmp_path / "personas.yml"
    path.write_text(TEST_YAML, encoding="utf-8")
    return load_simulator_config(path)


@pytest.fixture(scope="module")
def shipped_config() -> SimulatorConfig:
    return load_simulator_config()


# ---------------------------------------------------------------- a scripted robot


async def dial_and_collect(carrier: SimulatorCarrier, calls: dict[str, str], *, audience_pack: str | None = None,
                           script: tuple[str, ...] = ("utter_ask_good_time", "utter_ask_wecom"),
                           ) -> dict[str, list[CallEvent]]:
    """Dial every (call id → phone) at once; a scripted robot asks `script`'s questions in
    turn, then closes and hangs up. Returns each call's events in order."""
    for call_id, phone in calls.items():
        await carrier.dial(call_id, phone, audience_pack=audience_pack)
    events: dict[str, list[CallEvent]] = defaultdict(list)
    asked: Counter[str] = Counter()
    open_calls = set(calls)
    while open_calls:
        event = await carrier.events.get()
        events[event.call_id].append(event)
        if event.kind == "answered":
            await carrier.play(event.call_id, Prompt("utter_opening", "您好，我是AI客服，本通电话为人工智能合成语音。"))
        if event.kind == "answered" or (event.kind == "speech" and event.answered):
            step = asked[event.call_id]
            asked[event.call_id] += 1
            if step < len(script):
                await carrier.play(event.call_id, Prompt(script[step], "请问……？"))
            else:
                await carrier.play(event.call_id, Prompt("utter_close_goodbye", "好的，再见。"))
                await carrier.hangup(event.call_id)
        elif event.kind == "hangup":
            open_calls.discard(event.call_id)
    return dict(events)


def call_ids(n: int, prefix: str = "call") -> dict[str, str]:
    return {f"{prefix}-{i}": f"139{i:08d}" for i in range(n)}


# ---------------------------------------------------------------- clock

# Rasa installs uvloop, which hides its ready queue; the instant clock must work on both.
LOOPS = ["asyncio", "uvloop"]



@pytest.mark.parametrize("loop_kind", LOOPS)
def test_instant_clock_runs_an_hour_of_concurrent_waits_without_waiting(loop_kind) -> None:
    clock = SimClock(shanghai(9), speed=math.inf)

    async def caller() -> None:
        for _ in range(60):
            await clock.sleep(60)  # a minute at a time, for an hour

    async def hour() -> None:
        await asyncio.gather(*(caller() for _ in range(500)))

    run_on(loop_kind, hour())
    # 500 callers waiting side by side take one simulated hour, not 500.
    assert clock.now() == shanghai(10)
    assert clock.now().tzinfo is not None and clock.now().utcoffset() == timedelta(0)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_instant_clock_does_not_move_while_tasks_can_run(loop_kind) -> None:
    clock = SimClock(shanghai(9), speed=0)
    seen: list[float] = []

    async def busy() -> None:
        for _ in range(50):
            seen.append(clock.elapsed_s())
            await asyncio.sleep(0)  # runnable all along: simulated time must stand still

    async def sleeper() -> None:
        await clock.sleep(30)
        seen.append(clock.elapsed_s())

    async def both() -> None:
        await asyncio.gather(busy(), sleeper())

    run_on(loop_kind, both())
    assert seen[:50] == [0.0] * 50 and seen[-1] == 30.0


def test_scaled_clock_sleeps_in_proportion() -> None:
    clock = SimClock(shanghai(9), speed=36_000)  # an hour in 0.1 s

    async def hour() -> float:
        started = time.perf_counter()
        await clock.sleep(3600)
        return time.perf_counter() - started

    wall_s = run(hour())
    assert 0.09 <= wall_s < 0.5
    assert timedelta(minutes=59) < clock.now() - shanghai(9) < timedelta(minutes=75)
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2026, 1, 1))
    assert RealClock().now().tzinfo is not None


# ---------------------------------------------------------------- determinism


def test_same_seed_and_call_id_replay_the_same_call(shipped_config) -> None:
    def one_run(seed: int) -> dict[str, list[CallEvent]]:
        carrier = SimulatorCarrier(shipped_config, clock=SimClock(shanghai(19)), seed=seed)
        return run(dial_and_collect(carrier, call_ids(300), audience_pack="宝妈"))

    first, again, other_seed = one_run(7), one_run(7), one_run(8)
    assert first == again
    assert first != other_seed
    # Different call ids behave differently: many distinct conversations, not one repeated.
    answered = [tuple(e.text for e in events if e.kind == "speech") for events in first.values()
                if any(e.kind == "answered" for e in events)]
    assert len(answered) > 50 and len(set(answered)) > len(answered) / 2


def test_what_the_robot_says_never_changes_who_answers_or_who_they_are(shipped_config) -> None:
    """Common random numbers: an A/B test of script variants meets the same callees."""
    def people(script: tuple[str, ...]) -> dict[str, tuple]:
        carrier = SimulatorCarrier(shipped_config, clock=SimClock(shanghai(19)), seed=3)
        run(dial_and_collect(carrier, call_ids(300), audience_pack="车主", script=script))
        return {cid: (carrier.call(cid).answered, carrier.call(cid).persona, carrier.call(cid).announcement)
                for cid in call_ids(300)}

    assert people(("utter_ask_good_time",)) == people(("utter_ask_wecom", "utter_ask_callback_time"))


def test_a_a_split_of_call_ids_shows_no_difference(test_config) -> None:
    carrier = SimulatorCarrier(test_config, clock=SimClock(shanghai(19)), seed=11)
    n = 4000
    run(dial_and_collect(carrier, call_ids(n), audience_pack="晚间", script=()))
    arms = [[carrier.call(f"call-{i}").answered for i in range(n) if i % 2 == arm] for arm in (0, 1)]
    p0, p1 = (sum(a) / len(a) for a in arms)
    pooled = (sum(arms[0]) + sum(arms[1])) / n
    z = (p0 - p1) / math.sqrt(pooled * (1 - pooled) * (4 / n))
    assert abs(z) < 3.5, (p0, p1, z)


# ---------------------------------------------------------------- answer rates


@pytest.mark.parametrize("local_hour,day,expected", [(19, MONDAY, 0.7), (10, MONDAY, 0.2), (19, SATURDAY, 0.35)])
def test_answer_rate_follows_the_pack_hour_and_weekday(test_config, local_hour, day, expected) -> None:
    n = 3000
    carrier = SimulatorCarrier(test_config, clock=SimClock(shanghai(local_hour, day)), seed=local_hour)
    run(dial_and_collect(carrier, call_ids(n), audience_pack="晚间", script=()))
    rate = carrier.outcomes["answered"] / n
    tolerance = 4 * math.sqrt(expected * (1 - expected) / n)
    assert abs(rate - expected) < tolerance, (rate, expected)
    assert carrier.outcomes["answered"] + carrier.outcomes["no_answer"] == n  # this pack has no recordings


def test_unknown_pack_and_resolver(test_config) -> None:
    """The pack comes from dial(audience_pack=…), else the resolver, else `default`."""
    packs = {"13900000001": "晚间"}
    carrier = SimulatorCarrier(test_config, clock=SimClock(shanghai(19)),
                               audience_of=lambda call_id, phone: packs.get(phone))

    async def dials() -> None:
        await dial_and_collect(carrier, {"a": "13900000001", "b": "13900000002"}, script=())
        await dial_and_collect(carrier, {"c": "13900000001"}, audience_pack="no-such-pack", script=())

    run(dials())
    assert [carrier.call(c).audience_pack for c in "abc"] == ["晚间", "default", "default"]


def test_ring_out_is_no_answer_without_speech_after_the_timeout(test_config) -> None:
    clock = SimClock(shanghai(3))  # 晚间 answers 5% at night
    carrier = SimulatorCarrier(test_config, clock=clock)

    async def first_unanswered() -> tuple[list[CallEvent], float]:
        for i in range(50):
            dialed = clock.elapsed_s()
            await carrier.dial(f"night-{i}", "13900000009", timeout_s=25, audience_pack="晚间")
            events = [await carrier.events.get()]
            if events[0].kind == "hangup":
                return events, clock.elapsed_s() - dialed
            await carrier.hangup(f"night-{i}")
            await carrier.events.get()
        raise AssertionError("every night call was answered")

    events, rang_s = run(first_unanswered())
    assert events == [CallEvent(events[0].call_id, "hangup", cause="NO_ANSWER", status="no_answer", answered=False)]
    assert rang_s == 25


# ---------------------------------------------------------------- carrier announcements


def test_announcement_numbers_are_sticky_and_detected_as_their_status(test_config) -> None:
    carrier = SimulatorCarrier(test_config, clock=SimClock(shanghai(19)), seed=5)
    phones = [f"137{i:08d}" for i in range(1000)]
    statuses: dict[str, set] = defaultdict(set)

    async def four_attempts() -> dict[str, list[CallEvent]]:
        events: dict[str, list[CallEvent]] = {}
        for attempt in range(4):
            calls = {f"{phone}-attempt-{attempt}": phone for phone in phones}
            events |= await dial_and_collect(carrier, calls, audience_pack="空号多")
        return events

    for call_id, events in run(four_attempts()).items():
        record = carrier.call(call_id)
        statuses[record.phone].add(record.announcement)
        if record.announcement:
            speech, hangup = events
            assert speech.kind == "speech" and not speech.answered
            assert hangup.kind == "hangup" and not hangup.answered and hangup.status == record.announcement
            found = detect_announcement(speech.text)
            assert found is not None and found.status == hangup.status, speech.text
    vacant = [p for p, s in statuses.items() if "vacant_number" in s]
    powered_off = [p for p, s in statuses.items() if "powered_off" in s]
    assert all(statuses[p] == {"vacant_number"} for p in vacant)  # vacant on every attempt
    # A phone that is often off plays the recording on some attempts and rings on others,
    # but never turns into another status.
    assert all(statuses[p] <= {"powered_off", None} for p in powered_off)
    assert any(statuses[p] == {"powered_off", None} for p in powered_off)
    assert 0.15 < len(vacant) / len(phones) < 0.25
    assert 0.06 < len(powered_off) / len(phones) < 0.15


def test_every_shipped_transcript_is_read_as_its_status(shipped_config) -> None:
    for status, transcripts in shipped_config.announcements.items():
        for text in transcripts.items:
            found = detect_announcement(text)
            assert found is not None and found.status == status, text
    assert set(shipped_config.announcements) == {
        "vacant_number", "suspended", "powered_off", "unreachable", "line_busy", "no_answer", "voicemail",
        "call_restricted"}


# ---------------------------------------------------------------- personas and replies


def plain(text: str, config: SimulatorConfig) -> str:
    """A reply without punctuation or homophone slips (ASR noise that can be undone)."""
    text = re.sub(r"[\s，。！？、,.!?；;：:]", "", text)
    for word, misheard in config.asr_noise.homophones.items():
        text = text.replace(misheard, word)
    return text


def one_of(heard: str, written: tuple[str, ...], config: SimulatorConfig) -> bool:
    """Whether ASR text is one of the written replies, perhaps after a filler (嗯/啊 …)."""
    allowed = {plain(t, config) for t in written}
    text = plain(heard, config)
    return text in allowed or any(text == filler + t for filler in config.asr_noise.fillers for t in allowed)


def test_replies_come_from_the_persona_table_for_the_step(shipped_config) -> None:
    carrier = SimulatorCarrier(shipped_config, clock=SimClock(shanghai(19)), seed=21)
    events = run(dial_and_collect(carrier, call_ids(1500), audience_pack="养老"))
    checked: Counter[str] = Counter()
    for call_id, call_events in events.items():
        record = carrier.call(call_id)
        if not record.answered:
            continue
        persona = shipped_config.personas[record.persona]
        said = [e.text for e in call_events if e.kind == "speech"]
        for step, text in zip(("utter_ask_good_time", "utter_ask_wecom"), said):
            behaviour = persona.steps[step]
            if text == SILENCE:
                assert behaviour.silence > 0 or not behaviour.replies, (record.persona, step)
                continue
            assert one_of(text, behaviour.replies.items + behaviour.again.items, shipped_config), \
                (record.persona, step, text)
            checked[record.persona] += 1
    assert set(checked) >= {"eager", "curious", "hesitant", "busy", "refuser", "already_insured", "hostile",
                            "wrong_person"}
    # ASR noise is there: some replies carry a filler, some keep no punctuation.
    replies = [e.text for evs in events.values() for e in evs if e.kind == "speech" and e.answered and e.text]
    assert any(r.split(" ")[0] in shipped_config.asr_noise.fillers for r in replies)


def test_silent_callee_sends_empty_speech_then_the_robot_hangs_up(test_config) -> None:
    carrier = SimulatorCarrier(test_config, clock=SimClock(shanghai(19)), seed=2)
    events = run(dial_and_collect(carrier, call_ids(200), audience_pack="default"))
    quiet = [cid for cid in events if carrier.call(cid).persona == "quiet"]
    assert quiet
    for call_id in quiet:
        kinds = [(e.kind, e.text) for e in events[call_id] if e.kind in ("speech", "hangup")]
        assert kinds == [("speech", SILENCE), ("speech", SILENCE), ("hangup", "")]
        assert events[call_id][-1].answered and events[call_id][-1].status is None
        assert carrier.call(call_id).ended_by == "robot"


def test_callee_hang_up_is_a_normal_clearing_of_an_answered_call(test_config) -> None:
    # The quiet persona hangs up when asked for a callback time.
    carrier = SimulatorCarrier(test_config, clock=SimClock(shanghai(19)), seed=2)
    events = run(dial_and_collect(carrier, call_ids(200), audience_pack="default",
                                  script=("utter_ask_callback_time",)))
    quiet = [cid for cid in events if carrier.call(cid).persona == "quiet"]
    assert quiet
    for call_id in quiet:
        assert events[call_id][-1] == CallEvent(call_id, "hangup", cause="NORMAL_CLEARING", status=None,
                                                answered=True)
        assert carrier.call(call_id).ended_by == "callee"
    assert carrier.ended_by["callee"] == len(quiet)


def test_known_steps_are_the_scripts_lines() -> None:
    """The simulator's step names must follow dialogs/domain (a renamed line would
    silently make every persona fall quiet)."""
    names: set[str] = set()
    for path in (PROJECT_ROOT / "dialogs" / "domain").glob("*.yml"):
        names |= set((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {})
    assert set(KNOWN_STEPS) == {n for n in names if not n.startswith(CLOSING_PREFIX)}


# ---------------------------------------------------------------- YAML errors


def errors_for(tmp_path: Path, old: str, new: str) -> list[str]:
    assert old in TEST_YAML, old
    path = tmp_path / "personas.yml"
    path.write_text(TEST_YAML.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PersonaConfigError) as caught:
        load_simulator_config(path)
    return caught.value.problems


def line_of(text: str, needle: str) -> int:
    """The line where `needle` (which may span lines) starts."""
    return text[:text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("old,new,needle,message", [
    ("      19: 0.7", "      19: 1.7", "19: 1.7", "answer probability for 19 must be between 0 and 1"),
    ("persona_mix: {yes_man: 1, quiet: 1}", "persona_mix: {yes_man: 1, grumpy: 1}", "persona_mix",
     "unknown persona 'grumpy'"),
    ("      utter_ask_wecom:\n        replies: {行你加吧: 1}", "      utter_ask_wechat:\n        replies: {行你加吧: 1}",
     "utter_ask_wechat", "unknown script step"),
    ("      utter_ask_good_time: {silence: 1.0}", "      utter_ask_good_time: {silence: 0.8, hangup: 0.5}",
     "hangup: 0.5", "silence + hangup must be at most 1"),
    ("      vacant_number: 0.2", "      vacant_number: 0.95", "    announcements:", "add up to 1.05"),
    ("powered_off: [您拨打的电话已关机,", "powered_off: [我手机快没电了,", "我手机快没电了",
     "read by intents.announcements as a person"),
    ("      20-23: 0.1", "      21-23: 0.1", "    answer_by_hour:\n      0-9", "no value for hours 20"),
    ("    weekend_factor: 0.5", "    weekend_factor: 0.5\n    ring: [1, 2]", "ring: [1, 2]",
     "audience_packs.晚间: unknown key 'ring'"),
])
def test_yaml_mistakes_name_file_and_line(tmp_path, old, new, needle, message) -> None:
    found = errors_for(tmp_path, old, new)
    text = (tmp_path / "personas.yml").read_text(encoding="utf-8")
    line = line_of(text, needle)
    assert any(e.startswith(f"{tmp_path / 'personas.yml'}:{line}:") and message in e for e in found), found


def test_several_mistakes_are_reported_together_and_syntax_errors_have_a_line(tmp_path) -> None:
    path = tmp_path / "personas.yml"
    broken = TEST_YAML.replace("      19: 0.7", "      19: 2").replace("weekend_factor: 0.5", "weekend_factor: -1")
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(PersonaConfigError) as caught:
        load_simulator_config(path)
    assert len(caught.value.problems) == 2
    path.write_text(TEST_YAML.replace("  quiet:\n", "  quiet: [\n"), encoding="utf-8")
    with pytest.raises(PersonaConfigError, match=rf"{re.escape(str(path))}:\d+:\d+: not valid YAML"):
        load_simulator_config(path)


# ---------------------------------------------------------------- real conversations

# How each persona's call should end when the NLU understands it.
EXPECTED_ENDING = {
    "eager": "utter_close_success",
    "hostile": "utter_close_opt_out",
    "refuser": "utter_close_refuse",
    "busy": "utter_close_callback",
    "wrong_person": "utter_close_wrong_person",
}


async def talk(carrier: SimulatorCarrier, events: asyncio.Queue[CallEvent], agent, clock: SimClock,
               call_id: str, phone: str, lead: LeadContext) -> CallSession | None:
    """One call as the dialer drives it: dial, talk on answer, stop when either side ends."""
    await carrier.dial(call_id, phone, audience_pack=lead.audience_pack)
    session: CallSession | None = None

    async def say(reply) -> None:
        for line in reply.lines:
            await carrier.play(call_id, Prompt(line.response, line.text))
        if reply.end_call:
            await carrier.hangup(call_id)  # the robot hangs up after its closing line

    while True:
        event = await events.get()
        if event.kind == "answered":
            session = CallSession(agent, lead, call_id=call_id, clock=clock.now)
            await say(await session.start())
        elif event.kind == "speech" and event.answered and session and not session.ended:
            await say(await session.hear(event.text))  # empty text = silence: re-prompt
        elif event.kind == "hangup":
            if session is not None and not session.ended:
                await session.hangup("callee")
            return session


async def route(carrier: SimulatorCarrier, queues: dict[str, asyncio.Queue[CallEvent]]) -> None:
    """One carrier queue for all calls; each call reads its own."""
    while True:
        event = await carrier.events.get()
        queues[event.call_id].put_nowait(event)


def test_simulated_callees_talk_with_the_real_robot(dialogue_agent, shipped_config) -> None:
    # Everyone answers and nobody hits a recording, so each persona gets ~12 calls.
    everyone = AudienceProfile("test", tuple([1.0] * 24), 1.0, (2.0, 6.0), {},
                               Weighted.of({name: 1 for name in shipped_config.personas}))
    config = dataclasses.replace(shipped_config, packs={"default": everyone})
    clock = SimClock(shanghai(10))
    carrier = SimulatorCarrier(config, clock=clock, seed=2026)
    lead = LeadContext(surname="王", gender="M", audience_pack="default")
    calls = {f"e2e-{i}": f"1350000{i:04d}" for i in range(108)}

    async def campaign() -> dict[str, CallSession | None]:
        queues = {call_id: asyncio.Queue() for call_id in calls}
        router = asyncio.ensure_future(route(carrier, queues))
        try:
            sessions = await asyncio.gather(*(talk(carrier, queues[cid], dialogue_agent, clock, cid, phone, lead)
                                              for cid, phone in calls.items()))
        finally:
            router.cancel()
        return dict(zip(calls, sessions))

    sessions = run(campaign())

    endings: dict[str, Counter[str]] = defaultdict(Counter)
    for call_id, session in sessions.items():
        assert session is not None and session.ended
        last_bot = next((t.response for t in reversed(session.turns) if t.speaker == "bot"), None)
        ending = last_bot if session.hangup_by == "bot" else "callee hung up"
        endings[carrier.call(call_id).persona][ending] += 1
    for persona, expected in EXPECTED_ENDING.items():
        total = sum(endings[persona].values())
        assert total >= 5, (persona, endings[persona])
        assert endings[persona][expected] / total >= 0.7, (persona, dict(endings[persona]))
    # Curious callees ask before deciding: the robot answered questions on most of their calls.
    curious = [s for cid, s in sessions.items() if carrier.call(cid).persona == "curious"]
    answered_questions = [any((t.response or "").startswith("utter_answer_") for t in s.turns) for s in curious]
    assert sum(answered_questions) / len(curious) >= 0.7
    # Silent callees end with the robot's silence close or their own hang-up.
    assert set(endings["silent"]) <= {"utter_close_silence", "callee hung up"}
    # Turn times are simulated: calls last tens of seconds on the clock, not in real time.
    talk_times = [s.talk_time_s for s in sessions.values()]
    assert max(talk_times) > 20
    assert carrier.live_calls == 0
