"""`waihu run`: dial — a dial worker and the beat in one process.

A started campaign is only a row until a worker takes dial tasks and the beat runs the
hopper every minute. On the embedded default (no WAIHU_BROKER_URL) the broker lives in
this process, so this is the only way to dial; on a Redis broker it is one worker (with
the beat) among any others. A live line shows campaigns running, calls in flight and
calls dialled today. Ctrl-C (or SIGTERM) stops cleanly: the beat stops, no new dial starts,
the calls in progress finish; a second Ctrl-C stops at once (the reconciler closes what
was left, as after a crash). Logs go to data_dir/run.log.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.live import Live
from rich.text import Text

from bot.cli.console import console, err_console
from bot.core.errors import UserError
from bot.core.settings import Settings, get_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)


def run(
    concurrency: int = typer.Option(50, "--concurrency", help="Calls this process carries at once."),
    refresh: float = typer.Option(1.0, "--refresh", help="Seconds between status-line updates."),
) -> None:
    """Dial: a dial worker and the beat (the hopper every minute) in one process, on the
    configured broker (the embedded one by default). Ctrl-C stops cleanly."""
    settings = get_settings()
    concurrency = dial_concurrency(settings, concurrency)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / "run.log"
    _log_to(log_path)
    broker = settings.broker_url or "embedded (in this process)"
    with err_console.status("loading the dialogue model and the carrier…"):
        from bot.dialing import tasks

        runtime = tasks.runtime()  # the worker's model, carrier, journal, heartbeat
    from celery.beat import EmbeddedService

    worker = tasks.app.WorkController(
        hostname=f"waihu-run-{os.getpid()}@{socket.gethostname()}",
        pool_cls="threads",
        concurrency=concurrency,
        queues=[settings.queue],
        without_mingle=True,
        without_gossip=True,
        without_heartbeat=True,
        loglevel="WARNING",
    )
    worker_thread = threading.Thread(target=worker.start, name="waihu-worker", daemon=True)
    worker_thread.start()
    beat = EmbeddedService(tasks.app, thread=True, schedule_filename=str(settings.data_dir / "beat-schedule"))
    beat.start()
    tasks.plan_dials.delay()  # the first refill now, not a minute from now
    console.print(
        f"waihu run: dial worker {runtime.dialer.worker} and beat on broker {broker}, queue {settings.queue}; "
        f"log {log_path}. Ctrl-C stops."
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    status = StatusLine(runtime.dialer.engine, runtime.clock)
    interrupted = False
    try:
        with Live(status.render(), console=console, refresh_per_second=4, transient=False) as live:
            while worker_thread.is_alive():
                time.sleep(refresh)
                live.update(status.render())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    _stop(worker, worker_thread, beat, runtime, status)
    if not interrupted:
        raise UserError(
            f"the dial worker stopped on its own (broker {broker}); see {log_path}, then run `waihu run` again."
        )


def dial_concurrency(settings: Settings, requested: int) -> int:
    """Dial threads for this process: a SIP worker gets no more than PJSIP holds calls
    (WAIHU_SIP_MAX_CALLS); more would wait for a call slot (before their T-0 check) while
    holding their campaign's lines, which other workers could be dialling."""
    if settings.carrier != "sip" or requested <= settings.sip_max_calls:
        return requested
    err_console.print(
        f"SIP carrier: {settings.sip_max_calls} calls at once per process (WAIHU_SIP_MAX_CALLS); "
        f"--concurrency {requested} lowered to {settings.sip_max_calls}. More lines: run more processes."
    )
    return settings.sip_max_calls


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(worker, worker_thread: threading.Thread, beat, runtime, status: StatusLine) -> None:
    """Warm shutdown: no new plans or dials, calls in progress finish; Ctrl-C again: now."""
    if not console.is_terminal:
        console.print()  # the last status line, ended
    in_flight = status.counts().get("in_flight", 0)
    err_console.print(
        f"stopping: no new dials; {in_flight} call(s) in progress finish first (Ctrl-C again to stop at once)"
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        beat.stop()
        stopper = threading.Thread(target=worker.stop, name="waihu-stop", daemon=True)
        stopper.start()
        stopper.join()
        worker_thread.join(timeout=30)
    except KeyboardInterrupt:
        runtime.leave()
        err_console.print("stopped at once; calls cut off are closed by the reconciler on the next run")
        os._exit(130)
    runtime.leave()
    counts = status.counts()
    console.print(f"stopped: {counts.get('dialled_today', 0)} call(s) dialled today")


class StatusLine:
    """One line: campaigns running, calls in flight (and queued), dialled today."""

    def __init__(self, engine, clock) -> None:
        self.engine = engine
        self.clock = clock
        self.simulated = not type(clock).__name__.startswith("Real")

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from bot.campaigns.models import CallAttempt, Campaign
        from bot.core.db.engine import session_scope

        now = self.clock.now()
        local = now.astimezone(SHANGHAI)
        midnight = datetime(local.year, local.month, local.day, tzinfo=SHANGHAI).astimezone(timezone.utc)
        with session_scope(self.engine) as session:
            running = session.execute(
                select(func.count()).select_from(Campaign).where(Campaign.status == "running")
            ).scalar_one()
            by_status = dict(
                session.execute(
                    select(CallAttempt.status, func.count())
                    .where(CallAttempt.status.in_(("scheduled", "dialing")))
                    .group_by(CallAttempt.status)
                ).all()
            )
            dialled = session.execute(
                select(func.count())
                .select_from(CallAttempt)
                .where(CallAttempt.dialed_at >= midnight, CallAttempt.dialed_at < midnight + timedelta(days=1))
            ).scalar_one()
        return {
            "running": running,
            "in_flight": by_status.get("dialing", 0),
            "queued": by_status.get("scheduled", 0),
            "dialled_today": dialled,
        }

    def render(self) -> Text:
        try:
            counts = self.counts()
        except Exception as exc:  # noqa: BLE001  (a database hiccup must not stop the dialling)
            return Text(f"database unavailable ({type(exc).__name__}); dialling goes on", style="yellow")
        when = self.clock.now().astimezone(SHANGHAI).strftime("%m-%d %H:%M")
        line = Text()
        line.append(f"{when}{' (simulated)' if self.simulated else ''}  ", style="dim")
        line.append(f"campaigns running {counts['running']}", style="bold" if counts["running"] else "yellow")
        line.append(f" · calls in flight {counts['in_flight']}")
        line.append(f" (queued {counts['queued']})", style="dim")
        line.append(f" · dialled today {counts['dialled_today']}")
        return line


def _log_to(path) -> None:
    """Warnings and errors to the log file, not over the status line."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
