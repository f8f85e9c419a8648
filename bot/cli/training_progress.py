"""One progress line while the dialogue model trains (Rasa's own output goes to its log)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bot.script.project import DialogsProject
from bot.script.training import TrainResult, current_model, train, training_log_path


def train_with_progress(project: DialogsProject, models_dir: Path, force: bool = False) -> TrainResult:
    """Train (or find the model up to date) showing a spinner, the elapsed time and where
    the full log goes; nothing else reaches the terminal."""
    if current_model(project, models_dir) is not None and not force:
        return train(project, models_dir)
    # Bound to the terminal now: training redirects sys.stderr to its log file.
    terminal = Console(file=sys.stderr)
    log_path = training_log_path(models_dir, project.fingerprint())
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=terminal, transient=True) as progress:
        progress.add_task(f"training the dialogue model (full log: {log_path})", total=None)
        return train(project, models_dir, force=force)
