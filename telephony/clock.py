"""Clocks for code that schedules: the real one, and a simulated one that runs faster.

The dialer, the call runtime and the simulator carrier take a `Clock` (`now()` and
`await sleep(seconds)`) instead of calling `datetime.now` / `asyncio.sleep`, so a demo
or a test can run a day of calling in seconds.

`SimClock(start, speed)`:
- a finite speed (e.g. 60: one simulated minute per real second) scales real time:
  `sleep(s)` waits s / speed real seconds, `now()` = start + real elapsed × speed.
  Work that takes real time (NLU) takes speed × as long in simulated time.
- speed = inf (or 0) means no waiting at all: simulated time jumps from one pending
  `sleep` deadline to the next as soon as every task of the event loop is blocked
  (a discrete-event simulation, like trio's autojump clock). Computation takes no
  simulated time, and a thousand calls ringing at once each see their own 20 s, not
  20,000 s. Only `SimClock.sleep` moves time: a task blocked on a thread or a socket
  does not hold the clock back, so keep real I/O out of an infinitely fast run.
  Sleeps due within `resolution_s` (0.2 s) of each other wake together, never early;
  On CPython's own event loop idleness is read from the ready queue, exactly and for
  free. uvloop (which importing Rasa installs as the policy) hides that queue, so each
  jump checks every task on the loop: keep tasks per line, not per pending lead, or
  run instant simulations on `asyncio.SelectorEventLoop()` (about 3x faster).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """Wall-clock time: what production uses."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimClock:
    def __init__(self, start: datetime | None = None, speed: float = math.inf, resolution_s: float = 0.2) -> None:
        if start is None:
            start = datetime.now(timezone.utc)
        if start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware (e.g. tzinfo=timezone.utc)")
        if speed < 0 or math.isnan(speed):
            raise ValueError(f"speed must be > 0, or 0/inf for no waiting; got {speed}")
        self.start = start.astimezone(timezone.utc)
        self.speed = speed
        self.instant = speed == 0 or math.isinf(speed)
        # Instant mode wakes every sleep due within this window of the earliest one in one
        # jump (none early): far fewer idle checks when thousands of calls run at once.
        self.resolution_s = resolution_s
        self._offset_s = 0.0  # simulated seconds since start (instant mode) or jumps (advance)
        self._real_start = time.monotonic()
        # Instant mode: pending sleeps as (deadline offset, tie-breaker, future).
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def elapsed_s(self) -> float:
        """Simulated seconds since start."""
        if self.instant:
            return self._offset_s
        return self._offset_s + (time.monotonic() - self._real_start) * self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed_s())

    def advance(self, seconds: float) -> None:
        """Jump forward (e.g. to the next morning) without waiting. In instant mode,
        pending sleeps whose deadline is passed wake on the next jump."""
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        self._offset_s += seconds

    async def sleep(self, seconds: float) -> None:
        if not self.instant:
            await asyncio.sleep(max(0.0, seconds) / self.speed)
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._offset_s + seconds, next(self._order), wake))
        if self._driver is None or self._driver.done() or self._driver.get_loop() is not loop:
            self._driver = loop.create_task(self._drive())
        await wake

    async def _drive(self) -> None:
        """Advance simulated time to the earliest deadline whenever the loop is idle."""
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        idle_checks = 0
        while self._sleepers:
            await asyncio.sleep(0)
            idle_checks = idle_checks + 1 if _is_idle(loop, me) else 0
            if idle_checks < _IDLE_CHECKS.get(type(loop).__name__, _IDLE_CHECKS_WITHOUT_READY_QUEUE):
                continue  # somebody can still run at the current time
            idle_checks = 0
            # A cancelled sleep (its call hung up) must not move time.
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                break
            window_end = max(self._offset_s, self._sleepers[0][0] + self.resolution_s)
            # Wake everyone due in the window, in deadline order; time moves to the last
            # deadline woken, so no sleep ever ends early.
            due: list[asyncio.Future[None]] = []
            while self._sleepers and self._sleepers[0][0] <= window_end:
                deadline, _, wake = heapq.heappop(self._sleepers)
                if not wake.done():
                    self._offset_s = max(self._offset_s, deadline)
                    due.append(wake)
            for wake in due:
                wake.set_result(None)


# CPython's loops keep runnable callbacks in `_ready`: one empty check is exact. Other
# loops (uvloop, which Rasa installs) hide it, so idleness is read from the tasks — none
# may be runnable — for a few loop turns in a row, which lets plain callbacks between
# tasks (gather's, a future's) run first.
_IDLE_CHECKS_WITHOUT_READY_QUEUE = 3
_IDLE_CHECKS = {"_UnixSelectorEventLoop": 1, "_WindowsSelectorEventLoop": 1, "ProactorEventLoop": 1}


def _is_idle(loop: asyncio.AbstractEventLoop, driver: asyncio.Task | None) -> bool:
    ready = getattr(loop, "_ready", None)
    if ready is not None:
        return not ready
    for task in _tasks_of(loop):
        if task is driver or task.done():
            continue
        waiter = getattr(task, "_fut_waiter", None)  # what the task awaits; None = runnable
        if waiter is None or waiter.done():
            return False
    return True


def _tasks_of(loop: asyncio.AbstractEventLoop):
    # asyncio.all_tasks copies and filters the registry on every call; this runs once per
    # time jump, so iterate the registry (a WeakSet, safe to iterate while nothing else
    # runs) directly when it is there (CPython 3.7-3.11).
    registry = getattr(asyncio.tasks, "_all_tasks", None)
    if registry is None:
        return asyncio.all_tasks(loop)
    return (task for task in registry if task.get_loop() is loop)


def run_on(loop_kind: str, coro):
    """Run a coroutine on a fresh "asyncio" (selector) or "uvloop" loop: an instant
    SimClock behaves differently on the two (see _is_idle), so tests and benches try both."""
    import uvloop

    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.SelectorEventLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
