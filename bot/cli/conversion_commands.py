"""`waihu conversions …`: policies and premium (成交) matched to leads and their arms."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli.console import console, print_json

conversions_app = typer.Typer(
    help="Conversions (policies, premium) matched to leads, their last call and its A/B arms.", no_args_is_help=True
)
BEIJING = ZoneInfo("Asia/Shanghai")
_STATUS_LABELS = {"unmatched": "no such lead", "rejected": "invalid"}


def register(app: typer.Typer) -> None:
    app.add_typer(conversions_app, name="conversions")


def _database():
    from bot.core.db.engine import open_database

    return open_database()


def _keyring():
    from bot.core.pii import keyring_from_settings

    return keyring_from_settings()


def _when(value: Optional[datetime]) -> str:
    return value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M") if value else "—"


@conversions_app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="CSV or XLSX export of policies (GBK or UTF-8)"),
    column_map: list[str] = typer.Option(
        [],
        "--map",
        help="FIELD=COLUMN when a header is not recognised, e.g. --map policy_no=单号 or --map premium=#4 "
        "(fields: policy_no, product, premium, converted_at, external_id, phone)",
    ),
    window_days: int = typer.Option(
        30, "--window-days", min=1, help="Attribute a policy to the lead's last connected call within this many days"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary and rows not taken as JSON"),
) -> None:
    """Import conversions: match each policy to its lead (外部ID, else 手机号) and the lead's last call.

    Re-importing the same file changes nothing (policy numbers already stored are duplicates).
    Rows not taken are kept with their row, field and reason (`waihu conversions rejects`)."""
    from bot.core.tabular_file import parse_column_overrides
    from bot.experiments.conversion_import import import_conversions

    progress = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(unit=" rows", desc=file.name, file=sys.stderr, leave=False)
    try:
        summary, problems = import_conversions(
            _database(),
            _keyring(),
            file,
            parse_column_overrides(column_map),
            window_days=window_days,
            on_rows=progress.update if progress is not None else None,
        )
    finally:
        if progress is not None:
            progress.close()
    if as_json:
        print_json({"summary": summary.__dict__, "not_taken": [p.as_json() for p in problems]})
        return
    table = Table(title=f"conversions — {escape(summary.file)}", header_style="bold")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("[green]accepted[/]", f"{summary.accepted:,}")
    table.add_row("  attributed to a call (within the window)", f"{summary.attributed:,}")
    table.add_row("  matched to the lead, unattributed", f"{summary.accepted - summary.attributed:,}")
    table.add_row("duplicate (already stored, unchanged)", f"{summary.duplicates:,}")
    table.add_row("[red]unmatched[/] (no such lead)", f"{summary.unmatched:,}")
    table.add_row("[red]rejected[/] (invalid)", f"{summary.rejected:,}")
    table.add_row("[bold]total rows[/]", f"{summary.rows:,}")
    console.print(table)
    console.print(f"premium accepted: {summary.premium:,.2f} yuan")
    for problem in problems[:20]:
        for error in problem.errors:
            console.print(f"  row {problem.row_number}, {error.field}: {escape(error.message)}")
    if len(problems) > 20:
        console.print(f"  … and {len(problems) - 20} more: waihu conversions rejects")


@conversions_app.command("list")
def list_command(
    campaign: Optional[str] = typer.Option(None, "--campaign", help="Only policies attributed to this campaign"),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The newest conversions: policy, product, premium, the lead (masked), campaign and arms."""
    from sqlalchemy import select

    from bot.campaigns.models import Campaign
    from bot.core.db.engine import session_scope
    from bot.core.errors import UserError
    from bot.experiments.conversions import list_conversions

    with session_scope(_database()) as session:
        campaign_id = None
        if campaign is not None:
            campaign_id = session.execute(select(Campaign.id).where(Campaign.name == campaign)).scalar_one_or_none()
            if campaign_id is None:
                raise UserError(f"--campaign {campaign!r}: no such campaign (waihu campaign list)")
        rows = list_conversions(session, campaign_id=campaign_id, limit=limit)
    if as_json:
        print_json([{**row.__dict__, "converted_at": row.converted_at.isoformat()} for row in rows])
        return
    table = Table(title="conversions", header_style="bold")
    for column in ("policy", "product", "premium (yuan)", "converted (Beijing)", "lead", "phone", "campaign", "arms"):
        table.add_column(column, justify="right" if column.startswith("premium") else "left")
    for row in rows:
        arms = ", ".join(f"{k}={v}" for k, v in sorted(row.arms.items())) if row.attempt_id else "unattributed"
        table.add_row(
            escape(row.policy_no),
            escape(row.product),
            f"{row.premium:,.2f}",
            _when(row.converted_at),
            str(row.lead_id),
            row.phone_masked,
            str(row.campaign_id or "—"),
            escape(arms),
        )
    console.print(table)


@conversions_app.command("rejects")
def rejects_command(
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Conversion rows not taken (no such lead, invalid premium …): where (row, field) and why, masked."""
    from bot.core.db.engine import session_scope
    from bot.experiments.conversions import list_rejects

    with session_scope(_database()) as session:
        rows = [
            {
                "source": r.source,
                "batch": r.batch,
                "row": r.row_number,
                "field": r.field,
                "reason": r.reason,
                "message": r.message,
                "policy_no": r.policy_no,
                "raw": r.raw_masked,
                "at": r.created_at.isoformat(),
            }
            for r in list_rejects(session, limit=limit)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="conversion rows not taken", header_style="bold")
    for column in ("source", "file / batch", "row", "field", "reason", "message"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["source"],
            escape(row["batch"] or "—"),
            str(row["row"]),
            row["field"],
            _STATUS_LABELS.get(row["reason"], row["reason"]),
            escape(row["message"]),
        )
    console.print(table)
