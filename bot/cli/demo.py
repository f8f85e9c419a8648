"""`waihu demo`: a campaign dialled for a simulated week, end to end, on one machine.

Embedded defaults: a fresh SQLite database under the data folder, the simulator carrier,
a simulated clock that jumps from one event to the next, and the dial path of the real
product (planner → T-0 compliance and DNC check → call with the trained Rasa model →
grading → follow-ups → call log). It generates three audience packs of leads, uploads
them through the normal upload path, runs a campaign with two script variants and two
call-time slots, and prints the funnel per arm.
"""

from __future__ import annotations

import asyncio
import csv
import os
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.cli.console import console, err_console
from bot.cli.demo_conversions import simulate_conversions
from bot.cli.sop_demo import simulate_followup_month
from bot.core.settings import PROJECT_ROOT, get_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
AUDIENCES = (("车主-华东", "车主", "中等"), ("宝妈-华南", "宝妈", "普通"), ("养老-华北", "养老", "绩优"))
LEADS_PER_AUDIENCE = 700
DAYS = 7
SLOTS = [
    {"name": "上午", "windows": ["09:30-12:00"], "weight": 1},
    {"name": "傍晚", "windows": ["18:00-20:00"], "weight": 1},
]
VARIANTS = [{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}]
CAMPAIGN_NAME = "演示-加企微"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_NAMES = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"


# With a broker: separate `celery worker` and `celery beat` processes on a simulated clock
# this much faster than real time (a week in under three minutes).
CELERY_CLOCK_SPEED = 3600.0


def run_demo(leads_per_audience: int = LEADS_PER_AUDIENCE, days: int = DAYS, seed: int = 2026) -> dict:
    settings = get_settings()
    demo_dir = settings.data_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    database = _fresh_demo_database(demo_dir)
    agent = _dialogue_agent(settings)
    engine = _database(database)
    started = time.perf_counter()
    _upload_leads(engine, demo_dir, leads_per_audience, seed)
    campaign_id = _create_campaign(engine)
    first_monday = _next_monday_0900()
    if settings.broker_url:
        console.print(
            f"[dim]broker {settings.broker_url}: separate celery worker and beat processes, "
            f"simulated clock ×{CELERY_CLOCK_SPEED:g}[/]"
        )
        counts = _dial_with_celery(engine, database, first_monday, days, seed)
    else:
        counts = asyncio.run(_dial_for_days(engine, agent, campaign_id, first_monday, days, seed))
    funnel = _print_funnel(engine, campaign_id)
    funnel["wecom"] = _add_friends(engine, campaign_id, seed)
    # a month of follow-up after the adds, then the simulated buyers (who heed the steps received)
    funnel["sop"] = simulate_followup_month(engine, campaign_id, seed)
    funnel["conversions"] = _conversions(engine, campaign_id, seed)  # simulated buyers' policies
    funnel["recordings"] = _recordings_made(engine, campaign_id)
    _print_sample_call(engine, campaign_id)
    console.print(
        f"[dim]{counts['calls']} calls over {days} simulated days in {time.perf_counter() - started:.0f} s "
        f"(database {database})[/]"
    )
    console.print(
        f"[dim]the managers' A/B comparison of this week: WAIHU_DATABASE_URL='{database}' "
        f".venv/bin/waihu report {CAMPAIGN_NAME} [--html report.html][/]"
    )
    return funnel


def _fresh_demo_database(demo_dir: Path) -> str:
    """Its own database each run: a SQLite file, or a `waihu_demo` schema when
    WAIHU_DATABASE_URL names PostgreSQL."""
    url = get_settings().database_url
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        admin = create_engine(url, future=True)
        with admin.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS waihu_demo CASCADE"))
            conn.execute(text("CREATE SCHEMA waihu_demo"))
        admin.dispose()
        return url + ("&" if "?" in url else "?") + "options=-csearch_path%3Dwaihu_demo"
    for stale in demo_dir.glob("waihu-demo.db*"):
        stale.unlink()
    return f"sqlite:///{demo_dir / 'waihu-demo.db'}"


def _dialogue_agent(settings):
    from bot.cli.training_progress import train_with_progress
    from bot.conversation.agent import load_shared_agent
    from bot.script.project import DialogsProject

    result = train_with_progress(DialogsProject(settings.dialogs_dir), settings.models_dir)
    console.print(
        f"[dim]model {result.model_path.name} "
        + (f"trained in {result.seconds:.0f} s" if result.trained else "up to date")
        + "[/]"
    )
    with err_console.status("loading the dialogue model…"):
        agent = load_shared_agent(result.model_path)
        asyncio.run(agent.warm_up())
    return agent


def _database(url: str):
    from bot.core.db.engine import open_database

    return open_database(url)


def _upload_leads(engine, folder: Path, per_audience: int, seed: int) -> None:
    """Lead packs as ops get them: GBK CSVs with Chinese headers, uploaded the normal way."""
    from bot.audiences.service import create_audience
    from bot.core.db.engine import session_scope
    from bot.core.pii import keyring_from_settings
    from bot.leads.service import UploadRequest, upload_lead_pack

    rng = random.Random(seed)
    with session_scope(engine) as session:
        for name, scene, tier in AUDIENCES:
            create_audience(session, name, scene=scene, tier=tier)
    used: set[str] = set()
    for name, _scene, _tier in AUDIENCES:
        path = folder / f"{name}.csv"
        with path.open("w", encoding="gbk", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["手机号", "姓名", "性别", "同意时间", "渠道"])
            for _ in range(per_audience):
                phone = _fresh_phone(rng, used)
                writer.writerow(
                    [
                        phone,
                        rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES),
                        rng.choice("男女"),
                        "2026-10-15 20:31",
                        "保险测评落地页",
                    ]
                )
        summary = upload_lead_pack(
            engine, keyring_from_settings(), UploadRequest(path=path, pack_name=name, audience=name, uploaded_by="demo")
        )
        console.print(
            f"uploaded [bold]{name}[/]: {summary.accepted} leads accepted, {sum(summary.rejected.values())} rejected"
        )


def _fresh_phone(rng: random.Random, used: set[str]) -> str:
    while True:
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        if phone not in used:
            used.add(phone)
            return phone


# The demo campaign's caller-number pool: landlines of six big cities (local first; the
# simulator picks up a local number more often, so the report's caller-number check shows it).
DEMO_CALLER_NUMBERS = ("01062345678", "02162345678", "02062345678", "075562345678", "057162345678", "02862345678")
DEMO_CALLER_CAP = 3000


def _create_campaign(engine) -> int:
    from bot.campaigns.caller_numbers import add_caller_number
    from bot.campaigns.service import change_status, create_campaign
    from bot.core.db.engine import session_scope

    with session_scope(engine) as session:
        campaign = create_campaign(
            session,
            name=CAMPAIGN_NAME,
            packs=[a[0] for a in AUDIENCES],
            lines=80,
            cps=20,
            variants=VARIANTS,
            time_slots=SLOTS,
            incentive="一份免费的短期意外险",
            created_by="demo",
        )
        for number in DEMO_CALLER_NUMBERS:
            add_caller_number(session, campaign.id, number, DEMO_CALLER_CAP)
        change_status(session, campaign.name, "start")
        return campaign.id


def _next_monday_0900() -> datetime:
    today = datetime.now(SHANGHAI).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7)
    return datetime(monday.year, monday.month, monday.day, 9, 0, tzinfo=SHANGHAI).astimezone(timezone.utc)


async def _dial_for_days(engine, agent, campaign_id: int, start: datetime, days: int, seed: int) -> Counter:
    """The embedded worker and beat: the hopper every simulated minute, calls as tasks."""
    from bot.core.pii import keyring_from_settings
    from bot.dialing.dialer import Dialer
    from bot.dialing.recordings import SimulatedCallRecorder, recorder_from_settings
    from telephony.clock import SimClock
    from telephony.simulator.advisors import AdvisorPool, AdvisorPoolConfig
    from telephony.simulator.carrier import SimulatorCarrier

    clock = SimClock(start=start)
    settings = get_settings()
    advisors = AdvisorPool(
        AdvisorPoolConfig.with_mean_busy(settings.sim_advisors, settings.sim_advisor_busy_s), seed=seed
    )
    carrier = SimulatorCarrier(clock=clock, seed=seed, advisors=advisors)
    dialer = Dialer(engine, agent, carrier, keyring_from_settings(), now=clock.now, worker="demo", sleep=clock.sleep)
    # Every connected call recorded (the opening says so): mixed on threads beside the calls.
    recorder = recorder_from_settings(engine, "simulator")
    dialer.recorder = recorder
    end = start + timedelta(days=days)
    counts: Counter = Counter()
    calls: set[asyncio.Task] = set()
    with Progress(
        TextColumn("[bold]simulated[/] {task.fields[when]}"),
        BarColumn(),
        TextColumn("{task.fields[calls]} calls"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("week", total=(end - start).total_seconds(), when="", calls=0)
        while clock.now() < end:
            for plan in dialer.plan():
                for attempt_id in plan.created:
                    call = asyncio.ensure_future(dialer.dial(attempt_id))
                    calls.add(call)
                    call.add_done_callback(calls.discard)
                    counts["calls"] += 1
            local = clock.now().astimezone(SHANGHAI)
            progress.update(
                task,
                completed=(clock.now() - start).total_seconds(),
                when=local.strftime("%a %m-%d %H:%M"),
                calls=counts["calls"],
            )
            await clock.sleep(_until_next_tick(local, created_now=bool(calls)))
        if calls:
            await asyncio.gather(*calls)
    if isinstance(recorder, SimulatedCallRecorder):
        with err_console.status("writing the last call recordings…"):
            recorder.drain()
    return counts


def _dial_with_celery(engine, database_url: str, start: datetime, days: int, seed: int) -> Counter:
    """The deployment shape: a worker process and a beat process on the broker; this
    process only watches the database until the simulated week is over."""
    from sqlalchemy import func, select

    from bot.campaigns.models import CallAttempt
    from bot.campaigns.service import change_status
    from bot.core.db.engine import session_scope

    anchor = time.time()
    env = {
        **os.environ,
        "WAIHU_DATABASE_URL": database_url,
        "WAIHU_CLOCK_START": start.isoformat(),
        "WAIHU_CLOCK_SPEED": str(CELERY_CLOCK_SPEED),
        "WAIHU_CLOCK_ANCHOR": str(anchor),
        "WAIHU_QUEUE": f"waihu-demo-{os.getpid()}",
        "WAIHU_SIM_SEED": str(seed),
    }
    celery = [sys.executable, "-m", "celery", "-A", "bot.dialing.tasks"]
    logs = Path(get_settings().data_dir) / "demo"
    processes = [
        subprocess.Popen(
            celery
            + [
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "32",
                "-Q",
                env["WAIHU_QUEUE"],
                "--loglevel",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=(logs / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            celery + ["beat", "--loglevel", "WARNING", "--schedule", str(logs / "beat-schedule")],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=(logs / "beat.log").open("w"),
            stderr=subprocess.STDOUT,
        ),
    ]
    end_real = anchor + days * 86400 / CELERY_CLOCK_SPEED
    counts: Counter = Counter()
    paused = False
    try:
        with Progress(
            TextColumn("[bold]simulated[/] {task.fields[when]}"),
            BarColumn(),
            TextColumn("{task.fields[calls]} calls"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            task = progress.add_task("week", total=end_real - anchor, when="", calls=0)
            while True:
                time.sleep(1)
                with session_scope(engine) as session:
                    by_status = dict(
                        session.execute(select(CallAttempt.status, func.count()).group_by(CallAttempt.status)).all()
                    )
                counts["calls"] = sum(by_status.values())
                simulated = start + timedelta(seconds=(time.time() - anchor) * CELERY_CLOCK_SPEED)
                progress.update(
                    task,
                    completed=min(time.time(), end_real) - anchor,
                    calls=counts["calls"],
                    when=simulated.astimezone(SHANGHAI).strftime("%a %m-%d %H:%M"),
                )
                in_flight = by_status.get("scheduled", 0) + by_status.get("dialing", 0)
                if any(p.poll() is not None for p in processes):
                    raise RuntimeError(f"a celery process stopped; see {logs}/worker.log and beat.log")
                if time.time() >= end_real and not paused:
                    # The week is over: no new plans; what is in flight finishes (or is
                    # cancelled at its T-0 check).
                    with session_scope(engine) as session:
                        change_status(session, CAMPAIGN_NAME, "pause")
                    paused = True
                if paused and in_flight == 0:
                    break
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    return counts


def _recordings_made(engine, campaign_id: int) -> dict:
    """Connected calls and how many of them have a recording (the opening promises all)."""
    from sqlalchemy import func, select

    from bot.campaigns.models import CallAttempt
    from bot.core.db.engine import session_scope
    from bot.dialing.recording_models import Recording

    with session_scope(engine) as session:
        connected = (
            session.execute(
                select(func.count())
                .select_from(CallAttempt)
                .where(CallAttempt.campaign_id == campaign_id, CallAttempt.answered_at.is_not(None))
            ).scalar()
            or 0
        )
        recorded = (
            session.execute(
                select(func.count())
                .select_from(Recording)
                .join(CallAttempt, CallAttempt.id == Recording.attempt_id)
                .where(CallAttempt.campaign_id == campaign_id, CallAttempt.answered_at.is_not(None))
            ).scalar()
            or 0
        )
    console.print(f"[dim]recordings: {recorded} of {connected} connected calls ({get_settings().recordings_dir})[/]")
    return {"connected": connected, "recorded": recorded}


# Share of the invited customers who add the advisor in the demo (industry AI外呼加粉 reports
# 30–50% of A/B leads who were sent a link).
DEMO_ADD_SHARE = 0.45


def _add_friends(engine, campaign_id: int, seed: int) -> dict:
    """The WeCom half of the funnel on a local WeCom-compatible server: the graded A/B calls'
    invitations are delivered (contact way + SMS link), a share of customers add the
    advisor, WeCom calls back (signed, encrypted), and each gets the welcome with the
    incentive their call promised."""
    from bot.cli.wecom_commands import funnel_table
    from bot.core.db.engine import session_scope
    from bot.wecom.dev.local import LocalWeCom
    from bot.wecom.funnel import wecom_funnel

    with err_console.status("WeCom: sending invitations, customers adding the advisor…"):
        with LocalWeCom.start(engine) as wecom:
            asyncio.run(wecom.deliver())
            asyncio.run(wecom.simulate_adds(share=DEMO_ADD_SHARE, seed=f"demo-{seed}", campaign_id=campaign_id))
    with session_scope(engine) as session:
        data = wecom_funnel(session, campaign_id)
    console.print(funnel_table(data))
    total = data["total"]
    consistent = (
        total["invited"] <= total["graded_ab"]
        and total["sent"] <= total["invited"]
        and total["added"] <= total["sent"]
        and total["welcomed"] <= total["added"]
    )
    console.print(
        ("[green]the add-friend funnel adds up[/]" if consistent else "[red]the add-friend funnel does not add up[/]")
        + f": {total['graded_ab']} A/B leads → {total['invited']} invited → {total['sent']} sent → "
        f"{total['added']} added → {total['welcomed']} welcomed"
    )
    return {"total": {k: v for k, v in total.items() if k != "rates"}, "consistent": consistent}


def _conversions(engine, campaign_id: int, seed: int) -> dict:
    from bot.core.pii import keyring_from_settings

    made = simulate_conversions(engine, keyring_from_settings(), campaign_id, seed)
    console.print(
        f"conversions (simulated buyers): {made['policies']} policies, {made['attributed']} attributed to a call, "
        f"premium {made['premium']:,.2f} yuan"
    )
    return made


def _until_next_tick(local: datetime, created_now: bool) -> float:
    """Every minute while calls are going; outside the slots, straight to the next opening;
    ten minutes when nothing is in flight (the leads left are waiting for their caps)."""
    minutes = local.hour * 60 + local.minute
    openings = [9 * 60 + 30, 18 * 60]
    closings = {9 * 60 + 30: 12 * 60, 18 * 60: 20 * 60}
    inside = any(start <= minutes < closings[start] for start in openings)
    if not inside:
        later = [start for start in openings if start > minutes]
        target = (
            local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=later[0])
            if later
            else local.replace(hour=9, minute=30, second=0, microsecond=0) + timedelta(days=1)
        )
        return max(60.0, (target - local).total_seconds())
    return 60.0 if created_now else 600.0


def _print_funnel(engine, campaign_id: int) -> dict:
    from sqlalchemy import select

    from bot.campaigns.models import CallAttempt
    from bot.core.db.engine import session_scope

    with session_scope(engine) as session:
        rows = session.execute(
            select(
                CallAttempt.arms, CallAttempt.lead_id, CallAttempt.status, CallAttempt.outcome, CallAttempt.grade
            ).where(CallAttempt.campaign_id == campaign_id)
        ).all()
    arms: dict[tuple[str, str], Counter] = {}
    leads: dict[tuple[str, str], set] = {}
    for arm, lead_id, status, outcome, grade in rows:
        key = (arm.get("script", "?"), arm.get("time_slot", "?"))
        counter = arms.setdefault(key, Counter())
        leads.setdefault(key, set()).add(lead_id)
        counter["attempts"] += 1
        counter[f"status:{status}"] += 1
        if status == "completed":
            counter["dialled"] += 1
            counter["connected"] += outcome == "answered"
            counter[f"outcome:{outcome}"] += 1
            if grade:
                counter[grade] += 1
    statuses = sorted({k.split(":", 1)[1] for c in arms.values() for k in c if k.startswith("outcome:")} - {"answered"})
    # Leads are leads; every other column counts calls (a lead called twice counts twice), as
    # the WeCom funnel below counts leads: say so in the headers.
    table = Table(title="呼叫漏斗 call funnel per arm (script × time slot; grades count calls, not leads)")
    columns = ["script", "slot", "leads", "dialled calls", "connected", "A calls", "B calls", "C calls", "D calls"]
    for column in [*columns, "A+B / connected"]:
        table.add_column(column, justify="left" if column in ("script", "slot") else "right")
    total: Counter = Counter()
    for key in sorted(arms):
        c = arms[key]
        total.update(c)
        total["leads"] += len(leads[key])
        table.add_row(
            key[0],
            key[1],
            str(len(leads[key])),
            str(c["dialled"]),
            _share(c["connected"], c["dialled"]),
            *[str(c[g]) for g in "ABCD"],
            _share(c["A"] + c["B"], c["connected"]),
        )
    table.add_row(
        "[bold]all[/]",
        "",
        str(total["leads"]),
        str(total["dialled"]),
        _share(total["connected"], total["dialled"]),
        *[str(total[g]) for g in "ABCD"],
        _share(total["A"] + total["B"], total["connected"]),
    )
    console.print(table)
    console.print("not connected: " + ", ".join(f"{s} {total[f'outcome:{s}']}" for s in statuses))
    graded = sum(total[g] for g in "ABCD")
    unconnected = sum(total[f"outcome:{s}"] for s in statuses)
    consistent = total["connected"] == graded and total["dialled"] == total["connected"] + unconnected
    console.print(
        ("[green]the funnel adds up[/]" if consistent else "[red]the funnel does not add up[/]")
        + f": {total['dialled']} dialled = {total['connected']} connected ({graded} graded A–D) "
        f"+ {unconnected} not connected; {total['status:cancelled']} cancelled at T-0"
    )
    return {
        "dialled": total["dialled"],
        "connected": total["connected"],
        "graded": graded,
        "unconnected": unconnected,
        "grades": {g: total[g] for g in "ABCD"},
        "consistent": consistent,
        "arms": {f"{k[0]}|{k[1]}": dict(v) for k, v in arms.items()},
    }


def _share(part: int, whole: int) -> str:
    return f"{part} ({part / whole:.0%})" if whole else str(part)


def _print_sample_call(engine, campaign_id: int) -> None:
    from sqlalchemy import select

    from bot.campaigns.models import CallAttempt, TurnRow
    from bot.core.db.engine import session_scope
    from bot.leads.models import Lead

    with session_scope(engine) as session:
        attempt = session.execute(
            select(CallAttempt).where(CallAttempt.campaign_id == campaign_id, CallAttempt.grade == "A").limit(1)
        ).scalar_one_or_none()
        if attempt is None:
            return
        lead = session.get(Lead, attempt.lead_id)
        turns = (
            session.execute(select(TurnRow).where(TurnRow.attempt_id == attempt.id).order_by(TurnRow.seq))
            .scalars()
            .all()
        )
        lines = [
            f"[bold green]机器人[/] {t.text}"
            if t.speaker == "bot"
            else f"[bold]客户[/]   {t.text}  [cyan]{t.intent}[/] [dim]{(t.confidence or 0):.2f}[/]"
            for t in turns
        ]
        title = (
            f"a grade-A call: {lead.phone_masked}, script {attempt.arms.get('script')}, "
            f"slot {attempt.arms.get('time_slot')} — {attempt.grade_reason}"
        )
    console.print(Panel("\n".join(lines), title=title, expand=False))
