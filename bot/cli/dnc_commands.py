"""`waihu dnc …`: the do-not-call list (numbers are hashed; output is masked)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Optional

import typer

from bot.cli.console import console, print_json
from bot.cli.leads_commands import keyring, open_database

dnc_app = typer.Typer(help="Do-not-call list: add, remove, import, check.", no_args_is_help=True)

SCOPE_HELP = "opt_out (permanent) or soft_decline (expires; default 180 days)"


@dnc_app.command()
def add(
    phone: str = typer.Argument(...),
    scope: str = typer.Option("opt_out", "--scope", help=SCOPE_HELP),
    days: Optional[int] = typer.Option(None, "--days", help="soft_decline only: days until it expires"),
    reason: str = typer.Option("", "--reason", help="Why, e.g. 投诉 / 不需要"),
    source: str = typer.Option("manual", "--source", help="Where it came from, e.g. call:123, complaint desk"),
) -> None:
    """Put a number on the do-not-call list."""
    from bot.core.db.base import utc_now
    from bot.core.db.engine import session_scope
    from bot.core.errors import UserError
    from bot.core.pii import mask_phone
    from bot.dnc.service import add_entry, parse_phone_or_fail

    number = parse_phone_or_fail(phone).number
    if days is not None and (scope != "soft_decline" or days < 1):
        raise UserError("--days applies to --scope soft_decline only, and must be at least 1")
    now = utc_now()
    with session_scope(open_database()) as session:
        entry = add_entry(
            session,
            keyring().hash_phone(number),
            scope=scope,
            reason=reason,
            source=source,
            expires_at=now + timedelta(days=days) if days else None,
            now=now,
        )
        until = "permanently" if entry.expires_at is None else f"until {entry.expires_at:%Y-%m-%d}"
    console.print(f"{mask_phone(number)}: on the do-not-call list ({scope}) {until}")


@dnc_app.command()
def remove(
    phone: str = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="Why (e.g. the person asked to be called again, in writing)"),
    scope: Optional[str] = typer.Option(None, "--scope", help="Only this scope (default: all)"),
) -> None:
    """Take a number off the do-not-call list (needs a reason; an opt-out is the person's decision)."""
    from bot.core.db.engine import session_scope
    from bot.core.errors import UserError
    from bot.core.pii import mask_phone
    from bot.dnc.service import parse_phone_or_fail, remove_entries

    if not reason.strip():
        raise UserError("--reason must say why the number may be called again")
    number = parse_phone_or_fail(phone).number
    with session_scope(open_database()) as session:
        removed = remove_entries(session, keyring().hash_phone(number), scope)
    console.print(
        f"{mask_phone(number)}: removed {removed} do-not-call entr{'y' if removed == 1 else 'ies'}"
        + ("" if removed else " (it was not on the list)")
    )


@dnc_app.command(name="import")
def import_(
    file: Path = typer.Argument(..., help="CSV/TSV/XLSX with a phone column, or a bare list of numbers"),
    scope: str = typer.Option("opt_out", "--scope", help=SCOPE_HELP),
    reason: str = typer.Option("", "--reason"),
    source: Optional[str] = typer.Option(None, "--source", help="Default: import:<file name>"),
    column: Optional[str] = typer.Option(None, "--column", help="Phone column name or #number"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import a do-not-call list. Invalid rows are listed (masked), never silently skipped."""
    from bot.core.db.engine import session_scope
    from bot.dnc.service import import_file

    with session_scope(open_database()) as session:
        summary = import_file(
            session, keyring(), file, scope=scope, reason=reason, source=source or f"import:{file.name}", column=column
        )
    if as_json:
        print_json(
            {
                "rows": summary.rows,
                "added": summary.added,
                "already_listed": summary.already_listed,
                "invalid": summary.invalid,
            }
        )
        return
    console.print(
        f"{file}: {summary.rows} rows, {summary.added} numbers on the list ({scope}; "
        f"{summary.already_listed} were already), "
        f"{len(summary.invalid)} invalid"
    )
    for line in summary.invalid[:50]:
        console.print(f"  [red]invalid[/] {line}")
    if len(summary.invalid) > 50:
        console.print(f"  … {len(summary.invalid) - 50} more (use --json for all)")


@dnc_app.command()
def check(phone: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Is this number on the do-not-call list now?"""
    from bot.core.db.engine import session_scope
    from bot.core.pii import mask_phone
    from bot.dnc.service import active_entries, describe, parse_phone_or_fail

    number = parse_phone_or_fail(phone).number
    with session_scope(open_database()) as session:
        entries = active_entries(session, keyring().hash_phone(number))
    if as_json:
        print_json(
            {
                "phone": mask_phone(number),
                "do_not_call": bool(entries),
                "entries": [
                    {
                        "scope": e.scope,
                        "reason": e.reason,
                        "source": e.source,
                        "expires_at": e.expires_at.isoformat() if e.expires_at else None,
                    }
                    for e in entries
                ],
            }
        )
        return
    if not entries:
        console.print(f"{mask_phone(number)}: not on the do-not-call list")
    for entry in entries:
        console.print(f"{mask_phone(number)}: [red]do not call[/] — {describe(entry)}")
