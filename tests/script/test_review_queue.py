"""Issue 16 item 17: the review queue of caller turns the model was unsure about. Script writers
label them; the masked text becomes a Rasa NLU example in dialogs/data/nlu/from_calls.yml
(deduplicated against every training file, never a test line), ready for the next training.
Every test works on a private copy of dialogs/ and runs on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
import yaml
from sqlalchemy import func, select

from bot.campaigns.grading import correct_grade
from bot.campaigns.review import AlreadyLabelled, UnknownTurn, added_since, label_turn, review_queue
from bot.campaigns.review_models import ReviewLabel
from bot.core.db.engine import session_scope
from bot.erasure import forget_phone
from bot.leads.models import Lead
from bot.script.lint import lint_project
from bot.script.nlu_examples import TOOL_FILE, UnknownIntent, fallback_threshold, labellable_intents, normalise_example
from bot.script.project import DialogsProject
from intents.evaluation import load_labelled_examples
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.script.review_data import ASK_WECOM, log_call, seed
from tests.wecom.conftest import _test_secret  # noqa: F401


def _queue(db, project: DialogsProject, offset: int = 0, limit: int = 50):
    with session_scope(db) as session:
        return review_queue(session, fallback_threshold(project), offset, limit)


def _label(db, project: DialogsProject, turn_id: int, intent: str | None, by: str = "writer.user"):
    with session_scope(db) as session:
        return label_turn(session, project, turn_id, intent, by)


def _outcomes(db) -> dict[int, tuple[str | None, str, str]]:
    with session_scope(db) as session:
        return {
            r.turn_id: (r.intent, r.outcome, r.example_text) for r in session.execute(select(ReviewLabel)).scalars()
        }


def _test_line(project: DialogsProject, name: str = "nlu_dev.yml") -> tuple[int, str]:
    lines = (project.tests_dir / name).read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.startswith("    - ") and len(line) > 10)
    return number, lines[number - 1].strip()[2:]


def test_the_queue_holds_unsure_turns_and_corrected_calls_newest_first(db, keyring, dialogs_copy) -> None:
    assert fallback_threshold(dialogs_copy) == 0.4  # dialogs/config.yml's FallbackClassifier
    campaign_id, leads = seed(db, keyring)
    old_call, (old_fallback,) = log_call(db, campaign_id, leads[0], [("呃那个啥保险", "nlu_fallback", 0.4)], minutes=0)
    new_call, (sure, low, unsure_yes, silence) = log_call(
        db,
        campaign_id,
        leads[1],
        [
            ("嗯你说", "affirm", 0.93),
            ("这个吧看情况", "deny", 0.31),
            ("好吧那就", "uncertain_agreement", 0.45),
            ("  ", "nlu_fallback", 0.0),
        ],
        minutes=30,
        script="benefit_first",
    )
    corrected_call, (confident, also_confident) = log_call(
        db, campaign_id, leads[2], [("不需要", "refuse", 0.97), ("你们是哪家公司", "ask_identity", 0.88)], minutes=10
    )
    _, (unrelated,) = log_call(db, campaign_id, leads[3], [("可以加", "agree_add_wecom", 0.9)], minutes=20)
    with session_scope(db) as session:
        correct_grade(session, corrected_call, "B", "客户问了公司，其实有兴趣", "manager.user")

    page = _queue(db, dialogs_copy)
    # newest call first, a call's turns in order; confident turns only when the grade was corrected
    assert [item.turn_id for item in page.items] == [low, unsure_yes, confident, also_confident, old_fallback]
    assert page.total == 5 and sure not in {i.turn_id for i in page.items}
    assert {unrelated, silence}.isdisjoint(i.turn_id for i in page.items)
    low_item = page.items[0]
    assert (low_item.intent, low_item.confidence, low_item.reasons) == ("deny", 0.31, ("low_confidence",))
    assert low_item.robot_line == ASK_WECOM + "（1）" and low_item.robot_response == "utter_ask_wecom"
    assert (low_item.campaign, low_item.script_variant, low_item.attempt_id) == (
        "待标注测试",
        "benefit_first",
        new_call,
    )
    assert low_item.as_json()["call_url"] == f"/calls/{new_call}"
    assert page.items[1].reasons == ("unsure_agreement",)
    assert page.items[2].reasons == ("grade_corrected",)
    assert page.items[4].reasons == ("fallback",)

    # paginated
    second = _queue(db, dialogs_copy, offset=2, limit=2)
    assert [i.turn_id for i in second.items] == [confident, also_confident] and second.total == 5

    # labelled or skipped turns leave the queue
    _label(db, dialogs_copy, low, "hesitate")
    _label(db, dialogs_copy, confident, None)
    assert [i.turn_id for i in _queue(db, dialogs_copy).items] == [unsure_yes, also_confident, old_fallback]
    with pytest.raises(AlreadyLabelled):
        _label(db, dialogs_copy, low, "deny")
    with pytest.raises(UnknownTurn):
        _label(db, dialogs_copy, 10_000_000, "deny")


def test_the_threshold_is_read_from_the_config(db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    _, (turn,) = log_call(db, campaign_id, leads[0], [("嗯嗯行吧", "affirm", 0.45)])
    assert _queue(db, dialogs_copy).total == 0
    config = dialogs_copy.config_file
    config.write_text(
        config.read_text(encoding="utf-8").replace("threshold: 0.4\n", "threshold: 0.5\n"), encoding="utf-8"
    )
    assert [i.turn_id for i in _queue(db, dialogs_copy).items] == [turn]


def test_phone_shaped_text_is_masked_in_the_queue_and_in_the_example(db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    _, (turn,) = log_call(
        db, campaign_id, leads[0], [("你加我微信 号码是138 1234 5678 身份证110105194912310021", "nlu_fallback", 0.2)]
    )
    [item] = _queue(db, dialogs_copy).items
    assert "1234 5678" not in item.text and "138****5678" in item.text
    assert "19491231" not in item.text
    result = _label(db, dialogs_copy, turn, "agree_add_wecom")
    assert result.outcome == "added"
    written = (dialogs_copy.root / TOOL_FILE).read_text(encoding="utf-8")
    assert "138****5678" in written and "1234 5678" not in written and "19491231" not in written
    assert not re.search(r"1[3-9]\d{9}", written)
    assert _outcomes(db)[turn] == ("agree_add_wecom", "added", result.text)


def test_the_example_file_is_valid_rasa_nlu_sorted_and_stable(db, keyring, dialogs_copy) -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    campaign_id, leads = seed(db, keyring)
    _, turns = log_call(
        db,
        campaign_id,
        leads[0],
        [
            ("那我再琢磨琢磨吧", "nlu_fallback", 0.3),
            ("出了事儿赔得利索不", "nlu_fallback", 0.3),
            ("嗯我先想一想再说吧", "nlu_fallback", 0.3),
            ("[你说](啥)的东西", "nlu_fallback", 0.3),
        ],
    )
    for turn, intent in zip(turns, ["hesitate", "faq/claims", "hesitate", "ask_detail"]):
        assert _label(db, dialogs_copy, turn, intent).outcome == "added"
    path = dialogs_copy.root / TOOL_FILE
    text = path.read_text(encoding="utf-8")
    data = load_data(str(path))  # Rasa's own reader
    examples = {(m.get("text"), m.get("intent_response_key") or m.get("intent")) for m in data.intent_examples}
    assert examples == {
        ("那我再琢磨琢磨吧", "hesitate"),
        ("嗯我先想一想再说吧", "hesitate"),
        ("出了事儿赔得利索不", "faq/claims"),
        ("【你说】(啥)的东西", "ask_detail"),
    }
    doc = yaml.safe_load(text)
    assert doc["version"] == "3.1"
    assert [b["intent"] for b in doc["nlu"]] == ["ask_detail", "faq/claims", "hesitate"]
    assert text.index("嗯我先想一想再说吧") < text.index("那我再琢磨琢磨吧")  # sorted within the block
    assert not list(path.parent.glob(".*.tmp"))  # written atomically, nothing left behind
    # A script writer's own edit of the file is kept by the next write.
    path.write_text(
        text.replace("    - 出了事儿赔得利索不\n", "    - 出了事儿赔得利索不\n    - 出险了找谁赔\n"), encoding="utf-8"
    )
    _, (another,) = log_call(db, campaign_id, leads[1], [("行吧我问问我老婆", "nlu_fallback", 0.2)])
    _label(db, dialogs_copy, another, "hesitate")
    again = {
        (m.get("text"), m.get("intent_response_key") or m.get("intent")) for m in load_data(str(path)).intent_examples
    }
    assert again == examples | {("出险了找谁赔", "faq/claims"), ("行吧我问问我老婆", "hesitate")}
    # `waihu validate`'s lint finds nothing new in the file (no unknown intent, no repeated example)
    assert [p for p in lint_project(dialogs_copy) if "from_calls.yml" in p.file] == []


def test_a_text_already_in_the_training_data_is_not_added_twice(db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    # dialogs/data/nlu/affirm.yml has "嗯嗯好的"; spaces, punctuation and width do not make it new.
    _, (turn, again) = log_call(
        db, campaign_id, leads[0], [("嗯嗯，好的！", "nlu_fallback", 0.3), ("新的说法呀", "nlu_fallback", 0.3)]
    )
    result = _label(db, dialogs_copy, turn, "affirm")
    assert result.outcome == "duplicate" and result.example.existing_intent == "affirm"
    assert str(result.example.place).startswith("dialogs/data/nlu/affirm.yml:")
    line = int(str(result.example.place).rsplit(":", 1)[1])
    assert (dialogs_copy.data_dir / "nlu" / "affirm.yml").read_text(encoding="utf-8").splitlines()[
        line - 1
    ].strip() == "- 嗯嗯好的"
    assert not (dialogs_copy.root / TOOL_FILE).exists()
    assert _outcomes(db)[turn] == ("affirm", "duplicate", "嗯嗯，好的！")
    # …nor twice from the queue itself
    _, (same,) = log_call(db, campaign_id, leads[1], [("新的 说法呀。", "nlu_fallback", 0.3)])
    assert _label(db, dialogs_copy, again, "greet").outcome == "added"
    assert _label(db, dialogs_copy, same, "greet").outcome == "duplicate"
    assert (dialogs_copy.root / TOOL_FILE).read_text(encoding="utf-8").count("说法呀") == 1


@pytest.mark.parametrize("test_file", ["nlu_dev.yml", "nlu_heldout.yml", "nlu_realistic.yml"])
def test_a_test_line_is_refused_naming_the_file_and_line(db, keyring, dialogs_copy, test_file) -> None:
    number, line = _test_line(dialogs_copy, test_file)
    campaign_id, leads = seed(db, keyring)
    _, (turn,) = log_call(db, campaign_id, leads[0], [(line + "。", "nlu_fallback", 0.3)])
    result = _label(db, dialogs_copy, turn, "affirm")
    assert result.outcome == "in_test_set"
    assert str(result.example.place) == f"dialogs/tests/{test_file}:{number}"
    assert (
        f"dialogs/tests/{test_file}:{number}" in result.message and "test lines are never trained on" in result.message
    )
    assert not (dialogs_copy.root / TOOL_FILE).exists()
    assert _outcomes(db)[turn][1] == "in_test_set"  # recorded: the turn leaves the queue
    assert _queue(db, dialogs_copy).total == 0


def test_a_conversation_test_line_is_refused_too(db, keyring, dialogs_copy) -> None:
    lines = (dialogs_copy.tests_dir / "test_conversations.yml").read_text(encoding="utf-8").splitlines()
    nlu_tests = {normalise_example(text) for p in dialogs_copy.nlu_test_files for text, _ in load_labelled_examples(p)}
    number = next(
        i
        for i, l in enumerate(lines, 1)
        if i > 1
        and lines[i - 2].strip() == "- user: |"
        and not l.strip().startswith("/")
        and normalise_example(l) not in nlu_tests
    )
    campaign_id, leads = seed(db, keyring)
    _, (turn,) = log_call(db, campaign_id, leads[0], [(lines[number - 1].strip(), "nlu_fallback", 0.3)])
    result = _label(db, dialogs_copy, turn, "affirm")
    assert (result.outcome, str(result.example.place)) == (
        "in_test_set",
        f"dialogs/tests/test_conversations.yml:{number}",
    )


def test_only_the_domains_intents_and_nothing_is_recorded_for_a_bad_one(db, keyring, dialogs_copy) -> None:
    intents = labellable_intents(dialogs_copy)
    assert {"affirm", "hesitate", "request_human", "faq/claims", "faq/waiting_period"} <= set(intents)
    assert {"faq", "call_start", "uncertain_agreement", "nlu_fallback"}.isdisjoint(intents)
    campaign_id, leads = seed(db, keyring)
    _, (turn,) = log_call(db, campaign_id, leads[0], [("这啥呀", "nlu_fallback", 0.3)])
    for bad in ("faq", "uncertain_agreement", "agree"):
        with pytest.raises(UnknownIntent) as error:
            _label(db, dialogs_copy, turn, bad)
        assert f"unknown intent '{bad}'" in str(error.value) and "faq/claims" in str(error.value)
    assert _outcomes(db) == {} and not (dialogs_copy.root / TOOL_FILE).exists()


def test_added_since_counts_examples_after_the_last_training(db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    _, turns = log_call(
        db,
        campaign_id,
        leads[0],
        [("再说吧再说吧", "nlu_fallback", 0.3), ("嗯嗯，好的！", "nlu_fallback", 0.3), ("哈", "nlu_fallback", 0.3)],
    )
    _label(db, dialogs_copy, turns[0], "hesitate")
    _label(db, dialogs_copy, turns[1], "affirm")  # a duplicate: not added
    _label(db, dialogs_copy, turns[2], None)
    with session_scope(db) as session:
        first = session.get(ReviewLabel, session.execute(select(func.min(ReviewLabel.id))).scalar_one())
        assert added_since(session, None) == 1
        assert added_since(session, first.labelled_at) == 0


def test_erasing_a_person_erases_their_labels(db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    _, (turn,) = log_call(db, campaign_id, leads[0], [("哦这样啊", "nlu_fallback", 0.3)])
    _, (kept,) = log_call(db, campaign_id, leads[1], [("哦是吗", "nlu_fallback", 0.3)])
    _label(db, dialogs_copy, turn, None)
    _label(db, dialogs_copy, kept, None)
    with session_scope(db) as session:
        phone = keyring.decrypt_phone(session.get(Lead, leads[0]).phone_ciphertext)
        forget_phone(session, keyring, phone)
    assert set(_outcomes(db)) == {kept}


def test_the_training_and_test_files_still_never_share_a_line(db, keyring, dialogs_copy) -> None:
    """The suite's overlap check (tests/script/test_conversations.py) with the tool's file present."""
    from tests.script.test_conversations import test_no_training_line_is_a_test_line

    campaign_id, leads = seed(db, keyring)
    number, line = _test_line(dialogs_copy)
    _, turns = log_call(
        db,
        campaign_id,
        leads[0],
        [
            ("我这会儿真没空听", "nlu_fallback", 0.3),
            (line, "nlu_fallback", 0.3),
            ("你们这个到底靠谱不", "nlu_fallback", 0.3),
        ],
    )
    assert [_label(db, dialogs_copy, t, i).outcome for t, i in zip(turns, ["busy", "busy", "ask_detail"])] == [
        "added",
        "in_test_set",
        "added",
    ]
    assert (dialogs_copy.root / TOOL_FILE).exists()
    test_no_training_line_is_a_test_line(dialogs_copy)
