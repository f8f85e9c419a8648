"""`waihu` command line: one entry point, sub-commands per job."""

from __future__ import annotations

import sys

import typer

import bot.core.rasa_env  # noqa: F401  (sets quiet, offline defaults before Rasa loads)
from bot.cli import campaign_commands, grade_commands, leads_commands, script_commands
from bot.cli.console import fail
from bot.core.errors import UserError

app = typer.Typer(
    name="waihu",
    help="waihu: AI outbound-call robot and intent engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
script_commands.register(app)
leads_commands.register(app)
grade_commands.register(app)
campaign_commands.register(app)
from bot.cli import prompt_commands

prompt_commands.register(app)  # noqa: E402,E702 (one line: several people add commands here)
from bot.cli import ab_commands

ab_commands.register(app)  # noqa: E402,E702
from bot.cli import report_commands

report_commands.register(app)  # noqa: E402,E702
from bot.cli import user_commands

user_commands.register(app)  # noqa: E402,E702
from bot.cli import wecom_commands

wecom_commands.register(app)  # noqa: E402,E702
from bot.cli import serve_commands

serve_commands.register(app)  # noqa: E402,E702
from bot.cli import keys_commands

keys_commands.register(app)  # noqa: E402,E702


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
