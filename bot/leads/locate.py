"""Region back-fill: leads stored before migration 0014 have no province, city or time zone.

Without one a lead is dialled on Beijing time: a Xinjiang lead at 09:30 Beijing time is
called at 07:30 where they live. `locate_missing` fills the region from the number's 归属地
(`bot.core.region.region_of_number`; the number is decrypted with the installation key),
a batch at a time, each batch its own commit, so a stopped run keeps what it did and the
next continues. It runs from `waihu leads locate` and, without anyone having to remember
it, from the workers' beat (`bot.leads.tasks.locate_leads`).

Which leads: those never located, `region_source IS NULL` (uploads since 0014 always set it
when the number or the upload named a place). A number the geocoder cannot place keeps its
empty region (Beijing time, as before) and is marked `region_source = 'unknown'`, so later
passes do not decrypt it again; `retry_unknown` looks at those again (after a phonenumbers
upgrade, say). Filling is idempotent: a located lead is never selected again, and two
concurrent runs write the same values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement

from bot.core.db.engine import session_scope
from bot.core.pii import PhoneKeyring
from bot.core.region import SOURCE_UNKNOWN, region_of_number
from bot.leads.models import Lead

DEFAULT_BATCH = 1000


@dataclass
class LocateReport:
    looked_at: int = 0
    filled: int = 0
    unknown: int = 0  # numbers the geocoder could not place: kept as they were (empty region), counted
    by_timezone: Counter = field(default_factory=Counter)  # filled leads by their time zone
    remaining: int = 0  # leads still never located after this run (a limit was reached)

    def as_json(self) -> dict:
        return {
            "looked_at": self.looked_at,
            "filled": self.filled,
            "unknown": self.unknown,
            "by_timezone": dict(sorted(self.by_timezone.items())),
            "remaining": self.remaining,
        }


def _never_located(retry_unknown: bool) -> ColumnElement[bool]:
    if retry_unknown:
        return or_(Lead.region_source.is_(None), Lead.region_source == SOURCE_UNKNOWN)
    return Lead.region_source.is_(None)


def count_unlocated(session: Session, retry_unknown: bool = False) -> int:
    """Leads a run would look at (for the progress bar's total)."""
    return session.execute(select(func.count(Lead.id)).where(_never_located(retry_unknown))).scalar_one()


def locate_batch(
    session: Session, keyring: PhoneKeyring, report: LocateReport, *, after_id: int, size: int, retry_unknown: bool
) -> int | None:
    """Locates up to `size` never-located leads with an id above `after_id`; returns the last
    id looked at (the next batch starts after it), None when there were none."""
    rows = session.execute(
        select(Lead.id, Lead.phone_ciphertext)
        .where(_never_located(retry_unknown), Lead.id > after_id)
        .order_by(Lead.id)
        .limit(size)
    ).all()
    if not rows:
        return None
    located: list[tuple] = []
    for lead_id, ciphertext in rows:
        region = region_of_number(keyring.decrypt_phone(ciphertext))
        if region is None:
            report.unknown += 1
            located.append((lead_id, None, None, None, SOURCE_UNKNOWN))  # empty as before, marked looked-up
            continue
        report.filled += 1
        report.by_timezone[region.timezone] += 1
        located.append((lead_id, region.province, region.city, region.timezone, region.source))
    report.looked_at += len(rows)
    _write(session, located)
    return rows[-1][0]


# PostgreSQL: the batch as five arrays, one statement (psycopg2 sends a Python list as an ARRAY).
_UPDATE_FROM_ARRAYS = text(
    "UPDATE leads SET province = located.province, city = located.city, timezone = located.timezone, "
    "region_source = located.region_source "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:provinces AS text[]), CAST(:cities AS text[]), "
    "CAST(:zones AS text[]), CAST(:sources AS text[])) "
    "AS located (lead_id, province, city, timezone, region_source) "
    "WHERE leads.id = located.lead_id"
)


def _write(session: Session, located: list[tuple]) -> None:
    """One statement for the batch. PostgreSQL: UPDATE … FROM unnest(arrays) — a row-by-row
    executemany was the pass's cost (one round trip a lead: 3,000 leads/s measured), and a
    VALUES list compiled slower still. SQLite (in process, no round trips): an executemany."""
    if session.get_bind().dialect.name == "postgresql":
        ids, provinces, cities, zones, sources = (list(column) for column in zip(*located))
        session.execute(
            _UPDATE_FROM_ARRAYS,
            {"ids": ids, "provinces": provinces, "cities": cities, "zones": zones, "sources": sources},
        )
        return
    names = ("province", "city", "timezone", "region_source")
    leads = Lead.__table__
    session.execute(
        update(leads).where(leads.c.id == bindparam("lead_id")).values({n: bindparam(f"new_{n}") for n in names}),
        [{"lead_id": row[0], **{f"new_{n}": v for n, v in zip(names, row[1:])}} for row in located],
    )


def locate_missing(
    engine: Engine,
    keyring: PhoneKeyring,
    *,
    batch_size: int = DEFAULT_BATCH,
    limit: int | None = None,
    retry_unknown: bool = False,
    on_batch: Callable[[LocateReport], None] | None = None,
) -> LocateReport:
    """Fills the region of every never-located lead (at most `limit`), a committed batch at a
    time; `on_batch` sees the report after each (a progress bar)."""
    report = LocateReport()
    after_id = 0
    while limit is None or report.looked_at < limit:
        size = batch_size if limit is None else min(batch_size, limit - report.looked_at)
        with session_scope(engine) as session:
            last = locate_batch(session, keyring, report, after_id=after_id, size=size, retry_unknown=retry_unknown)
        if last is None:
            break
        after_id = last
        if on_batch is not None:
            on_batch(report)
    if limit is not None and report.looked_at >= limit:
        with session_scope(engine) as session:
            report.remaining = count_unlocated(session)
    return report
