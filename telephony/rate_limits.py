"""Limits shared by every dial worker, kept in Redis: lines (concurrent calls) and CPS.

Both are single Lua scripts, so a check-and-take is atomic across workers. A line is
held with a lease: a worker killed mid-call stops renewing it and the line comes back
after the lease, so a crash never leaks capacity for good.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis

# KEYS[1] zset of holders scored by lease expiry; ARGV: now, limit, holder, lease seconds
_ACQUIRE_LINE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[4], ARGV[3])
  return 1
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[4], ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[4]) + 60)
  return 1
end
return 0
"""

# KEYS[1] hash {tokens, at}; ARGV: now, rate per second, burst. Returns wait seconds (0 = taken).
_TAKE_TOKEN = """
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local rate, burst, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[1])
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


@dataclass
class LineSemaphore:
    client: redis.Redis
    key: str
    limit: int
    lease_s: float = 120.0

    def acquire(self, holder: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return bool(self.client.eval(_ACQUIRE_LINE, 1, self.key, now, self.limit, holder, self.lease_s))

    renew = acquire  # re-acquiring a held line extends its lease

    def release(self, holder: str) -> None:
        self.client.zrem(self.key, holder)

    def in_use(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return int(self.client.zcount(self.key, now, "+inf"))


@dataclass
class TokenBucket:
    client: redis.Redis
    key: str
    rate: float  # tokens per second (calls per second)
    burst: float = 1.0

    def take(self, now: float | None = None) -> float:
        """Take a token if one is there (returns 0), else how long to wait before trying again."""
        now = time.time() if now is None else now
        return float(self.client.eval(_TAKE_TOKEN, 1, self.key, now, self.rate, max(1.0, self.burst)))


# KEYS[1] hash {tokens, at}; ARGV: now, rate, burst. Always takes a token (the balance may go
# negative) and returns how long until that token is due: one call per dial, no retry storm
# when hundreds of dials ask at the same instant.
_RESERVE_TOKEN = """
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local rate, burst, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[1])
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', at)
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 60)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


def reserve_token(client: redis.Redis, key: str, rate: float, burst: float, now: float) -> float:
    """Seconds until the reserved token is due (0: dial now)."""
    return float(client.eval(_RESERVE_TOKEN, 1, key, now, rate, max(1.0, burst)))


class DialLimits:
    """Per campaign: calls per second (a token reserved per dial) and lines (a lease per call
    in progress), shared by every worker through Redis, or held in this process for the
    embedded demo and tests (`DialLimits()`).

    Times are the caller's clock in seconds, so a simulated clock paces in simulated time.
    The planner already keeps attempts in flight within the lines; the lease is the guard
    at the moment of dialling (a duplicate planner, a re-sent attempt), and a worker
    killed mid-call gives its lines back when the lease runs out."""

    def __init__(self, client: redis.Redis | None = None, prefix: str = "waihu", line_lease_s: float = 900.0) -> None:
        self.client = client
        self.prefix = prefix
        self.line_lease_s = line_lease_s
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lines: dict[str, dict[str, float]] = {}  # key → holder → lease expiry

    def reserve_dial(self, campaign: str, cps: float, now: float) -> float:
        """Seconds to wait before this dial may go out."""
        rate = max(cps, 1e-6)
        key = f"{self.prefix}:cps:{campaign}"
        if self.client is not None:
            return reserve_token(self.client, key, rate, 1.0, now)
        with self._lock:
            tokens, at = self._buckets.get(key, (1.0, now))
            if now > at:
                tokens, at = min(1.0, tokens + (now - at) * rate), now
            tokens -= 1
            self._buckets[key] = (tokens, at)
        return 0.0 if tokens >= 0 else -tokens / rate

    def acquire_line(self, campaign: str, limit: int, holder: str, now: float) -> bool:
        key = f"{self.prefix}:lines:{campaign}"
        if self.client is not None:
            return LineSemaphore(self.client, key, limit, self.line_lease_s).acquire(holder, now)
        with self._lock:
            holders = {h: until for h, until in self._lines.get(key, {}).items() if until > now}
            if holder in holders or len(holders) < limit:
                holders[holder] = now + self.line_lease_s
                self._lines[key] = holders
                return True
            self._lines[key] = holders
            return False

    def release_line(self, campaign: str, holder: str) -> None:
        key = f"{self.prefix}:lines:{campaign}"
        if self.client is not None:
            self.client.zrem(key, holder)
            return
        with self._lock:
            self._lines.get(key, {}).pop(holder, None)

    def lines_in_use(self, campaign: str, now: float) -> int:
        key = f"{self.prefix}:lines:{campaign}"
        if self.client is not None:
            return int(self.client.zcount(key, now, "+inf"))
        with self._lock:
            return sum(1 for until in self._lines.get(key, {}).values() if until > now)
