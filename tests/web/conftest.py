"""Fixtures for the web console tests: the real app on a real uvicorn server (a thread, a free
port) against the test database, users of every role, logged-in HTTP clients, and data made
through the same services ops use (lead packs uploaded from generated CSV files, campaigns).
"""
from __future__ import annotations

import csv
import random
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from bot.campaigns.models import CallAttempt, TurnRow
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from bot.leads.service import UploadRequest, upload_lead_pack
from bot.core.settings import PROJECT_ROOT, get_settings
from bot.users.service import add_user
from bot.web.app import create_app
from bot.web.config import WebConfig
from tests.db_fixtures import TEST_SECRET

PASSWORDS = {"ops": "ops-password-1", "writer": "writer-password-1", "manager": "manager-password-1",
             "admin": "admin-password-1"}
USERS = {role: f"{role}.user" for role in PASSWORDS}
# Any 11-digit mainland mobile number in text a user can see (masked ones have ****).
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
CSRF_FIELD = re.compile(r'name="csrf-token" content="([^"]+)"')
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def console_config(database_url: str, dialogs_dir: Path, data_dir: Path, models_dir: Path | None = None,
                   **changes) -> WebConfig:
    """The console's settings for a test: its own data folder and script copy, the repo's
    trained models (content-addressed: an unchanged copy of dialogs/ finds its model)."""
    settings = get_settings().copy(update=dict(
        dialogs_dir=dialogs_dir, models_dir=models_dir or PROJECT_ROOT / "models", data_dir=data_dir,
        database_url=database_url, secret_key=TEST_SECRET, secret_key_file=data_dir / "secret.key",
        prompts_dir=data_dir / "prompts", tracker_store_url=None, lock_store_url=None))
    config = WebConfig(settings=settings, session_secret="test-session-secret", idle_timeout_s=1800,
                       session_lifetime_s=12 * 3600, max_upload_bytes=2 * 1024 * 1024, secure_cookie=False,
                       warm_up_validation=False)
    return replace(config, **changes)


@dataclass
class LiveServer:
    url: str
    app: object
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def live_server(app) -> Iterator[LiveServer]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                          ws="none"))  # Rasa pins an old websockets; the console needs none
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    live = LiveServer(f"http://127.0.0.1:{port}", app, server, thread)
    try:
        yield live
    finally:
        live.stop()


def add_role_users(engine) -> None:
    with session_scope(engine) as session:
        for role, password in PASSWORDS.items():
            add_user(session, USERS[role], password, role)


class Browserless:
    """An HTTP client that logs in like a browser (cookie + the page's CSRF token)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=120)
        self.csrf = ""

    def refresh_csrf(self, path: str = "/login") -> str:
        page = self.http.get(path)
        match = CSRF_FIELD.search(page.text)
        assert match, f"no CSRF token on {path} ({page.status_code})"
        self.csrf = match.group(1)
        return self.csrf

    def login(self, role: str) -> "Browserless":
        self.refresh_csrf("/login")
        response = self.http.post("/login", data={"name": USERS[role], "password": PASSWORDS[role],
                                                  "csrf_token": self.csrf, "next": "/"})
        assert response.status_code == 303, response.text[:500]
        self.refresh_csrf("/")
        return self

    def headers(self, **extra) -> dict:
        return {"X-CSRF-Token": self.csrf, "Accept": "application/json", **extra}

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.http.post(path, headers=self.headers(**kwargs.pop("headers", {})), **kwargs)

    def put(self, path: str, **kwargs) -> httpx.Response:
        return self.http.put(path, headers=self.headers(**kwargs.pop("headers", {})), **kwargs)

    def close(self) -> None:
        self.http.close()


@pytest.fixture()
def console(db, database_url, dialogs_copy, tmp_path):
    """The console on a live server with one user per role; yields (server, app)."""
    add_role_users(db)
    app = create_app(console_config(database_url, dialogs_copy.root, tmp_path / "data"), engine=db)
    with live_server(app) as server:
        yield server


@pytest.fixture()
def clients(console):
    made: list[Browserless] = []

    def client(role: str | None = None) -> Browserless:
        made.append(Browserless(console.url))
        return made[-1].login(role) if role else made[-1]

    yield client
    for item in made:
        item.close()


# ---- data made the way ops make it ----------------------------------------------------------

HEADER = ["手机号", "姓名", "性别", "人群", "渠道", "同意时间"]


def write_lead_csv(path: Path, n: int, *, first_number: int = 13800000000, audience: str = "车主-华东",
                   bad_rows: int = 0, encoding: str = "gbk") -> Path:
    """n good rows and `bad_rows` broken ones (invalid phone, missing consent, a duplicate)."""
    rows = [HEADER]
    for i in range(n):
        rows.append([str(first_number + i), "王小明" if i % 2 else "李丽", "男" if i % 2 else "女", audience, "官网",
                     "2026-05-01 10:00"])
    for i in range(bad_rows):
        kind = i % 3
        if kind == 0:
            rows.append(["1381234", "张三", "男", audience, "官网", "2026-05-01 10:00"])
        elif kind == 1:
            rows.append([str(first_number + n + 100 + i), "赵四", "男", audience, "官网", ""])
        else:
            rows.append([str(first_number), "重复", "男", audience, "官网", "2026-05-01 10:00"])
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def upload_pack(engine, keyring, path: Path, pack: str, audience: str | None = None):
    return upload_lead_pack(engine, keyring, UploadRequest(path=path, pack_name=pack, audience=audience,
                                                           uploaded_by="ops.user"), now=NOW)


CALLEE_SAYS_NUMBER = "你加我微信吧，号码是13912345678"


def seed_graded_calls(engine, keyring, tmp_path: Path, *, leads: int = 120, campaign: str = "双十一-车主",
                      seed: int = 7) -> int:
    """A campaign with two script variants and two time slots, every lead called once, as the call
    log would store it (graded attempts with turns). Returns the campaign id."""
    path = write_lead_csv(tmp_path / f"{campaign}.csv", leads, audience="车主-华东")
    upload_pack(engine, keyring, path, f"{campaign}-名单")
    rng = random.Random(seed)
    with session_scope(engine) as session:
        created = create_campaign(session, name=campaign, packs=[f"{campaign}-名单"], lines=20,
                                  variants=[{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}],
                                  time_slots=[{"name": "上午", "windows": ["09:30-12:00"], "weight": 1},
                                              {"name": "傍晚", "windows": ["18:00-20:00"], "weight": 1}],
                                  incentive="一份免费的驾乘意外险", created_by="ops.user")
        change_status(session, campaign, "start", now=NOW - timedelta(days=7))
        from bot.campaigns.service import campaign_arms

        arms_of = campaign_arms(created)
        lead_rows = session.execute(select(Lead).order_by(Lead.id)).scalars().all()
        for index, lead in enumerate(lead_rows):
            arms = arms_of.for_lead(lead.id)
            when = NOW - timedelta(days=6) + timedelta(hours=index * 120 / max(1, len(lead_rows)))
            answered = rng.random() < 0.55
            lift = 0.12 if arms["script"] == "benefit_first" else 0.0
            attempt = CallAttempt(campaign_id=created.id, lead_id=lead.id, attempt_no=1, phone_hash=lead.phone_hash,
                                  arms=arms, status="completed", scheduled_at=when, dialed_at=when,
                                  outcome="answered" if answered else rng.choice(["no_answer", "powered_off", "vacant_number"]))
            attempt.history_outcome = attempt.outcome
            if answered:
                attempt.answered_at, attempt.ended_at = when + timedelta(seconds=5), when + timedelta(seconds=60)
                attempt.talk_time_s = 55.0
                draw = rng.random()
                attempt.grade = "A" if draw < 0.2 + lift else ("B" if draw < 0.4 + lift else ("C" if draw < 0.7 else "D"))
                attempt.grade_reason = {"A": "A：第2轮同意添加企业微信", "B": "B：有互动，未明确拒绝",
                                        "C": "C：第1轮明确拒绝", "D": "D：用户忙，未表态"}[attempt.grade]
                attempt.hangup_by = "bot"
            else:
                attempt.ended_at = when + timedelta(seconds=30)
            session.add(attempt)
            session.flush()
            if answered:
                texts = [("bot", "您好，我是平安保险的AI合成语音客服，本次通话会录音。", "utter_opening", None, None),
                         ("callee", CALLEE_SAYS_NUMBER if index % 5 == 0 else "嗯你说", None, "affirm", 0.91),
                         ("bot", "我让顾问用企业微信添加您，您看可以吗？", "utter_ask_wecom", None, None),
                         ("callee", "可以" if attempt.grade in "AB" else "不需要", None,
                          "agree_add_wecom" if attempt.grade in "AB" else "refuse", 0.88)]
                for seq, (speaker, text, response, intent, confidence) in enumerate(texts, start=1):
                    session.add(TurnRow(attempt_id=attempt.id, seq=seq, speaker=speaker, text=text, response=response,
                                        intent=intent, confidence=confidence, entities=[], offset_ms=seq * 4000))
        return created.id
