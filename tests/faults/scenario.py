"""One simulated late morning of dialling under faults, on the suite's own Redis and
PostgreSQL, with two real Celery dial workers and a real beat at the production tick rate
(one hopper tick per simulated minute: clock speed 60, beat every real second).

Two campaigns: `main` (40 lines, 1 CPS) and `slow` (50 lines, 0.1 CPS — the set-up that
dialled into the lunch break), sharing some numbers; leads opted out before the run,
numbers already at their 7-day cap, and 40 callbacks booked yesterday for 10:40–11:20
today. The carrier hangs on a share of dials and goes silent on a share of answered calls
for the whole run. In order, spread over the time to 12:00: kill -9 of the worker with
the most calls in flight (restarted at once), PostgreSQL stopped with `-m immediate` for
15 real seconds (15 simulated minutes), a slow database (every write to call_attempts
waits 0.4 s) for 10 simulated minutes, and shortly before the window closes Redis killed
and restarted empty (the queued dials are lost and re-sent: the backlog that used to spill
past 12:00); last, a third campaign (0.1 CPS) started at 11:55 and both workers frozen (SIGSTOP) from
11:58:30 to 12:01, so the dials they hold fall due while they cannot run and meet the T-0
check after the close. The
window closes at 12:00; the run goes on to 12:10 so every attempt settles. After each
fault (and its recovery) and at the end, `checks.judge` runs over the carrier's log and
the database.
"""
from __future__ import annotations

import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text

from bot.campaigns.models import CallAttempt, Campaign, CampaignPack
from bot.core.db.engine import create_database_engine
from bot.core.db.migrate import upgrade
from bot.core.pii import PhoneKeyring
from bot.dnc.models import DoNotCall
from bot.leads.models import Lead, LeadPack
from telephony.compliance.policy import load_profile
from tests.db_fixtures import TEST_SECRET
from tests.faults import checks
from tests.faults.harness import (SLOW_DATABASE_SQL, CeleryProcesses, PrivatePostgres, PrivateRedis, SimTime,
                                  set_slow, wait_until)

SHANGHAI_OFFSET = "+08:00"
DAY = "2026-11-24"  # a Tuesday
# The workers load their dialogue model for a minute or so (more on a busy machine): an hour
# of simulated time. The clock is anchored LOAD_ALLOWANCE_S after their launch, so it reads
# CLOCK_START about when they are ready, whatever the machine.
CLOCK_START = datetime.fromisoformat(f"{DAY}T10:30:00{SHANGHAI_OFFSET}")
LOAD_ALLOWANCE_S = 70.0
WINDOW_CLOSES = datetime.fromisoformat(f"{DAY}T12:00:00{SHANGHAI_OFFSET}")
RUN_ENDS = datetime.fromisoformat(f"{DAY}T12:10:00{SHANGHAI_OFFSET}")
SPEED = 60.0
MAIN_LEADS, SLOW_LEADS, SHARED = 1400, 300, 100
OPTED_OUT, CAPPED, CALLBACKS = 20, 30, 40
DB_DOWN_REAL_S = 15.0
MAX_CALL_S = 900.0  # WAIHU_MAX_CALL_S (the default): the watchdog of a dial the carrier never answers
SLOW_DELAY_S = 0.4
SLOW_FOR = timedelta(minutes=10)
LATE_LEADS = 200
LATE_START_BEFORE_CLOSE = timedelta(minutes=5)
STALL_BEFORE_CLOSE, STALL_AFTER_CLOSE = timedelta(seconds=90), timedelta(seconds=60)


def phone_of(i: int) -> str:
    return f"1{'3456789'[i % 7]}{(i * 7919 + 4242) % 10**9:09d}"


@dataclass(frozen=True)
class Plan:
    """When the run happens and which faults strike when (a share of the time from the
    workers being ready to the window's close). The fault suite runs the default (a late
    morning); bench/bench_fault_soak.py a longer afternoon with every fault repeated."""

    clock_start: datetime = CLOCK_START
    window_closes: datetime = WINDOW_CLOSES
    run_ends: datetime = RUN_ENDS
    faults: tuple[tuple[str, float], ...] = (("kill_worker", 0.15), ("postgres_restart", 0.35),
                                             ("slow_database", 0.55), ("redis_restart", 0.9))
    main_leads: int = MAIN_LEADS
    slow_leads: int = SLOW_LEADS
    callbacks_at: datetime = datetime.fromisoformat(f"{DAY}T10:40:00{SHANGHAI_OFFSET}")


@dataclass
class Phase:
    name: str
    started: datetime
    ended: datetime | None = None
    note: dict = field(default_factory=dict)
    verdict: checks.Verdict | None = None
    lost: list[int] = field(default_factory=list)


@dataclass
class Run:
    phases: list[Phase]
    final: checks.Verdict
    worker_metrics: str
    seeded_callbacks: list[int]
    journal_left: int
    real_seconds: float
    log_tail: str
    engine_url: str
    report: dict = field(default_factory=dict)


def seed(engine, keyring: PhoneKeyring, now: datetime, plan: Plan = Plan()) -> list[int]:
    """Leads, DNC, capped numbers, yesterday's callback bookings; returns the booking ids."""
    rng = random.Random(14)
    with engine.begin() as conn:
        pack_ids = {}
        for name in ("pack-main", "pack-slow", "pack-shared", "pack-late"):
            pack_ids[name] = conn.execute(insert(LeadPack.__table__).values(
                name=name, file_name=f"{name}.csv", file_sha256=uuid.uuid4().hex.ljust(64, "0"),
                file_format="csv utf-8", first_party=0, column_map={}, uploaded_by="faults", rows=0, accepted=0,
                rejected=0, duplicates=0, dnc_hits=0, rejected_by_reason={}).returning(LeadPack.id)).scalar_one()

        def lead_row(pack: str, i: int, row: int) -> dict:
            phone = phone_of(i)
            return {"pack_id": pack_ids[pack], "row_number": row, "phone_ciphertext": keyring.encrypt_phone(phone),
                    "phone_hash": keyring.hash_phone(phone), "phone_masked": f"{phone[:3]}****{phone[-4:]}",
                    "line_type": "mobile", "name": rng.choice("王李张刘陈杨") + "先生", "gender": rng.choice("MF"),
                    "consent_source": "landing page", "consent_at": now - timedelta(days=20), "custom_fields": {},
                    "status": "new", "created_at": now - timedelta(days=10)}

        main = [lead_row("pack-main", i, i + 2) for i in range(plan.main_leads)]
        slow = [lead_row("pack-slow", plan.main_leads + i, i + 2) for i in range(plan.slow_leads)]
        # Both campaigns dial the shared pack: caps and calls across campaigns.
        shared = [lead_row("pack-shared", plan.main_leads + plan.slow_leads + i, i + 2) for i in range(SHARED)]
        # Fresh leads for the campaign an operator starts just before the close.
        first_late = plan.main_leads + plan.slow_leads + SHARED
        late = [lead_row("pack-late", first_late + i, i + 2) for i in range(LATE_LEADS)]
        conn.execute(insert(Lead.__table__), main + slow + shared + late)
        lead_ids = conn.execute(select(Lead.id, Lead.phone_hash, Lead.pack_id).order_by(Lead.id)).all()
        main_leads = [(lid, h) for lid, h, p in lead_ids if p == pack_ids["pack-main"]]

        campaign_ids = {}
        for name, packs, lines, cps in (("main", ["pack-main", "pack-shared"], 40, 1.0),
                                        ("slow", ["pack-slow", "pack-shared"], 50, 0.1),
                                        ("earlier", ["pack-main"], 10, 1.0), ("late", ["pack-late"], 40, 0.1)):
            status = {"earlier": "completed", "late": "draft"}.get(name, "running")
            campaign_ids[name] = conn.execute(insert(Campaign.__table__).values(
                name=name, status=status, lines=lines, cps=cps,
                compliance_profile="CN_INSURANCE_DEFAULT", compliance_overrides={}, retry_policy={},
                script_variants=[{"name": "standard", "weight": 1}], time_slots=[], created_by="faults",
                created_at=now - timedelta(days=30), started_at=now - timedelta(days=30))
                .returning(Campaign.id)).scalar_one()
            conn.execute(insert(CampaignPack.__table__), [{"campaign_id": campaign_ids[name],
                                                           "pack_id": pack_ids[p]} for p in packs])
        # Opted out last week: never to be dialled.
        tail = main_leads[-(OPTED_OUT + CAPPED + CALLBACKS):]
        opted, capped, booked = tail[:OPTED_OUT], tail[OPTED_OUT:OPTED_OUT + CAPPED], tail[OPTED_OUT + CAPPED:]
        conn.execute(insert(DoNotCall.__table__), [
            {"phone_hash": h, "scope": "opt_out", "reason": "别再打了", "source": "call", "created_at": now - timedelta(days=7),
             "expires_at": None} for _, h in opted])
        # (every row with the same keys: a multi-row INSERT takes its columns from the first)
        base = {"arms": {"script": "standard"}, "status": "completed", "followups": [], "grade": "D",
                "callback_at": None}
        history = []
        # Three answered calls in the last six days (another campaign): the 7-day cap binds today.
        for lead_id, h in capped:
            for n, days in enumerate((6, 4, 2), start=1):
                at = now - timedelta(days=days, hours=1)
                history.append({**base, "campaign_id": campaign_ids["earlier"], "lead_id": lead_id, "attempt_no": n,
                                "phone_hash": h, "outcome": "answered", "history_outcome": "answered",
                                "scheduled_at": at, "dialed_at": at, "ended_at": at + timedelta(minutes=1)})
        # Yesterday the callee said "call me tomorrow around hh:mm": 10:40–11:20 today.
        for k, (lead_id, h) in enumerate(booked):
            at = now - timedelta(days=1) + timedelta(minutes=k)
            history.append({**base, "campaign_id": campaign_ids["main"], "lead_id": lead_id, "attempt_no": 1,
                            "phone_hash": h, "outcome": "answered", "history_outcome": "busy",
                            "scheduled_at": at, "dialed_at": at, "ended_at": at + timedelta(minutes=1),
                            "callback_at": plan.callbacks_at + timedelta(minutes=k)})
        conn.execute(insert(CallAttempt.__table__), history)
        return list(conn.execute(select(CallAttempt.id).where(CallAttempt.callback_at.isnot(None))).scalars())


def run_faulty_morning(workdir: Path, model_path: Path, postgres: PrivatePostgres, plan: Plan = Plan()) -> Run:
    started_real = time.time()
    policy = load_profile()
    redis_server = PrivateRedis(workdir)
    processes: CeleryProcesses | None = None
    try:
        url = postgres.create_database("faults_morning")
        engine = create_database_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text(SLOW_DATABASE_SQL))
        redis_server.start()
        keyring = PhoneKeyring.from_secret(TEST_SECRET.encode())
        booked = seed(engine, keyring, plan.clock_start, plan)

        clock = SimTime(plan.clock_start, SPEED, anchor=time.time() + LOAD_ALLOWANCE_S)
        carrier_log = workdir / "carrier.jsonl"
        env = {**os.environ, **clock.env(), "WAIHU_BROKER_URL": redis_server.url, "WAIHU_QUEUE": "faults",
               "WAIHU_DATABASE_URL": url, "WAIHU_SECRET_KEY": TEST_SECRET, "WAIHU_DATA_DIR": str(workdir / "data"),
               "WAIHU_MODELS_DIR": str(model_path.parent), "WAIHU_SIM_SEED": "14",
               "WAIHU_SIM_CARRIER_LOG": str(carrier_log), "WAIHU_SIM_HANG_DIAL_SHARE": "0.01",
               "WAIHU_SIM_HANG_CALL_SHARE": "0.01", "WAIHU_DB_POOL_SIZE": "5", "WAIHU_DB_MAX_OVERFLOW": "45",
               "WAIHU_JOURNAL_REPLAY_EVERY_S": "2", "WAIHU_MAX_CALL_S": str(MAX_CALL_S)}
        processes = CeleryProcesses(env, "faults", workdir)
        for name in ("w1", "w2"):
            processes.start_worker(name)
        processes.wait_ready(["w1", "w2"])
        processes.start_beat()
        ready = clock.now()
        sampler = Sampler(engine, redis_server, clock)
        sampler.start()
        span = (plan.window_closes - ready).total_seconds()
        if span < 45 * 60:
            raise RuntimeError(f"workers took too long to start: ready at {ready:%H:%M} simulated")
        phases = [Phase("baseline", ready)]

        killed: set[int] = set()

        def judge(final: bool = False) -> checks.Verdict:
            return checks.judge(engine, carrier_log, policy, run_start=ready, until=clock.now(), final=final,
                                killed_pids=frozenset(killed))

        def next_phase(name: str) -> Phase:
            phases[-1].ended = clock.now()
            phases[-1].verdict = judge()
            phase = Phase(name, clock.now())
            phases.append(phase)
            return phase

        def kill_worker(phase: Phase) -> None:
            """kill -9 the worker with the most calls on the line, restart it at once."""
            with engine.connect() as conn:
                busy = dict(conn.execute(text("SELECT worker, count(*) FROM call_attempts WHERE status = 'dialing' "
                                              "GROUP BY worker")).all())
            victim = max(("w1", "w2"), key=lambda n: busy.get(_worker_key(processes.worker_pid(n)), 0))
            pid = processes.worker_pid(victim)
            phase.note["calls_in_flight_on_victim"] = busy.get(_worker_key(pid), 0)
            killed.add(pid)
            processes.kill_worker(victim)
            killed_at = clock.now()
            processes.start_worker(victim)

            def victim_calls_open() -> int:
                with engine.connect() as conn:
                    return conn.execute(text("SELECT count(*) FROM call_attempts WHERE status = 'dialing' "
                                             "AND worker = :w"), {"w": _worker_key(pid)}).scalar_one()

            try:  # the dead worker's calls are closed once its heartbeat expires (not after 20 minutes)
                wait_until(lambda: victim_calls_open() == 0, 19 * 60 / SPEED, 0.5, "killed worker's calls closed")
                phase.note["calls_closed_after_s"] = round((clock.now() - killed_at).total_seconds())
            except TimeoutError:
                phase.note["calls_closed_after_s"] = None

        def postgres_restart(phase: Phase) -> None:
            postgres.stop("immediate")
            time.sleep(DB_DOWN_REAL_S)
            postgres.start()
            phase.note["down_real_s"] = DB_DOWN_REAL_S

        def slow_database(phase: Phase) -> None:
            set_slow(engine, SLOW_DELAY_S)
            clock.sleep_until(clock.now() + SLOW_FOR)
            set_slow(engine, 0)

        def redis_restart(phase: Phase) -> None:
            redis_server.kill()
            time.sleep(3)
            redis_server.start()

        inject = {"kill_worker": kill_worker, "postgres_restart": postgres_restart, "slow_database": slow_database,
                  "redis_restart": redis_restart}
        for name, share in plan.faults:
            clock.sleep_until(ready + timedelta(seconds=span * share))
            inject[name](next_phase(name))

        # An operator starts a fresh campaign a few minutes before the close (the others may
        # have run out of leads that may be dialled today), then both workers stall across the
        # close: the dials of the last ticks they already hold fall due while they are frozen
        # and reach the T-0 check after 12:00, which must cancel them.
        clock.sleep_until(plan.window_closes - LATE_START_BEFORE_CLOSE)
        with engine.begin() as conn:
            conn.execute(text("UPDATE campaigns SET status = 'running', started_at = :now WHERE name = 'late'"),
                         {"now": clock.now()})
        clock.sleep_until(plan.window_closes - STALL_BEFORE_CLOSE)
        # Freeze while a dial is held: at 0.1 CPS the late campaign's dials are spaced ten
        # simulated seconds apart, so one is nearly always waiting for its time; waiting for it
        # (a bounded few real seconds) makes the T-0 cancellation this run exists for certain
        # rather than a matter of where the beat's tick fell (CI once froze between two).
        try:
            wait_until(lambda: _late_dials_held(engine) > 0, 30 / SPEED, 0.005, "a late dial held")
        except TimeoutError:
            pass  # the test says none was cancelled
        phases[-1].note["late_dials_held_at_freeze"] = _late_dials_held(engine)
        processes.freeze_workers()
        try:
            clock.sleep_until(plan.window_closes + STALL_AFTER_CLOSE)
        finally:
            processes.thaw_workers()
        next_phase("window_close")
        clock.sleep_until(plan.run_ends)

        def in_flight() -> int:
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM call_attempts WHERE status IN "
                                         "('scheduled', 'dialing')")).scalar_one()

        try:  # a dial the carrier hung on just before the close is hung up by the watchdog (longest call)
            wait_until(lambda: in_flight() == 0, (MAX_CALL_S + 120) / SPEED, 0.5, "every attempt settled")
        except TimeoutError:
            pass  # the judge says which
        worker_metrics = processes.metrics("w1") or processes.metrics("w2") or ""
        phases[-1].ended = clock.now()
        phases[-1].verdict = judge()
        # Let the journal drain (replayed every 2 real s) before the final judgement.
        journal_dir = workdir / "data" / "journal"
        try:
            wait_until(lambda: _journal_entries(journal_dir) == 0, 30, 0.5, "journal replayed")
        except TimeoutError:
            pass
        sampler.stop()
        final = judge(final=True)
        final.figures["samples"] = sampler.samples
        final.figures["carrier_hangs"] = _hangs(checks.carrier_calls(carrier_log), checks.attempts(engine), "14")
        final.figures["queue_wait_s"] = _queue_waits(engine)
        _attribute_losses(phases, checks.carrier_calls(carrier_log), final)
        run = Run(phases, final, worker_metrics, booked, _journal_entries(journal_dir), time.time() - started_real,
                  processes.tail(), url)
        run.report = report(run)
        return run
    finally:
        if processes is not None:
            processes.stop_all()
        redis_server.kill()
        postgres.start_if_stopped()


def _late_dials_held(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM call_attempts a JOIN campaigns c ON c.id = a.campaign_id "
                                 "WHERE c.name = 'late' AND a.status = 'scheduled'")).scalar_one()


class Sampler:
    """Attempts by campaign and status, and the broker's queue, every few real seconds."""

    def __init__(self, engine, redis_server: PrivateRedis, clock: SimTime, every_s: float = 5.0) -> None:
        import threading

        self.engine, self.redis_server, self.clock, self.every_s = engine, redis_server, clock, every_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        import redis

        while not self._stop.wait(self.every_s):
            sample: dict = {"at": self.clock.now().strftime("%H:%M")}
            try:
                with self.engine.connect() as conn:
                    for campaign, status, count in conn.execute(text(
                            "SELECT c.name, a.status, count(*) FROM call_attempts a JOIN campaigns c "
                            "ON c.id = a.campaign_id WHERE a.status IN ('scheduled', 'dialing') "
                            "GROUP BY c.name, a.status")):
                        sample[f"{campaign}.{status}"] = count
            except Exception:  # noqa: BLE001  (the database is down on purpose)
                sample["db"] = "down"
            try:
                sample["queue"] = redis.Redis.from_url(self.redis_server.url, socket_timeout=1).llen("faults")
            except Exception:  # noqa: BLE001
                sample["queue"] = "down"
            self.samples.append(sample)


def _queue_waits(engine) -> dict:
    """Simulated seconds from planning to dialling, per campaign (median and max)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.name, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.dialed_at - a.scheduled_at)),"
            " max(extract(epoch FROM a.dialed_at - a.scheduled_at)) FROM call_attempts a JOIN campaigns c "
            "ON c.id = a.campaign_id WHERE a.status IN ('completed', 'failed') AND a.dialed_at > a.scheduled_at "
            "GROUP BY c.name")).all()
    return {name: {"p50": round(p50 or 0, 1), "max": round(top or 0, 1)} for name, p50, top in rows}


def _hangs(calls: dict[int, checks.CarrierCall], rows: dict, seed: str) -> dict:
    """The calls the simulated carrier hung on (drawn as the carrier draws them), and how
    they were stored."""
    from telephony.simulator.personas import call_rng

    found = {"dials_hung": 0, "calls_gone_silent": 0, "stored": 0}
    for attempt_id, call in calls.items():
        call_id = f"attempt-{attempt_id}"
        if call_rng(seed, call_id, "hang_dial").random() < 0.01:
            kind = "dials_hung"
        elif call.answered and call_rng(seed, call_id, "hang_call").random() < 0.01:
            kind = "calls_gone_silent"
        else:
            continue
        found[kind] += 1
        attempt = rows.get(attempt_id)
        found["stored"] += bool(attempt is not None and (attempt.status == "completed" or (
            attempt.status == "failed" and attempt.outcome == "worker_lost")))
    return found


def _worker_key(pid: int) -> str:
    import socket

    return f"{socket.gethostname()}:{pid}"


def _journal_entries(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    return sum(len([line for line in p.read_text().splitlines() if line.strip()])
               for p in directory.glob("calls-*"))


def _attribute_losses(phases: list[Phase], calls: dict[int, checks.CarrierCall], final: checks.Verdict) -> None:
    """Each lost result to the phase in which its call ended."""
    for attempt_id in final.figures.get("lost_results", []):
        ended = calls[attempt_id].ended_at
        for phase in phases:
            if phase.started <= ended and (phase.ended is None or ended < phase.ended):
                phase.lost.append(attempt_id)
                break
        else:
            phases[-1].lost.append(attempt_id)


def report(run: Run) -> dict:
    """The figures the issue asks for, per fault."""
    return {
        "real_seconds": round(run.real_seconds, 1),
        "phases": [{"fault": p.name, "from": p.started.strftime("%H:%M"),
                    "to": p.ended.strftime("%H:%M") if p.ended else None, "lost_results": len(p.lost),
                    "violations": {k: len(v) for k, v in (p.verdict.violations if p.verdict else {}).items() if v},
                    **p.note} for p in run.phases],
        "final_violations": run.final.failed(),
        "figures": run.final.figures | {"lost_results": len(run.final.figures.get("lost_results", [])),
                                        "cut_by_kill": len(run.final.figures.get("cut_by_kill", []))},
        "journal_left": run.journal_left,
    }


def dump(run: Run, path: Path) -> None:
    path.write_text(json.dumps(run.report, ensure_ascii=False, indent=1, default=str))
