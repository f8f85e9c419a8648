"""Training is skipped when dialogs/ is unchanged and redone when anything the model
is built from changes (including the jieba dictionary, which Rasa's cache ignores)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.core.errors import UserError
from bot.script.project import DialogsProject
from bot.script.training import current_model, model_path_for, require_model, train


def test_unchanged_dialogs_are_not_retrained(dialogs_project: DialogsProject, model_path: Path) -> None:
    written = model_path.stat().st_mtime_ns
    result = train(dialogs_project, model_path.parent)
    assert result.trained is False
    assert result.model_path == model_path
    assert model_path.stat().st_mtime_ns == written  # a hash, not a training run


@pytest.mark.parametrize(
    "relative, change",
    [
        ("domain/responses.yml", lambda t: t.replace("再见。", "再会。", 1)),
        ("data/rules.yml", lambda t: t + "\n"),
        ("jieba/userdict.txt", lambda t: t + "保单托管 1000 n\n"),
        ("config.yml", lambda t: t.replace("epochs: 30", "epochs: 31")),
        ("tests/nlu_dev.yml", lambda t: t + "    - 一句新的开发集回复\n"),
    ],
)
def test_any_model_input_changes_the_fingerprint(dialogs_copy: DialogsProject, relative, change) -> None:
    before = dialogs_copy.fingerprint()
    path = dialogs_copy.root / relative
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    assert dialogs_copy.fingerprint() != before


def test_conversation_tests_do_not_change_the_fingerprint(dialogs_copy: DialogsProject) -> None:
    before = dialogs_copy.fingerprint()
    tests = dialogs_copy.tests_dir / "test_conversations.yml"
    tests.write_text(tests.read_text(encoding="utf-8") + "\n# a new comment\n", encoding="utf-8")
    assert dialogs_copy.fingerprint() == before


def test_missing_model_is_a_clear_error(dialogs_copy: DialogsProject, tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    assert current_model(dialogs_copy, empty) is None
    with pytest.raises(UserError, match=r"No trained model .* Run `waihu train` first"):
        require_model(dialogs_copy, empty)


def test_model_path_is_content_addressed(dialogs_project: DialogsProject, model_path: Path) -> None:
    assert model_path == model_path_for(model_path.parent, dialogs_project.fingerprint())


def test_not_a_dialogs_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a waihu dialogs project"):
        train(DialogsProject(tmp_path), tmp_path / "models")


def test_jieba_dictionary_must_be_a_folder(dialogs_copy: DialogsProject, tmp_path: Path) -> None:
    shutil.rmtree(dialogs_copy.root / "jieba")
    (dialogs_copy.root / "jieba").write_text("企业微信 2000 n\n", encoding="utf-8")
    with pytest.raises(UserError, match="dictionary_path 'jieba' must be a folder"):
        train(dialogs_copy, tmp_path / "models")
