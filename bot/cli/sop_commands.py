"""`waihu sop …`: the WeCom follow-up sequences after the add — check the file, see how they
are doing, send what is due, and record a contact's reply or opt-out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from bot.cli.console import console, print_json
from bot.core.errors import UserError

sop_app = typer.Typer(help="WeCom follow-up sequences (SOP) after the add.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sop_app, name="sop")


@sop_app.command()
def check(
    file: Optional[Path] = typer.Option(None, "--file", help="Sequences file (default dialogs/wecom/sequences.yml)"),
) -> None:
    """Check the sequences file; every error gives file:line:col."""
    from bot.wecom.sequences import load_sequences

    loaded = load_sequences(file)
    console.print(f"{loaded.path}: ok — {len(loaded.sequences)} sequence(s)")
    table = Table("人群包", "等级", "序列（多个即 A/B 组）")
    for key, grades in loaded.audiences.items():
        for grade, arms in grades.items():
            table.add_row(key, grade, "、".join(arms))
    console.print(table)


@sop_app.command()
def status(
    campaign: Optional[int] = typer.Option(None, "--campaign", help="Only this campaign id"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """Per sequence arm: enrolled, steps sent, skipped by the weekly cap, click and conversion
    rates, stops by reason."""
    from bot.core.db.engine import open_database, session_scope
    from bot.experiments.sop_report import sequence_arms

    with session_scope(open_database()) as session:
        rows: list[dict[str, Any]] = [arm.as_json() for arm in sequence_arms(session, campaign)]
    if as_json:
        print_json({"arms": rows})
        return
    if not rows:
        console.print("no contact is enrolled in a follow-up sequence yet")
        return
    table = Table("序列（组）", "入组", "已发送", "超周上限跳过", "点击率", "成交率", "完成", "停止（原因）")
    for row in rows:
        stopped = "，".join(f"{k} {v}" for k, v in row["stopped"].items()) or "-"
        table.add_row(
            row["arm"],
            str(row["enrolled"]),
            str(row["sent"]),
            str(row["skipped_cap"]),
            f"{row['click_rate']:.1%}",
            f"{row['conversion_rate']:.1%}",
            str(row["completed"]),
            stopped,
        )
    console.print(table)


@sop_app.command("run-due")
def run_due_command(as_json: bool = typer.Option(False, "--json", help="One JSON object")) -> None:
    """Send the steps due now through WeCom (what beat does every minute)."""
    import asyncio

    from bot.wecom.tasks import run_sop_pass

    report = asyncio.run(run_sop_pass())
    if as_json:
        print_json(report)
        return
    console.print(", ".join(f"{key} {value}" for key, value in report.items()))


def _enrolment(session, enrolment_id: int):
    from bot.wecom.sop_models import SopEnrolment

    enrolment = session.get(SopEnrolment, enrolment_id)
    if enrolment is None:
        raise UserError(f"no follow-up enrolment {enrolment_id}; `waihu sop status` lists the sequences")
    return enrolment


@sop_app.command()
def reply(
    enrolment_id: int = typer.Argument(..., help="The enrolment (shown on the lead's call page)"),
    text: str = typer.Option(..., "--text", help="What the contact wrote (退订 opts them out)"),
) -> None:
    """Record a contact's reply (WeCom does not push replies without 会话存档): 退订 stops
    everything and adds the number to DNC; anything else follows the reply branch."""
    from bot.core.db.base import utc_now
    from bot.core.db.engine import open_database, session_scope
    from bot.wecom.sop import default_sop_config, on_reply

    sequences, policy = default_sop_config()
    with session_scope(open_database()) as session:
        outcome = on_reply(
            session, _enrolment(session, enrolment_id), text, sequences=sequences, policy=policy, now=utc_now()
        )
    console.print(outcome)


@sop_app.command("opt-out")
def opt_out_command(enrolment_id: int = typer.Argument(..., help="The enrolment")) -> None:
    """Stop every follow-up for this person and add the number to DNC (an ops action)."""
    from bot.core.db.base import utc_now
    from bot.core.db.engine import open_database, session_scope
    from bot.wecom.sop import opt_out

    with session_scope(open_database()) as session:
        outcome = opt_out(session, _enrolment(session, enrolment_id), now=utc_now(), source="ops")
    console.print(outcome)
