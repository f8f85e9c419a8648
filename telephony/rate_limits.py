"""Limits shared by every dial worker, kept in Redis: lines (concurrent calls) and CPS.

Both are single Lua scripts, so a check-and-take is atomic across workers. A line is
held with a lease: a worker killed mid-call stops renewing it and the line comes back
after the lease, so a crash never leaks capacity for good.
"""
from __future__ import annotations

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
