"""Simulated calls per minute on one process, at speed=inf (no waiting).

- simulator_only: the simulator carrier with a scripted robot (no NLU): the carrier's
  own cost, on the standard asyncio loop and on uvloop (which Rasa installs).
- with_dialogue_agent: every reply goes through the real Rasa agent (CallSession), as
  the dial worker will run it; with the default audience pack at 19:00 (most dials
  never reach a person) on uvloop and on asyncio's own loop, and with every callee
  answering (conversation-bound: the NLU is the cost).
Product target later: >= 3,000 simulated calls/minute with 2 worker processes.
Usage: python -m bench.bench_simulator [--calls 20000] [--agent-calls 600] [--lines 200]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from collections import Counter
from datetime import datetime, timezone

import bot.core.rasa_env  # noqa: F401  (quiet, offline Rasa defaults before anything imports it)
from bot.conversation.agent import load_shared_agent
from bot.conversation.session import CallSession, LeadContext
from bot.script.project import DialogsProject
from bot.script.training import train
from bot.core.settings import get_settings
from telephony.carrier import CallEvent, Prompt
from telephony.simulator.carrier import SimulatorCarrier
from telephony.clock import SimClock, run_on
from telephony.simulator.personas import AudienceProfile, SimulatorConfig, Weighted, load_simulator_config

EVENING_SHANGHAI = datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc)  # Monday 19:00 in Shanghai
SCRIPTED_TURNS = ("utter_ask_good_time", "utter_ask_wecom")


async def scripted_call(carrier: SimulatorCarrier, events: asyncio.Queue[CallEvent], call_id: str, phone: str) -> int:
    """A robot without NLU: asks two questions, then closes. Returns the callee's replies."""
    await carrier.dial(call_id, phone)
    replies = 0
    while True:
        event = await events.get()
        if event.kind == "answered":
            await carrier.play(call_id, Prompt("utter_opening", "您好，我是AI客服，本通电话为人工智能合成语音，全程录音。"))
            await carrier.play(call_id, Prompt(SCRIPTED_TURNS[0], "请问您现在方便听我说一分钟吗？"))
        elif event.kind == "speech" and event.answered:
            replies += 1
            if replies < len(SCRIPTED_TURNS):
                await carrier.play(call_id, Prompt(SCRIPTED_TURNS[replies], "我让顾问用企业微信添加您，可以吗？"))
            else:
                await carrier.play(call_id, Prompt("utter_close_goodbye", "好的，感谢您的接听，再见。"))
                await carrier.hangup(call_id)
        elif event.kind == "hangup":
            return replies


async def agent_call(carrier: SimulatorCarrier, events: asyncio.Queue[CallEvent], call_id: str, phone: str,
                     agent, clock: SimClock) -> int:
    """The dialer's loop: dial, talk through CallSession on answer, end when either side does."""
    await carrier.dial(call_id, phone)
    session: CallSession | None = None

    async def say(reply) -> None:
        for line in reply.lines:
            await carrier.play(call_id, Prompt(line.response, line.text))
        if reply.end_call:
            await carrier.hangup(call_id)

    while True:
        event = await events.get()
        if event.kind == "answered":
            session = CallSession(agent, LeadContext(surname="王", gender="M"), call_id=call_id, clock=clock.now)
            await say(await session.start())
        elif event.kind == "speech" and event.answered and session and not session.ended:
            await say(await session.hear(event.text))
        elif event.kind == "hangup":
            if session is not None and not session.ended:
                await session.hangup("callee")
            return sum(1 for t in session.turns if t.speaker == "callee") if session else 0


async def campaign(config: SimulatorConfig, calls: int, lines: int, call=scripted_call, **kwargs) -> dict:
    """`calls` dials through `lines` concurrent lines; the carrier's one event queue is
    routed to a queue per call."""
    clock = kwargs.pop("clock", None) or SimClock(EVENING_SHANGHAI)
    carrier = SimulatorCarrier(config, clock=clock, seed=1)
    queues: dict[str, asyncio.Queue[CallEvent]] = {}
    next_index = iter(range(calls))
    replies: list[int] = []

    async def route() -> None:
        while True:
            event = await carrier.events.get()
            queues[event.call_id].put_nowait(event)

    async def line() -> None:
        # One task per line, not per lead: on uvloop every jump of the instant clock
        # looks at every task, so a task per pending lead would make each jump slow.
        for index in next_index:
            call_id = f"bench-{index}"
            queues[call_id] = asyncio.Queue()
            try:
                if call is agent_call:
                    replies.append(await call(carrier, queues[call_id], call_id, f"138{index:08d}",
                                              clock=clock, **kwargs))
                else:
                    replies.append(await call(carrier, queues[call_id], call_id, f"138{index:08d}", **kwargs))
            finally:
                queues.pop(call_id, None)

    router = asyncio.ensure_future(route())
    started, sim_started = time.perf_counter(), clock.elapsed_s()
    await asyncio.gather(*(line() for _ in range(lines)))
    wall_s = time.perf_counter() - started
    router.cancel()
    answered = carrier.outcomes["answered"]
    return {
        "calls": calls,
        "lines": lines,
        "wall_s": round(wall_s, 2),
        "calls_per_min": round(calls / wall_s * 60),
        "answered_calls_per_min": round(answered / wall_s * 60),
        "answered_share": round(answered / calls, 3),
        "callee_replies_per_answered_call": round(sum(replies) / max(answered, 1), 2),
        "simulated_minutes": round((clock.elapsed_s() - sim_started) / 60, 1),
        "outcomes": dict(Counter(carrier.outcomes).most_common()),
    }


def everyone_answers(config: SimulatorConfig) -> SimulatorConfig:
    """The default pack's personas, but every callee answers and no number is dead."""
    pack = config.pack(None)
    return dataclasses.replace(config, packs={"default": AudienceProfile(
        "default", tuple([1.0] * 24), 1.0, pack.ring_s, {}, pack.persona_mix)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--agent-calls", type=int, default=600)
    parser.add_argument("--lines", type=int, default=200)
    args = parser.parse_args()
    config = load_simulator_config()

    result: dict = {"benchmark": "simulator", "speed": "inf", "processes": 1}
    result["simulator_only"] = {kind: run_on(kind, campaign(config, args.calls, args.lines))
                                for kind in ("asyncio", "uvloop")}

    settings = get_settings()
    model = train(DialogsProject(settings.dialogs_dir), settings.models_dir).model_path
    agent = load_shared_agent(model)

    async def with_agent(cfg: SimulatorConfig, calls: int) -> dict:
        await agent.warm_up()
        return await campaign(cfg, calls, args.lines, call=agent_call, agent=agent)

    result["with_dialogue_agent"] = {
        "default_pack_19h": run_on("uvloop", with_agent(config, args.agent_calls * 3)),
        "default_pack_19h_asyncio_loop": run_on("asyncio", with_agent(config, args.agent_calls * 3)),
        "everyone_answers": run_on("uvloop", with_agent(everyone_answers(config), args.agent_calls)),
    }
    result["target"] = {"calls_per_min_2_processes": 3000}
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
