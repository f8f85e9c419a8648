"""A campaign's caller-number pool (主叫号码池): which number each dial shows.

Local first: a number from the callee's city, else their province, else any; among equals
the one least used today (rotation). Never above a number's daily cap, across any number of
worker processes: a use is taken by one conditional UPDATE (`used_today < daily_cap` for
today's Beijing date, or a new day) — PostgreSQL re-checks the condition on the row it
locked, SQLite has one writer — so two workers cannot both take a number's last slot. When
no number has room (all at their cap or rested) the dial is deferred, not dialled with a
capped number: the dialer cancels that attempt unburnt (reason CALLER_NUMBERS_CAPPED) and the
planner plans nothing more for the campaign until a number has room (the next day, or a
number added or un-rested).

Without a pool a campaign dials as before, with the carrier's default caller id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt, CallerNumber
from bot.core.errors import UserError
from bot.core.phone import Phone, normalise_phone
from bot.core.region import BEIJING_ZONE, region_of_number

CITY, PROVINCE, OTHER = "city", "province", "other"
_RANK = {CITY: 0, PROVINCE: 1, OTHER: 2}
# The T-0 cancellation reason (and planner skip reason) when every number is at its cap or rested.
CALLER_NUMBERS_CAPPED = "caller_numbers_capped"
DEFAULT_DAILY_CAP = 200
_BEIJING = ZoneInfo(BEIJING_ZONE)


def pool_day(now: datetime) -> str:
    """The day a daily cap counts in: the Beijing date (caps reset at Beijing midnight)."""
    return now.astimezone(_BEIJING).date().isoformat()


@dataclass(frozen=True)
class TakenNumber:
    number: str
    match: str  # city | province | other


@dataclass(frozen=True)
class PoolEntry:
    number: str
    province: str | None
    city: str | None
    daily_cap: int
    used_today: int
    rested: bool
    rested_reason: str | None
    rested_at: datetime | None

    @property
    def place(self) -> str:
        """归属地 as shown: 广东 深圳市 (a municipality once: 上海市)."""
        if not self.province:
            return "未知"
        if self.city and self.city.startswith(self.province):
            return self.city
        return f"{self.province} {self.city}" if self.city else self.province

    @property
    def full(self) -> bool:
        return self.used_today >= self.daily_cap


def match_of(province: str | None, city: str | None, number_province: str | None, number_city: str | None) -> str:
    if province and number_province == province:
        return CITY if city and number_city == city else PROVINCE
    return OTHER


def _used_today(row: CallerNumber, day: str) -> int:
    return row.used_today if row.used_on == day else 0


def pool(session: Session, campaign_id: int, now: datetime) -> list[PoolEntry]:
    day = pool_day(now)
    rows = session.execute(
        select(CallerNumber).where(CallerNumber.campaign_id == campaign_id).order_by(CallerNumber.id)
    ).scalars()
    return [
        PoolEntry(
            r.number,
            r.province,
            r.city,
            r.daily_cap,
            _used_today(r, day),
            bool(r.rested),
            r.rested_reason,
            r.rested_at,
        )
        for r in rows
    ]


def has_pool(session: Session, campaign_id: int) -> bool:
    return (
        session.execute(select(CallerNumber.id).where(CallerNumber.campaign_id == campaign_id).limit(1)).first()
        is not None
    )


def pool_has_room(session: Session, campaign_id: int, now: datetime) -> bool | None:
    """Whether some number of the pool can still dial today; None when the campaign has no pool."""
    if not has_pool(session, campaign_id):
        return None
    day = pool_day(now)
    room = session.execute(
        select(CallerNumber.id)
        .where(
            CallerNumber.campaign_id == campaign_id,
            CallerNumber.rested == 0,
            (CallerNumber.used_on.is_(None))
            | (CallerNumber.used_on != day)
            | (CallerNumber.used_today < CallerNumber.daily_cap),
        )
        .limit(1)
    ).first()
    return room is not None


def take_caller_number(
    session: Session, campaign_id: int, province: str | None, city: str | None, now: datetime
) -> TakenNumber | None:
    """One use of the best number with room today (see the module docstring); None when none
    has room. The caller commits (a rollback gives the use back)."""
    day = pool_day(now)
    rows = (
        session.execute(select(CallerNumber).where(CallerNumber.campaign_id == campaign_id, CallerNumber.rested == 0))
        .scalars()
        .all()
    )
    ranked = sorted(
        rows,
        key=lambda r: (_RANK[match_of(province, city, r.province, r.city)], _used_today(r, day), r.id),
    )
    for row in ranked:
        if _used_today(row, day) >= row.daily_cap:
            continue
        won = session.execute(
            update(CallerNumber)
            .where(
                CallerNumber.id == row.id,
                CallerNumber.rested == 0,
                (CallerNumber.used_on.is_(None))
                | (CallerNumber.used_on != day)
                | (CallerNumber.used_today < CallerNumber.daily_cap),
            )
            .values(
                used_today=case((CallerNumber.used_on == day, CallerNumber.used_today + 1), else_=1),
                used_on=day,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if won:
            return TakenNumber(row.number, match_of(province, city, row.province, row.city))
    return None


def give_back_caller_number(session: Session, campaign_id: int, number: str, now: datetime) -> None:
    """A dial that took a number and then did not go out returns its use (same day only)."""
    session.execute(
        update(CallerNumber)
        .where(
            CallerNumber.campaign_id == campaign_id,
            CallerNumber.number == number,
            CallerNumber.used_on == pool_day(now),
            CallerNumber.used_today > 0,
        )
        .values(used_today=CallerNumber.used_today - 1)
        .execution_options(synchronize_session=False)
    )


def _normalised(number: str) -> str:
    phone = normalise_phone(number)
    if not isinstance(phone, Phone):
        raise UserError(f"caller number {number!r}: {phone.message}")
    return phone.number


def add_caller_number(
    session: Session, campaign_id: int, number: str, daily_cap: int = DEFAULT_DAILY_CAP, now: datetime | None = None
) -> CallerNumber:
    if daily_cap < 1:
        raise UserError(f"--cap {daily_cap}: a daily cap is at least 1 dial")
    digits = _normalised(number)
    if session.execute(
        select(CallerNumber.id).where(CallerNumber.campaign_id == campaign_id, CallerNumber.number == digits)
    ).first():
        raise UserError(f"caller number {digits} is already in this campaign's pool; change its cap with --cap")
    region = region_of_number(digits)
    row = CallerNumber(
        campaign_id=campaign_id,
        number=digits,
        province=region.province if region else None,
        city=region.city if region else None,
        daily_cap=daily_cap,
        used_today=0,
        rested=0,
    )
    if now is not None:
        row.created_at = now
    session.add(row)
    session.flush()
    return row


def _number_row(session: Session, campaign_id: int, number: str) -> CallerNumber:
    digits = _normalised(number)
    row = session.execute(
        select(CallerNumber).where(CallerNumber.campaign_id == campaign_id, CallerNumber.number == digits)
    ).scalar_one_or_none()
    if row is None:
        raise UserError(
            f"caller number {digits} is not in this campaign's pool; see `waihu campaign numbers list CAMPAIGN`"
        )
    return row


def set_rested(
    session: Session, campaign_id: int, number: str, rested: bool, reason: str | None, now: datetime
) -> CallerNumber:
    row = _number_row(session, campaign_id, number)
    row.rested = int(rested)
    row.rested_reason = (reason or "rested by hand")[:300] if rested else None
    row.rested_at = now if rested else None
    session.flush()
    return row


def set_cap(session: Session, campaign_id: int, number: str, daily_cap: int) -> CallerNumber:
    if daily_cap < 1:
        raise UserError(f"--cap {daily_cap}: a daily cap is at least 1 dial")
    row = _number_row(session, campaign_id, number)
    row.daily_cap = daily_cap
    session.flush()
    return row


def rested_count(session: Session, campaign_id: int) -> int:
    return int(
        session.execute(
            select(func.count()).where(CallerNumber.campaign_id == campaign_id, CallerNumber.rested == 1)
        ).scalar_one()
    )


def pool_status(session: Session, campaign_id: int, now: datetime) -> dict | None:
    """The pool at a glance for `campaign status` and the console; None without a pool.
    `deferred`: no number can dial today, so the campaign's dials wait (the reason is said)."""
    entries = pool(session, campaign_id, now)
    if not entries:
        return None
    usable = [e for e in entries if not e.rested]
    with_room = [e for e in usable if not e.full]
    deferred_today = int(
        session.execute(
            select(func.count()).where(
                CallAttempt.campaign_id == campaign_id,
                CallAttempt.outcome == CALLER_NUMBERS_CAPPED,
                CallAttempt.scheduled_at >= now - timedelta(days=1),
            )
        ).scalar_one()
    )
    return {
        "numbers": len(entries),
        "rested": [{"number": e.number, "reason": e.rested_reason} for e in entries if e.rested],
        "with_room": len(with_room),
        "used_today": sum(e.used_today for e in entries),
        "cap_today": sum(e.daily_cap for e in usable),
        "deferred": not with_room,
        "deferred_dials_24h": deferred_today,
    }
