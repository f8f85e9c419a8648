"""Services of the fault suite's own, so it may kill and restart them: a redis-server and a
throwaway PostgreSQL cluster (initdb + pg_ctl on free ports in a temporary directory),
Celery dial workers and beat as real processes, and the simulated clock they share.

Nothing here touches the machine's own PostgreSQL or Redis.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.core.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float, every: float = 0.1, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


class PrivateRedis:
    """A redis-server without persistence: a restart comes back empty."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server binary not installed")
        self.port = free_port()
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            try:
                return bool(redis.Redis.from_url(self.url).ping())
            except redis.exceptions.ConnectionError:
                return False

        wait_until(up, 10, 0.05, "private redis-server up")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free port. initdb refuses to run as root, so as
    root the cluster belongs to the `postgres` OS user (runuser); otherwise to us."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        if self.bin is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
        self.as_user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and no `postgres` OS user to own a private cluster")
            self.as_user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="waihu-faults-pg-"))
        if self.as_user:
            shutil.chown(self.root, self.as_user)
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = list(args)
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")

    def start(self) -> None:
        # fsync off (a throwaway cluster), but commits still reach the OS at once
        # (synchronous_commit on): `-m immediate` must not lose a committed row.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "-t", "60", "start")

    def running(self) -> bool:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status", check=False).returncode == 0

    def start_if_stopped(self) -> None:
        if not self.running():
            self.start()

    def stop(self, mode: str = "immediate") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT", future=True)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


SLOW_DATABASE_SQL = """
CREATE TABLE IF NOT EXISTS fault_knobs (name text PRIMARY KEY, delay_s double precision NOT NULL);
INSERT INTO fault_knobs VALUES ('slow', 0) ON CONFLICT (name) DO NOTHING;
CREATE OR REPLACE FUNCTION fault_delay() RETURNS trigger AS $$
BEGIN
  PERFORM pg_sleep((SELECT delay_s FROM fault_knobs WHERE name = 'slow'));
  RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS fault_slow ON call_attempts;
CREATE TRIGGER fault_slow BEFORE INSERT OR UPDATE ON call_attempts
  FOR EACH STATEMENT EXECUTE FUNCTION fault_delay();
"""


def set_slow(engine, delay_s: float) -> None:
    """Every INSERT and UPDATE statement on call_attempts waits `delay_s` (real seconds)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("UPDATE fault_knobs SET delay_s = :d WHERE name = 'slow'"), {"d": delay_s})


@dataclass
class SimTime:
    """The simulated clock every process computes from the same start, speed and anchor."""

    start: datetime
    speed: float
    anchor: float = field(default_factory=time.time)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.anchor) * self.speed)

    def real_seconds_until(self, when: datetime) -> float:
        return (when - self.now()).total_seconds() / self.speed

    def sleep_until(self, when: datetime) -> None:
        wait = self.real_seconds_until(when)
        if wait > 0:
            time.sleep(wait)

    def env(self) -> dict[str, str]:
        return {"WAIHU_CLOCK_START": self.start.isoformat(), "WAIHU_CLOCK_SPEED": str(self.speed),
                "WAIHU_CLOCK_ANCHOR": repr(self.anchor)}


class CeleryProcesses:
    """Dial workers (each with its metrics port) and a beat, started and killed for real."""

    def __init__(self, env: dict[str, str], queue: str, workdir: Path, concurrency: int = 48) -> None:
        self.env = env
        self.queue = queue
        self.workdir = workdir
        self.concurrency = concurrency
        self.workers: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.beat: subprocess.Popen | None = None
        self.log = workdir / "celery.log"

    def start_worker(self, name: str) -> subprocess.Popen:
        port = self.ports.setdefault(name, free_port())
        env = {**self.env, "WAIHU_METRICS_PORT": str(port)}
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bot.dialing.tasks", "worker", "--pool", "threads",
             "--concurrency", str(self.concurrency), "-Q", self.queue, "-n", f"{name}@%h", "--loglevel", "WARNING",
             "--without-mingle", "--without-gossip"],
            cwd=PROJECT_ROOT, env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        self.workers[name] = process
        return process

    def metrics(self, name: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/metrics", timeout=2) as response:
                return response.read().decode()
        except OSError:
            return None

    def wait_ready(self, names: list[str], timeout: float = 240) -> None:
        """A worker serves /metrics once its dialogue model and carrier are loaded."""
        for name in names:
            wait_until(lambda: self.metrics(name) is not None or self.workers[name].poll() is not None,
                       timeout, 0.5, f"worker {name} ready")
            if self.workers[name].poll() is not None:
                raise RuntimeError(f"worker {name} exited: {self.tail()}")

    def start_beat(self) -> None:
        self.beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bot.dialing.tasks", "beat", "--loglevel", "WARNING",
             "--schedule", str(self.workdir / "beat-schedule")],
            cwd=PROJECT_ROOT, env=self.env, stdout=self.log.open("a"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def kill_worker(self, name: str) -> None:
        process = self.workers[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def freeze_workers(self) -> None:
        """SIGSTOP every worker (a VM stall, swap storm): dial messages they already hold
        fall due while they cannot run."""
        for process in self.workers.values():
            os.killpg(process.pid, signal.SIGSTOP)

    def thaw_workers(self) -> None:
        for process in self.workers.values():
            os.killpg(process.pid, signal.SIGCONT)

    def worker_pid(self, name: str) -> int:
        return self.workers[name].pid

    def stop_all(self) -> None:
        for process in [*self.workers.values(), *([self.beat] if self.beat else [])]:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=30)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
