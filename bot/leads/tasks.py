"""Celery task: the region back-fill (bot.leads.locate) from the workers' beat, so leads stored
before migration 0014 get their province, city and time zone without anyone having to run
`waihu leads locate`.

Each pass locates at most LOCATE_PER_PASS leads (committed a batch at a time); once none is
left a pass costs one query. A worker has the installation key (it decrypts numbers to dial),
so the pass runs there. Scheduled by bot.dialing.tasks' beat schedule.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from bot.core.errors import UserError
from telephony.celery_app import app

log = logging.getLogger(__name__)

LOCATE_EVERY_S = 60.0  # real seconds between passes
LOCATE_PER_PASS = 20_000  # leads per pass at most: a pass stays well under a minute


@app.task(name="waihu.locate_leads")
def locate_leads() -> dict:
    return run_locate_pass()


def run_locate_pass(limit: int = LOCATE_PER_PASS) -> dict:
    """One pass with the settings' database and key."""
    from bot.core.db.engine import open_database
    from bot.core.pii import keyring_for_engine
    from bot.leads.locate import locate_missing

    try:
        engine = open_database()
        report = locate_missing(engine, keyring_for_engine(engine), limit=limit)
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
