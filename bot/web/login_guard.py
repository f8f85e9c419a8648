"""Password guessing and login floods: who may try a password now, and how many hashes run at once.

Every login attempt is *reserved* before its password is hashed, in one step under a lock:
the reservation counts as a failure for the name and for the client until the hash says
otherwise. So 60 wrong passwords sent at once for one name evaluate at most
`max_failures_per_name` of them (checking first and recording after the hash let 41
through), and the right password is then refused too until the window has passed.

Limits (defaults in `LoginLimits`, per server process):
- per name: `max_failures_per_name` failures in `window_s` lock the name; at most
  `max_hashes_per_name` of its attempts are hashed at the same time;
- per client (IP address as the server sees it): `max_failures_per_client` failures in the
  window, over all names, lock the client, so one client cannot lock every name; at most
  `max_hashes_per_client` of its attempts are hashed at the same time;
- in total: at most `max_hashes_total` password hashes at once (scrypt takes 32 MiB each);
  up to `max_waiting` more wait at most `max_wait_s` for a slot, others are refused at once.
- memory: at most `max_tracked` names and as many clients are remembered (least recently
  active forgotten first); an entry is dropped once its failures are older than the window.

Names longer than `bot.users.service.MAX_NAME_CHARS` are refused by the caller before any of this.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


@dataclass(frozen=True)
class LoginLimits:
    window_s: float = 15 * 60
    max_failures_per_name: int = 5
    max_failures_per_client: int = 30
    max_hashes_per_name: int = 2
    max_hashes_per_client: int = 4
    max_hashes_total: int = 4
    max_waiting: int = 32
    max_wait_s: float = 10.0
    max_tracked: int = 10_000


class LoginRefused(Exception):
    """Refused without hashing: `status` 429 (too many tries) or 503 (server busy)."""

    def __init__(self, status: int, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = max(1, round(retry_after_s))


@dataclass
class _Track:
    failures: deque = field(default_factory=deque)  # monotonic times of failures (and reservations)
    in_flight: int = 0


class _Table:
    """Tracks by key, least recently active first, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tracks: OrderedDict[str, _Track] = OrderedDict()

    def get(self, key: str, now: float, window_s: float) -> _Track:
        track = self.tracks.get(key)
        if track is None:
            self._bound(now, window_s, room_for=1)
            track = self.tracks[key] = _Track()
        else:
            self.tracks.move_to_end(key)
        _expire(track, now, window_s)
        return track

    def peek(self, key: str) -> _Track | None:
        return self.tracks.get(key)

    def drop_if_idle(self, key: str) -> None:
        track = self.tracks.get(key)
        if track is not None and not track.failures and not track.in_flight:
            del self.tracks[key]

    def _bound(self, now: float, window_s: float, room_for: int) -> None:
        # Expired entries sit at the front (least recently active): drop them up to the first
        # live one (each entry is dropped once: amortised constant time per insert).
        while self.tracks:
            key, track = next(iter(self.tracks.items()))
            _expire(track, now, window_s)
            if track.failures or track.in_flight:
                break
            del self.tracks[key]
        if len(self.tracks) + room_for <= self.limit:
            return
        for key in list(self.tracks):
            if len(self.tracks) + room_for <= self.limit:
                break
            if not self.tracks[key].in_flight:  # an attempt being hashed keeps its entry
                del self.tracks[key]


def _expire(track: _Track, now: float, window_s: float) -> None:
    while track.failures and now - track.failures[0] > window_s:
        track.failures.popleft()


class LoginAttempt:
    """A reserved attempt: say how it ended exactly once (`succeeded`, `failed` or `released`)."""

    def __init__(self, guard: LoginGuard, name: str, client: str, stamp: float) -> None:
        self._guard, self.name, self.client, self._stamp = guard, name, client, stamp
        self._open = True

    def succeeded(self) -> None:
        self._finish(keep_failure=False, clear_name=True)

    def failed(self) -> None:
        self._finish(keep_failure=True, clear_name=False)

    def released(self) -> None:
        """Not evaluated (no hash slot): it counts for nothing."""
        self._finish(keep_failure=False, clear_name=False)

    def _finish(self, *, keep_failure: bool, clear_name: bool) -> None:
        if self._open:
            self._open = False
            self._guard._finish(self, keep_failure=keep_failure, clear_name=clear_name)


class LoginGuard:
    def __init__(self, limits: LoginLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or LoginLimits()
        self.clock = clock
        self._lock = threading.Lock()
        self._names = _Table(self.limits.max_tracked)
        self._clients = _Table(self.limits.max_tracked)
        self._hash_slots = threading.BoundedSemaphore(self.limits.max_hashes_total)
        self._waiting = 0
        # Observed by the tests: the most hashes that ever ran at once.
        self.running_hashes = 0
        self.peak_hashes = 0

    # ---- reservations ----------------------------------------------------------------------

    def reserve(self, name: str, client: str) -> LoginAttempt:
        """Reserve one attempt for `name` from `client`, or raise LoginRefused (nothing recorded)."""
        limits = self.limits
        with self._lock:
            now = self.clock()
            client_track = self._clients.get(client, now, limits.window_s)
            name_track = self._names.get(name, now, limits.window_s)
            try:
                if len(client_track.failures) >= limits.max_failures_per_client:
                    wait = limits.window_s - (now - client_track.failures[0])
                    raise LoginRefused(
                        429,
                        f"此网络地址登录失败次数过多，请约 {max(1, round(wait / 60))} 分钟后再试，或联系管理员",
                        wait,
                    )
                if len(name_track.failures) >= limits.max_failures_per_name:
                    wait = limits.window_s - (now - name_track.failures[0])
                    raise LoginRefused(
                        429, f"登录失败次数过多，请约 {max(1, round(wait / 60))} 分钟后再试，或联系管理员重置密码", wait
                    )
                if (
                    name_track.in_flight >= limits.max_hashes_per_name
                    or client_track.in_flight >= limits.max_hashes_per_client
                ):
                    raise LoginRefused(429, "同时进行的登录太多，请稍后再试", 1)
            except LoginRefused:
                self._names.drop_if_idle(name)
                self._clients.drop_if_idle(client)
                raise
            # Counted as a failure until the hash says otherwise: concurrent tries see it at once.
            name_track.failures.append(now)
            client_track.failures.append(now)
            name_track.in_flight += 1
            client_track.in_flight += 1
            return LoginAttempt(self, name, client, now)

    def _finish(self, attempt: LoginAttempt, *, keep_failure: bool, clear_name: bool) -> None:
        with self._lock:
            for table, key in ((self._names, attempt.name), (self._clients, attempt.client)):
                track = table.peek(key)
                if track is None:
                    continue
                track.in_flight -= 1
                if not keep_failure:
                    try:
                        track.failures.remove(attempt._stamp)
                    except ValueError:
                        pass
                if clear_name and table is self._names:
                    track.failures.clear()
                table.drop_if_idle(key)

    def tracked(self) -> tuple[int, int]:
        """(names, clients) currently remembered."""
        with self._lock:
            return len(self._names.tracks), len(self._clients.tracks)

    # ---- bounded hashing -------------------------------------------------------------------

    async def hash_bounded(self, function: Callable[..., T], *args) -> T:
        """Run `function(*args)` (a password check) in a worker thread, at most
        `max_hashes_total` at once; waits (without holding a thread) up to `max_wait_s`."""
        if not self._hash_slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.limits.max_waiting:
                    raise LoginRefused(503, "登录请求过多，服务器繁忙，请稍后再试", 5)
                self._waiting += 1
            try:
                deadline = self.clock() + self.limits.max_wait_s
                while not self._hash_slots.acquire(blocking=False):
                    if self.clock() > deadline:
                        raise LoginRefused(503, "登录请求过多，服务器繁忙，请稍后再试", 5)
                    await asyncio.sleep(0.02)
            finally:
                with self._lock:
                    self._waiting -= 1
        try:
            with self._lock:
                self.running_hashes += 1
                self.peak_hashes = max(self.peak_hashes, self.running_hashes)
            return await run_in_threadpool(function, *args)
        finally:
            with self._lock:
                self.running_hashes -= 1
            self._hash_slots.release()
