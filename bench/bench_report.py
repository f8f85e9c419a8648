"""Comparison-report time over 1,000,000 call attempts on PostgreSQL (issue 7).

Set-up (not timed): a private schema; 400,000 leads in four packs, one audience pack each
(车主, 宝妈, 银行, 养老), bulk-inserted; a campaign testing script (2 arms), time slot
(2) and incentive (3) over them; 1,000,000 finished attempts over 14 days — every lead
dialled two or three times (a pass every few days), connect rates differing by audience
pack and slot, answered calls graded A/B/C/D, a few opt-outs, talk times — ANALYZE.
Timed: `build_report(session, campaign)` with every factor, the audience breakdown, the
cumulative days and the sequential test (the default), loading the campaign included; and
the SQL part alone (`lead_cells`). Three runs each (the first pays for cold caches).
Conversions (issue 17, item 4): policies for ~1% of the attempts (`--conversion-share`), one
per converted lead, each attributed to one of the lead's connected calls with its arms and a
premium of 200–3,200 yuan, so the report also computes the conversion metrics (conversion
rate, premium per lead and per dial) and the full funnel.
Target: ≤ 3 s for the report.
Usage: python -m bench.bench_report [--leads 400000] [--attempts 1000000] [--conversion-share 0.01]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from bench.campaign_data import (BENCH_SECRET, CHUNK_ROWS, add_pack, analyze, bulk_leads, create_bench_schema,
                                 drop_bench_schema)
from bot.audiences.models import AudiencePack
from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import campaign_arms, create_campaign
from bot.core.db.bulk import bulk_insert
from bot.core.db.engine import create_database_engine, session_scope
from bot.core.db.migrate import upgrade
from bot.campaigns.experiment_design import build_experiments
from bot.experiments.lead_metrics import lead_cells
from bot.experiments.report import build_report
from bot.core.pii import PhoneKeyring

TARGET_SECONDS = 3.0
FIRST_DAY = datetime(2026, 11, 2, tzinfo=timezone.utc)  # a Monday
SCENES = ("车主", "宝妈", "银行", "养老")
# answer probability per (scene, slot): what makes the arms differ
ANSWER = {("车主", "上午"): 0.25, ("车主", "傍晚"): 0.28, ("宝妈", "上午"): 0.22, ("宝妈", "傍晚"): 0.40,
          ("银行", "上午"): 0.31, ("银行", "傍晚"): 0.24, ("养老", "上午"): 0.43, ("养老", "傍晚"): 0.26}
GRADES = ("A", "B", "C", "D")
GRADE_WEIGHTS = {"standard": (12, 20, 38, 30), "benefit_first": (14, 21, 36, 29)}
SLOT_HOURS = {"上午": (1.5, 4.0), "傍晚": (10.0, 12.0)}  # UTC hours of 09:30–12:00 and 18:00–20:00 Shanghai
ATTEMPT_COLUMNS = ("campaign_id", "lead_id", "attempt_no", "phone_hash", "arms", "status", "outcome",
                   "history_outcome", "grade", "followups", "talk_time_s", "scheduled_at", "dialed_at", "answered_at",
                   "ended_at")
VARIANTS = [{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}]
SLOTS = [{"name": "上午", "windows": ["09:30-12:00"], "weight": 1},
         {"name": "傍晚", "windows": ["18:00-20:00"], "weight": 1}]
INCENTIVES = [{"name": "意外险", "text": "一份免费的驾乘意外险", "weight": 1},
              {"name": "体检", "text": "一次免费的体检", "weight": 1},
              {"name": "红包", "text": "一个十元红包", "weight": 1}]


def set_up(engine, leads: int, attempts: int, conversion_share: float = 0.01) -> dict:
    started = time.perf_counter()
    keyring = PhoneKeyring.from_secret(BENCH_SECRET.encode())
    with session_scope(engine) as session:
        audience_ids = []
        for scene in SCENES:
            pack = AudiencePack(name=f"{scene}-bench", scene=scene, tier="普通", attributes={})
            session.add(pack)
            session.flush()
            audience_ids.append(pack.id)
    pack_ids = [add_pack(engine, f"pack-{i}") for i in range(len(SCENES))]
    lead_rows = bulk_leads(engine, keyring, pack_ids, leads, first=0, created_at=FIRST_DAY - timedelta(days=10))
    with engine.begin() as conn:
        for pack_id, audience_id in zip(pack_ids, audience_ids):
            conn.execute(text("UPDATE leads SET audience_id = :a WHERE pack_id = :p"), {"a": audience_id, "p": pack_id})
    with session_scope(engine) as session:
        campaign = create_campaign(session, name="bench", packs=[f"pack-{i}" for i in range(len(SCENES))],
                                   variants=VARIANTS, time_slots=SLOTS,
                                   experiments=build_experiments(incentives=INCENTIVES))
        campaign.status, campaign.started_at = "running", FIRST_DAY
        campaign_id = campaign.id
        arms = campaign_arms(campaign)
    written = _write_attempts(engine, campaign_id, arms, lead_rows, attempts)
    conversions = _write_conversions(engine, campaign_id, round(written * conversion_share))
    analyze(engine)
    return {"campaign_id": campaign_id, "leads": leads, "attempts": written, "conversions": conversions,
            "setup_seconds": round(time.perf_counter() - started, 1)}


def _write_attempts(engine, campaign_id: int, arms, lead_rows: list[tuple[int, str]], target: int) -> int:
    """Passes over the leads (attempt 1 on days 0–4, attempt 2 on days 5–9, …) until
    `target` attempts are written."""
    rng = random.Random(11)
    scenes = {i: SCENES[i % len(SCENES)] for i in range(len(lead_rows))}
    rows: list[tuple] = []
    written = 0
    index = 0
    while written + len(rows) < target:
        lead_id, phone_hash = lead_rows[index % len(lead_rows)]
        scene = scenes[index % len(lead_rows)]
        index += 1
        lead_arms = arms.for_lead(lead_id)
        slot = lead_arms["time_slot"]
        attempt_no = index // len(lead_rows) + 1  # later passes retry the same leads
        day = FIRST_DAY + timedelta(days=min(13, (attempt_no - 1) * 5 + rng.randrange(5)))
        low, high = SLOT_HOURS[slot]
        dialed = day + timedelta(hours=rng.uniform(low, high))
        if rng.random() < ANSWER[(scene, slot)]:
            grade = rng.choices(GRADES, GRADE_WEIGHTS[lead_arms["script"]])[0]
            opt_out = grade == "C" and rng.random() < 0.12
            talk = rng.uniform(10, 90)
            rows.append((campaign_id, lead_id, attempt_no, phone_hash, lead_arms, "completed", "answered",
                         "opt_out" if opt_out else "answered", grade, [], talk, dialed, dialed,
                         dialed + timedelta(seconds=8), dialed + timedelta(seconds=talk + 8)))
        else:
            outcome = rng.choice(("no_answer", "no_answer", "no_answer", "powered_off", "line_busy", "vacant_number"))
            rows.append((campaign_id, lead_id, attempt_no, phone_hash, lead_arms, "completed", outcome, outcome, None,
                         [], None, dialed, dialed, None, dialed + timedelta(seconds=30)))
        if len(rows) >= CHUNK_ROWS:
            written += _copy(engine, rows)
            rows = []
    return written + _copy(engine, rows)


def _write_conversions(engine, campaign_id: int, count: int) -> int:
    """`count` policies on distinct leads, each attributed to one of the lead's connected calls
    (as bot.experiments.conversions would: that call's campaign and arms), a day after it."""
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(0.11)"))
        return conn.execute(
            text(
                "INSERT INTO conversions (policy_no, product, premium, converted_at, lead_id, attempt_id, campaign_id,"
                " arms, source, batch, created_at)"
                " SELECT 'BENCH-' || a.id, '百万医疗', round((200 + random() * 3000)::numeric, 2),"
                " a.dialed_at + interval '1 day', a.lead_id, a.id, a.campaign_id, a.arms, 'file', 'bench', now()"
                " FROM (SELECT DISTINCT ON (lead_id) * FROM call_attempts"
                "       WHERE campaign_id = :c AND outcome = 'answered' ORDER BY lead_id, attempt_no DESC) AS a"
                " ORDER BY random() LIMIT :n"
            ),
            {"c": campaign_id, "n": count},
        ).rowcount


def _copy(engine, rows: list[tuple]) -> int:
    with engine.begin() as conn:
        bulk_insert(conn, CallAttempt.__table__, ATTEMPT_COLUMNS, rows)
    return len(rows)


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=400_000)
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--conversion-share", type=float, default=0.01, help="policies per attempt (0: none)")
    args = parser.parse_args()
    schema = create_bench_schema("waihu_bench_report")
    engine = create_database_engine(schema.url)
    try:
        upgrade(engine)
        setup = set_up(engine, args.leads, args.attempts, args.conversion_share)

        def report() -> dict:
            with session_scope(engine) as session:
                return build_report(session, session.get(Campaign, setup["campaign_id"]))

        def sql_only() -> list:
            with session_scope(engine) as session:
                return lead_cells(session, setup["campaign_id"])

        load_before = os.getloadavg()[0]
        report_runs = [timed(report) for _ in range(3)]
        sql_runs = [timed(sql_only) for _ in range(3)]
        load_after = os.getloadavg()[0]
        data = report_runs[-1][1]
        cells = sql_runs[-1][1]
    finally:
        engine.dispose()
        drop_bench_schema(schema)
    seconds = [round(s, 3) for s, _ in report_runs]
    funnel = data["overview"]["funnel"]
    ok = (statistics.median(seconds) <= TARGET_SECONDS and data["overview"]["dials"] == setup["attempts"]
          and funnel["converted"] == setup["conversions"])
    print(json.dumps({"benchmark": "report", "backend": "postgresql", **setup,
                      "report_seconds": seconds, "report_median_seconds": statistics.median(seconds),
                      "sql_seconds": [round(s, 3) for s, _ in sql_runs], "cells": len(cells),
                      "factors": [f["factor"] for f in data["factors"]],
                      "audience_breakdowns": sum(len(f["by_audience"]) for f in data["factors"]),
                      "days": len(data["factors"][0]["daily"]),
                      "funnel": funnel,
                      "conversion_metrics": [m["key"] for m in data["metrics"] if m["unit"] == "yuan"
                                             or m["key"] == "conversion_rate"],
                      "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
                      "target_seconds": TARGET_SECONDS, "meets_target": ok}, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
