"""Dial-worker health for the console: is anything dialling the running campaigns?

The same record `waihu campaign status` reads (`bot.dialing.liveness.DialWorkers`): the
workers seen in the last few minutes, on the embedded broker or on Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.dialing.liveness import SEEN_WITHIN_S, dial_workers_from_settings


@dataclass(frozen=True)
class WorkerHealth:
    count: int | None  # dial workers seen lately; None: could not tell (Redis down)
    redis_broker: bool

    @property
    def ok(self) -> bool:
        return bool(self.count)

    @property
    def text(self) -> str:
        if self.count is None:
            return "无法确认拨号进程是否在线：消息队列（Redis）未响应"
        if self.count:
            return f"拨号进程：在线 {self.count} 个"
        minutes = f"{SEEN_WITHIN_S / 60:g}"
        how = "请运行 waihu run" + ("，或启动 celery worker 和 celery beat" if self.redis_broker else "")
        return f"未发现拨号进程（最近 {minutes} 分钟），外呼不会开始：{how}"


def dial_worker_health(settings: Any) -> WorkerHealth:
    seen = dial_workers_from_settings(settings).seen(SEEN_WITHIN_S)
    return WorkerHealth(None if seen is None else len(seen), bool(settings.redis_broker))
