"""Fault soak (issue 14): the fault suite's scenario over a whole afternoon with every fault
twice, on its own redis-server and PostgreSQL cluster, two real Celery dial workers and
beat on a clock 60× real time (one hopper tick per simulated minute).

From 14:20 to 20:10 simulated (about six real minutes after the workers load): kill -9 of
the busiest worker, PostgreSQL stopped with -m immediate for 15 s, a slow database, Redis
killed and restarted empty — each twice — and a carrier hanging on 1% of dials and of
answered calls throughout; the window closes at 20:00. Prints one JSON object: per fault,
results lost (a call the carrier finished whose result the database does not have),
dials outside the windows, missed callbacks without a reason, and every other violation
of tests/faults/checks.py; the real run time.

Usage: python -m bench.bench_fault_soak [--main-leads 4000] [--slow-leads 600]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from tests.faults.harness import PrivatePostgres
from tests.faults.scenario import DAY, SHANGHAI_OFFSET, Plan, run_faulty_morning


def at(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hhmm}:00{SHANGHAI_OFFSET}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--main-leads", type=int, default=4000)
    parser.add_argument("--slow-leads", type=int, default=600)
    args = parser.parse_args()

    from bot.core.settings import get_settings
    from bot.script.project import DialogsProject
    from bot.script.training import train

    settings = get_settings()
    model_path = train(DialogsProject(settings.dialogs_dir), settings.models_dir).model_path
    twice = (("kill_worker", 0.08), ("postgres_restart", 0.2), ("slow_database", 0.3), ("redis_restart", 0.45),
             ("kill_worker", 0.58), ("postgres_restart", 0.7), ("slow_database", 0.8), ("redis_restart", 0.95))
    plan = Plan(clock_start=at("14:20"), window_closes=at("20:00"), run_ends=at("20:10"), faults=twice,
                main_leads=args.main_leads, slow_leads=args.slow_leads, callbacks_at=at("14:40"))
    postgres = PrivatePostgres()
    try:
        postgres.init()
        postgres.start()
        run = run_faulty_morning(Path(tempfile.mkdtemp(prefix="waihu-soak-")), model_path, postgres, plan)
    finally:
        postgres.destroy()
    report = run.report
    report["figures"].pop("samples", None)
    report["holds"] = not run.final.failed() and run.journal_left == 0
    print(json.dumps(report, ensure_ascii=False, default=str))
    return 0 if report["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
