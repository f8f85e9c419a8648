"""May this number be dialled now, and if not, when at the earliest?

`check_eligibility` is pure (no I/O, no clock: `now` is an argument) and runs before every
dial, so it is written for speed: one pass over the attempt history, integer seconds,
and time-zone conversions only where the answer depends on the local clock.

Order of the rules (the reason code names the one that binds):
  1. permanent: DNC opt-out, an opt-out/hostile reply, a vacant number → never (earliest None)
  2. cool-downs from the history (soft decline 180 d, busy 7 d unless a time was named, …),
     DNC soft decline, parking after consecutive no-answers, rolling caps across campaigns
  3. a callback the callee asked for: at the named time, inside the callback band (09:00–21:00),
     for the grace period, with the daily cap raised to the callback ceiling
  4. the calling windows in the callee's local time, holidays with their own windows
Caps and cool-downs only ever relax as time passes (no new attempts are assumed), so the
earliest time is the first window opening after the latest blocking time.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from telephony.compliance.policy import HARD_BAND, CompliancePolicy

UTC = timezone.utc
_SEARCH_DAYS = 400  # a window must open within this many days, or the answer is "no window"

# Reason codes (stable: the dialer and reports key on them).
OK = "ok"
OK_CALLBACK = "ok_callback"
DNC_OPT_OUT = "dnc_opt_out"
DNC_SOFT_DECLINE = "dnc_soft_decline"
PARKED_NO_ANSWER = "parked_no_answer"
CALLBACK_PENDING = "callback_pending"
OUTSIDE_WINDOW = "outside_window"
HARD_BLOCK = "hard_block"
HOLIDAY = "holiday"
NO_WINDOW = "no_window"


@dataclass(frozen=True)
class Attempt:
    """One earlier dial of this number, from any campaign."""

    at: datetime  # when it was dialled (aware)
    outcome: str  # answered | no_answer | busy | soft_decline | opt_out | line_busy | …
    campaign: str | None = None
    callback_at: datetime | None = None  # the time the callee named ("call me tomorrow at 3")


@dataclass(frozen=True)
class DncState:
    opt_out: bool = False
    soft_until: datetime | None = None


NOT_ON_DNC = DncState()


@dataclass(frozen=True)
class Eligibility:
    allowed: bool
    reason: str
    earliest: datetime | None  # now when allowed; None when never


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_eligibility(
    policy: CompliancePolicy,
    *,
    now: datetime,
    attempts: Sequence[Attempt] = (),
    dnc: DncState = NOT_ON_DNC,
    timezone_name: str | None = None,
    holidays: AbstractSet[date] = frozenset(),
) -> Eligibility:
    """The answer for one number at `now`.

    attempts: the number's history across all campaigns (any order); holidays: local dates.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    if dnc.opt_out:
        return Eligibility(False, DNC_OPT_OUT, None)
    zone = _zone(timezone_name or policy.timezone)
    now_ts = now.timestamp()

    if len(attempts) > 1 and any(attempts[i].at > attempts[i + 1].at for i in range(len(attempts) - 1)):
        attempts = sorted(attempts, key=lambda a: a.at)
    times = [a.at.timestamp() for a in attempts]

    # Cool-downs, parking, permanent outcomes: one pass.
    blocked_until, reason = now_ts, OK
    if dnc.soft_until is not None and dnc.soft_until.timestamp() > blocked_until:
        blocked_until, reason = dnc.soft_until.timestamp(), DNC_SOFT_DECLINE
    cooldowns, permanent, no_answer = policy.cooldown_seconds, policy.permanent, policy.no_answer_outcomes
    consecutive_no_answer = 0
    for attempt, at in zip(attempts, times):
        outcome = attempt.outcome
        if outcome in permanent:
            return Eligibility(False, permanent[outcome], None)
        seconds = cooldowns.get(outcome)
        # A busy callee who named a time gets that callback instead of the busy cool-down.
        if seconds is not None and not (outcome == "busy" and attempt.callback_at is not None):
            if at + seconds > blocked_until:
                blocked_until, reason = at + seconds, f"cooldown_{outcome}"
        consecutive_no_answer = consecutive_no_answer + 1 if outcome in no_answer else 0
    if consecutive_no_answer >= policy.park_after_no_answers:
        parked_until = times[-1] + policy.park_seconds
        if parked_until > blocked_until:
            blocked_until, reason = parked_until, PARKED_NO_ANSWER

    callback_at = attempts[-1].callback_at if attempts else None
    if callback_at is not None:
        result = _with_callback(policy, zone, holidays, times, now_ts, blocked_until, reason, callback_at)
        if result is not None:
            return result

    cap_until, cap_reason = _caps_until(policy.caps, times, now_ts, None)
    if cap_until > blocked_until:
        blocked_until, reason = cap_until, cap_reason
    opening = _next_opening(blocked_until, zone, policy.windows, policy.holiday_windows, holidays)
    if opening is None:
        return Eligibility(False, NO_WINDOW if reason == OK else reason, None)
    if opening <= now_ts:
        return Eligibility(True, OK, now)
    if reason == OK:
        reason = _closed_reason(now_ts, zone, holidays)
    return Eligibility(False, reason, _utc(opening))


def _with_callback(
    policy: CompliancePolicy,
    zone: ZoneInfo,
    holidays: AbstractSet[date],
    times: list[float],
    now_ts: float,
    blocked_until: float,
    reason: str,
    callback_at: datetime,
) -> Eligibility | None:
    """The answer while a callback is pending or due; None once it lapsed (normal rules apply)."""
    named = callback_at.timestamp()
    lapses = named + policy.callback_grace_seconds
    if now_ts > lapses:
        return None
    start = max(named, blocked_until)
    cap_until, cap_reason = _caps_until(policy.caps, times, start, policy.callback_max_attempts_24h)
    if cap_until > start:
        start, reason = cap_until, cap_reason
    # The callback band is the hard 09:00–21:00 at its widest; holidays do not apply, the callee chose the day.
    opening = _next_opening(start, zone, (policy.callback_band,), (policy.callback_band,), frozenset())
    if opening is not None and opening <= lapses:
        if opening <= now_ts:
            return Eligibility(True, OK_CALLBACK, _utc(now_ts))
        return Eligibility(False, CALLBACK_PENDING if reason == OK else reason, _utc(opening))
    if now_ts < named:
        # The named time cannot be honoured (outside the band, or capped): the first normal window after it.
        if blocked_until >= lapses:
            return None  # a cool-down outlasts the callback: normal rules decide
        return _normal_after(policy, zone, holidays, times, max(named, blocked_until))
    return None


def _normal_after(
    policy: CompliancePolicy, zone: ZoneInfo, holidays: AbstractSet[date], times: list[float], start: float
) -> Eligibility:
    cap_until, _ = _caps_until(policy.caps, times, start, None)
    opening = _next_opening(max(start, cap_until), zone, policy.windows, policy.holiday_windows, holidays)
    if opening is None:
        return Eligibility(False, NO_WINDOW, None)
    return Eligibility(False, CALLBACK_PENDING, _utc(opening))


def _caps_until(
    caps: tuple[tuple[str, int, int], ...], times: list[float], at: float, override_24h: int | None
) -> tuple[float, str]:
    """When every rolling cap has room again, checked from `at` (attempts after `at` count too)."""
    until, reason = at, OK
    for name, window, limit in caps:
        if override_24h is not None and name == "rolling_24h":
            limit = override_24h
        # Attempts still inside the window at `at`: those after at - window (future-dated ones count).
        cutoff = at - window
        inside = [t for t in times if t > cutoff]
        if len(inside) >= limit:
            # Room again when the oldest (len - limit + 1) of them have left the window.
            frees_at = inside[len(inside) - limit] + window if limit > 0 else float("inf")
            if frees_at > until:
                until, reason = frees_at, "cap_" + name.split("_", 1)[1]
    return until, reason


def _next_opening(
    ts: float,
    zone: ZoneInfo,
    windows: tuple[tuple[int, int], ...],
    holiday_windows: tuple[tuple[int, int], ...],
    holidays: AbstractSet[date],
) -> float | None:
    """The first instant ≥ ts inside a window of the callee's local day (holidays use their own windows)."""
    if ts == float("inf"):
        return None
    local = datetime.fromtimestamp(ts, zone)
    day = local.date()
    second_of_day = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    for offset in range(_SEARCH_DAYS):
        spans = holiday_windows if (holidays and day in holidays) else windows
        for start, end in spans:
            if offset == 0:
                if second_of_day < end:
                    if second_of_day >= start:
                        return ts
                    return _local_ts(day, start, zone)
            else:
                return _local_ts(day, start, zone)
        day += timedelta(days=1)
    return None


def _local_ts(day: date, second_of_day: int, zone: ZoneInfo) -> float:
    hour, rest = divmod(second_of_day, 3600)
    wall = datetime(day.year, day.month, day.day, hour, rest // 60, rest % 60, tzinfo=zone)
    return wall.timestamp()


def _closed_reason(now_ts: float, zone: ZoneInfo, holidays: AbstractSet[date]) -> str:
    local = datetime.fromtimestamp(now_ts, zone)
    if holidays and local.date() in holidays:
        return HOLIDAY
    second_of_day = local.hour * 3600 + local.minute * 60 + local.second
    if not (HARD_BAND[0] <= second_of_day < HARD_BAND[1]):
        return HARD_BLOCK
    return OUTSIDE_WINDOW


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def check_for_callee(
    policy: CompliancePolicy,
    *,
    now: datetime,
    attempts: Sequence[Attempt] = (),
    dnc: DncState = NOT_ON_DNC,
    callee_zone: str | None = None,
    legal_policy: CompliancePolicy | None = None,
    holidays: AbstractSet[date] = frozenset(),
) -> Eligibility:
    """Both clocks: the legal window in the policy's own zone (Beijing time, `legal_policy`,
    default `policy`) AND the courtesy window (`policy`, e.g. the lead's time-slot arm) in
    the callee's zone. A callee in Beijing's zone (or of unknown zone) is one check, as before.

    Neither alone is enough: for a Xinjiang lead 09:30 Beijing is 07:30 in Urumqi (legal,
    rude); 20:30 Urumqi is 22:30 Beijing (polite, illegal). When both refuse, the reason is the
    legal check's and `earliest` the later of the two openings (a lower bound: the first time
    both are open may be later still; the planner and the T-0 check ask again then)."""
    local = check_eligibility(policy, now=now, attempts=attempts, dnc=dnc, timezone_name=callee_zone, holidays=holidays)
    if callee_zone is None or callee_zone == policy.timezone:
        return local
    legal = check_eligibility(legal_policy or policy, now=now, attempts=attempts, dnc=dnc, holidays=holidays)
    if legal.allowed:
        return local
    if local.allowed:
        return legal
    # Both refuse: the law's reason (it binds whatever the callee's clock says), and not before both open.
    earliest = None if legal.earliest is None or local.earliest is None else max(legal.earliest, local.earliest)
    return Eligibility(False, legal.reason, earliest)
