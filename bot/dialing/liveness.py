"""Which dial workers are alive: each refreshes a short-lived key in Redis every few
seconds; the reconciler treats the calls of a worker whose key has expired as lost at
once, instead of after WAIHU_STUCK_AFTER_S. A killed worker's claimed attempts otherwise
hold their campaign's lines for twenty minutes — booked callbacks wait behind them.

Redis restarted empty loses every key: for as long as Redis has been up less than the
time-to-live, nobody is declared dead. When Redis is down, nobody is either (the
reconciler falls back on WAIHU_STUCK_AFTER_S).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


class WorkerLiveness:
    def __init__(self, client: Any, prefix: str, ttl_s: float = 15.0) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = max(1.0, ttl_s)

    def _key(self, worker: str) -> str:
        return f"{self.prefix}:alive:{worker}"

    def beat(self, worker: str) -> None:
        """This worker is alive for another `ttl_s` (best effort: Redis may be down)."""
        try:
            self.client.set(self._key(worker), 1, px=int(self.ttl_s * 1000))
        except Exception:  # noqa: BLE001
            pass

    def dead(self, workers: Iterable[str]) -> set[str]:
        """Workers whose heartbeat has expired; none when that cannot be known."""
        workers = [w for w in workers if w]
        if not workers:
            return set()
        try:
            if float(self.client.info("server").get("uptime_in_seconds", 0)) < 2 * self.ttl_s:
                return set()  # Redis (re)started lately: missing keys prove nothing yet
            alive = self.client.mget([self._key(w) for w in workers])
        except Exception as exc:  # noqa: BLE001
            log.debug("liveness unknown (%s): falling back on the stuck-after delay", exc)
            return set()
        return {worker for worker, value in zip(workers, alive) if value is None}
