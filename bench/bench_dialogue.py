"""NLU parse latency, full-turn latency and many concurrent calls on one process.

Targets (2-core machine): parse p95 ≤ 25 ms, turn p95 ≤ 40 ms, and 200 concurrent
sessions at one turn per 4 s each with turn p95 ≤ 100 ms.
Usage: python -m bench.bench_dialogue [--sessions 200] [--utterances 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import numpy as np

import bot.core.rasa_env  # noqa: F401
from bot.conversation.agent import load_shared_agent
from bot.conversation.session import CallSession, LeadContext
from bot.script.project import DialogsProject
from bot.script.training import train
from bot.core.settings import get_settings
from intents.evaluation import load_labelled_examples

# Replies that keep a call going (questions and objections), so sessions stay open.
KEEP_GOING = ["你是哪个公司的", "要钱吗", "具体保什么", "你是机器人吧", "我已经有保险了", "喂你好",
              "你们怎么有我电话", "没听清你再说一遍", "啊什么"]
ENDINGS = ["好的你加我吧", "不需要谢谢", "以后别打了", "明天下午再打"]


def percentiles(values_ms: list[float]) -> dict[str, float]:
    a = np.asarray(values_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2), "n": len(a)}


async def bench_parse(agent, texts: list[str], n: int) -> dict:
    times = []
    for i in range(n):
        started = time.perf_counter()
        await agent.parse(texts[i % len(texts)])
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


async def bench_turns(agent, n_turns: int) -> dict:
    rng = random.Random(7)
    times: list[float] = []
    calls = 0
    while len(times) < n_turns:
        session = CallSession(agent, LeadContext(surname="王", script_variant=rng.choice(["standard", "benefit_first"])))
        await session.start()
        calls += 1
        for text in rng.sample(KEEP_GOING, 4) + [rng.choice(ENDINGS)]:
            if session.ended:
                break
            started = time.perf_counter()
            await session.hear(text)
            times.append((time.perf_counter() - started) * 1000)
        if not session.ended:
            await session.hangup()
    return {**percentiles(times), "calls": calls}


async def bench_concurrent(agent, sessions: int, interval_s: float, turns_each: int,
                           seed: int = 11, raw: bool = False):
    """Each session speaks every `interval_s` (± jitter); latency counts queueing behind
    other sessions' turns, as a worker process serving many calls sees it."""
    rng = random.Random(seed)
    latencies: list[float] = []

    async def one(index: int) -> None:
        await asyncio.sleep(rng.uniform(0, interval_s))
        session = CallSession(agent, LeadContext(surname="李"), call_id=f"bench-{seed}-{index}")
        await session.start()
        for turn in range(turns_each):
            delay = interval_s * rng.uniform(0.8, 1.2)
            # Latency counts from when the callee finished speaking (the turn is due), so
            # time spent waiting behind other sessions' turns on this process is included.
            due = time.perf_counter() + delay
            await asyncio.sleep(delay)
            text = rng.choice(KEEP_GOING) if turn < turns_each - 1 else rng.choice(ENDINGS)
            await session.hear(text)
            latencies.append((time.perf_counter() - due) * 1000)
            if session.ended:
                break
        await session.hangup()

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(sessions)))
    wall = time.perf_counter() - started
    if raw:
        return latencies
    return {**percentiles(latencies), "sessions": sessions, "interval_s": interval_s,
            "turns_per_s": round(len(latencies) / wall, 1), "wall_s": round(wall, 1)}


def _worker(model: str, sessions: int, interval_s: float, turns: int, seed: int, ready, out) -> None:
    """One worker process: its own agent, its share of the calls, started together."""
    agent = load_shared_agent(model)
    asyncio.run(agent.warm_up())
    ready.wait()  # every worker has loaded its agent
    out.put(asyncio.run(bench_concurrent(agent, sessions, interval_s, turns, seed=seed, raw=True)))


def bench_concurrent_processes(model: str, processes: int, sessions: int, interval_s: float, turns: int) -> dict:
    """The deployment shape: one agent per worker process, calls split between them."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    ready = ctx.Barrier(processes)
    workers = [ctx.Process(target=_worker, args=(model, sessions // processes, interval_s, turns, 100 + i,
                                                 ready, out)) for i in range(processes)]
    for w in workers:
        w.start()
    latencies: list[float] = []
    for _ in workers:
        latencies += out.get()
    for w in workers:
        w.join()
    return {**percentiles(latencies), "processes": processes, "sessions": sessions, "interval_s": interval_s}


async def main_async(args) -> dict:
    settings = get_settings()
    project = DialogsProject(settings.dialogs_dir)
    model = train(project, settings.models_dir).model_path
    load_started = time.perf_counter()
    agent = load_shared_agent(model)
    load_s = time.perf_counter() - load_started
    warm_started = time.perf_counter()
    await agent.warm_up()
    warm_s = time.perf_counter() - warm_started
    texts = [t for t, _ in load_labelled_examples(project.heldout_nlu_file)]
    return {
        "benchmark": "dialogue",
        "agent_load_s": round(load_s, 1),
        "warm_up_s": round(warm_s, 2),
        "parse": await bench_parse(agent, texts, args.utterances),
        "turn": await bench_turns(agent, args.utterances),
        "concurrent_1_process": await bench_concurrent(agent, args.sessions, args.interval, args.turns),
        "concurrent_2_processes": bench_concurrent_processes(str(model), 2, args.sessions, args.interval,
                                                             args.turns),
        "targets": {"parse_p95_ms": 25, "turn_p95_ms": 40, "concurrent_turn_p95_ms": 100},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--interval", type=float, default=4.0)
    parser.add_argument("--turns", type=int, default=6)
    print(json.dumps(asyncio.run(main_async(parser.parse_args())), ensure_ascii=False))


if __name__ == "__main__":
    main()
