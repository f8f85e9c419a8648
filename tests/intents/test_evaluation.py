"""NLU metrics on hand-computed cases (no model needed)."""
from __future__ import annotations

import pytest

from intents.evaluation import EvaluationInputError, load_labelled_examples, score


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
    path.write_text('version: "3.1"\nnlu:\n- intent: callback_request\n  examples: |\n'
                    "    - [明天下午](time)再打吧\n    - 晚点打\n", encoding="utf-8")
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
