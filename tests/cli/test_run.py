"""`waihu run` dials a started campaign on the embedded default (SQLite, in-process broker,
simulator carrier), and `campaign start/status` say when no dial worker is running — on
the embedded broker and on Redis."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from bot.campaigns.models import CallAttempt
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import create_database_engine, session_scope
from bot.core.db.migrate import upgrade
from bot.core.pii import PhoneKeyring
from bot.core.settings import PROJECT_ROOT
from bot.dialing.liveness import SEEN_WITHIN_S, DialWorkers
from tests.conftest import REDIS_URL
from tests.db_fixtures import TEST_SECRET
from tests.dialing.test_planner import add_pack

LEADS = 6
# A Tuesday morning, shortly before the 09:30 window opens; 30 simulated seconds a real one
# (the hopper every 2 s), so the window stays open for minutes of real time while the model loads.
CLOCK_START = "2026-11-24T09:25:00+08:00"
SPEED = "30"


def waihu(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli.app", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=180, env=env)


def embedded_install(tmp_path: Path, leads: int = LEADS) -> tuple[dict, object]:
    """A fresh embedded data folder (SQLite) with a running campaign of `leads` leads."""
    data = tmp_path / "data"
    data.mkdir()
    engine = create_database_engine(f"sqlite:///{data / 'waihu.db'}")
    upgrade(engine)
    with session_scope(engine) as session:
        add_pack(session, PhoneKeyring.from_secret(TEST_SECRET.encode()), "pack-a", leads)
        create_campaign(session, name="c1", packs=["pack-a"], lines=3, cps=5)
    env = {**os.environ, "WAIHU_DATA_DIR": str(data), "WAIHU_SECRET_KEY": TEST_SECRET, "COLUMNS": "200"}
    for name in ("WAIHU_DATABASE_URL", "WAIHU_BROKER_URL", "WAIHU_QUEUE"):
        env.pop(name, None)
    return env, engine


def attempts(engine) -> Counter:
    with session_scope(engine) as session:
        return Counter(dict(session.execute(select(CallAttempt.status, func.count())
                                            .group_by(CallAttempt.status)).all()))


def test_waihu_run_dials_a_started_campaign_on_the_embedded_default(tmp_path: Path, model_path: Path) -> None:
    env, engine = embedded_install(tmp_path)
    started = waihu(env, "campaign", "start", "c1")
    assert started.returncode == 0 and "now running" in started.stdout, started.stderr
    assert "no dial worker seen" in started.stderr and "waihu run" in started.stderr

    env = {**env, "WAIHU_CLOCK_START": CLOCK_START, "WAIHU_CLOCK_SPEED": SPEED, "WAIHU_CLOCK_ANCHOR": repr(time.time())}
    out = tmp_path / "run.out"
    process = subprocess.Popen([sys.executable, "-m", "bot.cli.app", "run"], cwd=PROJECT_ROOT, env=env,
                               stdout=out.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 400
        status: dict = {}
        while time.time() < deadline and process.poll() is None:
            time.sleep(2)
            if attempts(engine)["completed"] >= LEADS:
                status = json.loads(waihu(env, "campaign", "status", "c1", "--json").stdout)
                break
        assert process.poll() is None, out.read_text()[-3000:]
        counts = attempts(engine)
        assert counts["completed"] == LEADS, (counts, out.read_text()[-3000:])
        # While it runs, ops see a dial worker.
        assert status["dial_workers"] == 1 and status["worker_warning"] is None, status
        assert sum(status["outcomes"].values()) == LEADS

        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=90) == 0, out.read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    text = out.read_text()
    assert "waihu run: dial worker" in text and "broker embedded" in text
    assert "campaigns running 1" in text and "calls in flight" in text and f"dialled today {LEADS}" in text, text
    assert f"stopped: {LEADS} call(s) dialled today" in text
    # Stopped cleanly: no longer counted, and status says so again.
    after = waihu(env, "campaign", "status", "c1")
    assert after.returncode == 0 and "no dial worker seen" in after.stderr, after.stderr
    assert set(attempts(engine)) == {"completed"}


def test_campaign_status_warns_without_a_dial_worker_on_the_embedded_broker(tmp_path: Path) -> None:
    env, _ = embedded_install(tmp_path, leads=2)
    assert waihu(env, "campaign", "start", "c1").returncode == 0
    status = json.loads(waihu(env, "campaign", "status", "c1", "--json").stdout)
    assert status["dial_workers"] == 0 and "waihu run" in status["worker_warning"]
    table = waihu(env, "campaign", "status", "c1")
    assert table.returncode == 0 and "no dial worker seen in the last 3 minutes" in table.stderr

    workers = DialWorkers(folder=Path(env["WAIHU_DATA_DIR"]) / "dial_workers" / "waihu")
    workers.beat("host:1")
    workers.beat("host:2", now=time.time() - SEEN_WITHIN_S - 60)  # killed a while ago
    status = json.loads(waihu(env, "campaign", "status", "c1", "--json").stdout)
    assert status["dial_workers"] == 1 and status["worker_warning"] is None
    table = waihu(env, "campaign", "status", "c1")
    assert "dial workers online: 1" in table.stdout and "no dial worker" not in table.stderr
    resumed = waihu(env, "campaign", "pause", "c1"), waihu(env, "campaign", "resume", "c1")
    assert "no dial worker" not in resumed[1].stderr
    workers.gone("host:1")
    assert waihu(env, "campaign", "pause", "c1").returncode == 0
    assert "no dial worker seen" in waihu(env, "campaign", "resume", "c1").stderr
    assert json.loads(waihu(env, "campaign", "status", "c1", "--json").stdout)["dial_workers"] == 0


def test_campaign_status_warns_without_a_dial_worker_on_redis(tmp_path: Path) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    env, _ = embedded_install(tmp_path, leads=2)
    queue = f"waihu-test-{uuid.uuid4().hex[:8]}"
    env = {**env, "WAIHU_BROKER_URL": REDIS_URL, "WAIHU_QUEUE": queue}
    started = waihu(env, "campaign", "start", "c1")
    assert started.returncode == 0 and "no dial worker seen" in started.stderr
    assert "celery -A bot.dialing.tasks worker" in started.stderr
    status = json.loads(waihu(env, "campaign", "status", "c1", "--json").stdout)
    assert status["dial_workers"] == 0 and status["worker_warning"]

    key = f"waihu:{queue}:dial_workers"
    workers = DialWorkers(redis_client=client, key=key)
    try:
        workers.beat("machine-a:10")
        workers.beat("machine-b:11")
        status = json.loads(waihu(env, "campaign", "status", "c1", "--json").stdout)
        assert status["dial_workers"] == 2 and status["worker_warning"] is None
        workers.gone("machine-a:10")
        workers.beat("machine-b:11", now=time.time() - SEEN_WITHIN_S - 1)
        assert json.loads(waihu(env, "campaign", "status", "c1", "--json").stdout)["dial_workers"] == 0
    finally:
        client.delete(key)
