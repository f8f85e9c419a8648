"""The dial path under faults, one behaviour at a time (SQLite and PostgreSQL): the rules
re-checked at the instant of dialling, results journaled while the database is down and
replayed (do-not-call first), errors before the dial never burning an attempt, callbacks
ahead of new leads and missed ones reported, one reconciler at a time, a hanging carrier."""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import create_database_engine, session_scope
from bot.dialing import metrics
from bot.dialing.call_journal import CallJournal, result_from_json, result_to_json
from bot.dialing.call_runner import CallResult, assess
from bot.dialing.dialer import RECONCILE_LOCK_KEY, Dialer
from bot.dialing.planner import plan_campaign
from bot.dnc.models import DoNotCall
from bot.dnc.service import dnc_state
from intents.finished_call import Turn
from telephony.carrier import CallEvent
from telephony.celery_app import visibility_timeout_s
from telephony.clock import SimClock
from telephony.rate_limits import DialLimits
from telephony.simulator.carrier import CarrierLog, SimulatorCarrier
from tests.conftest import run
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack

# Tuesday 2026-11-24 in Shanghai (UTC+8).
def at(hh: int, mm: int, ss: int = 0, day: int = 24) -> datetime:
    return datetime(2026, 11, day, hh - 8, mm, ss, tzinfo=timezone.utc)


DOWN = "postgresql://postgres@127.0.0.1:1/nowhere"  # a database that refuses every connection


class RingingCarrier:
    """Every dial rings out (no answer) after `ring_s` on the clock: no dialogue needed."""

    def __init__(self, clock: SimClock, ring_s: float = 30.0) -> None:
        self.clock, self.ring_s = clock, ring_s
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.dialled: list[tuple[str, datetime]] = []

    async def dial(self, call_id: str, phone: str, timeout_s: int = 30, **_options) -> str:
        self.dialled.append((call_id, self.clock.now()))
        asyncio.ensure_future(self._ring(call_id))
        return f"ring-{call_id}"

    async def _ring(self, call_id: str) -> None:
        await self.clock.sleep(self.ring_s)
        self.events.put_nowait(CallEvent(call_id, "hangup", cause="NO_ANSWER", status="no_answer"))

    async def play(self, call_id, prompt) -> None:
        return None

    async def hangup(self, call_id: str, cause: str = "NORMAL_CLEARING") -> None:
        return None


def campaign(session, keyring, leads: int, **kwargs) -> list[int]:
    ids = add_pack(session, keyring, "pack-a", leads)
    create_campaign(session, name="c", packs=["pack-a"], **kwargs)
    change_status(session, "c", "start", now=at(9, 0))
    return ids


def dialer_for(db, keyring, clock: SimClock, carrier=None, **kwargs) -> Dialer:
    return Dialer(db, None, carrier or RingingCarrier(clock), keyring, now=clock.now, worker="test",
                  sleep=clock.sleep, limits=DialLimits(), backoff=lambda s: None, **kwargs)


def attempts(db) -> list[CallAttempt]:
    with session_scope(db) as session:
        return session.execute(select(CallAttempt).order_by(CallAttempt.id)).scalars().all()


# ---------------------------------------------------------------- 1. the instant of dialling

def test_the_planner_never_plans_more_than_the_cps_dials_before_the_window_closes(db, keyring) -> None:
    with session_scope(db) as session:
        campaign(session, keyring, 60, lines=50, cps=0.1)
        early = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0))
        session.execute(text("DELETE FROM call_attempts"))
        late = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(11, 59, 25))
    # A tick plans what the CPS dials in a tick (6 a minute at 0.1 CPS, plus one), not 50 lines' worth.
    assert len(early.created) == 7
    # 35 s before the window closes, one dial every 10 s: four fit; a fifth would land in the lunch break.
    assert len(late.created) == 4, late
    assert late.skipped["closes_before_dial"] >= 1


def test_a_dial_whose_turn_comes_after_the_window_closed_is_cancelled_with_its_reason(db, keyring) -> None:
    with session_scope(db) as session:
        campaign(session, keyring, 5, lines=5, cps=0.1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(11, 59, 0)).created
        campaign_id = str(session.execute(select(Campaign.id)).scalar_one())
    assert len(planned) == 5

    async def dial_all():
        clock = SimClock(start=at(11, 59, 0))
        dialer = dialer_for(db, keyring, clock)
        # Three dials the planner did not count (re-sent ones, another worker's) took the next turns.
        for _ in range(3):
            dialer.limits.reserve_dial(campaign_id, 0.1, clock.now().timestamp())
        # Each waits its CPS turn (10 s apart) and is checked again after the wait.
        results = await asyncio.gather(*(dialer.dial(attempt_id) for attempt_id in planned))
        return results, dialer.carrier.dialled

    results, dialled = run(dial_all())
    # 11:59:30 … 11:59:50 go out; nothing the carrier dials after 12:00.
    assert len(dialled) == 3 and all(when < at(12, 0) for _, when in dialled), dialled
    rows = attempts(db)
    cancelled = [a for a in rows if a.status == "cancelled"]
    assert cancelled and all(a.outcome == "outside_window" and a.dialed_at is None for a in cancelled)
    assert any(r.startswith("cancelled at T-0: outside_window") for r in results)
    # A cancelled attempt never counts: the number may be planned again when the window opens.
    with session_scope(db) as session:
        again = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(14, 0, 30))
    assert len(again.created) == len(cancelled) and again.skipped["cap_24h"] == len(rows) - len(cancelled)


# ---------------------------------------------------------------- 2. no result lost

def opted_out_result(clock: SimClock) -> CallResult:
    start = clock.now()
    result = CallResult("attempt-1", answered=True, dialed_at=start, answered_at=start + timedelta(seconds=8),
                        ended_at=start + timedelta(seconds=40), hangup_by="bot", carrier_call_id="ring-attempt-1",
                        turns=[Turn("bot", "您好，我是人工智能客服……", 0.0, response="utter_greet", seq=1),
                               Turn("callee", "别再打了，再打我投诉你们", 6.0, intent="stop_calling", confidence=0.97,
                                    seq=2),
                               Turn("bot", "好的，以后不再打扰您，再见。", 7.0, response="utter_close_opt_out", seq=3)])
    result.outcome = assess(result)
    return result


def test_a_call_result_survives_a_database_outage_through_the_journal(db, keyring, tmp_path) -> None:
    with session_scope(db) as session:
        campaign(session, keyring, 2, lines=2, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created
    clock = SimClock(start=at(10, 0))
    journal = CallJournal(tmp_path / "journal")
    dialer = dialer_for(db, keyring, clock, journal=journal)
    prepared = dialer.prepare(planned[0])
    result = opted_out_result(clock)
    assert result.outcome.followups[0].action == "do_not_call"
    # The database goes away right after the call.
    dialer.engine = create_database_engine(DOWN)
    said = dialer.finish(prepared, result)
    assert "journaled" in said and journal.backlog() == 1
    # The opt-out is enforced before the next dial of that number, whatever failed.
    assert dialer.recheck(prepared) == "dnc_pending_in_journal"
    # Back: the replay writes the do-not-call entry first, then the call.
    dialer.engine = db
    assert dialer.replay_journal() == {"call": 1}
    assert journal.backlog() == 0 and dialer.replay_journal() == {}
    with session_scope(db) as session:
        attempt = session.get(CallAttempt, planned[0])
        assert attempt.status == "completed" and attempt.history_outcome == "opt_out" and attempt.grade == "C"
        assert dnc_state(session, attempt.phone_hash, at(11, 0)).opt_out
        entry = session.execute(select(DoNotCall)).scalar_one()
        assert entry.created_at == result.ended_at and entry.source_call_id == attempt.id
    assert dialer.recheck(prepared) is None  # the journal no longer holds it (the database does)


def test_the_journal_of_a_dead_process_is_replayed_by_another(db, keyring, tmp_path) -> None:
    with session_scope(db) as session:
        campaign(session, keyring, 1, lines=1, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created
    clock = SimClock(start=at(10, 0))
    dead = dialer_for(db, keyring, clock, journal=CallJournal(tmp_path / "journal"))
    prepared = dead.prepare(planned[0])
    dead.engine = create_database_engine(DOWN)
    dead.finish(prepared, opted_out_result(clock))
    dead.journal.close()  # its process is gone: the kernel drops its lock
    other = CallJournal(tmp_path / "journal")
    assert other.backlog() == 1
    assert dialer_for(db, keyring, clock, journal=other).replay_journal() == {"call": 1}
    assert attempts(db)[0].status == "completed"


def test_a_journaled_result_overwrites_worker_lost_and_is_applied_once(db, keyring, tmp_path) -> None:
    with session_scope(db) as session:
        campaign(session, keyring, 1, lines=1, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created
    clock = SimClock(start=at(10, 0))
    dialer = dialer_for(db, keyring, clock, journal=CallJournal(tmp_path / "j"))
    prepared = dialer.prepare(planned[0])
    dialer.engine = create_database_engine(DOWN)
    dialer.finish(prepared, opted_out_result(clock))
    dialer.engine = db
    clock.advance(3600)
    assert dialer.reconcile().lost == 1  # the reconciler got there first
    assert dialer.replay_journal() == {"call": 1}
    assert attempts(db)[0].status == "completed" and attempts(db)[0].outcome == "answered"


def test_call_results_round_trip_through_json() -> None:
    clock = SimClock(start=at(10, 0))
    result = opted_out_result(clock)
    again = result_from_json(result_to_json(result))
    assert again.turns == result.turns and again.ended_at == result.ended_at
    assert again.outcome.label == result.outcome.label
    assert [f.as_json() for f in again.outcome.followups] == [f.as_json() for f in result.outcome.followups]


# ---------------------------------------------------------------- 3. never burn an attempt

class RedisDown(DialLimits):
    def reserve_dial(self, *args):
        import redis

        raise redis.exceptions.ConnectionError("Connection refused")


def test_an_error_before_the_dial_gives_the_attempt_back_unburnt(db, keyring) -> None:
    with session_scope(db) as session:
        campaign(session, keyring, 1, lines=1, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created
    clock = SimClock(start=at(10, 0))
    dialer = dialer_for(db, keyring, clock)
    dialer.limits = RedisDown()
    said = run(dialer.dial(planned[0]))
    assert said == "given back: redis" and not dialer.carrier.dialled
    attempt = attempts(db)[0]
    assert attempt.status == "scheduled" and attempt.dialed_at is None and attempt.worker is None
    # Sent again by the reconciler once, not by every pass.
    clock.advance(600)
    assert dialer.unclaimed() == planned and dialer.unclaimed() == []
    dialer.limits = DialLimits()
    assert run(dialer.dial(planned[0])) == "no_answer"


def test_a_database_error_in_the_t0_check_gives_the_attempt_back(db, keyring, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    with session_scope(db) as session:
        campaign(session, keyring, 1, lines=1, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created
    dialer = dialer_for(db, keyring, SimClock(start=at(10, 0)))

    def down(*args):
        raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(dialer, "_t0_snapshot", down)
    assert dialer.prepare(planned[0]) == "given back: database"
    assert attempts(db)[0].status == "scheduled"


# ---------------------------------------------------------------- 4. callbacks

def book_callback(session, lead_id: int, when: datetime, booked_at: datetime) -> None:
    campaign_id = session.execute(select(Campaign.id)).scalar_one()
    phone_hash = session.execute(text("SELECT phone_hash FROM leads WHERE id = :id"), {"id": lead_id}).scalar_one()
    session.add(CallAttempt(campaign_id=campaign_id, lead_id=lead_id, attempt_no=1, phone_hash=phone_hash,
                            arms={"script": "standard"}, status="completed", outcome="answered",
                            history_outcome="busy", scheduled_at=booked_at, dialed_at=booked_at,
                            ended_at=booked_at + timedelta(minutes=1), callback_at=when))


def test_a_booked_callback_is_planned_ahead_of_never_called_leads(db, keyring) -> None:
    with session_scope(db) as session:
        ids = campaign(session, keyring, 30, lines=3, cps=1)
        book_callback(session, ids[-1], at(10, 40), booked_at=at(10, 0, day=23))
        before = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 30))
        assert ids[-1] not in _leads_of(session, before.created)  # not yet due
        session.execute(text("UPDATE call_attempts SET status = 'completed' WHERE status = 'scheduled'"))
        due = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 41))
        assert _leads_of(session, due.created)[0] == ids[-1] and due.callbacks == 1


def _leads_of(session, attempt_ids: list[int]) -> list[int]:
    rows = dict(session.execute(select(CallAttempt.id, CallAttempt.lead_id)
                                .where(CallAttempt.id.in_(attempt_ids))).all())
    return [rows[i] for i in attempt_ids]


def test_callbacks_are_settled_dialled_or_missed_with_the_reason(db, keyring) -> None:
    with session_scope(db) as session:
        ids = campaign(session, keyring, 3, lines=3, cps=1)
        book_callback(session, ids[0], at(10, 40), booked_at=at(10, 0, day=23))
        book_callback(session, ids[1], at(10, 40), booked_at=at(10, 0, day=23))
    clock = SimClock(start=at(10, 41))
    dialer = dialer_for(db, keyring, clock)
    with session_scope(db) as session:
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), clock.now()).created
        first = [a for a in planned if session.get(CallAttempt, a).lead_id == ids[0]]
    for attempt_id in planned:
        if attempt_id not in first:
            with session_scope(db) as session:
                session.execute(text("UPDATE call_attempts SET status = 'cancelled', outcome = 'test' "
                                     "WHERE id = :id"), {"id": attempt_id})
    run(dialer.dial(first[0]))
    with session_scope(db) as session:  # the other campaign lead's callback never happens: paused
        change_status(session, "c", "pause", now=clock.now())
    clock.advance(3 * 3600)
    before = metrics.CALLBACKS_MISSED.labels("campaign_paused")._value.get()
    report = dialer.reconcile()
    assert report.callbacks_dialled == 1 and report.callbacks_missed == 1
    outcomes = {a.lead_id: a.callback_outcome for a in attempts(db) if a.callback_at}
    assert outcomes == {ids[0]: "dialled", ids[1]: "missed:campaign_paused"}
    assert metrics.CALLBACKS_MISSED.labels("campaign_paused")._value.get() == before + 1


# ---------------------------------------------------------------- 5. one reconciler; clear logs

def test_one_reconciler_at_a_time(db, keyring) -> None:
    dialer = dialer_for(db, keyring, SimClock(start=at(10, 0)))
    with dialer._reconcile_lock:
        assert dialer.reconcile().skipped
    if db.dialect.name == "postgresql":
        with db.connect() as holder:  # another process's reconciler, mid-pass
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": RECONCILE_LOCK_KEY})
            assert dialer.reconcile().skipped
            holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RECONCILE_LOCK_KEY})
    assert not dialer.reconcile().skipped


def test_a_line_release_failure_after_a_recorded_call_is_not_a_failed_dial(db, keyring, caplog) -> None:
    class ReleaseFails(DialLimits):
        def release_line(self, *args):
            raise ConnectionError("Redis went away")

    with session_scope(db) as session:
        campaign(session, keyring, 1, lines=1, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created
    dialer = dialer_for(db, keyring, SimClock(start=at(10, 0)))
    dialer.limits = ReleaseFails()
    assert run(dialer.dial(planned[0])) == "no_answer"
    assert attempts(db)[0].status == "completed"
    assert "line lease not released" in caplog.text and "failed" not in caplog.text.replace("ConnectionError", "")


def test_the_visibility_timeout_follows_the_longest_call() -> None:
    assert visibility_timeout_s(900, 1.0) < 3600 / 2
    assert visibility_timeout_s(900, 1.0) > 900 + 60
    assert visibility_timeout_s(900, 60.0) < 120  # a simulated clock 60× faster: a minute or two


# ---------------------------------------------------------------- a carrier that hangs

@pytest.mark.parametrize("mode", ["dial", "call"])
def test_a_carrier_that_hangs_is_hung_up_and_the_call_stored(db, keyring, tmp_path, mode, dialogue_agent) -> None:
    with session_scope(db) as session:
        campaign(session, keyring, 1, lines=1, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created

    async def call():
        # A finite speed, as in the workers: the carrier-silence timeout runs on the loop's timer.
        clock = SimClock(start=at(10, 0), speed=200)
        carrier = SimulatorCarrier(clock=clock, seed=1, log_path=tmp_path / "carrier.jsonl",
                                   hang_dial_share=1.0 if mode == "dial" else 0.0,
                                   hang_call_share=1.0 if mode == "call" else 0.0)
        dialer = Dialer(db, dialogue_agent, carrier, keyring, now=clock.now, worker="test", sleep=clock.sleep,
                        clock=clock, limits=DialLimits(), max_call_s=600, event_timeout_s=120)
        return await dialer.dial(planned[0]), clock.now()

    said, ended = run(call())
    attempt = attempts(db)[0]
    lasted = (ended - at(10, 0)).total_seconds()
    assert (600 <= lasted if mode == "dial" else 120 <= lasted < 600), lasted
    assert attempt.status == "completed", said
    events = [(e["event"], e["call_id"]) for e in CarrierLog.read(tmp_path / "carrier.jsonl")]
    assert events[0] == ("dial", f"attempt-{attempt.id}") and events[-1] == ("end", f"attempt-{attempt.id}")
    if mode == "dial":  # the dial request never came back: the watchdog (longest call) ended it
        assert attempt.outcome == "unreachable" and attempt.carrier_call_id in (None, "")
    else:  # answered, then silence from the carrier: hung up after the event timeout
        assert attempt.outcome == "answered" and attempt.grade is not None


# ---------------------------------------------------------------- metrics

def test_web_metrics_read_the_database(db, keyring) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from bot.web import metrics_views

    with session_scope(db) as session:
        ids = campaign(session, keyring, 2, lines=2, cps=1)
        book_callback(session, ids[0], at(10, 40), booked_at=at(10, 0, day=23))
        session.flush()
        session.execute(text("UPDATE call_attempts SET callback_outcome = 'missed:no_line_in_grace'"))
        session.add(CallAttempt(campaign_id=session.execute(select(Campaign.id)).scalar_one(), lead_id=ids[1],
                                attempt_no=1, phone_hash="x" * 64, arms={}, status="cancelled",
                                outcome="outside_window", history_outcome="cancelled", scheduled_at=at(12, 0)))
    app = FastAPI()
    app.state.engine = db
    app.include_router(metrics_views.router)
    body = TestClient(app).get("/metrics").text
    assert 'waihu_db_attempts_cancelled_total{reason="outside_window"} 1.0' in body
    assert 'waihu_db_callbacks_missed_total{reason="no_line_in_grace"} 1.0' in body
    assert "waihu_db_up 1.0" in body and "waihu_db_dials_last_minute" in body


def test_turn_latency_is_observed(dialogue_agent) -> None:
    agent = metrics.TimedAgent(dialogue_agent)
    before = metrics.TURN_LATENCY._sum.get()

    async def turn():
        await agent.start_conversation("latency-test", {})
        parse = await agent.parse("你是机器人吗")
        await agent.respond("latency-test", parse)
        await agent.forget("latency-test")

    run(turn())
    assert metrics.TURN_LATENCY._sum.get() > before


def test_concurrent_reconcilers_never_send_an_attempt_twice(db, keyring) -> None:
    with session_scope(db) as session:
        campaign(session, keyring, 20, lines=20, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created
    clock = SimClock(start=at(10, 30))
    dialers = [dialer_for(db, keyring, clock) for _ in range(4)]
    sent: list[list[int]] = [[] for _ in dialers]
    if db.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer: the race needs PostgreSQL")

    def reconcile(i: int) -> None:
        sent[i] = dialers[i].reconcile().resent

    threads = [threading.Thread(target=reconcile, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [a for found in sent for a in found]
    assert sorted(everything) == sorted(planned)  # each exactly once


class FakeRedis:
    """What WorkerLiveness uses of Redis, in memory; `uptime` as Redis reports it."""

    def __init__(self, uptime: float = 3600) -> None:
        self.keys: dict[str, int] = {}
        self.uptime = uptime

    def set(self, key, value, px=None):
        self.keys[key] = value

    def mget(self, keys):
        return [self.keys.get(k) for k in keys]

    def info(self, section):
        return {"uptime_in_seconds": self.uptime}


def test_a_dead_workers_calls_are_closed_at_once_not_after_twenty_minutes(db, keyring) -> None:
    from bot.dialing.liveness import WorkerLiveness

    with session_scope(db) as session:
        campaign(session, keyring, 2, lines=2, cps=1)
        planned = plan_campaign(session, session.execute(select(Campaign)).scalar_one(), at(10, 0)).created
    clock = SimClock(start=at(10, 0))
    redis_ = FakeRedis()
    alive, dead = dialer_for(db, keyring, clock), dialer_for(db, keyring, clock)
    alive.worker, dead.worker = "host:1", "host:2"
    for dialer, attempt_id in ((alive, planned[0]), (dead, planned[1])):
        dialer.liveness = WorkerLiveness(redis_, "waihu:q", ttl_s=15)
        dialer.liveness.beat(dialer.worker)
        dialer.prepare(attempt_id)
    del redis_.keys["waihu:q:alive:host:2"]  # its heartbeat expired: killed
    clock.advance(60)
    assert alive.reconcile().lost == 1
    assert [a.status for a in attempts(db)] == ["dialing", "failed"]
    # Redis just restarted empty: missing heartbeats prove nothing yet.
    assert WorkerLiveness(FakeRedis(uptime=5), "waihu:q", ttl_s=15).dead(["host:1"]) == set()


def test_the_last_check_runs_in_the_same_step_as_the_dial() -> None:
    """A busy call loop may start a call task a while after it was created: the rules are
    checked inside carrier.dial, with nothing awaited between the check and the request."""
    from bot.dialing.dialer import CheckedCarrier, DialCancelled

    clock = SimClock(start=at(11, 59, 59))
    carrier = RingingCarrier(clock)
    verdicts = iter([None, "outside_window"])
    checked = CheckedCarrier(carrier, lambda: next(verdicts), clock.now)

    async def two_dials():
        await checked.dial("attempt-1", "13800000000")
        with pytest.raises(DialCancelled):
            await checked.dial("attempt-2", "13800000001")

    run(two_dials())
    assert [call_id for call_id, _ in carrier.dialled] == ["attempt-1"] and checked.dialled_at == at(11, 59, 59)
