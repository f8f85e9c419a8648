"""Celery task: the region back-fill (bot.leads.locate) from the workers' beat, so leads stored
before migration 0014 get their province, city and time zone without anyone having to run
`waihu leads locate`.

Each pass locates at most LOCATE_PER_PASS leads (committed a batch at a time); once none is
left the process rests for IDLE_RECHECK_S between looks. A worker has the installation key
(it decrypts numbers to dial), so the pass runs there. Scheduled by bot.dialing.tasks' beat
schedule.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import SQLAlchemyError

from bot.core.errors import UserError
from telephony.celery_app import app

log = logging.getLogger(__name__)

LOCATE_EVERY_S = 60.0  # real seconds between passes
# Leads per pass at most: ~1.2 s of CPU (decrypting, geocoding: 8,000 leads/s measured on
# PostgreSQL) in a process whose other threads carry live calls; 600,000 leads an hour.
LOCATE_PER_PASS = 10_000
# Once a pass finds nothing, this process looks again only after an hour: new uploads are
# located when stored, so only old leads ever need the pass, and finding none costs a scan
# of the leads table (no index on a one-off condition: 56 ms for 200,000 leads measured).
IDLE_RECHECK_S = 3600.0
_idle_until = 0.0


@app.task(name="waihu.locate_leads")
def locate_leads() -> dict:
    global _idle_until
    if time.monotonic() < _idle_until:
        return {"skipped": "nothing to locate at the last pass"}
    report = run_locate_pass()
    if report.get("looked_at") == 0:
        _idle_until = time.monotonic() + IDLE_RECHECK_S
    return report


def run_locate_pass(limit: int | None = None) -> dict:
    """One pass (at most `limit` leads, default LOCATE_PER_PASS) with the settings' database and key."""
    from bot.core.db.engine import open_database
    from bot.core.pii import keyring_for_engine
    from bot.leads.locate import locate_missing

    try:
        engine = open_database()
        report = locate_missing(engine, keyring_for_engine(engine), limit=limit or LOCATE_PER_PASS)
    except (SQLAlchemyError, UserError) as exc:  # database down, or a key that cannot read its numbers
        reason = str(exc).strip().splitlines()[0]
        log.warning("lead region back-fill skipped: %s", reason)
        return {"skipped": reason}
    if report.looked_at:
        log.warning(
            "lead regions filled: %d located (%s), %d numbers the geocoder cannot place kept as they were, %d left",
            report.filled,
            ", ".join(f"{zone} {n}" for zone, n in sorted(report.by_timezone.items())) or "none",
            report.unknown,
            report.remaining,
        )
    return report.as_json()
