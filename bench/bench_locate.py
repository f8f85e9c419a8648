"""Region back-fill (`waihu leads locate`, the beat's locate-leads): leads per second, and the
cost of a pass that finds nothing left.

Set-up (not timed): a private PostgreSQL schema with --leads leads stored without a region, as
before migration 0014 (encrypted numbers over the real mobile prefixes).
Measured: one `locate_missing` run over all of them (decrypt, 归属地 from phonenumbers' geocoder,
one UPDATE … FROM unnest per batch), then a second run with nothing left to do (the beat's
look once every lead is located: a scan of the leads table).
Target: ≥ 5,000 leads/s, so a 1M-lead installation is located within a few minutes.
Usage: python -m bench.bench_locate [--leads 200000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone

from bench.campaign_data import BENCH_SECRET, add_pack, analyze, bulk_leads, create_bench_schema, drop_bench_schema
from bot.core.db.engine import create_database_engine
from bot.core.db.migrate import upgrade
from bot.core.pii import PhoneKeyring
from bot.leads.locate import locate_missing

TARGET_LEADS_PER_S = 5_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    schema = create_bench_schema("waihu_bench_locate")
    try:
        engine = create_database_engine(schema.url)
        upgrade(engine)
        keyring = PhoneKeyring.from_secret(BENCH_SECRET.encode())
        pack = add_pack(engine, "before-0014")
        bulk_leads(engine, keyring, [pack], args.leads, 0, datetime(2026, 11, 1, tzinfo=timezone.utc))
        analyze(engine)
        started = time.perf_counter()
        report = locate_missing(engine, keyring, batch_size=args.batch)
        seconds = time.perf_counter() - started
        analyze(engine)
        started = time.perf_counter()
        idle = locate_missing(engine, keyring, batch_size=args.batch)
        idle_ms = (time.perf_counter() - started) * 1000
        engine.dispose()
    finally:
        drop_bench_schema(schema)
    figures = {
        "bench": "locate",
        "leads": args.leads,
        "seconds": round(seconds, 2),
        "leads_per_s": round(report.looked_at / seconds),
        "filled": report.filled,
        "unknown": report.unknown,
        "by_timezone": dict(report.by_timezone),
        "empty_pass_ms": round(idle_ms, 1),
        "empty_pass_looked_at": idle.looked_at,
        "target_leads_per_s": TARGET_LEADS_PER_S,
        "meets_target": report.looked_at / seconds >= TARGET_LEADS_PER_S,
    }
    print(json.dumps(figures, ensure_ascii=False))
    return 0 if figures["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
