"""Real Celery workers on the real Redis and PostgreSQL dial a campaign to the end, and a
worker killed mid-batch never causes an attempt to be dialled twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import func, select

from bot.campaigns.models import CallAttempt
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import create_database_engine, session_scope
from bot.core.db.migrate import upgrade
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import add_entry
from bot.leads.models import Lead
from bot.core.pii import PhoneKeyring
from bot.core.settings import PROJECT_ROOT
from tests.conftest import REDIS_URL
from tests.db_fixtures import TEST_SECRET, create_postgres_schema, drop_postgres_schema
from tests.dialing.test_planner import add_pack

SHANGHAI = ZoneInfo("Asia/Shanghai")
LEADS = 200
ON_DNC = 5  # opted out before the campaign: must never be dialled
# A Tuesday afternoon: the window opens at 14:00 while the workers load their model (a
# minute or more on a busy machine: an hour of simulated time) and stays open till 20:00,
# so a worker killed and reloaded still finds it open.
CLOCK_START = "2026-11-24T13:40:00+08:00"
SPEED = "60"  # one simulated minute per real second


@pytest.fixture()
def deployment(tmp_path: Path, model_path):
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    schema, url = create_postgres_schema()
    engine = create_database_engine(url)
    upgrade(engine)
    queue = f"waihu-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "WAIHU_BROKER_URL": REDIS_URL, "WAIHU_QUEUE": queue, "WAIHU_DATABASE_URL": url,
           "WAIHU_SECRET_KEY": TEST_SECRET, "WAIHU_CLOCK_START": CLOCK_START, "WAIHU_CLOCK_SPEED": SPEED,
           # every process (a restarted worker too) on the same simulated time
           "WAIHU_CLOCK_ANCHOR": repr(time.time()),
           "WAIHU_STUCK_AFTER_S": "1200", "WAIHU_DATA_DIR": str(tmp_path / "data")}
    try:
        yield engine, env, queue
    finally:
        engine.dispose()
        drop_postgres_schema(schema)


def start_worker(env: dict, queue: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bot.dialing.tasks", "worker", "--pool", "threads",
         "--concurrency", "16", "-Q", queue, "--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
        cwd=PROJECT_ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)


def kill(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def counts(engine) -> Counter:
    with session_scope(engine) as session:
        return Counter(dict(session.execute(select(CallAttempt.status, func.count())
                                            .group_by(CallAttempt.status)).all()))


class PrivateRedis:
    """A Redis server of our own on a free port, so the test can restart it."""

    def __init__(self, tmp_path: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dir = tmp_path / "redis"
        self.dir.mkdir()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait(timeout=10)


def test_campaign_survives_a_broker_restart(deployment, tmp_path: Path) -> None:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    engine, env, queue = deployment
    broker = PrivateRedis(tmp_path)
    broker.start()
    env = {**env, "WAIHU_BROKER_URL": broker.url, "WAIHU_REQUEUE_AFTER_S": "300"}
    try:
        attempts, log, restarted = run_campaign(engine, env, queue, tmp_path, broker_url=broker.url,
                                                disrupt=lambda: (broker.stop(), time.sleep(2), broker.start()))
    finally:
        broker.stop()
    assert restarted, "the broker was never restarted mid-batch: " + log.read_text()[-2000:]
    check_campaign(attempts, log)


def test_campaign_survives_a_killed_worker(deployment, tmp_path: Path) -> None:
    engine, env, queue = deployment
    attempts, log, killed = run_campaign(engine, env, queue, tmp_path, broker_url=REDIS_URL, disrupt="kill worker")
    assert killed, "the worker was never caught mid-call: " + log.read_text()[-2000:]
    check_campaign(attempts, log)


def run_campaign(engine, env: dict, queue: str, tmp_path: Path, broker_url: str, disrupt):
    """Dial LEADS leads with one worker, disrupting things once while calls are in progress."""
    keyring = PhoneKeyring.from_secret(TEST_SECRET.encode())
    with session_scope(engine) as session:
        lead_ids = add_pack(session, keyring, "pack-a", LEADS)
        for lead in session.execute(select(Lead).where(Lead.id.in_(lead_ids[:ON_DNC]))).scalars():
            add_entry(session, lead.phone_hash, scope=SCOPE_OPT_OUT, reason="投诉", source="complaint desk")
        create_campaign(session, name="celery", packs=["pack-a"], lines=12, cps=20)
        change_status(session, "celery", "start")

    from telephony.celery_app import create_app

    client = create_app(broker_url)
    client.conf.task_default_queue = queue
    log = tmp_path / "worker.log"
    worker = start_worker(env, queue, log)
    disrupted = False
    deadline = time.time() + 420
    try:
        while time.time() < deadline:
            try:
                client.send_task("waihu.plan_dials", queue=queue)
                client.send_task("waihu.reconcile_attempts", queue=queue)
            except Exception:  # noqa: BLE001  (the broker is down for a moment: beat would retry too)
                pass
            time.sleep(2)
            status = counts(engine)
            if not disrupted and status["completed"] >= 20 and status["dialing"] > 0:
                disrupted = True
                if disrupt == "kill worker":
                    kill(worker)  # mid-batch, with calls in progress
                    worker = start_worker(env, queue, log)
                else:
                    disrupt()
            with session_scope(engine) as session:
                done_leads = session.execute(select(func.count(func.distinct(CallAttempt.lead_id))).where(
                    CallAttempt.status.in_(("completed", "failed", "cancelled")))).scalar_one()
            if done_leads == LEADS - ON_DNC and status["dialing"] == 0 and status["scheduled"] == 0:
                break
    finally:
        kill(worker)
    with session_scope(engine) as session:
        attempts = session.execute(select(CallAttempt)).scalars().all()
        opted_out = {lead.id for lead in session.execute(select(Lead).where(Lead.id.in_(lead_ids[:ON_DNC]))).scalars()}
    assert not opted_out & {a.lead_id for a in attempts}, "a number on the do-not-call list was dialled"
    return attempts, log, disrupted


def check_campaign(attempts: list, log: Path) -> None:
    lead_ids = {a.lead_id for a in attempts}
    per_lead = Counter(a.lead_id for a in attempts if a.status != "cancelled")
    assert len(lead_ids) == LEADS - ON_DNC, f"not every lead was dialled; log: {log.read_text()[-2000:]}"
    assert max(per_lead.values()) == 1  # one attempt per lead: the 24 h cap, and no double dial
    statuses = Counter(a.status for a in attempts)
    assert set(statuses) <= {"completed", "failed", "cancelled"}, statuses
    lost = [a for a in attempts if a.status == "failed"]
    assert all(a.outcome == "worker_lost" for a in lost)  # reconciled, never re-dialled
    assert statuses["completed"] >= LEADS - ON_DNC - 12  # at most the lines in flight were lost
    assert len({a.carrier_call_id for a in attempts if a.carrier_call_id}) == statuses["completed"]
    assert all(a.dialed_at is None for a in attempts if a.status == "cancelled")  # never dialled
    for attempt in attempts:
        if attempt.status == "cancelled":
            continue
        local = attempt.dialed_at.astimezone(SHANGHAI)
        assert (9, 30) <= (local.hour, local.minute) < (12, 0) or (14, 0) <= (local.hour, local.minute) < (20, 0)
