"""Throughput of the per-dial compliance check (`check_eligibility`) on realistic histories.

Mix: a third of numbers never called, the rest with 1–8 attempts across campaigns over the
last 35 days (no-answers, busy with and without a named time, declines), callee time zones
in China and abroad, a holiday calendar, and `now` spread over day and night.
Target: ≥ 50,000 checks/s on one core.
Usage: python -m bench.bench_eligibility [--checks 200000]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone

from telephony.compliance import Attempt, DncState, check_eligibility, load_profile

TARGET_CHECKS_PER_SECOND = 50_000
OUTCOMES = ["no_answer"] * 5 + ["answered"] * 3 + ["line_busy", "powered_off", "busy", "soft_decline"]
ZONES = ["Asia/Shanghai"] * 8 + ["Asia/Urumqi", "America/New_York"]


def make_cases(n: int, seed: int = 11) -> list[tuple]:
    rng = random.Random(seed)
    base = datetime(2025, 3, 3, tzinfo=timezone.utc)
    holidays = frozenset(date(2025, m, d) for m, d in ((1, 1), (1, 28), (1, 29), (1, 30), (4, 4), (5, 1), (5, 2),
                                                       (5, 5), (5, 31), (10, 1), (10, 2), (10, 3)))
    cases = []
    for _ in range(n):
        now = base + timedelta(seconds=rng.randrange(0, 86400 * 60))
        attempts = []
        if rng.random() > 0.33:
            for _ in range(rng.randint(1, 8)):
                at = now - timedelta(seconds=rng.randrange(600, 86400 * 35))
                outcome = rng.choice(OUTCOMES)
                callback = at + timedelta(hours=rng.randint(1, 30)) if outcome == "busy" and rng.random() < 0.5 else None
                attempts.append(Attempt(at, outcome, campaign=rng.choice("ABC"), callback_at=callback))
            attempts.sort(key=lambda a: a.at)
        dnc = DncState(soft_until=now + timedelta(days=30)) if rng.random() < 0.01 else DncState()
        cases.append((now, tuple(attempts), dnc, rng.choice(ZONES), holidays))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=200_000)
    args = parser.parse_args()
    policy = load_profile()
    cases = make_cases(args.checks)
    for now, attempts, dnc, zone, holidays in cases[:1000]:  # warm caches (zones)
        check_eligibility(policy, now=now, attempts=attempts, dnc=dnc, timezone_name=zone, holidays=holidays)
    reasons: Counter[str] = Counter()
    started = time.perf_counter()
    for now, attempts, dnc, zone, holidays in cases:
        result = check_eligibility(policy, now=now, attempts=attempts, dnc=dnc, timezone_name=zone, holidays=holidays)
        reasons[result.reason] += 1
    seconds = time.perf_counter() - started
    rate = args.checks / seconds
    print(json.dumps({"benchmark": "eligibility", "checks": args.checks, "seconds": round(seconds, 3),
                      "checks_per_second": round(rate), "us_per_check": round(seconds / args.checks * 1e6, 2),
                      "target_checks_per_second": TARGET_CHECKS_PER_SECOND,
                      "meets_target": rate >= TARGET_CHECKS_PER_SECOND,
                      "reasons": dict(reasons.most_common())}))
    return 0 if rate >= TARGET_CHECKS_PER_SECOND else 1


if __name__ == "__main__":
    sys.exit(main())
