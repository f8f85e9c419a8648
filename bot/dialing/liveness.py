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
import os
import time
from collections.abc import Iterable
from pathlib import Path
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


# A dial worker counts as present when it was seen this recently (ops' "is anything dialling?").
SEEN_WITHIN_S = 180.0
# How often a worker says it is there (real seconds).
SEEN_EVERY_S = 10.0


class DialWorkers:
    """Which dial workers have been seen lately, for ops (`waihu campaign start/status`,
    the console): each worker records the time it was last seen, every few seconds.

    On a Redis broker, in a sorted set next to the queue (workers on any machine); on the
    embedded broker — whose worker can only be a `waihu run` on this machine — in a file per
    worker under the data folder. `seen()` is None when that cannot be known (Redis down).
    A worker that stops cleanly removes itself at once; a killed one drops out after
    `within_s`."""

    def __init__(self, *, redis_client: Any = None, key: str = "", folder: Path | None = None) -> None:
        if redis_client is None and folder is None:
            raise ValueError("DialWorkers needs a Redis client or a folder")
        self.client = redis_client
        self.key = key
        self.folder = folder

    def beat(self, worker: str, now: float | None = None) -> None:
        """`worker` is there now (best effort: Redis may be down, the disk full)."""
        now = time.time() if now is None else now
        try:
            if self.client is not None:
                self.client.zadd(self.key, {worker: now})
            else:
                assert self.folder is not None
                self.folder.mkdir(parents=True, exist_ok=True)
                path = self.folder / _file_name(worker)
                path.touch()
                os.utime(path, (now, now))
        except Exception as exc:  # noqa: BLE001
            log.debug("could not record dial worker %s as seen (%s)", worker, exc)

    def gone(self, worker: str) -> None:
        """`worker` stopped cleanly: no longer counted."""
        try:
            if self.client is not None:
                self.client.zrem(self.key, worker)
            else:
                assert self.folder is not None
                (self.folder / _file_name(worker)).unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001
            log.debug("could not remove dial worker %s (%s)", worker, exc)

    def seen(self, within_s: float = SEEN_WITHIN_S, now: float | None = None) -> list[str] | None:
        """Workers seen in the last `within_s` seconds; None when unknown."""
        now = time.time() if now is None else now
        since = now - within_s
        if self.client is not None:
            try:
                self.client.zremrangebyscore(self.key, "-inf", now - 86400)  # forget workers gone a day
                names = self.client.zrangebyscore(self.key, since, "+inf")
            except Exception as exc:  # noqa: BLE001
                log.debug("dial workers unknown (%s)", exc)
                return None
            return sorted(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        assert self.folder is not None
        if not self.folder.is_dir():
            return []
        seen = []
        for path in self.folder.iterdir():
            try:
                if path.stat().st_mtime >= since:
                    seen.append(path.name.replace("%3A", ":"))
            except FileNotFoundError:
                continue
        return sorted(seen)


def _file_name(worker: str) -> str:
    return worker.replace("/", "_").replace(":", "%3A")


def dial_workers_from_settings(settings: Any = None) -> DialWorkers:
    """Where this installation's dial workers say they are there (see DialWorkers); the
    settings of the environment unless given (the console has its own)."""
    from bot.core.settings import get_settings

    settings = settings or get_settings()
    if settings.redis_broker:
        import redis

        client = redis.Redis.from_url(settings.broker_url or "", socket_timeout=2, socket_connect_timeout=2)
        return DialWorkers(redis_client=client, key=f"waihu:{settings.queue}:dial_workers")
    return DialWorkers(folder=settings.data_dir / "dial_workers" / settings.queue)
