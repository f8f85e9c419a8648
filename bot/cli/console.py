"""Shared rich console and small output helpers for the CLI."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

# Piped into a file or CI log, rich would assume 80 columns and wrap every table cell;
# 120 keeps the funnel tables on one line per row (a terminal uses its own width).
_PIPED_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
console = Console(highlight=False, soft_wrap=True, width=_PIPED_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    """One JSON object on stdout (for --json), nothing else."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, details: list[str] | None = None) -> None:
    # What the user typed is shown as typed: no markup, no :emoji: codes (standard:abc).
    err_console.print(f"[bold red]error:[/] {escape(message)}", emoji=False)
    for line in details or []:
        err_console.print(f"  {line}", markup=False, emoji=False)
