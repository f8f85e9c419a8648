"""Grading evaluation against a labelled call set: accuracy, per-label precision/recall,
confusion matrix. Labels are grades (A/B/C/D) for connected calls and call statuses
for unconnected ones, so carrier detection is scored in the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
            "per_grade": {
                label: {
                    "precision": round(s.precision, 4),
                    "recall": round(s.recall, 4),
                    "support": s.support,
                    "predicted": s.predicted,
                }
                for label, s in self.per_grade.items()
            },
            "confusion": self.confusion,
            "errors": [{"call_id": c, "gold": g, "predicted": p} for c, g, p in self.errors],
        }


def evaluate_grades(call_ids: Sequence[str], golds: Sequence[str], predicted: Sequence[str]) -> GradeEvalReport:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if not (len(call_ids) == len(golds) == len(predicted)):
        raise ValueError("call ids, gold labels and predictions must be the same length")
    errors = [(c, g, p) for c, g, p in zip(call_ids, golds, predicted) if g != p]
    if not golds:
        return GradeEvalReport(0, 0.0, {}, {}, errors)
    labels = ordered_labels(set(golds) | set(predicted))
    precision, recall, _, support = precision_recall_fscore_support(golds, predicted, labels=labels, zero_division=0)
    matrix = confusion_matrix(golds, predicted, labels=labels)  # rows: gold, columns: predicted
    per_grade = {
        label: LabelScore(precision=float(p), recall=float(r), support=int(s), predicted=int(k))
        for label, p, r, s, k in zip(labels, precision, recall, support, matrix.sum(axis=0))
    }
    confusion = {gold: {pred: int(matrix[i, j]) for j, pred in enumerate(labels)} for i, gold in enumerate(labels)}
    return GradeEvalReport(len(golds), float(accuracy_score(golds, predicted)), per_grade, confusion, errors)


def ordered_labels(labels: set[str]) -> list[str]:
    """Grades first, then call statuses in DESIGN order, then anything unexpected."""
    known = [label for label in LABEL_ORDER if label in labels]
    return known + sorted(labels - set(LABEL_ORDER))
