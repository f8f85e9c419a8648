"""`waihu recordings …`: call recordings kept for ops (status and the retention purge).

Recordings are made for every connected call (bot.dialing.recordings), filed by attempt id
under WAIHU_RECORDINGS_DIR and purged WAIHU_RECORDING_RETENTION_DAYS days after the call
by the `purge-recordings` beat task; `purge` here runs the same purge by hand.
"""

from __future__ import annotations

import typer

from bot.cli.console import console, print_json

recordings_app = typer.Typer(help="Call recordings: the retention purge.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(recordings_app, name="recordings")


@recordings_app.command()
def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what is past retention; delete nothing"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """Delete the recordings past their retention (files and rows)."""
    from bot.core.clock import clock_from_settings
    from bot.core.db.engine import open_database, session_scope
    from bot.core.settings import get_settings
    from bot.dialing.recordings import purge_expired

    settings = get_settings()
    with session_scope(open_database()) as session:
        report = purge_expired(session, clock_from_settings().now(), dry_run=dry_run)
    if as_json:
        print_json({**report.as_json(), "retention_days": settings.recording_retention_days})
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{report.due} recording(s) past {settings.recording_retention_days} days of retention: "
        f"{verb} {report.files} file(s), {report.bytes / 1e6:.1f} MB ({settings.recordings_dir})"
    )
