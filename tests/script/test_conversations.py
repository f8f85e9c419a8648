"""The script writers' conversation tests and the NLU figures on both test sets (held-out and
realistic), on the real model; no training line is ever a test line."""

from __future__ import annotations

import asyncio

import yaml

from bot.conversation.nlu_components import CharNgramIntentClassifier, excluded_texts, training_set
from bot.script.conversation_tests import run_conversation_tests
from bot.script.project import DialogsProject
from intents.evaluation import evaluate, load_labelled_examples
from intents.taxonomy import CALLEE_INTENTS, UNCERTAIN_AGREEMENT_INTENT
from tests.conftest import run

OBJECTION_INTENTS = {
    "ask_identity",
    "ask_number_source",
    "ask_is_robot",
    "ask_price",
    "ask_detail",
    "already_insured",
    "busy",
    "callback_request",
    "not_heard",
    "wrong_person",
    "refuse",
    "stop_calling",
    "hostile",
    "deny",
    "hesitate",
    "request_human",
    "faq/waiting_period",
    UNCERTAIN_AGREEMENT_INTENT,
}
CLASSIFIER = "bot.conversation.nlu_components.CharNgramIntentClassifier"


def _nlu_report(agent, path):
    loop = asyncio.new_event_loop()

    def predict(text: str) -> tuple[str, str]:
        parse = loop.run_until_complete(agent.parse(text))
        return parse.understood, parse.intent

    try:
        return evaluate(load_labelled_examples(path), predict)
    finally:
        loop.close()


def _hand_written(project: DialogsProject) -> list[tuple[str, str]]:
    examples: list[tuple[str, str]] = []
    for path in sorted((project.data_dir / "nlu").glob("*.yml")):
        if "- intent:" in path.read_text(encoding="utf-8"):  # regex feature files have none
            examples += load_labelled_examples(path)
    return examples


def _classifier_config(project: DialogsProject) -> dict:
    config = yaml.safe_load(project.config_file.read_text(encoding="utf-8"))
    return {
        **CharNgramIntentClassifier.get_default_config(),
        **next(c for c in config["pipeline"] if c["name"] == CLASSIFIER),
    }


def test_every_conversation_test_passes(dialogue_agent, dialogs_project: DialogsProject) -> None:
    results = run(run_conversation_tests(dialogue_agent._agent, dialogs_project.conversation_tests))
    assert len(results) >= 20
    failed = {r.name: r.failure for r in results if not r.passed}
    assert failed == {}


def test_conversation_tests_cover_every_objection_path(dialogs_project: DialogsProject) -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in dialogs_project.conversation_tests)
    missing = [intent for intent in OBJECTION_INTENTS if f"intent: {intent}\n" not in text]
    assert missing == []


def test_a_wrong_expectation_is_reported_as_a_failure(dialogue_agent, tmp_path) -> None:
    story = tmp_path / "test_wrong.yml"
    story.write_text(
        'version: "3.1"\nstories:\n  - story: expects the wrong answer\n    steps:\n'
        "      - user: |\n          /call_start\n        intent: call_start\n"
        "      - action: utter_opening\n      - action: utter_ask_good_time\n"
        "      - user: |\n          不需要\n        intent: refuse\n"
        "      - action: utter_pitch\n",
        encoding="utf-8",
    )
    [result] = run(run_conversation_tests(dialogue_agent._agent, [story]))
    assert not result.passed
    assert "predicted: utter_close_refuse" in result.failure


def test_heldout_nlu_macro_f1(dialogue_agent, dialogs_project: DialogsProject) -> None:
    # Written before the FAQ topics and hesitate/request_human: a predicted topic is scored as
    # the intent that covered it then (ask_price / ask_detail).
    assert {intent for _, intent in load_labelled_examples(dialogs_project.heldout_nlu_file)} <= set(CALLEE_INTENTS)
    report = _nlu_report(dialogue_agent, dialogs_project.heldout_nlu_file)
    print(f"held-out macro-F1 {report.macro_f1:.3f} accuracy {report.accuracy:.3f} n={report.n}")
    assert report.faq_as_parents
    assert report.macro_f1 >= 0.93
    assert report.harmful.count == 0


def test_realistic_nlu_macro_f1_and_harmful_errors(dialogue_agent, dialogs_project: DialogsProject) -> None:
    """Phone-ASR replies by another writer: reported, never trained or tuned on."""
    assert {intent for _, intent in load_labelled_examples(dialogs_project.realistic_nlu_file)} == set(CALLEE_INTENTS)
    report = _nlu_report(dialogue_agent, dialogs_project.realistic_nlu_file)
    print(f"realistic macro-F1 {report.macro_f1:.3f} harmful {report.harmful.count} ({report.harmful.rate:.2%})")
    assert report.macro_f1 >= 0.92
    assert report.harmful.rate <= 0.005


def test_no_training_line_is_a_test_line(dialogs_project: DialogsProject) -> None:
    """Neither a hand-written example nor one of the phone-channel variants the classifier
    trains on (with the seed and count in config.yml) is a line of a labelled test file."""
    written = _hand_written(dialogs_project)
    assert len(written) >= 40 * len(CALLEE_INTENTS)
    config = _classifier_config(dialogs_project)
    listed = {dialogs_project.root / p for p in config["exclude_texts_from"]}
    assert set(dialogs_project.nlu_test_files) <= listed
    excluded = excluded_texts([str(p) for p in listed])
    texts, _ = training_set(written, int(config["augment_variants"]), str(config["augment_seed"]), excluded)
    assert len(texts) > 2 * len(written)
    for path in dialogs_project.nlu_test_files:
        if path.exists():
            test_lines = {text for text, _ in load_labelled_examples(path)}
            assert test_lines & {text for text, _ in written} == set(), f"hand-written example in {path.name}"
            assert test_lines & set(texts) == set(), f"training variant in {path.name}"
