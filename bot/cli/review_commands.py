"""`waihu review …`: the review queue of caller turns the model was unsure about (masked), and
labelling them as NLU training examples for the next `waihu train`."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli.console import console, err_console, print_json
from bot.core.errors import UserError
from bot.core.settings import get_settings

review_app = typer.Typer(
    help="Review queue: caller turns the model was unsure about; label them as training examples.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


def _project():
    from bot.script.project import DialogsProject

    project = DialogsProject(get_settings().dialogs_dir)
    project.check_layout()
    return project


@review_app.command(name="list")
def list_(
    page: int = typer.Option(1, "--page", min=1, help="Page number (newest calls first)."),
    per_page: int = typer.Option(20, "--per-page", min=1, max=200, help="Turns per page."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Caller turns to label: nlu_fallback, unsure agreements, confidence below the fallback
    threshold of dialogs/config.yml, and every turn of a call whose grade was corrected."""
    from bot.campaigns.review import review_queue
    from bot.cli.leads_commands import open_database
    from bot.core.db.engine import session_scope
    from bot.script.nlu_examples import fallback_threshold

    threshold = fallback_threshold(_project())
    with session_scope(open_database()) as session:
        queue = review_queue(session, threshold, offset=(page - 1) * per_page, limit=per_page)
    if as_json:
        print_json(
            {
                "total": queue.total,
                "page": page,
                "per_page": per_page,
                "threshold": threshold,
                "turns": [item.as_json() for item in queue.items],
            }
        )
        return
    pages = max(1, -(-queue.total // per_page))
    table = Table(title=f"review queue: {queue.total} turn(s) to label, page {page}/{pages} (newest first)")
    for column in ("turn", "caller said", "model", "robot asked", "campaign / variant", "call", "why"):
        table.add_column(column)
    for item in queue.items:
        model = f"{item.intent or '—'} {item.confidence:.2f}" if item.confidence is not None else item.intent or "—"
        table.add_row(
            str(item.turn_id),
            escape(item.text),
            model,
            escape(item.robot_line or "—"),
            escape(f"{item.campaign} / {item.script_variant or '—'}"),
            f"/calls/{item.attempt_id}",
            ", ".join(item.reasons),
        )
    console.print(table)
    if queue.items:
        console.print("Label one: waihu review label TURN_ID INTENT (or --skip); `waihu review intents` lists them.")


@review_app.command()
def intents() -> None:
    """The intents a turn may be labelled with (the domain's, FAQ topics as faq/<topic>)."""
    from bot.script.nlu_examples import labellable_intents

    for name in labellable_intents(_project()):
        console.print(name)


@review_app.command()
def label(
    turn_id: int = typer.Argument(..., help="The turn's number from `waihu review list`."),
    intent: Optional[str] = typer.Argument(None, help="What the caller meant, e.g. hesitate or faq/claims."),
    skip: bool = typer.Option(False, "--skip", help="Not speech or not worth training on: leave it out."),
    by: Optional[str] = typer.Option(None, "--by", help="Who labels (default: $USER)."),
) -> None:
    """Label a turn: its masked text becomes an example in dialogs/data/nlu/from_calls.yml
    (unless a training file already has it; a test line is refused). Takes effect at the next training."""
    import getpass

    from bot.campaigns.review import UnknownTurn, label_turn
    from bot.cli.leads_commands import open_database
    from bot.core.db.engine import session_scope
    from bot.web.script_workspace import edit_lock

    if skip == (intent is not None):
        raise UserError("give either an INTENT or --skip (not both): waihu review label TURN_ID INTENT")
    settings = get_settings()
    project = _project()
    try:
        # The console's editor saves under the same lock: one writer of dialogs/ at a time.
        with edit_lock(settings.data_dir / "locks", project), session_scope(open_database()) as session:
            result = label_turn(session, project, turn_id, None if skip else intent, by or getpass.getuser())
    except UnknownTurn:
        raise UserError(f"no caller turn {turn_id}; see `waihu review list`") from None
    if result.outcome == "in_test_set":
        err_console.print(f"turn {turn_id}: {escape(result.message)}", style="yellow")
        raise typer.Exit(1)
    console.print(
        f"turn {turn_id}: {escape(result.text)} → {escape(result.intent or 'skipped')}: {escape(result.message)}"
    )
