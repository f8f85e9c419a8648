"""`waihu review list` and `waihu review label` as a script writer runs them: masked output, the
example written to the copy of dialogs/, clear errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from rasa.shared.nlu.training_data.loading import load_data

from bot.core.settings import PROJECT_ROOT
from bot.script.nlu_examples import TOOL_FILE
from tests.db_fixtures import TEST_SECRET, database_url, db, keyring, migrated_engine  # noqa: F401
from tests.script.review_data import log_call, seed
from tests.wecom.conftest import _test_secret  # noqa: F401

WAIHU = [sys.executable, "-m", "bot.cli.app"]


def _waihu(database_url: str, dialogs, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "COLUMNS": "200",
        "WAIHU_DATABASE_URL": database_url,
        "WAIHU_DIALOGS_DIR": str(dialogs.root),
        "WAIHU_SECRET_KEY": TEST_SECRET,
        "WAIHU_DATA_DIR": str(tmp_path / "data"),
        "USER": "li.writer",
    }
    return subprocess.run(WAIHU + list(args), capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT, env=env)


def test_list_and_label_from_the_command_line(db, keyring, database_url, dialogs_copy, tmp_path) -> None:
    campaign_id, leads = seed(db, keyring)
    attempt_id, (number_turn, unsure) = log_call(
        db,
        campaign_id,
        leads[0],
        [("你加我吧 号码13912345678", "nlu_fallback", 0.2), ("这个嘛 看看再说", "deny", 0.33)],
    )

    listed = _waihu(database_url, dialogs_copy, tmp_path, "review", "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 turn(s) to label" in listed.stdout and "139****5678" in listed.stdout
    assert "13912345678" not in listed.stdout + listed.stderr
    assert f"/calls/{attempt_id}" in listed.stdout and "deny 0.33" in listed.stdout

    as_json = json.loads(_waihu(database_url, dialogs_copy, tmp_path, "review", "list", "--json").stdout)
    assert [t["turn_id"] for t in as_json["turns"]] == [number_turn, unsure] and as_json["threshold"] == 0.4

    labelled = _waihu(database_url, dialogs_copy, tmp_path, "review", "label", str(unsure), "hesitate")
    assert labelled.returncode == 0, labelled.stderr
    assert "added to dialogs/data/nlu/from_calls.yml:" in labelled.stdout and "next training" in labelled.stdout
    examples = load_data(str(dialogs_copy.root / TOOL_FILE)).intent_examples
    assert [(m.get("text"), m.get("intent")) for m in examples] == [("这个嘛 看看再说", "hesitate")]

    skipped = _waihu(database_url, dialogs_copy, tmp_path, "review", "label", str(number_turn), "--skip")
    assert skipped.returncode == 0 and "skipped" in skipped.stdout and "13912345678" not in skipped.stdout
    assert "0 turn(s) to label" in _waihu(database_url, dialogs_copy, tmp_path, "review", "list").stdout


def test_mistakes_are_one_clear_line(db, keyring, database_url, dialogs_copy, tmp_path) -> None:
    campaign_id, leads = seed(db, keyring)
    lines = (dialogs_copy.tests_dir / "nlu_heldout.yml").read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.startswith("    - "))
    _, (turn, other) = log_call(
        db,
        campaign_id,
        leads[0],
        [(lines[number - 1].strip()[2:], "nlu_fallback", 0.2), ("嗯那个", "nlu_fallback", 0.2)],
    )
    cases = [
        (("label", str(turn), "affirm"), f"dialogs/tests/nlu_heldout.yml:{number}", "test lines are never trained on"),
        (("label", str(other), "agree"), "unknown intent 'agree'", "faq/claims"),
        (("label", str(other)), "give either an INTENT or --skip", ""),
        (("label", "999999", "affirm"), "no caller turn 999999", "waihu review list"),
        (("label", str(turn), "deny"), f"turn {turn} was already labelled by li.writer (in_test_set)", ""),
    ]
    for args, *needles in cases:
        result = _waihu(database_url, dialogs_copy, tmp_path, "review", *args)
        assert result.returncode != 0, args
        assert "Traceback" not in result.stdout + result.stderr
        for needle in needles:
            assert needle in result.stdout + result.stderr, (args, needle, result.stdout, result.stderr)
    assert not (dialogs_copy.root / TOOL_FILE).exists()
