"""A SIP worker's capacity: PJSIP holds a fixed number of calls (telephony.sip.capacity). Dials
beyond it wait for a free slot and reach the callee; none is graded `unreachable` as if the
callee's network had failed (before: every dial past pjsua2's default 4 came back unreachable)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import pytest

from bot.dialing.dialer import CheckedCarrier, DialCancelled
from telephony.carrier import CallEvent
from telephony.sip.capacity import DEFAULT_MAX_CALLS, MAX_CALLS_LIMIT
from telephony.sip.carrier import SELECT_FD_LIMIT, SipConfig, SipConfigError, media_ports_for
from tests.telephony.sip.conftest import HERE, SipStack


def test_three_times_the_capacity_dialled_at_once_all_ring_at_the_callee(sip_stack: SipStack, sipp_callee) -> None:
    carrier = sip_stack.carrier
    capacity = carrier.config.max_calls
    assert capacity == DEFAULT_MAX_CALLS == MAX_CALLS_LIMIT
    calls = 3 * capacity
    number = sipp_callee("uas_no_answer.xml", calls=calls)
    call_ids = [f"cap-{uuid.uuid4().hex[:8]}" for _ in range(calls)]
    carrier.peak_slots_in_use = carrier.slots_in_use
    waits_before = carrier.capacity_waits

    async def go() -> tuple[list[str], dict[str, CallEvent]]:
        # Through the dialer's CheckedCarrier, as every production dial goes (check passes).
        checked = CheckedCarrier(carrier, lambda: None, lambda: datetime.now(timezone.utc))
        sip_ids = await asyncio.gather(*(checked.dial(call_id, number, timeout_s=1) for call_id in call_ids))
        hangups: dict[str, CallEvent] = {}
        while len(hangups) < calls:
            event = await carrier.events.get()
            if event.call_id in call_ids and event.kind == "hangup":
                hangups[event.call_id] = event
        return list(sip_ids), hangups

    started = time.monotonic()
    sip_ids, hangups = sip_stack.run(go(), timeout=40)
    took = time.monotonic() - started
    # Every dial went out as an INVITE (a SIP Call-ID each) and rang out: no_answer, not unreachable.
    assert all(sip_ids) and len(set(sip_ids)) == calls
    assert {(e.cause, e.status, e.answered) for e in hangups.values()} == {("NO_ANSWER", "no_answer", False)}
    # Never more calls in PJSIP than it holds; the others waited their turn (three waves of ~1 s rings).
    assert carrier.peak_slots_in_use == capacity
    assert carrier.capacity_waits - waits_before >= calls - capacity
    assert 3 <= took < 12
    # The callee saw all of them (SIPp exits 0 once its `-m` calls all succeeded).
    assert sipp_callee.started[number].wait(10) == 0


def test_max_calls_is_bounded_by_what_pjsip_was_built_for() -> None:
    assert SipConfig.from_env({"WAIHU_SIP_DOMAIN": "trunk.example.cn", "WAIHU_SIP_MAX_CALLS": "2"}).max_calls == 2
    assert SipConfig.from_env({"WAIHU_SIP_DOMAIN": "trunk.example.cn"}).max_calls == DEFAULT_MAX_CALLS
    with pytest.raises(SipConfigError, match=f"WAIHU_SIP_MAX_CALLS=40: set it between 1 and {MAX_CALLS_LIMIT}"):
        SipConfig.from_env({"WAIHU_SIP_DOMAIN": "trunk.example.cn", "WAIHU_SIP_MAX_CALLS": "40"})
    with pytest.raises(SipConfigError, match="WAIHU_SIP_MAX_CALLS='many'"):
        SipConfig.from_env({"WAIHU_SIP_DOMAIN": "trunk.example.cn", "WAIHU_SIP_MAX_CALLS": "many"})
    # The conference bridge has room for each call's own slot, our audio port and a recorder.
    assert media_ports_for(MAX_CALLS_LIMIT) >= 3 * MAX_CALLS_LIMIT


def test_a_process_with_a_thousand_files_open_still_places_calls(sipp_callee) -> None:
    """PJSIP polls with select(): a socket numbered 1024 or above is refused, and every call of
    a process that had that many files open came back `unreachable`. The carrier keeps low
    numbers for its calls' sockets (in a process of its own: the padding stays there)."""
    number = sipp_callee("uas_busy.xml")
    port = int(number[-5:])
    done = subprocess.run(
        [sys.executable, "-m", "tests.telephony.sip.fd_probe", f"127.0.0.1:{port}", number],
        cwd=HERE.parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["open_files"] > SELECT_FD_LIMIT
    assert (result["status"], result["cause"]) == ("line_busy", "USER_BUSY")


def test_the_dialers_last_check_comes_after_the_wait_for_a_slot(sip_stack: SipStack, sipp_callee) -> None:
    """Every slot held by ringing calls: a dial through the dialer's CheckedCarrier waits for a
    slot BEFORE its last T-0 check, so the rules are checked at the instant the INVITE goes out,
    however long the wait; a check that fails after the wait gives the slot back, nothing sent."""
    carrier = sip_stack.carrier
    capacity = carrier.config.max_calls
    sip_stack.run(_slots_drained(carrier), timeout=15)  # the calls of earlier tests have let go
    number = sipp_callee("uas_no_answer.xml", calls=2 * capacity)  # holders, the late one, the busy ones
    holders = [f"hold-{uuid.uuid4().hex[:8]}" for _ in range(capacity)]
    late_id, closed_id = f"late-{uuid.uuid4().hex[:8]}", f"closed-{uuid.uuid4().hex[:8]}"
    busy = [f"busy-{uuid.uuid4().hex[:8]}" for _ in range(capacity - 1)]
    checked_at: list[float] = []  # the late dial's checks (again after any PJ_ETOOMANY)
    closed_checks: list[float] = []
    hung_up: dict[str, float] = {}
    now = lambda: datetime.now(timezone.utc)  # noqa: E731

    def check_passes() -> str | None:
        checked_at.append(time.monotonic())
        return None

    def window_closed() -> str | None:
        closed_checks.append(time.monotonic())
        return "outside_calling_window"

    async def go() -> tuple[str, str | None]:
        async def note_hang_ups() -> None:
            while len(hung_up) < 2 * capacity:
                event = await carrier.events.get()
                if event.kind == "hangup":
                    hung_up[event.call_id] = time.monotonic()

        watcher = asyncio.ensure_future(note_hang_ups())
        await asyncio.gather(*(carrier.dial(call_id, number, timeout_s=2) for call_id in holders))
        assert carrier.slots_in_use == capacity
        sip_id = await CheckedCarrier(carrier, check_passes, now).dial(late_id, number, timeout_s=1)
        # Every slot taken again; this dial's check fails once it has waited for one.
        await asyncio.gather(*(carrier.dial(call_id, number, timeout_s=1) for call_id in busy))
        refused: str | None = None
        try:
            await CheckedCarrier(carrier, window_closed, now).dial(closed_id, number)
        except DialCancelled as cancelled:
            refused = cancelled.reason
        await watcher
        return sip_id, refused

    sip_id, refused = sip_stack.run(go(), timeout=40)
    assert sip_id, "the late dial went out once a slot was free"
    # Its check ran after a holder rang out and freed its slot — not before the wait.
    assert checked_at and checked_at[0] >= min(hung_up[h] for h in holders), (checked_at, hung_up)
    assert refused == "outside_calling_window" and len(closed_checks) == 1
    assert closed_id not in hung_up, "the refused dial was never placed"
    # Its slot was given back: once PJSIP has let go of the placed calls (their DISCONNECTED
    # comes after the 487 to our CANCEL, a moment after the hang-up event), none is held.
    sip_stack.run(_slots_drained(carrier), timeout=15)
    assert carrier.slots_in_use == 0
    assert sipp_callee.started[number].wait(10) == 0  # SIPp saw exactly the 2 × capacity calls it expected


async def _slots_drained(carrier) -> None:
    while carrier.slots_in_use:
        await asyncio.sleep(0.05)
