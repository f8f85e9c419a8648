"""Lines and CPS limits shared through the real Redis."""
from __future__ import annotations

import threading
import uuid

import pytest
import redis

from telephony.rate_limits import LineSemaphore, TokenBucket
from tests.conftest import REDIS_URL


@pytest.fixture()
def client():
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        connection.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    return connection


def test_lines_never_exceed_the_limit_across_threads(client) -> None:
    lines = LineSemaphore(client, f"test:lines:{uuid.uuid4().hex}", limit=5)
    granted: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        holder = f"call-{index}"
        if lines.acquire(holder):
            with lock:
                granted.append(holder)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 5
    assert lines.in_use() == 5
    lines.release(granted[0])
    assert lines.acquire("late-call")
    assert not lines.acquire("one-too-many")


def test_a_dead_workers_line_comes_back_after_its_lease(client) -> None:
    lines = LineSemaphore(client, f"test:lines:{uuid.uuid4().hex}", limit=1, lease_s=30)
    assert lines.acquire("crashed-call", now=1000.0)
    assert not lines.acquire("next-call", now=1020.0)
    assert lines.acquire("crashed-call", now=1020.0)  # renewing is allowed while held
    assert lines.acquire("next-call", now=1051.0)  # lease ran out (renewed at 1020 → 1050)


def test_token_bucket_paces_calls_per_second(client) -> None:
    bucket = TokenBucket(client, f"test:cps:{uuid.uuid4().hex}", rate=2.0, burst=2)
    now = 5000.0
    assert bucket.take(now) == 0 and bucket.take(now) == 0  # the burst
    wait = bucket.take(now)
    assert wait == pytest.approx(0.5, abs=0.01)  # one more token needs half a second
    assert bucket.take(now + 0.5) == 0
    # over 10 s at most 2/s (+ burst) are granted
    granted = sum(1 for i in range(200) if bucket.take(now + 1 + i * 0.05) == 0)
    assert 19 <= granted <= 22


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in_process"])
def test_dial_limits_reserve_one_token_per_dial_and_lease_lines(client, shared) -> None:
    """Many dials asking at the same instant each get their own turn (no retry storm), and
    the campaign's lines are never exceeded; both backings behave the same."""
    from telephony.rate_limits import DialLimits

    limits = DialLimits(client if shared else None, prefix=f"test:{uuid.uuid4().hex}", line_lease_s=60)
    waits = [limits.reserve_dial("c1", cps=4.0, now=100.0) for _ in range(9)]
    assert waits == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    assert limits.reserve_dial("c2", cps=4.0, now=100.0) == 0  # per campaign
    assert limits.reserve_dial("c1", cps=4.0, now=110.0) == 0  # refilled (one token of burst)
    assert limits.reserve_dial("c1", cps=4.0, now=110.0) == pytest.approx(0.25)

    granted = [limits.acquire_line("c1", 3, f"call-{i}", now=100.0) for i in range(5)]
    assert granted == [True, True, True, False, False] and limits.lines_in_use("c1", 100.0) == 3
    limits.release_line("c1", "call-0")
    assert limits.acquire_line("c1", 3, "call-3", now=101.0)
    assert not limits.acquire_line("c1", 3, "call-4", now=101.0)
    assert limits.acquire_line("c1", 3, "call-4", now=170.0)  # the others' leases ran out
