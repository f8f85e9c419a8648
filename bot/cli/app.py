"""`waihu` command line: one entry point, sub-commands per job."""

from __future__ import annotations

import sys

import typer

import bot.core.rasa_env  # noqa: F401  (sets quiet, offline defaults before Rasa loads)
from bot.cli import (
    ab_commands,
    campaign_commands,
    conversion_commands,
    grade_commands,
    keys_commands,
    leads_commands,
    prompt_commands,
    recording_commands,
    report_commands,
    review_commands,
    run_commands,
    script_commands,
    serve_commands,
    sop_commands,
    user_commands,
    webhook_commands,
    wecom_commands,
)
from bot.cli.console import fail
from bot.core.errors import UserError

app = typer.Typer(
    name="waihu",
    help="waihu: AI outbound-call robot and intent engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# One line per command group: each module adds its commands with `register(app)`.
for commands in (
    script_commands,
    review_commands,
    leads_commands,
    grade_commands,
    campaign_commands,
    run_commands,
    prompt_commands,
    ab_commands,
    report_commands,
    conversion_commands,
    user_commands,
    wecom_commands,
    sop_commands,
    webhook_commands,
    serve_commands,
    keys_commands,
    recording_commands,
):
    commands.register(app)


def main() -> None:
    try:
        app()
    except UserError as exc:
        fail(str(exc), exc.details)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
