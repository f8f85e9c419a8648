"""The WeCom callback endpoint (接收事件服务器 URL): GET verifies the URL, POST receives events.

Each request is checked before anything is done with it, and every rejection is logged
(untrusted values as `repr()`, cut to a few dozen characters: a nonce with CR/LF cannot
forge a log line):
- `timestamp`: ASCII digits only (at most 12), within `max_skew_s` of our clock (default
  300 s): an old request is a replay; malformed parameters are a 400;
- the body: a Content-Length over `MAX_BODY_BYTES` (64 KiB) is refused before reading, and
  the body is read as a stream that stops at the cap (a 300 MB POST is never held);
- `msg_signature` over (token, timestamp, nonce, Encrypt), compared in constant time;
- AES decryption and the receiveid (our CorpID), per WeCom's WXBizMsgCrypt scheme;
- POST only: the nonce must be new (stored with the event, same transaction).

Accepted events are stored, answered with "success" at once (WeCom wants an answer within
5 s and retries otherwise), and processed right after the response (welcome within 20 s,
tags) by bot.wecom.events.EventProcessor.

The web console includes `router` at /wecom/callback; `callback_routes()` gives plain
Starlette routes for any other app; `create_callback_app()` / `waihu wecom serve` runs it alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import cast

from fastapi import APIRouter
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.wecom.client import WeComClient
from bot.wecom.config import WeComSettings, wecom_settings
from bot.wecom.crypto import CallbackCrypto, CallbackRejected, encrypted_field
from bot.wecom.events import EventProcessor, parse_event, store_callback

log = logging.getLogger(__name__)

CALLBACK_PATH = "/wecom/callback"
MAX_BODY_BYTES = 64 * 1024  # WeCom's events are a few hundred bytes
MAX_TIMESTAMP_DIGITS = 12
MAX_NONCE_CHARS = 64
LOGGED_CHARS = 80


def loggable(value: object, limit: int = LOGGED_CHARS) -> str:
    """An untrusted value for a log line: cut to `limit` characters and shown as repr(), so CR,
    LF and other control characters appear escaped and cannot start a forged line."""
    text = value if isinstance(value, str) else str(value)
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


class BodyTooLarge(CallbackRejected):
    def __init__(self, detail: str) -> None:
        super().__init__("too_large", detail, status_code=413)


async def read_capped_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, at most `limit` bytes: a declared Content-Length over it is refused
    before anything is read, and a streamed (chunked) body is cut off as soon as it passes it."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()) or len(declared) > 18:
            raise CallbackRejected("bad_length", "Content-Length is not a number", status_code=400)
        if int(declared) > limit:
            raise BodyTooLarge(f"Content-Length {int(declared)} > {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class CallbackEndpoint:
    def __init__(
        self,
        processor: EventProcessor,
        crypto: CallbackCrypto,
        *,
        max_skew_s: float = 300.0,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.processor, self.crypto = processor, crypto
        # one clock for the time window and the welcome's 20 s: the processor's (real time,
        # or the demo's simulated time)
        self.max_skew_s = max_skew_s
        self.wall_clock = wall_clock or (lambda: processor.clock().timestamp())
        # (reason → count) of rejected requests, and handling times of accepted ones (ms)
        self.rejected: dict[str, int] = {}
        self.handled_ms: list[float] = []

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            if request.method == "GET":
                return PlainTextResponse(self._verify_url(request))
            return await self._receive(request, started)
        except CallbackRejected as exc:
            self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
            client = request.client.host if request.client else "?"
            log.warning(
                "wecom callback rejected (%s) from %s: %s; timestamp=%s nonce=%s",
                exc.reason,
                client,
                loggable(exc.detail, 200),
                loggable(request.query_params.get("timestamp", "-")),
                loggable(request.query_params.get("nonce", "-")),
            )
            answer = {400: "bad request", 413: "request body too large"}.get(exc.status_code, "forbidden")
            headers = {"Connection": "close"} if exc.status_code == 413 else None
            return PlainTextResponse(
                f"{answer}: {exc.reason}" if exc.status_code != 403 else answer,
                status_code=exc.status_code,
                headers=headers,
            )

    def _checked_params(self, request: Request) -> tuple[str, str, str]:
        params = request.query_params
        signature, timestamp, nonce = (
            params.get("msg_signature", ""),
            params.get("timestamp", ""),
            params.get("nonce", ""),
        )
        if not (signature and timestamp and nonce):
            raise CallbackRejected(
                "missing_parameters", "msg_signature, timestamp and nonce are required", status_code=400
            )
        # isdigit() alone says yes to "²" (int() then raises): ASCII digits, bounded length.
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
            raise CallbackRejected(
                "bad_timestamp", f"timestamp must be 1–{MAX_TIMESTAMP_DIGITS} ASCII digits", status_code=400
            )
        if len(nonce) > MAX_NONCE_CHARS or not nonce.isprintable():
            raise CallbackRejected(
                "bad_nonce", f"nonce must be at most {MAX_NONCE_CHARS} printable characters", status_code=400
            )
        if len(signature) > 64:
            raise CallbackRejected("bad_signature", "msg_signature longer than 64 characters", status_code=400)
        skew = abs(self.wall_clock() - int(timestamp))
        if skew > self.max_skew_s:
            raise CallbackRejected("stale_timestamp", f"{skew:.0f} s away from our clock (> {self.max_skew_s:.0f} s)")
        return signature, timestamp, nonce

    def _verify_url(self, request: Request) -> str:
        signature, timestamp, nonce = self._checked_params(request)
        echo = request.query_params.get("echostr", "")
        if not echo:
            raise CallbackRejected("missing_parameters", "echostr is required")
        plain = self.crypto.verify_and_decrypt(signature, timestamp, nonce, echo)
        log.info("wecom callback URL verified")
        return plain

    async def _receive(self, request: Request, started: float) -> Response:
        signature, timestamp, nonce = self._checked_params(request)
        body = await read_capped_body(request, MAX_BODY_BYTES)
        message = self.crypto.verify_and_decrypt(signature, timestamp, nonce, encrypted_field(body))
        try:
            event = parse_event(message)
        except (ValueError, OverflowError, OSError) as exc:  # e.g. a CreateTime past year 9999
            raise CallbackRejected("bad_event", f"event fields out of range: {exc}", status_code=400) from None
        if event is None:
            log.info("wecom callback: not a change_external_contact event; ignored")
            return PlainTextResponse("success")
        stored = await run_in_threadpool(
            store_callback,
            self.processor.engine,
            event,
            nonce=nonce,
            timestamp=int(timestamp),
            now=utc_now(),
            max_skew_s=self.max_skew_s,
        )
        if stored.kind == "replay":
            raise CallbackRejected("replayed_nonce", f"nonce {loggable(nonce)} was already used")
        self.handled_ms.append((time.perf_counter() - started) * 1000)
        if stored.kind == "duplicate":
            log.info("wecom callback: event %s delivered again; already have it", stored.event_id)
            return PlainTextResponse("success")
        event_id = cast(int, stored.event_id)  # a "new" event is stored with its id
        return PlainTextResponse("success", background=BackgroundTask(self._process, event_id))

    async def _process(self, event_id: int) -> None:
        try:
            await self.processor.process(event_id)
        except Exception:  # noqa: BLE001  (stays "received"; the next delivery pass picks it up)
            log.exception("wecom event %s: processing failed; it will be retried by the next delivery pass", event_id)


# For the web console (`waihu serve`): `app.include_router(router, prefix="/wecom/callback")`.
# Built from WAIHU_WECOM_* and the app's engine (app.state.engine) on the first callback;
# 503 while WeCom is not configured.
router = APIRouter()
_served: dict[int, CallbackEndpoint] = {}


@router.api_route("", methods=["GET", "POST"], include_in_schema=False)
async def wecom_callback(request: Request) -> Response:
    engine = getattr(request.app.state, "engine", None)
    key = id(engine)
    if key not in _served:
        try:
            if engine is None:
                from bot.core.db.engine import open_database

                engine = open_database()
            _served[key] = endpoint_for(engine, wecom_settings())
        except UserError as exc:
            log.warning("wecom callback called but not configured: %s", exc)
            return PlainTextResponse("WeCom callback not configured", status_code=503)
    return await _served[key].handle(request)


def callback_routes(endpoint: CallbackEndpoint, path: str = CALLBACK_PATH) -> list[Route]:
    return [Route(path, endpoint.handle, methods=["GET", "POST"], name="wecom_callback")]


def create_callback_app(endpoint: CallbackEndpoint, path: str = CALLBACK_PATH) -> Starlette:
    """The callback alone (`waihu wecom serve`): any request body over MAX_BODY_BYTES is refused
    before it is read, on every path (`CappedBodies`), and the route reads at most that much."""
    app = Starlette(routes=callback_routes(endpoint, path))
    app.state.wecom_callback = endpoint
    app.add_middleware(CappedBodies, limit=MAX_BODY_BYTES)
    return app


def uvicorn_limits() -> dict:
    """Server options for the callback alone: WeCom sends a few requests a second, each small."""
    return {
        "limit_concurrency": 200,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 * 1024,
        "backlog": 256,
    }


class CappedBodies:
    """Pure ASGI: a request declaring a Content-Length over `limit` gets 413 without its body
    being read; a streamed body is cut off once it passes `limit` (the route sees the error)."""

    def __init__(self, app, *, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 18 or int(declared) > self.limit):
            status = 413 if declared.isdigit() else 400
            response = PlainTextResponse(
                "request body too large" if status == 413 else "bad Content-Length",
                status_code=status,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def capped_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(f"more than {self.limit} bytes")
            return message

        await self.app(scope, capped_receive, send)


def endpoint_for(
    engine: Engine,
    settings: WeComSettings,
    *,
    state_key: bytes | None = None,
    client: WeComClient | None = None,
    **processor_options,
) -> CallbackEndpoint:
    settings.require_callback()
    if state_key is None:
        from bot.wecom.state import state_key_from_settings

        state_key = state_key_from_settings()
    processor = EventProcessor(engine, client or WeComClient(settings), state_key, **processor_options)
    crypto = CallbackCrypto(settings.token, settings.encoding_aes_key, settings.corp_id)
    return CallbackEndpoint(processor, crypto, max_skew_s=settings.callback_max_skew_s)


def callback_endpoint_from_settings(engine: Engine | None = None) -> CallbackEndpoint:
    """The endpoint from WAIHU_WECOM_* for another app: `app.router.routes.extend(callback_routes(
    callback_endpoint_from_settings(engine)))` (UserError when WeCom is not configured)."""
    if engine is None:
        from bot.core.db.engine import open_database

        engine = open_database()
    return endpoint_for(engine, wecom_settings())
