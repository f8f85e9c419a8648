"""Weeks of dialling, so the rolling 7-day and 30-day caps bind: the real dialer (planner,
T-0 checks, simulator carrier with its log, dialogue model, grading, journal) in one
process on the fault suite's own PostgreSQL, with an instant simulated clock (a tick every
30 simulated minutes from 09:00 to 21:00, nights skipped) and PostgreSQL stopped for 45
simulated minutes on the first morning, the busiest time (calls finishing then go to the
journal). Two campaigns share
some numbers; some numbers start the run with two calls in the last week or five in the
last month. Then the same judge as the fault suite: the carrier's log against the
database and the rules."""
from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from bot.campaigns.models import CallAttempt, Campaign, CampaignPack
from bot.core.db.engine import create_database_engine
from bot.core.db.migrate import upgrade
from bot.core.pii import PhoneKeyring
from bot.dialing import metrics
from bot.dialing.call_journal import CallJournal
from bot.dialing.dialer import Dialer
from bot.leads.models import Lead, LeadPack
from telephony.clock import SimClock
from telephony.compliance.policy import load_profile
from telephony.rate_limits import DialLimits
from telephony.simulator.carrier import SimulatorCarrier
from tests.conftest import run
from tests.db_fixtures import TEST_SECRET
from tests.faults import checks

SHANGHAI = timezone(timedelta(hours=8))
START = datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI).astimezone(timezone.utc)  # a Tuesday
DAYS = 9
TICK_S = 1800
LEADS, SHARED = 50, 15
WEEK_CAPPED, MONTH_CAPPED = range(0, 8), range(8, 16)  # lead indexes with seeded history
OUTAGE_DAY, OUTAGE_FROM, OUTAGE_MINUTES = 0, (9, 30), 45


def phone_of(i: int) -> str:
    return f"1{'3456789'[i % 7]}{(i * 104729 + 777) % 10**9:09d}"


def seed(engine, keyring: PhoneKeyring) -> None:
    rng = random.Random(30)
    with engine.begin() as conn:
        packs = {}
        for name in ("weeks-a", "weeks-b"):
            packs[name] = conn.execute(insert(LeadPack.__table__).values(
                name=name, file_name=f"{name}.csv", file_sha256=uuid.uuid4().hex.ljust(64, "0"),
                file_format="csv utf-8", first_party=0, column_map={}, uploaded_by="faults", rows=0, accepted=0,
                rejected=0, duplicates=0, dnc_hits=0, rejected_by_reason={}).returning(LeadPack.id)).scalar_one()
        rows = []
        for i in range(LEADS + SHARED):
            phone = phone_of(i)
            rows.append({"pack_id": packs["weeks-a" if i < LEADS else "weeks-b"], "row_number": i + 2,
                         "phone_ciphertext": keyring.encrypt_phone(phone), "phone_hash": keyring.hash_phone(phone),
                         "phone_masked": f"{phone[:3]}****{phone[-4:]}", "line_type": "mobile",
                         "name": rng.choice("王李张刘陈") + "女士", "gender": "F", "consent_source": "landing page",
                         "consent_at": START - timedelta(days=40), "custom_fields": {}, "status": "new",
                         "created_at": START - timedelta(days=40)})
        conn.execute(insert(Lead.__table__), rows)
        leads = conn.execute(select(Lead.id, Lead.phone_hash).order_by(Lead.id)).all()
        campaigns = {}
        for name, pack_names, lines in (("weeks", ["weeks-a", "weeks-b"], 20), ("other", ["weeks-b"], 5),
                                        ("earlier", ["weeks-a"], 5)):
            campaigns[name] = conn.execute(insert(Campaign.__table__).values(
                name=name, status="completed" if name == "earlier" else "running", lines=lines, cps=1.0,
                compliance_profile="CN_INSURANCE_DEFAULT", compliance_overrides={}, retry_policy={},
                script_variants=[{"name": "standard", "weight": 1}], time_slots=[], created_by="faults",
                created_at=START - timedelta(days=60), started_at=START - timedelta(days=60))
                .returning(Campaign.id)).scalar_one()
            conn.execute(insert(CampaignPack.__table__), [{"campaign_id": campaigns[name], "pack_id": packs[p]}
                                                          for p in pack_names])
        history = []
        for index, days_ago in [(i, d) for i in WEEK_CAPPED for d in (6, 4)] + \
                               [(i, d) for i in MONTH_CAPPED for d in (28, 22, 17, 12, 8)]:
            lead_id, phone_hash = leads[index]
            at = START - timedelta(days=days_ago) + timedelta(hours=2)
            number = sum(1 for h in history if h["lead_id"] == lead_id) + 1
            history.append({"campaign_id": campaigns["earlier"], "lead_id": lead_id, "attempt_no": number,
                            "phone_hash": phone_hash, "arms": {"script": "standard"}, "status": "completed",
                            "outcome": "answered", "history_outcome": "answered", "grade": "D", "followups": [],
                            "scheduled_at": at, "dialed_at": at, "ended_at": at + timedelta(minutes=1)})
        conn.execute(insert(CallAttempt.__table__), history)


async def dial_for_weeks(engine, agent, keyring, carrier_log: Path, journal_dir: Path, postgres) -> Counter:
    clock = SimClock(start=START)
    carrier = SimulatorCarrier(clock=clock, seed=30, log_path=carrier_log)
    dialer = Dialer(engine, agent, carrier, keyring, now=clock.now, worker="weeks", sleep=clock.sleep, clock=clock,
                    limits=DialLimits(), journal=CallJournal(journal_dir), backoff=lambda s: None)
    skipped: Counter = Counter()
    calls: set[asyncio.Task] = set()
    journaled_before = metrics.RESULTS_JOURNALED.labels("call")._value.get()
    timing = Counter()
    down_since: datetime | None = None

    def start(attempt_ids) -> None:
        for attempt_id in attempt_ids:
            task = asyncio.ensure_future(dialer.dial(attempt_id))
            calls.add(task)
            task.add_done_callback(calls.discard)

    for day in range(DAYS):
        morning = START + timedelta(days=day)
        if clock.now() < morning:
            clock.advance((morning - clock.now()).total_seconds())
        evening = morning + timedelta(hours=12)
        while clock.now() < evening:
            local = clock.now().astimezone(SHANGHAI)
            if down_since and clock.now() >= down_since + timedelta(minutes=OUTAGE_MINUTES):
                postgres.start()
                down_since = None
            try:
                t0 = time.perf_counter()
                dialer.replay_journal()
                t1 = time.perf_counter()
                for plan in dialer.plan():
                    skipped.update(plan.skipped)
                    skipped["callbacks_planned"] += plan.callbacks
                    start(plan.created)
                t2 = time.perf_counter()
                start(dialer.reconcile().resent)
                t3 = time.perf_counter()
                timing["replay"] += t1 - t0
                timing["plan"] += t2 - t1
                timing["reconcile"] += t3 - t2
            except Exception:  # noqa: BLE001  (the database is down on purpose: next tick)
                skipped["tick_without_database"] += 1
            t4 = time.perf_counter()
            if day == OUTAGE_DAY and (local.hour, local.minute) == OUTAGE_FROM:
                # Right after this tick's dials went out (1 CPS): they end while it is down.
                await clock.sleep(25)
                skipped["calls_on_the_line_at_outage"] = len(calls)
                postgres.stop("immediate")
                down_since = clock.now()
            await clock.sleep(TICK_S)
            timing["sleep"] += time.perf_counter() - t4
        if calls:
            await asyncio.gather(*calls)
    dialer.replay_journal()
    skipped.update({f"real_s_{k}": round(v, 1) for k, v in timing.items()})
    skipped["carrier_dials"] = sum(carrier.outcomes.values())
    skipped["journaled"] = int(metrics.RESULTS_JOURNALED.labels("call")._value.get() - journaled_before)
    return skipped


@pytest.fixture(scope="module")
def weeks(tmp_path_factory, postgres_cluster, dialogue_agent):
    workdir = tmp_path_factory.mktemp("weeks")
    url = postgres_cluster.create_database("faults_weeks")
    engine = create_database_engine(url)
    upgrade(engine)
    keyring = PhoneKeyring.from_secret(TEST_SECRET.encode())
    seed(engine, keyring)
    started = time.time()
    tally = run(dial_for_weeks(engine, dialogue_agent, keyring, workdir / "carrier.jsonl", workdir / "journal",
                               postgres_cluster))
    postgres_cluster.start_if_stopped()
    verdict = checks.judge(engine, workdir / "carrier.jsonl", load_profile(), run_start=START,
                           until=START + timedelta(days=DAYS), final=True)
    print({"real_seconds": round(time.time() - started, 1), "tally": dict(tally), "figures": verdict.figures})
    yield engine, tally, verdict
    engine.dispose()


def test_weeks_of_dialling_keep_every_rule(weeks) -> None:
    _, tally, verdict = weeks
    assert not verdict.failed(), verdict.failed()
    assert verdict.figures["lost_results"] == [] and verdict.figures["dials_outside_window"] == 0
    assert tally["tick_without_database"] >= 1  # the outage happened
    assert tally["carrier_dials"] > 150


def test_the_seven_and_thirty_day_caps_bind(weeks) -> None:
    engine, tally, verdict = weeks
    # The caps stopped the hopper, and numbers reached them: 3 dials in 7 days, 6 in 30.
    assert tally["cap_7d"] > 0 and tally["cap_30d"] > 0, tally
    # (the judge already checked every rolling window against the carrier's log: none over a cap)
    with engine.connect() as conn:
        dials = conn.execute(select(CallAttempt.phone_hash, CallAttempt.dialed_at)
                             .where(CallAttempt.status.in_(("completed", "failed")))).all()
    by_number: dict[str, list[datetime]] = {}
    for phone_hash, at in dials:
        by_number.setdefault(phone_hash, []).append(at)
    most_in_7 = max(_most_within(times, timedelta(days=7)) for times in by_number.values())
    most_in_30 = max(_most_within(times, timedelta(days=30)) for times in by_number.values())
    assert most_in_7 == 3 and most_in_30 == 6, (most_in_7, most_in_30)


def test_calls_finished_during_the_outage_are_stored_and_their_opt_outs_kept(weeks) -> None:
    engine, tally, verdict = weeks
    assert tally["journaled"] > 0, "no call finished during the outage (nothing was journaled)"
    outage = START + timedelta(days=OUTAGE_DAY, hours=OUTAGE_FROM[0] - 9, minutes=OUTAGE_FROM[1])
    with engine.connect() as conn:
        stored = conn.execute(select(CallAttempt.id).where(
            CallAttempt.ended_at >= outage, CallAttempt.ended_at < outage + timedelta(minutes=OUTAGE_MINUTES),
            CallAttempt.status == "completed")).all()
    assert len(stored) >= tally["journaled"]
    # Do-not-call entries from those calls date from the call, and nothing dialled after them.
    assert not verdict.violations.get("dnc_dialled") and not verdict.violations.get("result_lost")


def _most_within(times: list[datetime], window: timedelta) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
