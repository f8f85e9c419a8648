"""Commands for ops: `waihu campaign create/update/start/pause/resume/stop/status/list`."""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.live import Live
from rich.table import Table

from bot.campaigns.experiment_design import arm_scope, parse_slot, parse_variant
from bot.cli.caller_number_commands import numbers_app
from bot.cli.console import console, err_console, print_json
from bot.core.errors import UserError

campaign_app = typer.Typer(help="Campaigns: which packs to dial, how, and their live progress.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
    campaign_app.add_typer(numbers_app, name="numbers")


def _session():
    from bot.core.db.engine import open_database, session_scope

    return session_scope(open_database())


@campaign_app.command()
def create(
    name: str = typer.Argument(..., help="Campaign name (unique)"),
    packs: list[str] = typer.Option(..., "--pack", help="Lead pack to dial (repeat for several)"),
    lines: int = typer.Option(10, "--lines", help="Max concurrent calls"),
    cps: float = typer.Option(2.0, "--cps", help="New calls per second"),
    variants: list[str] = typer.Option([], "--variant", help="Script variant NAME[:WEIGHT] (repeat to A/B test)"),
    slots: list[str] = typer.Option([], "--slot", help="Time slot NAME=HH:MM-HH:MM[*WEIGHT] (repeat to A/B test)"),
    incentive: Optional[str] = typer.Option(
        None,
        "--incentive",
        help="What the robot offers (利益点) to leads whose audience pack has no incentive of its own "
        "in dialogs/wecom/offers.yml (the others are offered theirs)",
    ),
    incentive_arms: list[str] = typer.Option(
        [],
        "--incentive-arm",
        help="Incentive arm PACK:NAME=TEXT[*WEIGHT] for one audience pack (name or scene, e.g. 车主:驾乘险=…), "
        "or global:NAME=TEXT[*WEIGHT] for every pack without arms of its own (replacing offers.yml's); "
        "repeat to A/B test what the robot offers",
    ),
    welcome_arms: list[str] = typer.Option(
        [], "--welcome-arm", help="WeCom welcome-script arm NAME=TEXT[*WEIGHT] (repeat to A/B test)"
    ),
    holdout: float = typer.Option(0.0, "--holdout", help="Share of leads never dialled, to compare against, e.g. 0.05"),
    bandit: Optional[str] = typer.Option(
        None,
        "--bandit",
        help="Move traffic to this factor's better arms daily "
        "(Thompson sampling): script, time_slot, incentive or welcome",
    ),
    bandit_floor: Optional[float] = typer.Option(
        None, "--bandit-floor", help="Least share of new leads every bandit arm keeps (default 0.1)"
    ),
    profile: str = typer.Option("CN_INSURANCE_DEFAULT", "--profile", help="Compliance profile"),
    add_mode: str = typer.Option(
        "link",
        "--add-mode",
        help="How A/B callees get onto WeCom: link (SMS with the 联系我 link) | advisor_adds (the advisor adds them)",
    ),
) -> None:
    """Create a campaign (draft). Start it with `waihu campaign start NAME`.

    Every problem of the options is reported at once. Incentive arms are per audience pack:
    `--incentive-arm 车主:驾乘险=一份免费的驾乘意外险` is offered to leads of the audience pack
    (or scene) 车主 only; `--incentive-arm global:红包=一个十元红包` to every pack without arms
    of its own, replacing the per-pack incentives of dialogs/wecom/offers.yml. Packs with no
    arm keep their offers.yml incentives."""
    from bot.campaigns.experiment_design import build_experiments, parse_text_arm
    from bot.campaigns.problems import ProblemList
    from bot.campaigns.service import create_campaign
    from bot.core.settings import get_settings
    from bot.script.project import DialogsProject
    from bot.script.script_lines import load_script_domain

    problems = ProblemList()
    parsed_variants = [v for v in (problems.attempt(parse_variant, v) for v in variants) if v]
    parsed_slots = [s for s in (problems.attempt(parse_slot, s) for s in slots) if s]
    known = load_script_domain(DialogsProject(get_settings().dialogs_dir)).variants()
    for variant in parsed_variants:
        if variant["name"] not in known:
            problems.add(
                "--variant",
                variant["name"],
                f"unknown script variant; the script has: {', '.join(known)}",
                f"话术中没有这个版本；现有：{'、'.join(known)}",
            )
    incentives = [
        a for a in (problems.attempt(parse_text_arm, "--incentive-arm", a, scoped=True) for a in incentive_arms) if a
    ]
    welcomes = [a for a in (problems.attempt(parse_text_arm, "--welcome-arm", a) for a in welcome_arms) if a]
    experiments = problems.attempt(
        build_experiments,
        incentives=incentives,
        welcomes=welcomes,
        holdout=holdout,
        bandit_factor=bandit,
        bandit_floor=bandit_floor,
    )
    with _session() as session:
        campaign = create_campaign(
            session,
            name=name,
            packs=packs,
            lines=lines,
            cps=cps,
            variants=parsed_variants or None,
            time_slots=parsed_slots or None,
            compliance_profile=profile,
            incentive=incentive,
            experiments=experiments,
            problems=problems,
            add_mode=add_mode,
        )
        experiments = campaign.experiments
        console.print(
            f"created campaign [bold]{campaign.name}[/] (draft): {len(packs)} pack(s), "
            f"{lines} lines, {cps:g} calls/s, variants "
            f"{', '.join(v['name'] for v in campaign.script_variants)}"
            + (f", slots {', '.join(s['name'] for s in campaign.time_slots)}" if campaign.time_slots else "")
            + (
                ", incentives " + ", ".join(f"{arm_scope(a)}:{a['name']}" for a in experiments["incentives"])
                if experiments.get("incentives")
                else ""
            )
            + (
                f", welcome scripts {', '.join(a['name'] for a in experiments['welcomes'])}"
                if experiments.get("welcomes")
                else ""
            )
            + (f", holdout {experiments['holdout'] * 100:g}%" if experiments.get("holdout") else "")
            + (f", bandit on {experiments['bandit']['factor']}" if experiments.get("bandit") else "")
            + f", add mode {campaign.add_mode}"
        )


@campaign_app.command()
def update(
    name: str,
    add_mode: Optional[str] = typer.Option(
        None, "--add-mode", help="link (SMS with the 联系我 link) | advisor_adds (the advisor adds the callee)"
    ),
) -> None:
    """Change a campaign's settings (now: --add-mode). Leads graded before keep their invitation."""
    from bot.campaigns.add_modes import check_add_mode
    from bot.campaigns.service import set_add_mode

    if add_mode is None:
        raise UserError("nothing to change: give --add-mode link|advisor_adds")
    mode = check_add_mode(add_mode)
    with _session() as session:
        campaign = set_add_mode(session, name, mode)
        console.print(f"campaign [bold]{campaign.name}[/]: add mode {campaign.add_mode}")


def _transition(name: str, action: str) -> None:
    from bot.campaigns.service import change_status

    with _session() as session:
        campaign = change_status(session, name, action)
        console.print(f"campaign [bold]{campaign.name}[/] is now {campaign.status}")
        running = campaign.status == "running"
    if running:
        from bot.cli.worker_health import warn_if_no_dial_worker

        warn_if_no_dial_worker()


@campaign_app.command()
def start(name: str) -> None:
    """Start dialling (the hopper picks it up within a minute)."""
    _transition(name, "start")


@campaign_app.command()
def pause(name: str) -> None:
    """Stop planning new calls; calls in progress finish."""
    _transition(name, "pause")


@campaign_app.command()
def resume(name: str) -> None:
    _transition(name, "resume")


@campaign_app.command()
def stop(name: str) -> None:
    """End the campaign for good."""
    _transition(name, "stop")


@campaign_app.command("list")
def list_campaigns() -> None:
    from sqlalchemy import select

    from bot.campaigns.models import Campaign

    table = Table(title="campaigns")
    for col in ("name", "status", "lines", "cps", "variants", "slots"):
        table.add_column(col)
    with _session() as session:
        for c in session.execute(select(Campaign).order_by(Campaign.id)).scalars():
            table.add_row(
                c.name,
                c.status,
                str(c.lines),
                f"{c.cps:g}",
                ", ".join(v["name"] for v in c.script_variants),
                ", ".join(s["name"] for s in c.time_slots) or "—",
            )
    console.print(table)


@campaign_app.command()
def status(
    name: str,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
    watch: float = typer.Option(0.0, "--watch", help="Refresh every N seconds until Ctrl-C"),
) -> None:
    """Progress: dialled, connected, graded A/B/C/D, call statuses, lines in use."""
    from bot.campaigns.caller_numbers import pool_status
    from bot.campaigns.service import campaign_progress, get_campaign
    from bot.cli.worker_health import dial_workers_seen, worker_warning
    from bot.core.db.base import utc_now

    def snapshot() -> dict:
        workers = dial_workers_seen()
        with _session() as session:
            campaign = get_campaign(session, name)
            progress = campaign_progress(session, campaign)
            return {
                "campaign": campaign.name,
                "status": campaign.status,
                "add_mode": campaign.add_mode,
                "lines": campaign.lines,
                "leads": progress.leads,
                "attempts": progress.attempts,
                "in_flight": progress.by_status.get("scheduled", 0) + progress.by_status.get("dialing", 0),
                "by_status": progress.by_status,
                "outcomes": progress.by_outcome,
                "grades": progress.by_grade,
                # The caller-number pool (None without one): numbers with room today, rested ones.
                "caller_numbers": pool_status(session, campaign.id, utc_now()),
                # Dial workers seen in the last few minutes (None: unknown); the warning when none.
                "dial_workers": None if workers is None else len(workers),
                "worker_warning": worker_warning(workers),
            }

    if as_json:
        print_json(snapshot())
        return
    if watch <= 0:
        data = snapshot()
        console.print(_status_table(data))
        if data["worker_warning"]:
            err_console.print(f"[yellow]warning:[/] {data['worker_warning']}")
        return
    with Live(_status_table(snapshot()), console=console, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(watch)
                live.update(_status_table(snapshot()))
        except KeyboardInterrupt:
            pass


def _status_table(data: dict) -> Table:
    outcomes, grades = data["outcomes"], data["grades"]
    dialled = sum(outcomes.values())
    connected = outcomes.get("answered", 0)
    table = Table(
        title=f"{data['campaign']} — {data['status']}, lines in use {data['in_flight']}/{data['lines']}"
        + (f", add mode {data['add_mode']}" if data.get("add_mode") else "")
    )
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    rows = [
        ("leads", data["leads"], None),
        ("attempts", data["attempts"], None),
        ("dialled calls", dialled, None),
        ("connected calls", connected, dialled),
    ]
    # Grades are per call (a lead called twice can be graded twice); the WeCom funnel counts leads.
    rows += [(f"grade {g} calls", grades.get(g, 0), connected) for g in "ABCD"]
    rows += [(status, n, dialled) for status, n in sorted(outcomes.items()) if status != "answered"]
    for label, value, base in rows:
        table.add_row(label, str(value), f"{value / base:.1%}" if base else "")
    pool = data.get("caller_numbers")
    if pool:
        table.add_row("caller numbers with room today", f"{pool['with_room']}/{pool['numbers']}", "")
        table.add_row("caller number dials today / cap", f"{pool['used_today']}/{pool['cap_today']}", "")
        for rested in pool["rested"]:
            table.add_row(f"rested {rested['number']}", rested["reason"] or "", "")
        if pool["deferred"]:
            table.add_row("[yellow]dials deferred[/]", "every caller number is at its daily cap or rested", "")
    if data.get("dial_workers"):
        table.caption = f"dial workers online: {data['dial_workers']}"
    elif data.get("worker_warning"):
        table.caption = f"[yellow]{data['worker_warning']}[/]"
    return table
