"""NLU evaluation on labelled examples: per-intent precision/recall/F1, macro-F1, confusions.

Independent of how predictions are made: pass any `predict(text) -> intent` callable.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable


class EvaluationInputError(ValueError):
    """The labelled file cannot be read; the message says where and what to do."""


@dataclass(frozen=True)
class IntentScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    n: int
    accuracy: float
    macro_f1: float
    per_intent: dict[str, IntentScore]
    confusions: list[tuple[str, str, int]]  # (gold, predicted, count), most frequent first
    errors: list[tuple[str, str, str]]  # (text, gold, predicted)

    def as_json(self) -> dict:
        return {
            "n": self.n,
            "macro_f1": round(self.macro_f1, 4),
            "accuracy": round(self.accuracy, 4),
            "per_intent": {
                name: {"precision": round(s.precision, 4), "recall": round(s.recall, 4),
                       "f1": round(s.f1, 4), "support": s.support}
                for name, s in self.per_intent.items()
            },
            "confusions": [{"gold": g, "predicted": p, "count": c} for g, p, c in self.confusions],
        }


def load_labelled_examples(path: Path) -> list[tuple[str, str]]:
    """(text, intent) pairs from any Rasa NLU YAML file (entity markup is stripped)."""
    if not path.is_file():
        raise EvaluationInputError(f"{path}: no such file; give a Rasa NLU YAML file with labelled examples.")
    from rasa.shared.exceptions import RasaException
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    try:
        data = RasaYAMLReader().read(str(path))
    except (RasaException, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvaluationInputError(f"{path}: not a valid Rasa NLU YAML file: {first}") from exc
    examples = [(m.get("text"), m.get("intent")) for m in data.intent_examples if m.get("intent")]
    if not examples:
        raise EvaluationInputError(
            f"{path}: no labelled examples found; expect `nlu:` with `- intent: NAME` and `examples: |`."
        )
    return examples


def evaluate(examples: Iterable[tuple[str, str]], predict: Callable[[str], str],
             top_confusions: int = 10) -> EvalReport:
    golds: list[str] = []
    preds: list[str] = []
    texts: list[str] = []
    for text, gold in examples:
        texts.append(text)
        golds.append(gold)
        preds.append(predict(text))
    return score(texts, golds, preds, top_confusions)


def score(texts: list[str], golds: list[str], preds: list[str], top_confusions: int = 10) -> EvalReport:
    from sklearn.metrics import precision_recall_fscore_support

    labels = sorted(set(golds))
    precision, recall, f1, support = precision_recall_fscore_support(
        golds, preds, labels=labels, zero_division=0
    )
    per_intent = {
        label: IntentScore(float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support)
    }
    n = len(golds)
    accuracy = sum(1 for g, p in zip(golds, preds) if g == p) / n if n else 0.0
    macro_f1 = sum(s.f1 for s in per_intent.values()) / len(per_intent) if per_intent else 0.0
    pairs = Counter((g, p) for g, p in zip(golds, preds) if g != p)
    confusions = [(g, p, c) for (g, p), c in pairs.most_common(top_confusions)]
    errors = [(t, g, p) for t, g, p in zip(texts, golds, preds) if g != p]
    return EvalReport(n, accuracy, macro_f1, per_intent, confusions, errors)
