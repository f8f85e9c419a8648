"""Grading throughput (calls/s) with the real NLU and without it, and what the spaCy
entity extractor adds to one parse.

Calls are the labelled set (intents/eval/calls_gold.jsonl), graded end to end the way
`waihu grade` does: carrier screening, NLU on every callee reply, rules, follow-ups.
"Without NLU" grades the same calls with their replies already parsed (the live
runtime's case: intents are known when the call hangs up).
Usage: python -m bench.bench_grading [--passes 3]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import datetime

import numpy as np

import bot.core.rasa_env  # noqa: F401
from bot.cli.grade_commands import agent_nlu, script_lines
from bot.conversation.agent import load_shared_agent
from bot.script.project import DialogsProject
from bot.script.training import train
from bot.core.settings import PROJECT_ROOT, get_settings
from intents.jsonl_calls import read_call_log
from intents.assess import annotate, assess_call, screen_carrier
from intents.callback_times import SHANGHAI
from intents.entities import extract_entities
from intents.followups import decide_followups
from intents.grading import default_rules, grade_call

GOLD = PROJECT_ROOT / "intents" / "eval" / "calls_gold.jsonl"
SHORT_REPLIES = ["嗯你说", "不需要谢谢", "明天下午三点再打吧", "我在开车", "你们是哪个公司", "我已经买过重疾险了",
                 "好的可以加", "别再打了", "多少钱", "你是机器人吗", "半小时后再打", "我老婆管这个"]


def _ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()

    model = train(DialogsProject(get_settings().dialogs_dir), get_settings().models_dir).model_path
    agent = load_shared_agent(model)
    asyncio.run(agent.warm_up())
    loop = asyncio.new_event_loop()
    nlu, script, rules = agent_nlu(agent, loop), script_lines(agent), default_rules()
    calls = [entry.call for entry in read_call_log(GOLD)[0]]
    replies = sum(len(c.callee_turns) for c in calls)

    started = time.perf_counter()
    for _ in range(args.passes):
        outcomes = [assess_call(call, nlu, script, rules) for call in calls]
    with_nlu = time.perf_counter() - started

    parsed = [annotate(screen_carrier(c)[0], nlu, script) for c in calls]
    started = time.perf_counter()
    for _ in range(args.passes * 20):
        for call in parsed:
            grade = grade_call(call, rules) if call.status == "answered" else None
            decide_followups(call, grade, call.started_at or datetime.now(SHANGHAI))
    without_nlu = time.perf_counter() - started

    # The extractor's share of a parse: raw Rasa parse vs DialogueAgent.parse (with it).
    now = datetime(2026, 3, 11, 10, 20, tzinfo=SHANGHAI)
    raw, full, extractor = [], [], []
    for i in range(600):
        text = SHORT_REPLIES[i % len(SHORT_REPLIES)]
        t0 = time.perf_counter()
        loop.run_until_complete(agent._agent.parse_message(text))
        t1 = time.perf_counter()
        loop.run_until_complete(agent.parse(text, now=now))
        t2 = time.perf_counter()
        extract_entities(text, now)
        t3 = time.perf_counter()
        raw.append(t1 - t0)
        full.append(t2 - t1)
        extractor.append(t3 - t2)
    loop.close()

    print(json.dumps({
        "calls": len(calls), "callee_replies": replies, "passes": args.passes,
        "calls_per_s_with_nlu": round(len(calls) * args.passes / with_nlu, 1),
        "calls_per_s_without_nlu": round(len(calls) * args.passes * 20 / without_nlu, 1),
        "graded": sum(1 for o in outcomes if o.grade), "carrier_statuses": sum(1 for o in outcomes if not o.grade),
        "rasa_parse": _ms(raw), "parse_with_extractor": _ms(full), "extractor_alone": _ms(extractor),
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
