"""Hand-offs in the simulator: a pool of advisors with limited availability, on a fast clock."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from telephony.carrier import CALL_ENDED, NO_ADVISOR, CallEvent, Prompt
from telephony.clock import SimClock
from telephony.simulator.advisors import AdvisorPool, AdvisorPoolConfig
from telephony.simulator.carrier import SimulatorCarrier
from telephony.simulator.personas import SimulatorConfig, load_simulator_config
from tests.conftest import run

EVENING = datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc)  # 19:00 in Shanghai

YAML = """\
personas:
  listener:
    reply_delay_s: [0.5, 1.0]
    steps:
      utter_ask_good_time:
        replies: {转人工: 1}
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
    persona_mix: {listener: 1}
"""
HANDOFF = Prompt("utter_handoff", "好的，我这就为您转接人工顾问，请稍等。")
FAILED = Prompt("utter_handoff_failed", "抱歉，顾问都在忙，稍后请顾问给您回电。")
ONE_ADVISOR = AdvisorPoolConfig(advisors=1, pick_up_s=(3.0, 3.0), busy_s=(100.0, 100.0), wrap_up_s=10.0)


@pytest.fixture()
def config(tmp_path: Path) -> SimulatorConfig:
    path = tmp_path / "personas.yml"
    path.write_text(YAML, encoding="utf-8")
    return load_simulator_config(path)


class Calls:
    """Each call's events, read off the carrier's one queue."""

    def __init__(self, carrier: SimulatorCarrier) -> None:
        self.carrier = carrier
        self.queues: dict[str, asyncio.Queue[CallEvent]] = {}
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        while True:
            event = await self.carrier.events.get()
            self.queues.setdefault(event.call_id, asyncio.Queue()).put_nowait(event)

    async def next(self, call_id: str, kind: str) -> CallEvent:
        queue = self.queues.setdefault(call_id, asyncio.Queue())
        while True:
            event = await queue.get()
            if event.kind == kind:
                return event

    async def asks_for_a_human(self, call_id: str) -> None:
        """Dial, answer, then the robot says the hand-off line and it finishes playing."""
        await self.carrier.dial(call_id, "13900000001")
        await self.next(call_id, "answered")
        await self.carrier.play(call_id, HANDOFF)
        await self.next(call_id, "playback_done")


def test_free_advisor_takes_the_call_then_is_busy_for_the_next(config) -> None:
    clock = SimClock(EVENING)
    carrier = SimulatorCarrier(config, clock=clock, seed=1, advisors=AdvisorPool(ONE_ADVISOR, seed=1))

    async def scenario():
        calls = Calls(carrier)
        await calls.asks_for_a_human("a")
        taken = await carrier.transfer("a", "advisors", wait_s=20)
        taken_at = clock.now()
        await calls.asks_for_a_human("b")  # while the only advisor talks with a
        busy = await carrier.transfer("b", "advisors", wait_s=20)
        await carrier.play("b", FAILED)  # b is still with the robot and hears the line
        heard = await calls.next("b", "playback_done")
        a_ends = await calls.next("a", "hangup")
        a_talked_s = (clock.now() - taken_at).total_seconds()
        await carrier.hangup("b")
        await clock.sleep(100)  # the advisor's after-call work is over
        await calls.asks_for_a_human("c")
        later = await carrier.transfer("c", "advisors", wait_s=20)
        calls.pump.cancel()
        await carrier.aclose()
        return taken, busy, heard, a_ends, a_talked_s, later

    taken, busy, heard, a_ends, a_talked_s, later = run(scenario())
    assert taken.bridged and taken.agent == "顾问1" and taken.waited_s == pytest.approx(3.0, abs=0.3)
    assert not busy.bridged and busy.reason == NO_ADVISOR and busy.waited_s == pytest.approx(20.0, abs=0.3)
    assert heard.kind == "playback_done"
    # a talks with the advisor (busy 100 s minus 10 s after-call work), then hangs up
    assert a_ends == CallEvent("a", "hangup", cause="NORMAL_CLEARING", status=None, answered=True)
    assert a_talked_s == pytest.approx(90.0, abs=0.5)
    assert carrier.call("a").ended_by == "callee"
    assert later.bridged and later.agent == "顾问1"
    assert carrier.advisors.outcomes == {"handed_off": 2, "no_advisor": 1}
    assert carrier.advisors.advisors[0].calls == 2


def test_an_advisor_free_within_the_wait_is_waited_for(config) -> None:
    clock = SimClock(EVENING)
    pool = AdvisorPool(AdvisorPoolConfig(advisors=1, pick_up_s=(2.0, 2.0), busy_s=(30.0, 30.0), wrap_up_s=5.0))
    carrier = SimulatorCarrier(config, clock=clock, seed=2, advisors=pool)

    async def scenario():
        calls = Calls(carrier)
        await calls.asks_for_a_human("a")
        first = await carrier.transfer("a", "advisors", wait_s=20)
        await calls.asks_for_a_human("b")  # a few seconds later: the advisor is free again within b's wait
        second = await carrier.transfer("b", "advisors", wait_s=40)
        calls.pump.cancel()
        await carrier.aclose()
        return first, second

    first, second = run(scenario())
    assert first.bridged and second.bridged
    assert 20 < second.waited_s <= 40


def test_nobody_on_duty_and_a_caller_who_hangs_up_while_waiting(config) -> None:
    clock = SimClock(EVENING)
    nobody = SimulatorCarrier(config, clock=clock, seed=3, advisors=AdvisorPool(AdvisorPoolConfig(advisors=0)))
    slow = AdvisorPool(AdvisorPoolConfig(advisors=1, pick_up_s=(15.0, 15.0)))
    hangs_up = SimulatorCarrier(config, clock=clock, seed=3, advisors=slow)

    async def scenario():
        calls = Calls(nobody)
        await calls.asks_for_a_human("a")
        none = await nobody.transfer("a", "advisors", wait_s=5)
        calls.pump.cancel()
        calls = Calls(hangs_up)
        await calls.asks_for_a_human("b")
        waiting = asyncio.ensure_future(hangs_up.transfer("b", "advisors", wait_s=20))
        await clock.sleep(5)
        await hangs_up.hangup("b")  # the line drops while it rings the advisor
        gone = await waiting
        given_back = slow.free_now(clock.now())
        after = await hangs_up.transfer("b", "advisors", wait_s=20)
        calls.pump.cancel()
        await nobody.aclose()
        await hangs_up.aclose()
        return none, gone, given_back, after

    none, gone, given_back, after = run(scenario())
    assert none.reason == NO_ADVISOR and none.waited_s == pytest.approx(5.0, abs=0.3)
    assert gone.reason == CALL_ENDED and gone.waited_s < 7
    assert after.reason == CALL_ENDED  # no live call any more
    assert given_back == 1  # the advisor was given back
    with pytest.raises(KeyError):
        run(hangs_up.transfer("never-dialled", "advisors"))


def test_same_seed_same_waits(config) -> None:
    def waits(seed: int) -> list[float]:
        clock = SimClock(EVENING)
        carrier = SimulatorCarrier(config, clock=clock, seed=seed,
                                   advisors=AdvisorPool(AdvisorPoolConfig(advisors=1), seed=seed))

        async def scenario():
            calls = Calls(carrier)
            out = []
            for call_id in ("a", "b", "c"):
                await calls.asks_for_a_human(call_id)
                out.append((await carrier.transfer(call_id, "advisors", wait_s=200)).waited_s)
            calls.pump.cancel()
            await carrier.aclose()
            return out

        return run(scenario())

    assert waits(7) == waits(7)
    assert waits(7) != waits(8)


def test_pool_config_is_checked_and_has_a_mean_form() -> None:
    with pytest.raises(ValueError):
        AdvisorPoolConfig(advisors=-1)
    with pytest.raises(ValueError):
        AdvisorPoolConfig(busy_s=(10.0, 5.0))
    config = AdvisorPoolConfig.with_mean_busy(5, 200.0)
    assert config.advisors == 5 and config.busy_s == (100.0, 300.0) and config.wrap_up_s == 30.0
