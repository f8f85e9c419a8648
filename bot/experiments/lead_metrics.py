"""What each lead did in a campaign, summed in SQL into a few cells the statistics can use.

The lead is the randomised unit, so the analysis needs per-lead numbers (dials,
connected calls, A and A+B calls, opt-outs, talk time, WeCom add) and, for every metric,
the sums over leads of the value, of its square and of its product with the metric's
denominator (a ratio metric's delta-method variance needs those). Those sums add up, so
one query reduces a campaign's attempts to a few hundred cells — one per (arm of every
factor, audience pack, local day) — from which any factor, arm or audience pack is a sum
in Python, instead of a million rows.

Days: a cell holds what its leads' sums *gained* that day. With X a lead's running total
of a value up to a day and x what that day added, the day adds X² − (X − x)² to Σ X² (and
likewise for products), so the cells of the days up to d add up to exactly the sums as
they stood at the end of day d (what the report showed then), and all cells together to
the sums today. A lead counts as a unit from the day of its first dial.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Float, Integer, Table, case, cast, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement

from bot.campaigns.experiment_design import FACTORS
from bot.campaigns.grading import latest_corrections
from bot.campaigns.models import CallAttempt
from bot.experiments.conversion_models import Conversion
from bot.leads.models import Lead
from bot.wecom.models import WeComInvite
from intents.followups import HANDED_OFF, HANDOFF_FAILED

# Attempts that reached the carrier (failed: the worker died mid-call, still a dial).
DIALLED_STATUSES = ("completed", "failed")
ANSWERED = "answered"
OPT_OUT = "opt_out"
LOCAL_UTC_OFFSET_HOURS = 8  # Asia/Shanghai: no daylight saving since 1991
EPOCH = date(1970, 1, 1)
# Below this span of lead ids one query is quicker than two.
PARALLEL_MIN_LEAD_SPAN = 50_000
SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")
_FLOAT_ONE = cast(1, Float)
_FLOAT_ZERO = cast(0, Float)

# Per-lead values and the sums kept of them: value, value², value × denominator.
SUMS = (
    "leads",
    "dials",
    "dials_sq",
    "connected",
    "connected_sq",
    "connected_dials",
    "a",
    "a_sq",
    "a_connected",
    "ab",
    "ab_sq",
    "ab_connected",
    "opt_out",
    "opt_out_sq",
    "opt_out_connected",
    "talk",
    "talk_sq",
    "talk_connected",
    "added",
    "handed_off",
    "handoff_failed",
    "corrected",
    # The full funnel (issue 17, item 4), each a count of leads: ever connected, ever graded A/B,
    # invited to WeCom; converted (a policy attributed to this campaign) and its premium (yuan).
    "connected_leads",
    "ab_leads",
    "invited",
    "converted",
    "premium",
    "premium_sq",
    "premium_dials",
)
# Plain counts of calls (no per-lead variance: reported as numbers, not compared as metrics).
COUNTS = ("handed_off", "handoff_failed")
# Calls whose grade a person corrected (人工更正): a plain count as well.
CORRECTED = "corrected"


@dataclass(frozen=True)
class Cell:
    """Leads sharing every arm and audience pack, and what their sums gained on one day."""

    arms: Mapping[str, str | None]  # factor → arm (None: the attempt did not record that factor)
    audience_id: int | None
    day: str  # YYYY-MM-DD, Asia/Shanghai
    sums: Mapping[str, float]  # what the day added (see the module docstring)


def add_sums(cells: Iterable[Cell]) -> dict[str, float]:
    total = dict.fromkeys(SUMS, 0.0)
    for cell in cells:
        for key in SUMS:
            total[key] += cell.sums[key]
    return total


def wecom_invites_table() -> Table:
    """The WeCom invitations table: where a lead's friend-add is recorded."""
    return WeComInvite.__table__


def lead_cells(
    session: Session,
    campaign_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    audience_ids: Sequence[int] | None = None,
    factors: Sequence[str] = FACTORS,
    parallel: bool = True,
) -> list[Cell]:
    """The campaign's dialled leads (attempts dialled in [since, until)), summed per cell.

    On PostgreSQL a large campaign is summed as two halves of its leads at once, each on its
    own connection reading the same snapshot (so both see one moment): the window over each
    lead's attempts cannot run in parallel inside one query, and the halves' cells simply
    add up."""
    dialect = session.get_bind().dialect.name

    def query(lead_range: tuple[int | None, int | None] = (None, None)):
        return _cells_query(campaign_id, since, until, audience_ids, dialect, lead_range)

    if dialect == "postgresql":
        _tune_postgresql(session)
    split = _split_point(session, campaign_id) if dialect == "postgresql" and parallel else None
    if split is None:
        rows = session.execute(query()).mappings().all()
    else:
        # Exported by this session's transaction, which stays open until both halves are read.
        snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        engine = session.get_bind()
        with ThreadPoolExecutor(max_workers=2) as pool:
            halves = [
                pool.submit(_rows_on_snapshot, engine, snapshot, query(part)) for part in ((None, split), (split, None))
            ]
            rows = [row for half in halves for row in half.result()]
    merged: dict[tuple, dict[str, float]] = {}
    for row in rows:
        arms = row["arms"] or {}
        key = (tuple(arms.get(factor) for factor in factors), row["audience_id"], int(row["day"]))
        total = merged.setdefault(key, dict.fromkeys(SUMS, 0.0))
        for name in SUMS:
            total[name] += float(row[name] or 0)
    return [
        Cell(dict(zip(factors, arm_names, strict=False)), audience_id, (EPOCH + timedelta(days=day)).isoformat(), sums)
        for (arm_names, audience_id, day), sums in merged.items()
    ]


def _tune_postgresql(connection) -> None:
    # A one-off aggregation: JIT compiling it cost ~0.5 s of a 1M-row report and saved
    # less; a bigger sort/hash budget keeps the lead join in memory.
    connection.execute(text("SET LOCAL jit = off"))
    connection.execute(text("SET LOCAL work_mem = '64MB'"))


def _split_point(session: Session, campaign_id: int) -> int | None:
    """The lead id halving the campaign's attempts (roughly), if it is worth splitting."""
    attempts = CallAttempt.__table__
    low, high = session.execute(
        select(func.min(attempts.c.lead_id), func.max(attempts.c.lead_id)).where(attempts.c.campaign_id == campaign_id)
    ).one()
    if low is None or high - low < PARALLEL_MIN_LEAD_SPAN:
        return None
    return (low + high) // 2


def _rows_on_snapshot(engine, snapshot: str, query) -> list:
    if not SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            connection.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            _tune_postgresql(connection)
            return connection.execute(query).mappings().all()


def _cells_query(
    campaign_id: int,
    since: datetime | None,
    until: datetime | None,
    audience_ids: Sequence[int] | None,
    dialect: str,
    lead_range: tuple[int | None, int | None],
):
    attempts = CallAttempt.__table__
    leads = Lead.__table__

    def counted(condition) -> ColumnElement:
        return func.sum(case((condition, 1), else_=0))

    conditions = [
        attempts.c.campaign_id == campaign_id,
        attempts.c.status.in_(DIALLED_STATUSES),
        attempts.c.dialed_at.isnot(None),
    ]
    low, high = lead_range  # [low, high)
    if low is not None:
        conditions.append(attempts.c.lead_id >= low)
    if high is not None:
        conditions.append(attempts.c.lead_id < high)
    if since is not None:
        conditions.append(attempts.c.dialed_at >= since)
    if until is not None:
        conditions.append(attempts.c.dialed_at < until)

    # Each attempt's values, and the lead's running totals up to and including it: attempt
    # numbers are in dialling order, and the (campaign, lead, attempt number) index gives
    # the rows in that order, so the window needs no sort. Arms are the same on every
    # attempt of a lead (the dialer keeps them), so the lead is the window's partition.
    # Floats: PostgreSQL sums bigint products as numeric, several times slower.
    def flag(condition) -> ColumnElement:
        return case((condition, _FLOAT_ONE), else_=_FLOAT_ZERO)

    # The grade that counts: a person's latest correction, else the robot's.
    corrections = latest_corrections()
    grade = func.coalesce(corrections.c.grade, attempts.c.grade)
    values = {
        "dials": _FLOAT_ONE,
        "connected": flag(attempts.c.outcome == ANSWERED),
        "a": flag(grade == "A"),
        "ab": flag(grade.in_(("A", "B"))),
        "opt_out": flag(attempts.c.history_outcome == OPT_OUT),
        "talk": case(
            (attempts.c.outcome == ANSWERED, func.coalesce(attempts.c.talk_time_s, _FLOAT_ZERO)), else_=_FLOAT_ZERO
        ),
    }
    counts = {
        "handed_off": flag(attempts.c.handoff == HANDED_OFF),
        "handoff_failed": flag(attempts.c.handoff == HANDOFF_FAILED),
        CORRECTED: flag(corrections.c.attempt_id.isnot(None)),
    }
    lead_order = {"partition_by": attempts.c.lead_id, "order_by": attempts.c.attempt_no}
    running = (
        select(
            attempts.c.lead_id.label("lead_id"),
            attempts.c.arms.label("arms"),
            _local_day(attempts.c.dialed_at, dialect).label("day"),
            *[value.label(name) for name, value in values.items()],
            *[value.label(name) for name, value in counts.items()],
            *[func.sum(value).over(**lead_order).label(f"total_{name}") for name, value in values.items()],
        )
        .select_from(attempts.outerjoin(corrections, corrections.c.attempt_id == attempts.c.id))
        .where(*conditions)
        .subquery("running")
    )
    r = running.c

    def gained_square(value: str) -> ColumnElement:  # X² − (X − x)² = x(2X − x)
        return func.sum(r[value] * (2 * r[f"total_{value}"] - r[value]))

    def gained_product(value: str, other: str) -> ColumnElement:  # XY − (X − x)(Y − y) = Xy + x(Y − y)
        return func.sum(r[f"total_{value}"] * r[other] + r[value] * (r[f"total_{other}"] - r[other]))

    first_day = r.total_dials == 1  # the lead's first dial
    source = running.join(leads, leads.c.id == r.lead_id)
    invites = wecom_invites_table()
    if invites is not None:
        added_by_lead = (
            select(
                invites.c.lead_id.label("lead_id"),
                func.max(case((invites.c.added_at.isnot(None), 1), else_=0)).label("added"),
                # a landline's A/B lead gets a 'skipped' invitation: never invited
                func.max(case((invites.c.status != "skipped", 1), else_=0) if "status" in invites.c else 1).label(
                    "invited"
                ),
            )
            .where(invites.c.campaign_id == campaign_id)
            .group_by(invites.c.lead_id)
            .subquery("added_by_lead")
        )
        source = source.outerjoin(added_by_lead, added_by_lead.c.lead_id == r.lead_id)
        # added or not, as of now, counted once: on the lead's first day
        added = func.sum(case((first_day, func.coalesce(added_by_lead.c.added, 0)), else_=0))
        invited = func.sum(case((first_day, func.coalesce(added_by_lead.c.invited, 0)), else_=0))
    else:
        added = invited = func.sum(0)
    # Policies credited to this campaign (last touch within the window: bot.experiments.conversions),
    # per lead; like the add, counted once on the lead's first day, as of now.
    conversions = Conversion.__table__
    converted_by_lead = (
        select(
            conversions.c.lead_id.label("lead_id"),
            func.sum(cast(conversions.c.premium, Float)).label("premium"),
        )
        .where(conversions.c.campaign_id == campaign_id, conversions.c.attempt_id.isnot(None))
        .group_by(conversions.c.lead_id)
        .subquery("converted_by_lead")
    )
    source = source.outerjoin(converted_by_lead, converted_by_lead.c.lead_id == r.lead_id)
    premium = func.coalesce(converted_by_lead.c.premium, _FLOAT_ZERO)
    sums = [
        counted(first_day).label("leads"),
        func.sum(r.dials).label("dials"),
        gained_square("dials").label("dials_sq"),
        func.sum(r.connected).label("connected"),
        gained_square("connected").label("connected_sq"),
        gained_product("connected", "dials").label("connected_dials"),
    ]
    for name in ("a", "ab", "opt_out", "talk"):
        sums += [
            func.sum(r[name]).label(name),
            gained_square(name).label(f"{name}_sq"),
            gained_product(name, "connected").label(f"{name}_connected"),
        ]
    sums.append(added.label("added"))
    sums += [func.sum(r[name]).label(name) for name in counts]
    sums += [
        # a lead's first connected call and first A/B call: its running total turns 1 there
        func.sum(case(((r.connected == 1) & (r.total_connected == 1), 1), else_=0)).label("connected_leads"),
        func.sum(case(((r.ab == 1) & (r.total_ab == 1), 1), else_=0)).label("ab_leads"),
        invited.label("invited"),
        func.sum(case((first_day & converted_by_lead.c.lead_id.isnot(None), 1), else_=0)).label("converted"),
        func.sum(case((first_day, premium), else_=_FLOAT_ZERO)).label("premium"),
        func.sum(case((first_day, premium * premium), else_=_FLOAT_ZERO)).label("premium_sq"),
        # Σ premium × dials over leads: each of the lead's dials adds its premium once
        func.sum(premium * r.dials).label("premium_dials"),
    ]
    # Grouped by the arms document itself, read apart in Python: a campaign has a handful of
    # distinct ones, so this is a small hash aggregate, where extracting each factor in
    # SQL meant a JSON lookup and a sort per row.
    query = (
        select(r.arms, leads.c.audience_id, r.day, *sums)
        .select_from(source)
        .group_by(r.arms, leads.c.audience_id, r.day)
    )
    if audience_ids is not None:
        query = query.where(leads.c.audience_id.in_(list(audience_ids)))
    return query


def _local_day(column, dialect: str):
    """Days since 1970-01-01 in Shanghai (fixed +8 h): integer arithmetic, not date text,
    because it runs once per attempt."""
    offset = LOCAL_UTC_OFFSET_HOURS * 3600
    if dialect == "postgresql":
        return cast(func.floor((func.date_part("epoch", column) + offset) / 86400), Integer)
    # SQLite keeps UTC timestamps as text.
    return cast((cast(func.strftime("%s", column), Integer) + offset) / 86400, Integer)
