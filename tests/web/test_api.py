"""The JSON API for automation, on a live server against SQLite and PostgreSQL: an API token
uploads a lead pack, creates and starts a campaign and fetches its report; the OpenAPI schema
describes it; every page renders quickly."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from sqlalchemy import select

from bot.campaigns.models import Campaign
from bot.core.db.engine import session_scope
from bot.core.settings import PROJECT_ROOT
from bot.users.tokens import create_token
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import USERS, clients, console, free_port, seed_graded_calls, write_lead_csv  # noqa: F401


SCOPES = {"ops": ["leads:write", "campaigns:write"], "manager": ["reports:read"]}


def token_client(console, db, role: str) -> httpx.Client:
    with session_scope(db) as session:
        token = create_token(session, USERS[role], f"{role}-automation", SCOPES[role]).token
    return httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_automation_uploads_a_pack_starts_a_campaign_and_fetches_the_report(console, db, keyring, tmp_path):
    ops = token_client(console, db, "ops")
    manager = token_client(console, db, "manager")
    path = write_lead_csv(tmp_path / "nightly.csv", 40, first_number=13900000000, bad_rows=2)
    uploaded = ops.post("/api/v1/lead-packs", data={"pack": "nightly-2026-11-24", "audience": "车主-华东"},
                        files={"file": ("nightly.csv", path.read_bytes(), "text/csv")})
    assert uploaded.status_code == 200, uploaded.text
    summary = uploaded.json()
    assert (summary["accepted"], summary["rejected_total"]) == (40, 2)
    rejects = ops.get(summary["rejects_url"])
    assert rejects.status_code == 200 and rejects.headers["content-type"].startswith("text/csv")
    assert rejects.content.startswith(b"\xef\xbb\xbf") and rejects.text.count("\n") == 3  # BOM for Excel, header + 2

    again = ops.post("/api/v1/lead-packs", data={"pack": "nightly-again"},
                     files={"file": ("nightly.csv", path.read_bytes(), "text/csv")})
    assert again.status_code == 200 and again.json()["already_uploaded"]

    created = ops.post("/api/v1/campaigns", json={
        "name": "夜间自动任务", "packs": ["nightly-2026-11-24"], "lines": 5, "cps": 1,
        "variants": [{"name": "standard"}, {"name": "benefit_first", "weight": 2}],
        "time_slots": [{"name": "上午", "windows": ["09:30-12:00"]}], "incentive": "一份免费的驾乘意外险"})
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["status"] == "draft" and campaign["created_by"] == USERS["ops"]
    started = ops.post(f"/api/v1/campaigns/{campaign['id']}/start")
    assert started.status_code == 200 and started.json()["status"] == "running"
    twice = ops.post(f"/api/v1/campaigns/{campaign['id']}/start")
    assert twice.status_code == 409 and "不能启动" in twice.json()["detail"]
    progress = ops.get(f"/api/v1/campaigns/{campaign['id']}/progress").json()
    assert (progress["leads"], progress["dialled"], progress["status"]) == (40, 0, "running")

    report = manager.get("/api/v1/reports/comparison", params={"campaign_id": campaign["id"]})
    assert report.status_code == 200
    body = report.json()
    if body["available"]:
        assert body["report"]["campaign"]["name"] == "夜间自动任务"
        assert {f["factor"] for f in body["report"]["factors"]} == {"script"}
    else:
        assert body["message"] == "暂无实验数据"
    with session_scope(db) as session:
        assert session.execute(select(Campaign.status)).scalar_one() == "running"


def test_report_of_a_dialled_campaign_with_filters(console, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=80)
    manager = token_client(console, db, "manager")
    full = manager.get("/api/v1/reports/comparison", params={"campaign_id": campaign_id}).json()
    if not full["available"]:
        assert full["message"] == "暂无实验数据"
        return
    report = full["report"]
    assert [f["factor"] for f in report["factors"]] == ["script", "time_slot"]
    arms = report["factors"][0]["overall"]["arms"]
    assert sum(a["leads"] for a in arms) == 80 and "srm" in report["factors"][0]["overall"]
    assert report["factors"][0]["daily"], "lift over time has points"
    only_script = manager.get("/api/v1/reports/comparison", params={"campaign_id": campaign_id, "factor": "script",
                                                                     "audience": "车主-华东", "since": "2026-11-18",
                                                                     "until": "2026-11-20"}).json()
    assert only_script["available"] and [f["factor"] for f in only_script["report"]["factors"]] == ["script"]
    assert only_script["report"]["overview"]["leads"] < 80
    wrong = manager.get("/api/v1/reports/comparison", params={"campaign_id": campaign_id, "factor": "incentive"}).json()
    assert not wrong["available"] and "incentive" in wrong["hint"]
    calls = manager.get("/api/v1/calls", params={"campaign_id": campaign_id, "grade": "A"}).json()
    assert calls["total"] > 0 and all(c["grade"] == "A" and "****" in c["phone"] for c in calls["calls"])


def test_the_openapi_schema_describes_the_api(console):
    schema = httpx.get(f"{console.url}/api/v1/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/v1/lead-packs", "/api/v1/campaigns", "/api/v1/campaigns/{campaign_id}/{action}",
                 "/api/v1/campaigns/{campaign_id}/progress", "/api/v1/reports/comparison", "/api/v1/calls",
                 "/api/v1/script/file", "/api/v1/script/train", "/api/v1/script/chat", "/api/v1/wecom/funnel"):
        assert path in paths, path
    assert "multipart/form-data" in paths["/api/v1/lead-packs"]["post"]["requestBody"]["content"]
    assert not any(p.startswith(("/ops", "/script", "/calls", "/login")) for p in paths), "pages stay out of the schema"
    assert "Bearer" in schema["info"]["description"]


def test_pages_render_with_seeded_calls(console, clients, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=200)
    pages = {"ops": ["/ops/packs", "/ops/audiences", "/ops/campaigns", f"/ops/campaigns/{campaign_id}"],
             "writer": ["/script", "/script?path=data/rules.yml", "/script/lab", "/script/publish"],
             "manager": ["/calls", "/calls/1", f"/reports?campaign_id={campaign_id}", "/wecom"]}
    for role, paths in pages.items():
        client = clients(role)
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)


def test_waihu_serve_runs_the_console(tmp_path):
    """`waihu serve` as a real process on a fresh SQLite database: migrates, serves pages and the schema."""
    port = free_port()
    env = {**os.environ, "WAIHU_DATA_DIR": str(tmp_path), "WAIHU_SECRET_KEY": "serve-test-secret-key-0123456789",
           "WAIHU_DATABASE_URL": f"sqlite:///{tmp_path / 'console.db'}"}
    env.pop("WAIHU_WEB_SESSION_SECRET", None)
    process = subprocess.Popen([sys.executable, "-c", "from bot.cli.app import main; main()", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(PROJECT_ROOT))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                login = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "waihu serve did not start"
                time.sleep(0.3)
        assert login.status_code == 200 and "登录" in login.text
        assert httpx.get(f"http://127.0.0.1:{port}/ops/packs").status_code == 303
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json").json()["info"]["title"].startswith("waihu")
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert "no console users yet" in output and "waihu users add NAME --role admin" in output


def test_a_campaign_can_test_incentives_welcomes_and_hold_out_leads(console, clients, db, keyring, tmp_path):
    ops = clients("ops")
    path = write_lead_csv(tmp_path / "pack.csv", 10, first_number=13700000000)
    ops.post("/api/v1/lead-packs", data={"pack": "利益点测试"}, files={"file": ("pack.csv", path.read_bytes(), "text/csv")})
    created = ops.post("/api/v1/campaigns", json={
        "name": "利益点A/B", "packs": ["利益点测试"],
        "incentive_arms": [{"name": "意外险", "text": "一份免费的驾乘意外险", "audience": "global"},
                           {"name": "体检", "text": "一次免费体检", "weight": 2, "audience": "global"}],
        "welcome_arms": [{"name": "热情", "text": "您好，我是您的专属顾问"}, {"name": "简洁", "text": "您好"}],
        "holdout": 0.05, "bandit": "incentive"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert [a["name"] for a in body["incentive_arms"]] == ["意外险", "体检"] and body["holdout"] == 0.05
    assert body["bandit"] == "incentive" and len(body["welcome_arms"]) == 2
    with session_scope(db) as session:
        stored = session.execute(select(Campaign.experiments).where(Campaign.name == "利益点A/B")).scalar_one()
    assert stored["incentives"][1] == {"name": "体检", "text": "一次免费体检", "weight": 2.0}

    page = ops.http.post("/ops/campaigns", data={
        "csrf_token": ops.csrf, "name": "表单实验", "packs": "利益点测试", "lines": "3", "cps": "1",
        "incentive_arms": "global:意外险=一份免费的驾乘意外险\nglobal:体检=一次免费体检*2", "holdout": "5"})
    assert page.status_code == 303, page.text[:500]
    detail = ops.get(page.headers["location"]).text
    assert "利益点 A/B：global:意外险（一份免费的驾乘意外险）、global:体检（一次免费体检）" in detail and "留出对照 5%" in detail
    bad = ops.http.post("/ops/campaigns", data={"csrf_token": ops.csrf, "name": "坏实验", "packs": "利益点测试",
                                                "lines": "3", "cps": "1", "incentive_arms": "没有等号"})
    assert bad.status_code == 400 and "外呼任务未创建" in bad.text and "人群包:名称=文本" in bad.text


def test_wecom_funnel_page_is_wired_to_the_wecom_module(console, clients, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=20)
    manager = clients("manager")
    data = manager.get("/api/v1/wecom/funnel", params={"campaign_id": campaign_id}, headers={"Accept": "application/json"}).json()
    page = manager.get(f"/wecom?campaign_id={campaign_id}").text
    assert data["available"] is True
    assert 'id="wecom-funnel"' in page and "按人群包" in page and "按通话等级" in page
    total = data["funnel"]["total"]
    assert f'<span class="value">{total["graded_ab"]}</span>' in page and total["graded_ab"] > 0
