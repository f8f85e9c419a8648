"""`waihu campaign numbers add/list/rest/unrest/cap`: a campaign's caller-number pool.

Caller numbers are ours, not the callees': they are shown in full."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from bot.cli.console import console, print_json

numbers_app = typer.Typer(
    help="A campaign's caller numbers (主叫号码池): local first, a daily cap each, rested when they stop connecting.",
    no_args_is_help=True,
)


def _session():
    from bot.core.db.engine import open_database, session_scope

    return session_scope(open_database())


def _now():
    from bot.core.db.base import utc_now

    return utc_now()


@numbers_app.command("add")
def add(
    campaign: str = typer.Argument(..., help="Campaign name"),
    numbers: list[str] = typer.Argument(..., help="Caller number(s): mobiles or landlines with area code"),
    cap: int = typer.Option(200, "--cap", help="Dials per number per day (Beijing date)"),
) -> None:
    """Add caller numbers to a campaign's pool; each one's 归属地 comes from the number."""
    from bot.campaigns.caller_numbers import PoolEntry, add_caller_number
    from bot.campaigns.service import get_campaign

    with _session() as session:
        found = get_campaign(session, campaign)
        for number in numbers:
            row = add_caller_number(session, found.id, number, cap, now=_now())
            entry = PoolEntry(row.number, row.province, row.city, row.daily_cap, 0, False, None, None)
            console.print(f"added {row.number} ({entry.place}), {row.daily_cap} dials a day, to {found.name}")


@numbers_app.command("list")
def list_numbers(
    campaign: str = typer.Argument(..., help="Campaign name"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """The pool: each number's 归属地, today's dials of its cap, rested or not (and why)."""
    from bot.campaigns.caller_numbers import pool
    from bot.campaigns.service import get_campaign

    with _session() as session:
        found = get_campaign(session, campaign)
        entries = pool(session, found.id, _now())
    if as_json:
        print_json(
            [
                {
                    "number": e.number,
                    "province": e.province,
                    "city": e.city,
                    "daily_cap": e.daily_cap,
                    "used_today": e.used_today,
                    "rested": e.rested,
                    "rested_reason": e.rested_reason,
                }
                for e in entries
            ]
        )
        return
    if not entries:
        console.print(f"{campaign}: no caller numbers; dials show the carrier's default caller id")
        return
    table = Table(title=f"{campaign}: caller numbers")
    for column in ("number", "region", "today / cap", "state"):
        table.add_column(column)
    for e in entries:
        state = f"rested: {e.rested_reason}" if e.rested else ("at cap today" if e.full else "in use")
        table.add_row(e.number, e.place, f"{e.used_today}/{e.daily_cap}", state)
    console.print(table)


@numbers_app.command("rest")
def rest(
    campaign: str = typer.Argument(..., help="Campaign name"),
    number: str = typer.Argument(..., help="Caller number"),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (shown in the console and status)"),
) -> None:
    """Stop dialling with a number (until `unrest`)."""
    _set(campaign, number, True, reason)


@numbers_app.command("unrest")
def unrest(
    campaign: str = typer.Argument(..., help="Campaign name"),
    number: str = typer.Argument(..., help="Caller number"),
) -> None:
    """Dial with a rested number again."""
    _set(campaign, number, False, None)


@numbers_app.command("cap")
def cap(
    campaign: str = typer.Argument(..., help="Campaign name"),
    number: str = typer.Argument(..., help="Caller number"),
    daily_cap: int = typer.Argument(..., help="Dials per day"),
) -> None:
    """Change a number's daily cap."""
    from bot.campaigns.caller_numbers import set_cap
    from bot.campaigns.service import get_campaign

    with _session() as session:
        row = set_cap(session, get_campaign(session, campaign).id, number, daily_cap)
        console.print(f"{row.number}: {row.daily_cap} dials a day")


def _set(campaign: str, number: str, rested: bool, reason: str | None) -> None:
    from bot.campaigns.caller_numbers import set_rested
    from bot.campaigns.service import get_campaign

    with _session() as session:
        row = set_rested(session, get_campaign(session, campaign).id, number, rested, reason, _now())
        console.print(f"{row.number}: " + (f"rested ({row.rested_reason})" if rested else "back in use"))
