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
    def __init__(self, start: datetime | None = None, speed: float = math.inf) -> None:
        if start is None:
            start = datetime.now(timezone.utc)
        if start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware (e.g. tzinfo=timezone.utc)")
        if speed < 0 or math.isnan(speed):
            raise ValueError(f"speed must be > 0, or 0/inf for no waiting; got {speed}")
        self.start = start.astimezone(timezone.utc)
        self.speed = speed
        self.instant = speed == 0 or math.isinf(speed)
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
        while self._sleepers:
            await asyncio.sleep(0)
            if _has_ready_callbacks(loop):
                continue  # somebody can still run at the current time
            # A cancelled sleep (its call hung up) must not move time.
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                break
            deadline = self._sleepers[0][0]
            self._offset_s = max(self._offset_s, deadline)
            # Wake everyone due now, in the order they went to sleep.
            while self._sleepers and self._sleepers[0][0] <= self._offset_s:
                _, _, wake = heapq.heappop(self._sleepers)
                if not wake.done():
                    wake.set_result(None)


def _has_ready_callbacks(loop: asyncio.AbstractEventLoop) -> bool:
    # CPython's event loops keep runnable callbacks in `_ready`. Loops without it (uvloop)
    # fall back to one yield per jump, which is correct for tasks that only await the
    # clock and each other.
    ready = getattr(loop, "_ready", None)
    return bool(ready) if ready is not None else False
