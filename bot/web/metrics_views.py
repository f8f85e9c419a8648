"""/metrics for Prometheus: the dialling figures read from the database at each scrape
(bot.dialing.metrics.DialingCollector: attempts by status — `dialing` is the calls in
flight —, dials in the last minute, attempts cancelled before the dial by reason, missed
callbacks by reason), the depth of the dial queue when the broker is Redis, and this
process's own metrics (prometheus-client's default registry).

No login: Prometheus scrapes it, and it holds counts only (no lead, no number). Keep it
off the public internet, as with any /metrics.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import REGISTRY, Collector

from bot.core.clock import clock_from_settings
from bot.core.settings import get_settings
from bot.dialing.metrics import DialingCollector, QueueCollector, redis_queue_depth, registry_with

router = APIRouter()


def _registry(request: Request):
    """Built once per app, on the first scrape (the engine is the app's)."""
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        settings = get_settings()
        collectors: list[Collector] = [DialingCollector(request.app.state.engine, clock_from_settings(settings).now)]
        if settings.redis_broker:
            import redis

            client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=1)
            collectors.append(QueueCollector(redis_queue_depth(client, settings.queue), None))
        registry = registry_with(*collectors)
        request.app.state.metrics_registry = registry
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    # The exposition format the scraper asks for (Accept), as prometheus-client's own server does.
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    body = encode(_registry(request)) + encode(REGISTRY)
    return Response(body, media_type=content_type)
