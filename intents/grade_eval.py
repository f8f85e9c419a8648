"""Grading evaluation against a labelled call set: accuracy, per-label precision/recall,
confusion matrix. Labels are grades (A/B/C/D) for connected calls and call statuses
for unconnected ones, so carrier detection is scored in the same table.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from intents.rules_loader import GRADES
from intents.taxonomy import CALL_STATUSES

LABEL_ORDER: tuple[str, ...] = (*GRADES, *CALL_STATUSES)


@dataclass(frozen=True)
class LabelScore:
    precision: float
    recall: float
    support: int  # gold count
    predicted: int


@dataclass(frozen=True)
class GradeEvalReport:
    n: int
    accuracy: float
    per_grade: dict[str, LabelScore]
    confusion: dict[str, dict[str, int]]  # gold → predicted → count
    errors: list[tuple[str, str, str]]  # (call id, gold, predicted)

    def as_json(self) -> dict:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "per_grade": {label: {"precision": round(s.precision, 4), "recall": round(s.recall, 4),
                                  "support": s.support, "predicted": s.predicted}
                          for label, s in self.per_grade.items()},
            "confusion": self.confusion,
            "errors": [{"call_id": c, "gold": g, "predicted": p} for c, g, p in self.errors],
        }


def evaluate_grades(call_ids: Sequence[str], golds: Sequence[str], predicted: Sequence[str]) -> GradeEvalReport:
    if not (len(call_ids) == len(golds) == len(predicted)):
        raise ValueError("call ids, gold labels and predictions must be the same length")
    labels = ordered_labels(set(golds) | set(predicted))
    pairs = Counter(zip(golds, predicted))
    gold_counts, predicted_counts = Counter(golds), Counter(predicted)
    per_grade = {}
    for label in labels:
        hits = pairs[(label, label)]
        per_grade[label] = LabelScore(
            precision=hits / predicted_counts[label] if predicted_counts[label] else 0.0,
            recall=hits / gold_counts[label] if gold_counts[label] else 0.0,
            support=gold_counts[label],
            predicted=predicted_counts[label],
        )
    confusion = {gold: {pred: pairs[(gold, pred)] for pred in labels} for gold in labels}
    n = len(golds)
    accuracy = sum(pairs[(label, label)] for label in labels) / n if n else 0.0
    errors = [(c, g, p) for c, g, p in zip(call_ids, golds, predicted) if g != p]
    return GradeEvalReport(n, accuracy, per_grade, confusion, errors)


def ordered_labels(labels: set[str]) -> list[str]:
    """Grades first, then call statuses in DESIGN order, then anything unexpected."""
    known = [label for label in LABEL_ORDER if label in labels]
    return known + sorted(labels - set(LABEL_ORDER))
