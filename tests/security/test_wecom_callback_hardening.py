"""Issue 13, items 7, 11 and 12 on the WeCom callback (the app `waihu wecom serve` runs, and the
route the console includes): a body over 64 KiB is refused before it is read or as soon as a
streamed one passes the cap; `timestamp=²` and a CreateTime past year 9999 are 400s, not
500s; a nonce with CR/LF cannot write a forged log line."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI

from bot.wecom import callback as callback_module
from bot.wecom.callback import MAX_BODY_BYTES, CallbackEndpoint, create_callback_app, loggable
from bot.wecom.crypto import CallbackCrypto

TOKEN, AES_KEY, CORP_ID = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee"
CRYPTO = CallbackCrypto(TOKEN, AES_KEY, CORP_ID)


def endpoint() -> CallbackEndpoint:
    # Every request here is refused before the processor (database, WeCom client) is used.
    processor = SimpleNamespace(clock=lambda: datetime.now(timezone.utc), engine=None)
    return CallbackEndpoint(processor, CRYPTO, wall_clock=time.time)


def standalone_app():
    return create_callback_app(endpoint())


def console_like_app():
    """The console's way: the module-level router on a FastAPI app, its endpoint already built."""
    app = FastAPI()
    app.state.engine = object()
    app.include_router(callback_module.router, prefix="/wecom/callback")
    callback_module._served[id(app.state.engine)] = endpoint()
    return app


def call(app, method: str, params: dict, chunks=(), headers=()) -> tuple[int, bytes, int]:
    """(status, response body, request bytes the app pulled) for one request sent to the ASGI app."""
    pulled, status, body = 0, 0, b""
    iterator = iter(chunks)

    async def receive():
        nonlocal pulled
        try:
            data = next(iterator)
        except StopIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(data)
        return {"type": "http.request", "body": data, "more_body": True}

    async def send(message):
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": "/wecom/callback", "raw_path": b"/wecom/callback", "root_path": "",
             "query_string": urlencode(params).encode(), "headers": [(b"host", b"wecom.test"), *headers],
             "client": ("203.0.113.7", 4000), "server": ("wecom.test", 80)}
    asyncio.run(app(scope, receive, send))
    return status, body, pulled


def fresh_params(**changes) -> dict:
    return {"msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "12345", **changes}


def megabytes(count: int):
    for _ in range(count):
        yield b"<" * (1024 * 1024)


@pytest.mark.parametrize("make_app", [standalone_app, console_like_app], ids=["wecom-serve", "console-route"])
def test_wecom_a_300_mb_post_is_cut_off_at_the_cap(make_app):
    status, _, pulled = call(make_app(), "POST", fresh_params(), megabytes(300))
    assert status == 413 and pulled <= MAX_BODY_BYTES + 1024 * 1024  # stopped within one chunk of the cap


@pytest.mark.parametrize("make_app", [standalone_app, console_like_app], ids=["wecom-serve", "console-route"])
def test_wecom_a_declared_content_length_over_the_cap_is_refused_unread(make_app):
    headers = [(b"content-length", str(300 * 1024 * 1024).encode()), (b"content-type", b"text/xml")]
    status, _, pulled = call(make_app(), "POST", fresh_params(), megabytes(300), headers)
    assert status == 413 and pulled == 0


@pytest.mark.parametrize("timestamp", ["²", "１２３", "1" * 40, "-5", "12.5"])
def test_wecom_odd_timestamps_are_400_not_500(timestamp):
    for method in ("GET", "POST"):
        status, body, _ = call(standalone_app(), method, fresh_params(timestamp=timestamp, echostr="x"))
        assert status == 400 and b"bad_timestamp" in body


def test_wecom_a_create_time_past_year_9999_is_400_not_500():
    timestamp, nonce = str(int(time.time())), "777"
    message = ("<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><CreateTime>99999999999999999999</CreateTime>"
               "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>"
               "<ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[u1]]></UserID>"
               "<ExternalUserID><![CDATA[wm1]]></ExternalUserID></xml>")
    signature, body = CRYPTO.envelope(message, timestamp, nonce)
    status, answer, _ = call(standalone_app(), "POST", {"msg_signature": signature, "timestamp": timestamp,
                                                        "nonce": nonce}, [body.encode()])
    assert status == 400 and b"bad_event" in answer


def test_wecom_a_nonce_with_cr_lf_writes_no_forged_log_line(caplog):
    forged = "1\r\n2026-01-01 00:00:00 INFO bot.wecom.events wecom add of wm12…9999 for invite 1: welcomed"
    with caplog.at_level(logging.INFO, logger="bot.wecom.callback"):
        status, _, _ = call(standalone_app(), "POST", fresh_params(nonce=forged), [b"<xml/>"])
        call(standalone_app(), "POST", fresh_params(nonce="n" * 20, msg_signature="bad\nsig"), [b"<xml/>"])
        call(standalone_app(), "POST", fresh_params(timestamp="1\n2"), [b"<xml/>"])
    assert status == 400
    messages = [record.getMessage() for record in caplog.records if record.name == "bot.wecom.callback"]
    assert len(messages) == 3
    for message in messages:
        assert "\n" not in message and "\r" not in message
    assert "\\r\\n" in messages[0]


def test_wecom_loggable_escapes_and_truncates():
    assert loggable("a\r\nb") == "'a\\r\\nb'"
    assert loggable("x" * 500).endswith("…") and len(loggable("x" * 500)) < 100
