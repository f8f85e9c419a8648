"""`waihu audiences …`: audience packs by scene (车主/宝妈/…) and tier (普通/中等/绩优/高绩优)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from bot.cli.console import console, print_json
from bot.cli.leads_commands import open_database

audiences_app = typer.Typer(help="Audience packs: scene, tier, attributes.", no_args_is_help=True)


@audiences_app.command()
def create(
    name: str = typer.Argument(...),
    scene: Optional[str] = typer.Option(None, "--scene", help="车主/宝妈/银行/单身/养老/… (guessed from the name)"),
    tier: Optional[str] = typer.Option(None, "--tier", help="普通/中等/绩优/高绩优"),
    attr: list[str] = typer.Option([], "--attr", help="KEY=VALUE, repeatable"),
) -> None:
    """Create an audience pack."""
    from bot.audiences.service import create_audience, parse_attributes
    from bot.core.db.engine import session_scope

    with session_scope(open_database()) as session:
        pack = create_audience(session, name, scene=scene, tier=tier, attributes=parse_attributes(attr))
        console.print(f"created audience pack {pack.name!r} (scene {pack.scene or '-'}, tier {pack.tier or '-'})")


@audiences_app.command(name="list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Audience packs with their lead counts."""
    from bot.core.db.engine import session_scope
    from bot.leads.by_audience import list_audiences

    with session_scope(open_database()) as session:
        rows = list_audiences(session)
    if as_json:
        print_json({"audiences": [row.__dict__ for row in rows]})
        return
    if not rows:
        console.print("no audience packs yet: waihu audiences create NAME --scene 车主 --tier 绩优")
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("name", "scene", "tier", "leads", "attributes"):
        table.add_column(column, justify="right" if column == "leads" else "left")
    for row in rows:
        table.add_row(
            row.name,
            row.scene or "-",
            row.tier or "-",
            str(row.leads),
            ", ".join(f"{k}={v}" for k, v in row.attributes.items()),
        )
    console.print(table)


@audiences_app.command()
def show(name: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """One audience pack: scene, tier, attributes, leads per lead pack."""
    from sqlalchemy import func, select

    from bot.audiences.service import get_audience
    from bot.core.db.engine import session_scope
    from bot.leads.models import Lead, LeadPack

    with session_scope(open_database()) as session:
        pack = get_audience(session, name)
        per_pack = session.execute(
            select(LeadPack.name, func.count(Lead.id))
            .join(Lead, Lead.pack_id == LeadPack.id)
            .where(Lead.audience_id == pack.id)
            .group_by(LeadPack.name)
            .order_by(LeadPack.name)
        ).all()
        data = {
            "name": pack.name,
            "scene": pack.scene,
            "tier": pack.tier,
            "attributes": pack.attributes or {},
            "created_at": pack.created_at.isoformat(),
            "leads": sum(n for _, n in per_pack),
            "lead_packs": {name: n for name, n in per_pack},
        }
    if as_json:
        print_json(data)
        return
    console.print(
        f"[bold]{data['name']}[/]  scene {data['scene'] or '-'} · tier {data['tier'] or '-'} · {data['leads']} leads"
    )
    for key, value in data["attributes"].items():
        console.print(f"  {key}: {value}")
    for pack_name, count in data["lead_packs"].items():
        console.print(f"  lead pack {pack_name}: {count}")
