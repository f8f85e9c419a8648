"""Shared rich console and small output helpers for the CLI."""
from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    """One JSON object on stdout (for --json), nothing else."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, details: list[str] | None = None) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    for line in details or []:
        err_console.print(f"  {line}")
