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
