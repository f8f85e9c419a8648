"""The fault suite: a simulated late morning of dialling on our own Redis and PostgreSQL,
with kill -9 of a worker mid-call, Redis restarted empty, PostgreSQL stopped and restarted,
a slow database and a carrier that hangs (tests/faults/scenario.py); after each fault and
at the end, the rules and the books are checked against the carrier's own log.

The run happens once per session (about two and a half real minutes); each test reads its
part. FAULT_REPORT=path writes the figures as JSON.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults import scenario

# Checks that must hold after every fault, as well as at the end.
ALWAYS = ("duplicate_attempt", "result_lost", "dial_outside_window", "over_cap", "number_on_two_calls",
          "dnc_dialled", "callback_missed_silently")


@pytest.fixture(scope="module")
def morning(tmp_path_factory, model_path, postgres_cluster) -> scenario.Run:
    run = scenario.run_faulty_morning(tmp_path_factory.mktemp("faults"), model_path, postgres_cluster)
    if os.environ.get("FAULT_REPORT"):
        scenario.dump(run, Path(os.environ["FAULT_REPORT"]))
    print(run.report)
    return run


def phase(run: scenario.Run, name: str) -> scenario.Phase:
    return next(p for p in run.phases if p.name == name)


def assert_phase_holds(run: scenario.Run, name: str) -> None:
    found = phase(run, name)
    failed = {check: found_ for check, found_ in found.verdict.failed().items() if check in ALWAYS}
    assert not failed, f"{name}: {failed}\n{run.log_tail}"
    assert not found.lost, f"{name}: results lost for attempts {found.lost}"


def test_the_morning_dialled_and_settled(morning) -> None:
    figures = morning.final.figures
    assert figures["carrier_dials"] > 500, figures
    assert not morning.final.failed(), f"{morning.final.failed()}\n{morning.log_tail}"
    assert morning.journal_left == 0


def test_kill_minus_9_of_a_worker_mid_call(morning) -> None:
    killed = phase(morning, "kill_worker")
    assert killed.note["calls_in_flight_on_victim"] > 0, "the worker was not mid-call"
    assert_phase_holds(morning, "kill_worker")
    # The calls cut off with it are closed as worker_lost (counted, never re-dialled), as soon
    # as its heartbeat expired: minutes, not the 20 of WAIHU_STUCK_AFTER_S.
    assert morning.final.figures["cut_by_kill"], "no call was cut by the kill"
    assert killed.note["calls_closed_after_s"] is not None and killed.note["calls_closed_after_s"] < 15 * 60


def test_redis_killed_and_restarted_empty(morning) -> None:
    assert_phase_holds(morning, "redis_restart")


def test_postgres_stopped_and_restarted(morning) -> None:
    assert_phase_holds(morning, "postgres_restart")
    assert morning.journal_left == 0, "journal not fully replayed"


def test_slow_database(morning) -> None:
    assert_phase_holds(morning, "slow_database")


def test_carrier_that_hangs(morning) -> None:
    # All run long: 1% of the dials never come back from the carrier, 1% of the answered calls
    # go silent. The dialer hangs them up (watchdog, carrier-silence timeout) and stores them.
    hangs = morning.final.figures["carrier_hangs"]
    assert hangs["dials_hung"] + hangs["calls_gone_silent"] > 0, hangs
    assert hangs["stored"] == hangs["dials_hung"] + hangs["calls_gone_silent"], hangs
    assert_phase_holds(morning, "window_close")
    statuses = morning.final.figures["statuses"]
    assert statuses.get("dialing", 0) == 0 and statuses.get("scheduled", 0) == 0, statuses


def test_no_dial_after_the_window_closes(morning) -> None:
    assert morning.final.figures["dials_outside_window"] == 0
    cancelled = morning.final.figures["cancelled_at_t0"]
    assert cancelled and all(reason for reason in cancelled), cancelled


def test_booked_callbacks_dialled_in_their_grace_ahead_of_new_leads(morning) -> None:
    callbacks = morning.final.figures["callbacks"]
    assert len(morning.seeded_callbacks) == scenario.CALLBACKS
    assert callbacks["missed_silently"] == 0
    assert callbacks["dialled_in_grace"] >= len(morning.seeded_callbacks), callbacks
    # Through every fault (the database down for 15 simulated minutes among them), half within
    # a few simulated minutes of the named time — seconds of real time at 60× speed.
    assert callbacks["delay_s_p50"] <= 10 * 60, callbacks


def test_workers_serve_prometheus_metrics(morning) -> None:
    text = morning.worker_metrics
    for name in ("waihu_calls_in_flight", "waihu_dials_total", "waihu_turn_latency_seconds_bucket",
                 "waihu_queue_depth", "waihu_journal_backlog", "waihu_t0_cancelled_total"):
        assert name in text, name
