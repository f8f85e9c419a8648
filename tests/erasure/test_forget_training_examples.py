"""`waihu leads forget` reaches the NLU training examples learnt from the person's calls: a
labelled caller turn became a line of dialogs/data/nlu/from_calls.yml; erasing the person
takes it out (and their review labels), leaves everyone else's examples alone, and keeps
words another caller's labelled turn also said. On a private copy of dialogs/, on SQLite
and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.campaigns.review import label_turn
from bot.campaigns.review_models import ReviewLabel
from bot.cli.app import app
from bot.core.db.engine import session_scope
from bot.erasure import forget_phone
from bot.leads.models import Lead
from bot.script.nlu_examples import TOOL_FILE, read_tool_file, remove_examples
from bot.script.project import DialogsProject
from tests.db_fixtures import TEST_SECRET, database_url, db, keyring, migrated_engine  # noqa: F401
from tests.script.review_data import log_call, seed
from tests.wecom.conftest import _test_secret  # noqa: F401


def _label(db, project: DialogsProject, turn_id: int, intent: str | None):
    with session_scope(db) as session:
        return label_turn(session, project, turn_id, intent, "writer.user")


def _phone(db, keyring, lead_id: int) -> str:
    with session_scope(db) as session:
        return keyring.decrypt_phone(session.get(Lead, lead_id).phone_ciphertext)


def _examples(project: DialogsProject) -> dict[str, list[str]]:
    return read_tool_file(project.root / TOOL_FILE)


def _labels(db) -> dict[int, str]:
    with session_scope(db) as session:
        return {r.turn_id: r.outcome for r in session.execute(select(ReviewLabel)).scalars()}


def test_forget_removes_the_persons_examples_and_labels_and_nothing_else(db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    # The person (lead 0): two calls, three labelled turns — one with their address in it.
    _, (address, busy) = log_call(
        db,
        campaign_id,
        leads[0],
        [("我住在幸福路十八号别再打了", "nlu_fallback", 0.2), ("在开车呢晚点说吧", "busy", 0.3)],
    )
    _, (skipped,) = log_call(db, campaign_id, leads[0], [("喂喂喂", "nlu_fallback", 0.1)], minutes=5)
    # Someone else (lead 1): their own example, and the same words as the person's second turn.
    _, (own, same_words) = log_call(
        db,
        campaign_id,
        leads[1],
        [("你们公司在哪个城市的", "nlu_fallback", 0.2), ("在开车呢，晚点说吧！", "busy", 0.3)],
    )
    assert _label(db, dialogs_copy, address, "stop_calling").outcome == "added"
    assert _label(db, dialogs_copy, busy, "busy").outcome == "added"
    assert _label(db, dialogs_copy, skipped, None).outcome == "skipped"
    assert _label(db, dialogs_copy, own, "ask_identity").outcome == "added"
    assert _label(db, dialogs_copy, same_words, "busy").outcome == "duplicate"  # the person's line already has it
    before = _examples(dialogs_copy)
    assert "我住在幸福路十八号别再打了" in before["stop_calling"]
    other_files = {
        p: p.read_bytes() for p in dialogs_copy.data_dir.rglob("*.yml") if p != dialogs_copy.root / TOOL_FILE
    }

    with session_scope(db) as session:
        result = forget_phone(session, keyring, _phone(db, keyring, leads[0]), dialogs_copy)

    assert (result.review_labels, result.training_examples, result.training_examples_kept) == (3, 1, 1)
    after = _examples(dialogs_copy)
    # Their address is gone; their busy line stays (the other caller said it too); the rest untouched.
    assert "stop_calling" not in after
    assert after["busy"] == before["busy"] and "在开车呢晚点说吧" in after["busy"]
    assert after["ask_identity"] == before["ask_identity"] == ["你们公司在哪个城市的"]
    assert "幸福路" not in (dialogs_copy.root / TOOL_FILE).read_text(encoding="utf-8")
    assert _labels(db) == {own: "added", same_words: "duplicate"}
    assert all(p.read_bytes() == content for p, content in other_files.items())  # hand-written files alone

    # The other caller is erased later: now nobody else said the busy line, so it goes too.
    with session_scope(db) as session:
        result = forget_phone(session, keyring, _phone(db, keyring, leads[1]), dialogs_copy)
    assert (result.review_labels, result.training_examples, result.training_examples_kept) == (2, 2, 0)
    assert not (dialogs_copy.root / TOOL_FILE).exists()  # nothing left: the file goes (as before any label)
    assert _labels(db) == {}


def test_a_person_without_labels_leaves_the_file_byte_for_byte(db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    _, (turn,) = log_call(db, campaign_id, leads[0], [("你们公司在哪个城市的", "nlu_fallback", 0.2)])
    _, (unlabelled,) = log_call(db, campaign_id, leads[1], [("你们公司在哪个城市的", "nlu_fallback", 0.2)])
    _label(db, dialogs_copy, turn, "ask_identity")
    path = dialogs_copy.root / TOOL_FILE
    written, mtime = path.read_bytes(), path.stat().st_mtime_ns
    with session_scope(db) as session:
        result = forget_phone(session, keyring, _phone(db, keyring, leads[1]), dialogs_copy)
    # Their turn said the same words but was never labelled: the example is not theirs.
    assert (result.calls, result.review_labels, result.training_examples) == (1, 0, 0)
    assert path.read_bytes() == written and path.stat().st_mtime_ns == mtime


def test_remove_examples_matches_normalised_words_in_any_intent(dialogs_copy) -> None:
    path = dialogs_copy.root / TOOL_FILE
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: busy\n  examples: |\n    - 在开车呢 晚点说\n    - 我在开会\n'
        "- intent: deny\n  examples: |\n    - 不是我\n",
        encoding="utf-8",
    )
    assert remove_examples(dialogs_copy, ["在开车呢，晚点说！"]) == ["在开车呢 晚点说"]
    assert read_tool_file(path) == {"busy": ["我在开会"], "deny": ["不是我"]}
    assert remove_examples(dialogs_copy, ["没人说过这句"]) == []
    assert not list(path.parent.glob(".from_calls.yml.*"))  # no temporary file left behind


@pytest.fixture()
def cli(db, database_url, tmp_path, monkeypatch, dialogs_copy):
    env = {
        "WAIHU_DATABASE_URL": database_url,
        "WAIHU_SECRET_KEY": TEST_SECRET,
        "WAIHU_DATA_DIR": str(tmp_path / "data"),
        "WAIHU_DIALOGS_DIR": str(dialogs_copy.root),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_cli_label_then_forget_end_to_end(cli, db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    _, (theirs,) = log_call(db, campaign_id, leads[0], [("我叫王建国 保单尾号3456", "nlu_fallback", 0.2)])
    _, (other,) = log_call(db, campaign_id, leads[1], [("你们公司在哪个城市的", "nlu_fallback", 0.2)])
    assert cli("review", "label", str(theirs), "deny").exit_code == 0
    assert cli("review", "label", str(other), "ask_identity").exit_code == 0
    assert "王建国" in (dialogs_copy.root / TOOL_FILE).read_text(encoding="utf-8")
    phone = _phone(db, keyring, leads[0])

    result = cli("leads", "forget", phone, "--yes")
    assert result.exit_code == 0, result.output
    assert "1 example(s) from their calls removed from dialogs/data/nlu/from_calls.yml" in result.stdout
    assert "next `waihu train`" in result.stdout and phone not in result.stdout
    assert _examples(dialogs_copy) == {"ask_identity": ["你们公司在哪个城市的"]}

    again = json.loads(cli("leads", "forget", phone, "--json").stdout)  # idempotent: nothing left
    assert (again["leads_erased"], again["review_labels_erased"], again["training_examples_removed"]) == (0, 0, 0)
    other_phone = _phone(db, keyring, leads[1])
    assert json.loads(cli("leads", "forget", other_phone, "--json").stdout)["training_examples_removed"] == 1
