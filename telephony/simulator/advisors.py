"""Simulated human advisors (人工顾问) who take the calls the robot hands off.

A pool of N advisors, each busy for a while after taking a call (the conversation, then
after-call work). A transfer goes to the advisor free soonest: if they can pick up within
the caller's wait, they are reserved at once (two transfers never get the same advisor),
the caller hears ringing until they answer, and they stay busy for the draw of `busy_s`
from that moment; if not, the caller waits the whole wait and nobody comes (NO_ADVISOR).
A caller who hangs up before the advisor answers gives the advisor back.

All waits are on the carrier's clock, and every draw comes from the call id's own random
stream (`call_rng(seed, call id, "advisor")`), so a run is reproducible.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from telephony.carrier import CALL_ENDED, NO_ADVISOR, TransferResult
from telephony.clock import Clock
from telephony.simulator.personas import call_rng

HANDED_OFF = "handed_off"


@dataclass(frozen=True)
class AdvisorPoolConfig:
    advisors: int = 2
    pick_up_s: tuple[float, float] = (2.0, 6.0)  # ringing before a free advisor answers
    # From answering until free for the next call: the conversation, then after-call work.
    busy_s: tuple[float, float] = (120.0, 360.0)
    wrap_up_s: float = 30.0  # the after-call work at the end of busy_s (the callee is gone)

    def __post_init__(self) -> None:
        if self.advisors < 0:
            raise ValueError(f"advisors must be >= 0, got {self.advisors}")
        for name in ("pick_up_s", "busy_s"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range 0 <= low <= high, got {(low, high)}")

    @classmethod
    def with_mean_busy(cls, advisors: int, busy_s: float) -> AdvisorPoolConfig:
        """N advisors, each busy `busy_s` on average (uniformly 0.5×–1.5×) after taking a call."""
        return cls(advisors=advisors, busy_s=(busy_s * 0.5, busy_s * 1.5), wrap_up_s=min(cls.wrap_up_s, busy_s * 0.25))


@dataclass
class Advisor:
    name: str
    free_at: datetime | None = None  # None: never taken a call
    calls: int = 0

    def free_from(self, now: datetime) -> datetime:
        return max(now, self.free_at) if self.free_at else now


@dataclass(frozen=True)
class Handoff:
    """A transfer an advisor took: who, when they answered, how long they talk with the callee."""

    advisor: str
    answered_at: datetime
    talk_s: float


@dataclass
class AdvisorPool:
    config: AdvisorPoolConfig = field(default_factory=AdvisorPoolConfig)
    seed: int | str = 0
    advisors: list[Advisor] = field(init=False)
    # How transfers ended: handed_off, no_advisor, call_ended.
    outcomes: Counter[str] = field(default_factory=Counter, init=False)

    def __post_init__(self) -> None:
        self.advisors = [Advisor(f"顾问{i + 1}") for i in range(self.config.advisors)]

    def free_now(self, now: datetime) -> int:
        return sum(1 for advisor in self.advisors if advisor.free_from(now) <= now)

    async def transfer(
        self, call_id: str, clock: Clock, wait_s: float, still_connected: Callable[[], bool]
    ) -> tuple[TransferResult, Handoff | None]:
        """Wait for an advisor (at most `wait_s`); the result and, when one answered, the hand-off."""
        start = clock.now()
        rng = call_rng(self.seed, call_id, "advisor")
        pick_up_s, busy_s = rng.uniform(*self.config.pick_up_s), rng.uniform(*self.config.busy_s)
        advisor = min(self.advisors, key=lambda a: a.free_from(start), default=None)
        answers_at = advisor.free_from(start) + timedelta(seconds=pick_up_s) if advisor else None
        if advisor is None or answers_at is None or (answers_at - start).total_seconds() > wait_s:
            await self._wait(clock, wait_s, still_connected)
            return self._done(start, clock, TransferResult(False, NO_ADVISOR), still_connected), None
        previous = advisor.free_at
        advisor.free_at = answers_at + timedelta(seconds=busy_s)  # reserved from now on
        await self._wait(clock, (answers_at - start).total_seconds(), still_connected)
        if not still_connected():
            advisor.free_at = max(previous, clock.now()) if previous else clock.now()  # given back
            return self._done(start, clock, TransferResult(False, CALL_ENDED), still_connected), None
        advisor.calls += 1
        talk_s = max(1.0, busy_s - self.config.wrap_up_s)
        result = self._done(start, clock, TransferResult(True, agent=advisor.name), still_connected)
        return result, Handoff(advisor.name, clock.now(), talk_s)

    @staticmethod
    async def _wait(clock: Clock, seconds: float, still_connected: Callable[[], bool]) -> None:
        """Wait on the clock, in steps, so a caller who hangs up ends the wait early."""
        remaining = seconds
        while remaining > 0 and still_connected():
            step = min(remaining, 1.0)
            await clock.sleep(step)
            remaining -= step

    def _done(
        self, start: datetime, clock: Clock, result: TransferResult, still_connected: Callable[[], bool]
    ) -> TransferResult:
        if not result.bridged and not still_connected():
            result = TransferResult(False, CALL_ENDED)
        waited = round((clock.now() - start).total_seconds(), 3)
        result = TransferResult(result.bridged, result.reason, result.agent, waited, result.detail)
        self.outcomes[HANDED_OFF if result.bridged else result.reason] += 1
        return result
