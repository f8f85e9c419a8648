"""Who may do what in the web console, on a live server (SQLite and PostgreSQL): every role is
refused the other roles' pages and actions, unauthenticated requests are refused, sessions
expire, CSRF is required, and no page or API response ever shows an unmasked phone number."""
from __future__ import annotations

import re
import time
from collections import deque

import pytest
from sqlalchemy import select

from bot.campaigns.models import Campaign, CallAttempt, GradeCorrection
from bot.core.db.engine import session_scope
from bot.users.service import set_password
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import (MOBILE, USERS, Browserless, clients, console, seed_graded_calls,  # noqa: F401
                                write_lead_csv)

CSV_UPLOAD = ("files", None)  # marker: this request uploads a small lead pack

# (method, path, owner role(s), comma-separated, body) — {cid} is a campaign id, {pid} a lead pack id, {aid} a call id.
ACTIONS = [
    ("GET", "/ops/packs", "ops", None), ("GET", "/ops/audiences", "ops", None), ("GET", "/ops/campaigns", "ops", None),
    ("GET", "/ops/campaigns/{cid}", "ops", None),
    ("POST", "/ops/audiences", "ops", {"form": {"name": "宝妈-华南", "scene": "宝妈"}}),
    ("POST", "/ops/campaigns/{cid}/pause", "ops", {"form": {}}),
    ("GET", "/api/v1/lead-packs", "ops", None), ("POST", "/api/v1/lead-packs", "ops", CSV_UPLOAD),
    ("GET", "/api/v1/lead-packs/{pid}/rejects.csv", "ops", None),
    ("GET", "/api/v1/audiences", "ops", None), ("POST", "/api/v1/audiences", "ops", {"json": {"name": "养老-华北"}}),
    ("GET", "/api/v1/campaigns", "ops", None), ("GET", "/api/v1/campaigns/{cid}", "ops", None),
    ("POST", "/api/v1/campaigns", "ops", {"json": {"name": "新任务", "packs": ["双十一-车主-名单"]}}),
    ("POST", "/api/v1/campaigns/{cid}/pause", "ops", {"json": {}}),
    ("GET", "/api/v1/campaigns/{cid}/progress", "ops", None),
    ("GET", "/script", "writer", None), ("GET", "/script/lab", "writer", None), ("GET", "/script/publish", "writer", None),
    ("POST", "/script/publish", "writer", {"form": {"variant": "standard"}}),
    ("GET", "/api/v1/script/files", "writer", None), ("GET", "/api/v1/script/file?path=domain/core.yml", "writer", None),
    ("POST", "/api/v1/script/check", "writer", {"json": {"path": "domain/core.yml", "text": "version: '3.1'\n"}}),
    ("PUT", "/api/v1/script/file", "writer", {"json": {"path": "domain/core.yml", "text": "x", "base_version": "stale"}}),
    ("GET", "/api/v1/script/diff?path=domain/core.yml", "writer", None), ("GET", "/api/v1/script/train", "writer", None),
    ("POST", "/api/v1/script/train", "writer", {"json": {}, "refusal_only": True}),
    ("POST", "/api/v1/script/chat", "writer", {"json": {"variant": "standard"}, "refusal_only": True}),
    ("GET", "/api/v1/script/publications", "writer", None),
    ("POST", "/api/v1/script/publications", "writer", {"json": {"variant": "nonexistent"}}),
    ("GET", "/calls", "manager", None), ("GET", "/calls/{aid}", "manager,ops", None), ("GET", "/reports", "manager", None),
    ("POST", "/calls/{aid}/grade", "manager,ops", {"form": {"grade": "B", "reason": "听录音后更正"}}),
    ("PUT", "/api/v1/calls/{aid}/grade", "manager,ops", {"json": {"grade": "A", "reason": "回访确认"}}),
    ("GET", "/wecom", "manager", None), ("GET", "/api/v1/calls", "manager", None),
    ("GET", "/api/v1/calls/{aid}", "manager", None), ("GET", "/api/v1/reports/comparison?campaign_id={cid}", "manager", None),
    ("GET", "/api/v1/wecom/funnel?campaign_id={cid}", "manager", None),
]


@pytest.fixture()
def seeded(console, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=30)
    with session_scope(db) as session:
        from bot.leads.models import LeadPack

        pack_id = session.execute(select(LeadPack.id)).scalars().first()
        attempt_id = session.execute(select(CallAttempt.id).where(CallAttempt.outcome == "answered")).scalars().first()
    return {"cid": campaign_id, "pid": pack_id, "aid": attempt_id}


def send(client: Browserless, method: str, path: str, body, tmp_path, index: int = 0):
    if body is CSV_UPLOAD:
        data = write_lead_csv(tmp_path / f"up{index}.csv", 3, first_number=13600000000 + index * 10).read_bytes()
        return client.post(path, files={"file": ("leads.csv", data, "text/csv")}, data={"pack": f"upload-{index}"})
    body = body or {}
    kwargs = {}
    if "form" in body:  # as a browser posts a form: the token in a hidden field
        return client.http.request(method, path, data={**body["form"], "csrf_token": client.csrf})
    if "json" in body:
        kwargs["json"] = body["json"]
    if method == "GET":
        return client.get(path, headers={"Accept": "application/json"} if path.startswith("/api/") else {})
    return getattr(client, method.lower())(path, **kwargs)


@pytest.mark.parametrize("role", ["ops", "writer", "manager"])
def test_each_role_is_refused_the_other_roles_actions(role, seeded, clients, db, tmp_path):
    client = clients(role)
    refused = 0
    for index, (method, template, owner, body) in enumerate(ACTIONS):
        if role in owner.split(","):
            continue
        path = template.format(**seeded)
        response = send(client, method, path, body, tmp_path, index)
        assert response.status_code == 403, (role, method, path, response.status_code, response.text[:200])
        if path.startswith("/api/"):
            assert "仅限" in response.json()["detail"]
        else:
            assert "没有权限" in response.text and "仅限" in response.text
        refused += 1
    assert refused >= 20
    # Nothing a refused request asked for happened.
    with session_scope(db) as session:
        campaign = session.get(Campaign, seeded["cid"])
        assert campaign.status == "running"
        assert session.execute(select(Campaign.name)).scalars().all() == ["双十一-车主"]
        assert session.execute(select(GradeCorrection.id)).first() is None


@pytest.mark.parametrize("role", ["ops", "writer", "manager", "admin"])
def test_each_role_may_do_its_own_actions(role, seeded, clients, tmp_path):
    client = clients(role)
    for index, (method, template, owner, body) in enumerate(ACTIONS):
        if (role not in owner.split(",") and role != "admin") or (body and body is not CSV_UPLOAD and body.get("refusal_only")):
            continue
        path = template.format(**seeded)
        response = send(client, method, path, body, tmp_path, index)
        assert response.status_code not in (401, 403), (role, method, path, response.status_code, response.text[:300])
        assert response.status_code < 500, (method, path, response.text[:500])


def test_unauthenticated_requests_are_refused(seeded, clients, db, tmp_path):
    anonymous = clients()
    anonymous.refresh_csrf("/login")  # even with a valid anonymous CSRF token
    for index, (method, template, _, body) in enumerate(ACTIONS):
        path = template.format(**seeded)
        response = send(anonymous, method, path, body, tmp_path, index)
        if path.startswith("/api/"):
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["detail"] == "请先登录"
        else:
            assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
    bad_token = anonymous.http.get("/api/v1/campaigns", headers={"Authorization": "Bearer wh_not-a-real-token"})
    assert bad_token.status_code == 401 and "令牌无效" in bad_token.json()["detail"]
    with session_scope(db) as session:
        assert session.get(Campaign, seeded["cid"]).status == "running"


def test_state_changes_need_the_csrf_token_and_this_origin(seeded, clients, db):
    ops = clients("ops")
    cid = seeded["cid"]
    no_token = ops.http.post(f"/api/v1/campaigns/{cid}/pause", headers={"Accept": "application/json"})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
    wrong = ops.http.post(f"/ops/campaigns/{cid}/pause", data={"csrf_token": "forged"})
    assert wrong.status_code == 403 and "安全校验失败" in wrong.text
    other_site = ops.post(f"/api/v1/campaigns/{cid}/pause", headers={"Origin": "http://evil.example"})
    assert other_site.status_code == 403 and "来源" in other_site.json()["detail"]
    with session_scope(db) as session:
        assert session.get(Campaign, cid).status == "running"
    allowed = ops.post(f"/api/v1/campaigns/{cid}/pause")
    assert allowed.status_code == 200 and allowed.json()["status"] == "paused"


def test_login_logout_and_wrong_password(console, clients):
    client = clients()
    client.refresh_csrf("/login")
    wrong = client.http.post("/login", data={"name": USERS["ops"], "password": "nope-nope", "csrf_token": client.csrf})
    assert wrong.status_code == 401 and "用户名或密码不正确" in wrong.text
    no_csrf = client.http.post("/login", data={"name": USERS["ops"], "password": "ops-password-1"})
    assert no_csrf.status_code == 403
    client.login("ops")
    assert client.get("/ops/packs").status_code == 200
    logout = client.http.post("/logout", data={"csrf_token": client.csrf})
    assert logout.status_code == 303
    assert client.get("/ops/packs").status_code == 303


def test_repeated_wrong_passwords_lock_the_name_for_a_while(console, clients):
    client = clients()
    client.refresh_csrf("/login")
    for _ in range(5):
        wrong = client.http.post("/login", data={"name": USERS["writer"], "password": "guess-guess",
                                                 "csrf_token": client.csrf})
        assert wrong.status_code == 401
    right = client.http.post("/login", data={"name": USERS["writer"], "password": "writer-password-1",
                                             "csrf_token": client.csrf})
    assert right.status_code == 429 and "登录失败次数过多" in right.text
    assert clients("ops").get("/ops/packs").status_code == 200  # other names are not affected


def test_open_redirect_after_login_is_refused(console, clients):
    client = clients()
    client.refresh_csrf("/login")
    response = client.http.post("/login", data={"name": USERS["ops"], "password": "ops-password-1",
                                                "csrf_token": client.csrf, "next": "//evil.example/x"})
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_idle_sessions_expire_and_a_new_password_ends_sessions(console, clients, db):
    client = clients("ops")
    assert client.get("/ops/packs").status_code == 200
    with session_scope(db) as session:
        set_password(session, USERS["ops"], "brand-new-password")
    gone = client.get("/ops/packs")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
    login_page = client.get(gone.headers["location"])
    assert "账号信息已变更，请重新登录" in login_page.text

    manager = clients("manager")
    console.app.state.config = console.app.state.config.with_changes(idle_timeout_s=0.5)
    try:
        time.sleep(1.2)
        expired = manager.get("/calls")
        assert expired.status_code == 303
        assert "会话已过期" in manager.get(expired.headers["location"]).text
        api = manager.get("/api/v1/calls", headers={"Accept": "application/json"})
        assert api.status_code == 401
    finally:
        console.app.state.config = console.app.state.config.with_changes(idle_timeout_s=1800)


def test_api_tokens_act_as_their_user_and_need_no_csrf(seeded, clients, db):
    from bot.users.tokens import create_token, revoke_token

    with session_scope(db) as session:
        ops_token = create_token(session, USERS["ops"], "automation", ["campaigns:write"]).token
        manager_token = create_token(session, USERS["manager"], "bi", ["reports:read"]).token
    http = clients().http
    progress = http.get(f"/api/v1/campaigns/{seeded['cid']}/progress", headers={"Authorization": f"Bearer {ops_token}"})
    assert progress.status_code == 200 and progress.json()["dialled"] == 30
    paused = http.post(f"/api/v1/campaigns/{seeded['cid']}/pause", headers={"Authorization": f"Bearer {ops_token}"})
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    refused = http.post(f"/api/v1/campaigns/{seeded['cid']}/resume", headers={"Authorization": f"Bearer {manager_token}"})
    assert refused.status_code == 403
    with session_scope(db) as session:
        revoke_token(session, 1)
    revoked = http.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {ops_token}"})
    assert revoked.status_code == 401


def _links(html: str) -> list[str]:
    return re.findall(r'href="(/[^"#]*)"', html)


def test_no_page_or_response_shows_a_phone_number(seeded, clients, db, tmp_path):
    """Crawl every page an admin can reach (and the JSON behind them): no 11-digit mobile number."""
    with session_scope(db) as session:
        attempt = session.get(CallAttempt, seeded["aid"])
        attempt.grade_reason = "A：客户说加他微信 13712345678"  # a number inside free text
    admin = clients("admin")
    # A real upload with broken rows (their raw rows hold numbers) so the rejects CSV and summary have data.
    upload = admin.post("/api/v1/lead-packs", data={"pack": "带拒收行"},
                        files={"file": ("bad.csv", write_lead_csv(tmp_path / "bad.csv", 4, first_number=13500000000,
                                                                  bad_rows=6).read_bytes(), "text/csv")})
    assert upload.status_code == 200 and upload.json()["rejected_total"] == 6
    bodies = {"upload summary": upload.text}
    seen: set[str] = set()
    queue = deque(["/"])
    extra = ["/api/v1/lead-packs", "/api/v1/campaigns", "/api/v1/calls?limit=500", "/api/v1/audiences",
             f"/api/v1/calls/{seeded['aid']}", f"/api/v1/campaigns/{seeded['cid']}/progress",
             f"/api/v1/reports/comparison?campaign_id={seeded['cid']}", f"/api/v1/wecom/funnel?campaign_id={seeded['cid']}",
             upload.json()["rejects_url"], "/api/v1/script/publications"]
    for path in extra:
        response = admin.get(path, headers={"Accept": "application/json"})
        assert response.status_code == 200, (path, response.text[:200])
        bodies[path] = response.text
    while queue:
        path = queue.popleft()
        if path in seen or path.startswith(("/static/", "/logout", "/api/v1/openapi")):
            continue
        seen.add(path)
        response = admin.get(path)
        assert response.status_code == 200, (path, response.status_code)
        bodies[path] = response.text
        if "text/html" in response.headers.get("content-type", ""):
            queue.extend(link for link in _links(response.text) if link not in seen)
    call_pages = [p for p in bodies if re.fullmatch(r"/calls/\d+", p)]
    assert len(call_pages) >= 10, "the crawl reached the transcripts"
    assert any("139****5678" in bodies[p] for p in call_pages), "the number the callee said shows masked"
    assert "137****5678" in bodies[f"/api/v1/calls/{seeded['aid']}"]
    for where, body in bodies.items():
        found = MOBILE.findall(body)
        assert not found, f"{where} shows unmasked phone numbers: {found[:3]}"
    assert len(seen) >= 25
