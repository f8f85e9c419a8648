"""NLU metrics on hand-computed cases (no model needed)."""

from __future__ import annotations

import pytest

from intents.evaluation import EvaluationInputError, evaluate, load_labelled_examples, score


def test_scores_match_hand_computation() -> None:
    golds = ["a", "a", "a", "b", "b", "c"]
    preds = ["a", "a", "b", "b", "nlu_fallback", "c"]
    report = score([str(i) for i in range(6)], golds, preds)
    a, b, c = report.per_intent["a"], report.per_intent["b"], report.per_intent["c"]
    assert (a.precision, a.recall) == (1.0, pytest.approx(2 / 3))
    assert (b.precision, b.recall) == (0.5, 0.5)
    assert (c.precision, c.recall, c.f1) == (1.0, 1.0, 1.0)
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert report.accuracy == pytest.approx(4 / 6)
    assert set(report.per_intent) == {"a", "b", "c"}  # fallback is an error, not a class
    assert report.confusions[0][2] == 1 and ("a", "b", 1) in report.confusions


def test_reads_rasa_nlu_yaml_with_entity_markup(tmp_path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: callback_request\n  examples: |\n    - [明天下午](time)再打吧\n    - 晚点打\n',
        encoding="utf-8",
    )
    assert load_labelled_examples(path) == [("明天下午再打吧", "callback_request"), ("晚点打", "callback_request")]


@pytest.mark.parametrize(
    "content, message",
    [
        ("nlu:\n- intent: greet\n  examples: |\n    - 喂\n   bad: [", "not a valid Rasa NLU YAML file"),
        ('version: "3.1"\nrules: []\n', "no labelled examples found"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(EvaluationInputError, match=message):
        load_labelled_examples(path)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(EvaluationInputError, match="no such file"):
        load_labelled_examples(tmp_path / "nope.yml")


# --- harmful errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "gold, acted, kind",
    [
        ("refuse", "agree_add_wecom", "refusal_as_agreement"),
        ("hostile", "affirm", "refusal_as_agreement"),
        ("stop_calling", "refuse", "opt_out_ignored"),
        ("stop_calling", "nlu_fallback", "opt_out_ignored"),
        ("stop_calling", "uncertain_agreement", "opt_out_ignored"),
        ("faq/waiting_period", "deny", "interest_as_refusal"),
        ("ask_price", "refuse", "interest_as_refusal"),
        ("hesitate", "stop_calling", "interest_as_refusal"),
        ("hesitate", "hostile", "interest_as_refusal"),
    ],
)
def test_harmful_errors_by_kind(gold: str, acted: str, kind: str) -> None:
    report = score(["t"], [gold], [acted])
    assert report.harmful.count == 1 and report.harmful.examples[0].kind == kind
    assert report.harmful.rate == 1.0


@pytest.mark.parametrize(
    "gold, acted",
    [
        ("refuse", "deny"),
        ("refuse", "uncertain_agreement"),
        ("stop_calling", "hostile"),
        ("faq/claims", "ask_detail"),
        ("hesitate", "nlu_fallback"),
        ("greet", "refuse"),
        ("affirm", "refuse"),
    ],
)
def test_other_errors_are_not_harmful(gold: str, acted: str) -> None:
    assert score(["t"], [gold], [acted]).harmful.count == 0


def test_f1_scores_the_reading_and_harm_scores_the_action() -> None:
    # The robot confirms an agreement it is not sure of: the reading (affirm) is scored for F1,
    # the action (a confirmation question) is not a harmful error.
    report = evaluate(
        [("嗯那就", "refuse"), ("好的", "affirm")],
        lambda text: ("affirm", "uncertain_agreement") if text == "嗯那就" else "affirm",
    )
    assert report.harmful.count == 0 and report.confirmations == 1
    assert report.per_intent["refuse"].recall == 0.0
    as_json = report.as_json()
    assert as_json["harmful"] == {"count": 0, "rate": 0.0, "examples": []} and "macro_f1" in as_json


def test_retrieval_intents_keep_their_topic(tmp_path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text('version: "3.1"\nnlu:\n- intent: faq/claims\n  examples: |\n    - 怎么理赔\n', encoding="utf-8")
    assert load_labelled_examples(path) == [("怎么理赔", "faq/claims")]


def test_a_file_without_faq_topics_scores_them_as_their_old_parent() -> None:
    report = score(["a", "b", "c"], ["ask_price", "ask_detail", "refuse"], ["faq/is_it_free", "faq/claims", "refuse"])
    assert report.faq_as_parents and report.macro_f1 == 1.0
    topical = score(["a", "b"], ["faq/claims", "ask_detail"], ["faq/claims", "faq/coverage"])
    assert not topical.faq_as_parents and topical.per_intent["ask_detail"].recall == 0.0
