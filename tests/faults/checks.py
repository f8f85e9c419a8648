"""The fault suite's judge: what the carrier's own log says happened, against what the
database stored, checked against the rules by code independent of the dialer's.

Every check returns violations as readable strings (empty = holds). The carrier log is the
ground truth for "a dial went out at T": the dialer's own timestamps are not trusted.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import inspect, text

from telephony.compliance.policy import CompliancePolicy
from telephony.simulator.carrier import CarrierLog

SHANGHAI = ZoneInfo("Asia/Shanghai")
TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class CarrierCall:
    attempt_id: int
    dialed_at: datetime
    ended_at: datetime | None = None
    status: str | None = None
    answered: bool = False
    ended_by: str | None = None
    pid: int | None = None  # the worker process whose carrier placed the call


def carrier_calls(log_path: Path) -> dict[int, CarrierCall]:
    calls: dict[int, CarrierCall] = {}
    if not log_path.exists():
        return calls
    for entry in CarrierLog.read(log_path):
        attempt_id = int(entry["call_id"].rsplit("-", 1)[1])
        at = datetime.fromisoformat(entry["at"])
        if entry["event"] == "dial":
            calls[attempt_id] = CarrierCall(attempt_id, at, pid=entry.get("pid"))
        elif entry["event"] == "end" and attempt_id in calls:
            call = calls[attempt_id]
            call.ended_at, call.status, call.answered, call.ended_by = (at, entry.get("status"),
                                                                        bool(entry.get("answered")),
                                                                        entry.get("ended_by"))
    return calls


@dataclass
class Attempt:
    id: int
    campaign_id: int
    lead_id: int
    attempt_no: int
    phone_hash: str
    status: str
    outcome: str | None
    dialed_at: datetime | None
    ended_at: datetime | None
    callback_at: datetime | None
    carrier_call_id: str | None
    callback_outcome: str | None
    scheduled_at: datetime


def attempts(engine) -> dict[int, Attempt]:
    has_settled = "callback_outcome" in {c["name"] for c in inspect(engine).get_columns("call_attempts")}
    settled = "callback_outcome" if has_settled else "NULL"
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, campaign_id, lead_id, attempt_no, phone_hash, status, outcome, dialed_at, ended_at, "
            f"callback_at, carrier_call_id, {settled}, scheduled_at FROM call_attempts")).all()
    return {row[0]: Attempt(*row) for row in rows}


@dataclass
class Verdict:
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    figures: dict = field(default_factory=dict)

    def add(self, check: str, message: str) -> None:
        self.violations[check].append(message)

    def failed(self) -> dict[str, list[str]]:
        return {check: found[:10] + ([f"… {len(found) - 10} more"] if len(found) > 10 else [])
                for check, found in self.violations.items() if found}


def judge(engine, log_path: Path, policy: CompliancePolicy, *, run_start: datetime, until: datetime,
          final: bool, killed_pids: frozenset[int] = frozenset(), stuck_after: timedelta = timedelta(minutes=20),
          requeue_after: timedelta = timedelta(minutes=5), settle: timedelta = timedelta(minutes=3)) -> Verdict:
    """Every invariant at `until` (sim time). `final`: nothing may still be in flight."""
    verdict = Verdict()
    calls = carrier_calls(log_path)
    rows = attempts(engine)
    _duplicates(engine, verdict)
    _accounted(engine, rows, verdict, until, final, stuck_after, requeue_after, settle)
    _results_stored(calls, rows, verdict, until, settle, killed_pids)
    dials = _dials_by_number(calls, rows, run_start)
    _windows(dials, policy, verdict, run_start)
    _caps(dials, policy, verdict)
    _overlaps(calls, rows, verdict)
    _dnc_after_entry(engine, calls, rows, verdict)
    _callbacks(rows, policy, verdict, until, calls)
    verdict.figures.update({"carrier_dials": len(calls), "attempts": len(rows),
                            "statuses": dict(Counter(a.status for a in rows.values())),
                            "cancelled_at_t0": dict(Counter(a.outcome for a in rows.values()
                                                            if a.status == "cancelled"))})
    return verdict


def _duplicates(engine, verdict: Verdict) -> None:
    with engine.connect() as conn:
        for row in conn.execute(text("SELECT campaign_id, lead_id, attempt_no, count(*) FROM call_attempts "
                                     "GROUP BY campaign_id, lead_id, attempt_no HAVING count(*) > 1")):
            verdict.add("duplicate_attempt", f"campaign {row[0]} lead {row[1]} attempt {row[2]} ×{row[3]}")


def _accounted(engine, rows: dict[int, Attempt], verdict: Verdict, until: datetime, final: bool,
               stuck_after: timedelta, requeue_after: timedelta, settle: timedelta) -> None:
    """Every attempt ends in a terminal state (or is legitimately in flight); every lead is
    dialled, cancelled with a reason, or explained."""
    for a in rows.values():
        if a.status == "dialing" and (final or a.dialed_at < until - stuck_after - settle):
            verdict.add("lead_unaccounted", f"attempt {a.id} still dialing since {a.dialed_at}")
        elif a.status == "scheduled" and (final or a.scheduled_at < until - 2 * requeue_after - settle):
            verdict.add("lead_unaccounted", f"attempt {a.id} still scheduled since {a.scheduled_at}")
        elif a.status in TERMINAL and not a.outcome:
            verdict.add("lead_unaccounted", f"attempt {a.id} {a.status} without an outcome")
    with engine.connect() as conn:
        leads = conn.execute(text("SELECT count(*) FROM leads")).scalar_one()
        untouched = conn.execute(text(
            "SELECT count(*) FROM leads l WHERE NOT EXISTS (SELECT 1 FROM call_attempts a WHERE a.lead_id = l.id)"
        )).scalar_one()
        on_dnc = conn.execute(text(
            "SELECT count(*) FROM leads l WHERE NOT EXISTS (SELECT 1 FROM call_attempts a WHERE a.lead_id = l.id) "
            "AND EXISTS (SELECT 1 FROM do_not_call d WHERE d.phone_hash = l.phone_hash)")).scalar_one()
    verdict.figures["leads"] = {"total": leads, "never_attempted": untouched, "never_attempted_on_dnc": on_dnc}


def _results_stored(calls: dict[int, CarrierCall], rows: dict[int, Attempt], verdict: Verdict, until: datetime,
                    settle: timedelta, killed_pids: frozenset[int]) -> None:
    lost, cut = [], []
    for call in calls.values():
        attempt = rows.get(call.attempt_id)
        if attempt is None:
            verdict.add("result_lost", f"carrier dialled attempt {call.attempt_id}, unknown to the database")
            continue
        if call.pid in killed_pids and attempt.status != "completed":
            # The worker was killed holding this call (on the line, or just ended and not
            # yet written): nobody can know its result; it must be closed as worker_lost.
            cut.append(call.attempt_id)
            if not (attempt.status == "failed" and attempt.outcome == "worker_lost") and not (
                    attempt.status == "dialing" and not final_view(until, call)):
                verdict.add("result_lost", f"attempt {attempt.id}: call cut by the kill, stored as "
                                           f"{attempt.status}/{attempt.outcome}")
            continue
        if call.ended_at is None:
            # The carrier died with its worker (kill -9): the attempt must be closed as such.
            cut.append(call.attempt_id)
            if attempt.status == "completed":
                continue
            if attempt.status == "failed" and attempt.outcome == "worker_lost":
                continue
            if attempt.status == "dialing" and call.dialed_at > until - timedelta(minutes=40):
                continue  # still within the reconciler's reach
            verdict.add("result_lost", f"attempt {attempt.id}: carrier call cut off, stored as {attempt.status}/"
                                       f"{attempt.outcome}")
            continue
        if attempt.status == "completed":
            continue
        if call.ended_at > until - settle and attempt.status == "dialing":
            continue  # just ended; being written
        lost.append(call.attempt_id)
        verdict.add("result_lost", f"attempt {attempt.id}: the carrier's call ended {call.ended_at:%H:%M:%S} "
                                   f"({call.status or 'answered' if call.answered else call.status}) but the database "
                                   f"has {attempt.status}/{attempt.outcome}")
    for attempt in rows.values():
        if attempt.carrier_call_id and attempt.id not in calls:
            verdict.add("result_lost", f"attempt {attempt.id} has carrier call {attempt.carrier_call_id} the carrier "
                                       "never dialled")
    verdict.figures["lost_results"] = lost
    verdict.figures["cut_by_kill"] = cut


def final_view(until: datetime, call: CarrierCall) -> bool:
    """Has the reconciler had time to close a call cut off at its dial?"""
    return call.dialed_at < until - timedelta(minutes=40)


def _dials_by_number(calls: dict[int, CarrierCall], rows: dict[int, Attempt],
                     run_start: datetime) -> dict[str, list[tuple[datetime, Attempt]]]:
    """Each number's dials, oldest first: the carrier's, plus the history seeded before the run."""
    dials: dict[str, list[tuple[datetime, Attempt]]] = defaultdict(list)
    for call in calls.values():
        attempt = rows.get(call.attempt_id)
        if attempt is not None:
            dials[attempt.phone_hash].append((call.dialed_at, attempt))
    for attempt in rows.values():
        if attempt.dialed_at and attempt.dialed_at < run_start and attempt.status != "cancelled" \
                and attempt.id not in calls:
            dials[attempt.phone_hash].append((attempt.dialed_at, attempt))
    for found in dials.values():
        found.sort(key=lambda pair: pair[0])
    return dials


def _callback_for(found: list[tuple[datetime, Attempt]], index: int, policy: CompliancePolicy) -> bool:
    """Is the index-th dial the callback the previous call booked (at or after the named
    time, inside its grace and the callback band)?"""
    if index == 0:
        return False
    at = found[index][0]
    booked = found[index - 1][1].callback_at
    if booked is None:
        return False
    local = at.astimezone(SHANGHAI)
    second = local.hour * 3600 + local.minute * 60 + local.second
    band = policy.callback_band
    return (booked - timedelta(seconds=1) <= at <= booked + timedelta(seconds=policy.callback_grace_seconds)
            and band[0] <= second < band[1])


def _windows(dials, policy: CompliancePolicy, verdict: Verdict, run_start: datetime) -> None:
    outside = 0
    for phone_hash, found in dials.items():
        for index, (at, attempt) in enumerate(found):
            if at < run_start:
                continue  # history seeded before the run (it counts for the caps only)
            local = at.astimezone(SHANGHAI)
            second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
            if any(start <= second < end for start, end in policy.windows) or _callback_for(found, index, policy):
                continue
            outside += 1
            verdict.add("dial_outside_window", f"attempt {attempt.id} dialled {local:%a %H:%M:%S}")
    verdict.figures["dials_outside_window"] = outside


def _caps(dials, policy: CompliancePolicy, verdict: Verdict) -> None:
    for phone_hash, found in dials.items():
        times = [at for at, _ in found]
        for index, (at, attempt) in enumerate(found):
            for name, window_s, limit in policy.caps:
                if name == "rolling_24h" and _callback_for(found, index, policy):
                    limit = max(limit, policy.callback_max_attempts_24h)
                inside = index + 1 - bisect_left(times, at - timedelta(seconds=window_s) + timedelta(microseconds=1))
                if inside > limit:
                    verdict.add("over_cap", f"attempt {attempt.id} at {at:%m-%d %H:%M}: {inside} dials in {name} "
                                            f"(cap {limit})")


def _overlaps(calls: dict[int, CarrierCall], rows: dict[int, Attempt], verdict: Verdict) -> None:
    spans: dict[str, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for call in calls.values():
        attempt = rows.get(call.attempt_id)
        if attempt is None:
            continue
        end = call.ended_at or (attempt.ended_at if attempt.ended_at else call.dialed_at + timedelta(minutes=15))
        spans[attempt.phone_hash].append((call.dialed_at, end, call.attempt_id))
    for found in spans.values():
        found.sort()
        for (start_a, end_a, a), (start_b, _, b) in zip(found, found[1:]):
            if start_b < end_a:
                verdict.add("number_on_two_calls", f"attempts {a} and {b} overlap at {start_b:%H:%M:%S}")


def _dnc_after_entry(engine, calls: dict[int, CarrierCall], rows: dict[int, Attempt], verdict: Verdict) -> None:
    with engine.connect() as conn:
        entries = conn.execute(text("SELECT phone_hash, scope, created_at, expires_at, source_call_id "
                                    "FROM do_not_call")).all()
    by_hash = defaultdict(list)
    for phone_hash, scope, created_at, expires_at, source_call_id in entries:
        by_hash[phone_hash].append((scope, created_at, expires_at, source_call_id))
    for call in calls.values():
        attempt = rows.get(call.attempt_id)
        if attempt is None:
            continue
        for scope, created_at, expires_at, source_call_id in by_hash.get(attempt.phone_hash, ()):
            if source_call_id == attempt.id:
                continue
            if created_at < call.dialed_at and (expires_at is None or expires_at > call.dialed_at):
                verdict.add("dnc_dialled", f"attempt {attempt.id} dialled {call.dialed_at:%m-%d %H:%M} after a "
                                           f"{scope} entry of {created_at:%m-%d %H:%M}")


def _callbacks(rows: dict[int, Attempt], policy: CompliancePolicy, verdict: Verdict, until: datetime,
               calls: dict[int, CarrierCall]) -> None:
    grace = timedelta(seconds=policy.callback_grace_seconds)
    later: dict[tuple[int, int], list[Attempt]] = defaultdict(list)
    for a in rows.values():
        later[(a.campaign_id, a.lead_id)].append(a)
    delays, missed_reported, missed_silent, pending = [], Counter(), [], 0
    for booking in rows.values():
        if booking.callback_at is None or booking.callback_at > until:
            continue
        lapses = booking.callback_at + grace
        dialled = [calls[a.id].dialed_at for a in later[(booking.campaign_id, booking.lead_id)]
                   if a.attempt_no > booking.attempt_no and a.id in calls
                   and booking.callback_at - timedelta(seconds=1) <= calls[a.id].dialed_at <= lapses]
        if dialled:
            delays.append((min(dialled) - booking.callback_at).total_seconds())
            continue
        if booking.callback_outcome and booking.callback_outcome.startswith("missed:"):
            missed_reported[booking.callback_outcome.split(":", 1)[1]] += 1
        elif until > lapses + timedelta(minutes=3):
            missed_silent.append(booking.id)
            verdict.add("callback_missed_silently", f"attempt {booking.id}: callback {booking.callback_at:%H:%M} "
                                                    "not dialled in its grace and not reported")
        else:
            pending += 1
    delays.sort()
    verdict.figures["callbacks"] = {
        "dialled_in_grace": len(delays), "missed_reported": dict(missed_reported), "missed_silently": len(missed_silent),
        "pending": pending,
        "delay_s_p50": delays[len(delays) // 2] if delays else None, "delay_s_max": delays[-1] if delays else None}
