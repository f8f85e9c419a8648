"""Issue 13, items 11 and 14 on the console: numbers from URLs are bounded (no 500 with a
traceback for offset=10**30, campaign_id=², an id past BIGINT), and a state-changing request
is authenticated before its body is read (an anonymous multipart upload is refused with its
body unread)."""
from __future__ import annotations

import asyncio

import pytest

from bot.web.app import create_app
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import add_role_users, clients, console, console_config, seed_graded_calls  # noqa: F401

HUGE = str(10 ** 30)


@pytest.fixture()
def seeded(console, db, keyring, tmp_path):
    return seed_graded_calls(db, keyring, tmp_path, leads=6)


@pytest.mark.parametrize("path, status, words", [
    (f"/api/v1/calls?offset={HUGE}", 422, "offset"),
    ("/api/v1/calls?offset=-1", 422, "不能小于 0"),
    ("/api/v1/calls?limit=100000", 422, "不能大于 500"),
    (f"/api/v1/calls?campaign_id={HUGE}", 422, "campaign_id"),
    (f"/api/v1/calls/{HUGE}", 422, "attempt_id"),
    (f"/api/v1/reports/comparison?campaign_id={HUGE}", 422, "campaign_id"),
    (f"/api/v1/wecom/funnel?campaign_id={HUGE}", 422, "campaign_id"),
])
def test_web_api_numbers_out_of_range_are_422(seeded, clients, path, status, words):
    manager = clients("manager")
    response = manager.get(path, headers={"Accept": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.json()["detail"] and "Traceback" not in response.text


@pytest.mark.parametrize("path", ["/reports?campaign_id=²", "/calls?campaign_id=²", "/wecom?campaign_id=٣",
                                  f"/reports?campaign_id={HUGE}", f"/calls?offset={HUGE}", f"/calls/{HUGE}"])
def test_web_pages_with_odd_numbers_answer_400_or_422(seeded, clients, path):
    response = clients("manager").get(path)
    assert response.status_code in (400, 422), (path, response.status_code)
    assert "Traceback" not in response.text and "服务器内部错误" not in response.text
    if "campaign_id" in path:
        assert "不是有效的编号" in response.text


def test_web_ops_ids_and_campaign_sizes_are_bounded(seeded, clients):
    ops = clients("ops")
    for path in (f"/api/v1/campaigns/{HUGE}", f"/api/v1/campaigns/{HUGE}/progress", f"/api/v1/lead-packs/{HUGE}/rejects.csv"):
        assert ops.get(path, headers={"Accept": "application/json"}).status_code == 422, path
    assert ops.post(f"/api/v1/campaigns/{HUGE}/pause").status_code == 422
    big = ops.post("/api/v1/campaigns", json={"name": "x", "packs": ["双十一-车主-名单"], "lines": 10 ** 30})
    assert big.status_code == 422 and "lines" in big.json()["detail"]
    form = ops.http.post("/ops/campaigns", data={"name": "y", "packs": "双十一-车主-名单", "lines": HUGE, "cps": "1",
                                                 "csrf_token": ops.csrf})
    assert form.status_code == 400 and "线路数需在 1 到" in form.text


# ---- item 14: authenticate before the body is read ------------------------------------------------

def _multipart_chunks(total_bytes: int, chunk: int = 256 * 1024):
    head = (b"--x\r\nContent-Disposition: form-data; name=\"pack\"\r\n\r\nanon\r\n"
            b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\r\n")
    yield head
    sent = 0
    while sent < total_bytes:
        yield b"1" * chunk
        sent += chunk
    yield b"\r\n--x--\r\n"


def _call_asgi(app, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks) -> tuple[int, int]:
    """(status, body bytes the app pulled) for one request sent straight to the ASGI app."""
    pulled = 0
    status = 0
    iterator = iter(chunks)

    async def receive():
        nonlocal pulled
        try:
            body = next(iterator)
        except StopIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": True}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 5555),
             "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    return status, pulled


def test_web_an_anonymous_upload_is_refused_before_its_body_is_read(db, database_url, dialogs_copy, tmp_path):
    add_role_users(db)
    app = create_app(console_config(database_url, dialogs_copy.root, tmp_path / "data"), engine=db)
    multipart = [(b"content-type", b"multipart/form-data; boundary=x"), (b"accept", b"application/json")]
    # 1.5 MB streamed (no Content-Length), under the 2 MB upload limit of the test config.
    status, pulled = _call_asgi(app, "POST", "/api/v1/lead-packs", multipart, _multipart_chunks(1_500_000))
    assert status == 401 and pulled == 0
    # A form page too: the anonymous POST is sent to the login page, its body unread.
    status, pulled = _call_asgi(app, "POST", "/ops/audiences", [(b"content-type", b"multipart/form-data; boundary=x")],
                                _multipart_chunks(1_000_000))
    assert status == 303 and pulled == 0
    # A bad bearer token is no better.
    status, pulled = _call_asgi(app, "POST", "/api/v1/lead-packs", multipart + [(b"authorization", b"Bearer wh_nope")],
                                _multipart_chunks(1_000_000))
    assert status == 401 and pulled == 0


def test_web_an_upload_by_a_logged_in_non_ops_user_is_refused_before_its_body_is_read(console, clients):
    writer = clients("writer")
    cookie = "; ".join(f"{k}={v}" for k, v in writer.http.cookies.items())
    headers = [(b"content-type", b"multipart/form-data; boundary=x"), (b"accept", b"application/json"),
               (b"cookie", cookie.encode()), (b"x-csrf-token", writer.csrf.encode())]
    status, pulled = _call_asgi(console.app, "POST", "/api/v1/lead-packs", headers, _multipart_chunks(1_000_000))
    assert status == 403 and pulled == 0
