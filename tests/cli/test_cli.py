"""The `waihu` command as a user runs it: exit codes, messages, no tracebacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.script.project import DialogsProject
from bot.core.settings import PROJECT_ROOT

WAIHU = [sys.executable, "-m", "bot.cli.app"]


def waihu(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        WAIHU + list(args), input=stdin, capture_output=True, text=True, timeout=600,
        cwd=PROJECT_ROOT, env={**os.environ, "COLUMNS": "200", **env},
    )


def assert_clean_failure(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr + result.stdout, (needle, result.stderr, result.stdout)


def test_validate_passes_on_the_shipped_script() -> None:
    result = waihu("validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dialogs are valid" in result.stdout


def test_validate_reports_file_and_line(dialogs_copy: DialogsProject) -> None:
    stories = dialogs_copy.data_dir / "stories.yml"
    stories.write_text(stories.read_text(encoding="utf-8").replace("intent: busy", "intent: bussy"), encoding="utf-8")
    result = waihu("validate", WAIHU_DIALOGS_DIR=str(dialogs_copy.root))
    line = next(i for i, l in enumerate(stories.read_text(encoding="utf-8").splitlines(), 1) if "bussy" in l)
    assert_clean_failure(result, f"dialogs/data/stories.yml:{line}: error: unknown intent 'bussy'")


def test_train_refuses_broken_yaml(dialogs_copy: DialogsProject, tmp_path: Path) -> None:
    domain = dialogs_copy.domain_dir / "responses.yml"
    domain.write_text(domain.read_text(encoding="utf-8") + "  utter_broken:\n    - text: [unclosed\n", encoding="utf-8")
    result = waihu("train", WAIHU_DIALOGS_DIR=str(dialogs_copy.root), WAIHU_MODELS_DIR=str(tmp_path))
    assert_clean_failure(result, "dialogs/domain/responses.yml:", "malformed YAML")
    assert not list(tmp_path.glob("*.tar.gz"))


def test_train_skips_unchanged_dialogs(model_path: Path) -> None:
    result = waihu("train")
    assert result.returncode == 0, result.stderr
    assert "model up to date" in result.stdout and model_path.name in result.stdout


def test_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    result = waihu("shell", stdin="", WAIHU_MODELS_DIR=str(tmp_path))
    assert_clean_failure(result, "No trained model", "Run `waihu train` first")
    result = waihu("nlu", "eval", "dialogs/tests/nlu_heldout.yml", "--model", str(tmp_path / "x.tar.gz"))
    assert_clean_failure(result, "does not exist")


def test_nlu_eval_bad_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("nlu: [\n", encoding="utf-8")
    assert_clean_failure(waihu("nlu", "eval", str(bad)), "bad.yml", "not a valid Rasa NLU YAML file")
    assert_clean_failure(waihu("nlu", "eval", str(tmp_path / "missing.yml")), "no such file")


def test_shell_talks_to_the_robot(model_path: Path) -> None:
    result = waihu("shell", "--variant", "benefit_first", "--surname", "刘", "--gender", "F",
                   stdin="你是机器人吗\n\n好的你加我微信吧\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "刘女士您好" in out
    assert "ask_is_robot" in out and "agree_add_wecom" in out
    assert "utter_reprompt_silence" not in out or "喂，您好" in out
    assert "call ended by bot" in out


def test_nlu_eval_json(model_path: Path) -> None:
    result = waihu("nlu", "eval", "dialogs/tests/nlu_heldout.yml", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {"macro_f1", "accuracy", "per_intent", "confusions"}
    assert report["macro_f1"] >= 0.90
    assert report["per_intent"]["stop_calling"]["support"] == 20
    for confusion in report["confusions"]:
        assert confusion["gold"] != confusion["predicted"] and confusion["count"] >= 1
