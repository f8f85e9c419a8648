"""The script writers' conversation tests and the held-out NLU figure, on the real model."""
from __future__ import annotations

import asyncio

from bot.script.conversation_tests import run_conversation_tests
from bot.script.project import DialogsProject
from intents.evaluation import evaluate, load_labelled_examples
from intents.taxonomy import CALLEE_INTENTS
from tests.conftest import run

OBJECTION_INTENTS = {"ask_identity", "ask_number_source", "ask_is_robot", "ask_price", "ask_detail",
                     "already_insured", "busy", "callback_request", "not_heard", "wrong_person",
                     "refuse", "stop_calling", "hostile", "deny"}


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
    examples = load_labelled_examples(dialogs_project.heldout_nlu_file)
    assert {intent for _, intent in examples} == set(CALLEE_INTENTS)
    loop = asyncio.new_event_loop()
    try:
        report = evaluate(examples, lambda t: loop.run_until_complete(dialogue_agent.parse(t)).intent)
    finally:
        loop.close()
    print(f"held-out macro-F1 {report.macro_f1:.3f} accuracy {report.accuracy:.3f} n={report.n}")
    assert report.macro_f1 >= 0.90


def test_heldout_is_never_used_for_training(dialogs_project: DialogsProject) -> None:
    heldout = {text for text, _ in load_labelled_examples(dialogs_project.heldout_nlu_file)}
    training = set()
    for path in sorted((dialogs_project.data_dir / "nlu").glob("*.yml")):
        if "- intent:" in path.read_text(encoding="utf-8"):  # regex feature files have none
            training |= {text for text, _ in load_labelled_examples(path)}
    assert len(training) >= 40 * len(CALLEE_INTENTS)
    assert heldout & training == set()
