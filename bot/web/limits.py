"""Refuse request bodies over the upload limit before they fill the disk.

A pure ASGI middleware: a declared Content-Length over the limit is answered at once (the
body is never read); a body without one (chunked) is counted as it streams and cut off
when it passes the limit.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Bodies other than uploads (forms, JSON, script files) stay small.
SMALL_BODY_BYTES = 4 * 1024 * 1024


def too_large_message(limit: int) -> str:
    return (
        f"文件太大：上传上限为 {limit / (1024 * 1024):.0f} MB。请把名单拆成几个文件分别上传，"
        "或请管理员调整 WAIHU_WEB_MAX_UPLOAD_MB。"
    )


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing passes it on as a 413 instead of a generic 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, upload_limit: int, upload_paths: tuple[str, ...]) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.upload_paths = upload_paths

    def _limit_for(self, path: str) -> int:
        return self.upload_limit if path.startswith(self.upload_paths) else SMALL_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": too_large_message(limit)}, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
