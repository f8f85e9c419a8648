"""Train the Rasa model from dialogs/, skipping work when nothing changed.

Models are content-addressed: `models/waihu-<fingerprint>.tar.gz`. An unchanged
dialogs/ never retrains; a changed one retrains through Rasa's own component cache,
so editing a script line does not retrain the NLU.

Rasa's and TensorFlow's output (progress bars per epoch, warnings) goes to a log file
next to the models, `models/logs/train-<fingerprint>.log`, not to the terminal: the
caller shows one progress line and the result, and points at the log when it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.core.errors import UserError
from bot.core.rasa_env import quiet_rasa
from bot.script.project import DialogsProject

MODEL_PREFIX = "waihu-"
# A component option naming labelled test files whose lines must never be trained on.
EXCLUDE_TEXTS_KEY = "exclude_texts_from"
KEEP_OLD_MODELS = 5


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    trained: bool
    seconds: float
    log_path: Path | None = None


def training_log_path(models_dir: Path, fingerprint: str) -> Path:
    return models_dir / "logs" / f"train-{fingerprint[:16]}.log"


def model_path_for(models_dir: Path, fingerprint: str) -> Path:
    return models_dir / f"{MODEL_PREFIX}{fingerprint[:16]}.tar.gz"


def current_model(project: DialogsProject, models_dir: Path) -> Path | None:
    """The model trained from dialogs/ as it is now, if there is one."""
    path = model_path_for(models_dir, project.fingerprint())
    return path if path.exists() else None


def require_model(project: DialogsProject, models_dir: Path) -> Path:
    path = current_model(project, models_dir)
    if path is None:
        raise UserError(
            f"No trained model for {project.relative(project.root)} as it is now "
            f"(looked in {models_dir}). Run `waihu train` first."
        )
    return path


def train(project: DialogsProject, models_dir: Path, force: bool = False) -> TrainResult:
    project.check_layout()
    started = time.perf_counter()
    target = model_path_for(models_dir, project.fingerprint())
    if target.exists() and not force:
        return TrainResult(target, trained=False, seconds=time.perf_counter() - started)

    models_dir.mkdir(parents=True, exist_ok=True)
    # Rasa keeps its component cache in the working directory unless told otherwise.
    os.environ.setdefault("RASA_CACHE_DIRECTORY", str(models_dir / ".rasa-cache"))
    config_file = _build_config(project, models_dir / ".build")
    log_path = training_log_path(models_dir, project.fingerprint())
    log_path.parent.mkdir(parents=True, exist_ok=True)

    with log_path.open("w", encoding="utf-8") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        import rasa.api  # slow import (TensorFlow): only when we really train
        from rasa.shared.exceptions import RasaException

        quiet_rasa()
        try:
            result = rasa.api.train(
                domain=str(project.domain_dir),
                config=str(config_file),
                training_files=[str(project.data_dir)],
                output=str(models_dir),
                fixed_model_name=target.name.removesuffix(".tar.gz"),
                force_training=force,
            )
        except SystemExit:  # Rasa exits on invalid training data
            result = None
        except RasaException as exc:  # a file Rasa cannot read (schema, YAML): Rasa's message says where
            raise UserError(f"Rasa could not read the training data: {exc}\nFull log: {log_path}.") from None
    if result is None:
        raise UserError(
            f"Rasa refused the training data:\n{_log_tail(log_path)}\n"
            f"Full log: {log_path}. Run `waihu validate` to find the file and line."
        )
    if result.code != 0 or not target.exists():
        raise UserError(
            f"training failed (Rasa exit code {result.code}):\n{_log_tail(log_path)}\n"
            f"Full log: {log_path}. Run `waihu validate`."
        )
    _prune_old_models(models_dir, keep=target)
    return TrainResult(target, trained=True, seconds=time.perf_counter() - started, log_path=log_path)


def _log_tail(log_path: Path, lines: int = 12) -> str:
    """The last lines of the training log that say something (progress bars dropped)."""
    text = log_path.read_text(encoding="utf-8", errors="replace")
    kept = [line for line in text.replace("\r", "\n").splitlines() if line.strip() and "it/s" not in line]
    return "\n".join(kept[-lines:])


def _build_config(project: DialogsProject, build_dir: Path) -> Path:
    """config.yml with the jieba dictionary copied to a content-addressed folder.

    Rasa fingerprints component *config*, not dictionary files, so a dictionary edit
    would otherwise reuse a stale tokenizer from its cache.
    """
    config = yaml.safe_load(project.config_file.read_text(encoding="utf-8"))
    for component in config.get("pipeline") or []:
        if component.get("name") == "JiebaTokenizer" and component.get("dictionary_path"):
            source = (project.root / component["dictionary_path"]).resolve()
            if not source.is_dir():
                raise UserError(
                    f"{project.relative(project.config_file)}: JiebaTokenizer dictionary_path "
                    f"'{component['dictionary_path']}' must be a folder of jieba dictionary files."
                )
            component["dictionary_path"] = str(_content_addressed_copy(source, build_dir / "jieba"))
        if component.get(EXCLUDE_TEXTS_KEY):
            # Test files named relative to dialogs/; the component reads them from anywhere.
            component[EXCLUDE_TEXTS_KEY] = [str((project.root / p).resolve()) for p in component[EXCLUDE_TEXTS_KEY]]
    build_dir.mkdir(parents=True, exist_ok=True)
    out = build_dir / "config.yml"
    out.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


def _content_addressed_copy(source: Path, parent: Path) -> Path:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target = parent / digest.hexdigest()[:16]
    if not target.exists():
        tmp = parent / f".tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        tmp.rename(target)
    return target


def _prune_old_models(models_dir: Path, keep: Path) -> None:
    models = sorted(models_dir.glob(f"{MODEL_PREFIX}*.tar.gz"), key=lambda p: p.stat().st_mtime)
    for old in [m for m in models if m != keep][: -KEEP_OLD_MODELS or None]:
        old.unlink(missing_ok=True)
