"""NLU evaluation on labelled examples: per-intent precision/recall/F1, macro-F1, confusions,
and the harmful errors.

Independent of how predictions are made: pass any `predict(text)` callable returning the
intent, or (understood, acted): what the NLU read and what the robot acts on. They differ
when the robot confirms an agreement it is not sure of (uncertain_agreement): F1 scores the
reading, harmful errors score the action.

A labelled file written before the FAQ topics existed (no faq/* labels, like the held-out
set) scores a predicted topic as its old parent intent: money questions (is_it_free,
auto_charge) as ask_price, the others as ask_detail.

Harmful errors (DESIGN.md) cost far more than the others and are counted apart:
- a refusal, stop-calling or hostile reply acted on as agreement (agree_add_wecom, or
  affirm, which is a yes at the WeCom ask);
- a product question (ask_*, faq/*) or a hesitation acted on as a refusal, a no (deny),
  an opt-out (stop_calling, or hostile which also ends calling);
- a stop-calling reply acted on as anything but an opt-out (the lead would be dialled again).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from intents.taxonomy import (
    AGREEMENT_INTENTS,
    FAQ_PARENT_DEFAULT,
    FAQ_PARENT_INTENTS,
    OPT_OUT_INTENTS,
    RETRIEVAL_INTENT,
)

# What the robot reads as a refusal or an end to calling.
REFUSAL_READINGS = frozenset({"refuse", "deny", *OPT_OUT_INTENTS})
REFUSAL_GOLDS = frozenset({"refuse", *OPT_OUT_INTENTS})
HESITATE = "hesitate"
STOP_CALLING = "stop_calling"

Prediction = Union[str, tuple[str, str]]


class EvaluationInputError(ValueError):
    """The labelled file cannot be read; the message says where and what to do."""


@dataclass(frozen=True)
class IntentScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class HarmfulError:
    text: str
    gold: str
    acted: str  # what the robot acted on
    kind: str  # refusal_as_agreement | interest_as_refusal | opt_out_ignored


@dataclass(frozen=True)
class HarmReport:
    count: int
    rate: float  # harmful errors / all examples
    examples: list[HarmfulError]

    def as_json(self, limit: int | None = None) -> dict:
        shown = self.examples if limit is None else self.examples[:limit]
        return {
            "count": self.count,
            "rate": round(self.rate, 4),
            "examples": [{"text": e.text, "gold": e.gold, "predicted": e.acted, "kind": e.kind} for e in shown],
        }


def harm_kind(gold: str, acted: str) -> str | None:
    """The kind of harmful error when the robot acts on `acted` for a `gold` reply, else None."""
    if gold == STOP_CALLING and acted not in OPT_OUT_INTENTS:
        return "opt_out_ignored"
    if gold in REFUSAL_GOLDS and acted in AGREEMENT_INTENTS:
        return "refusal_as_agreement"
    if is_interest(gold) and acted in REFUSAL_READINGS:
        return "interest_as_refusal"
    return None


def is_interest(intent: str) -> bool:
    """A product question or a hesitation: a buyer, never to be read as a refusal."""
    return intent.startswith("ask_") or intent.startswith("faq/") or intent == HESITATE


def harmful_errors(texts: list[str], golds: list[str], acted: list[str]) -> HarmReport:
    found = [
        HarmfulError(t, g, a, kind) for t, g, a in zip(texts, golds, acted) if (kind := harm_kind(g, a)) is not None
    ]
    return HarmReport(len(found), len(found) / len(golds) if golds else 0.0, found)


@dataclass(frozen=True)
class EvalReport:
    n: int
    accuracy: float
    macro_f1: float
    per_intent: dict[str, IntentScore]
    confusions: list[tuple[str, str, int]]  # (gold, predicted, count), most frequent first
    errors: list[tuple[str, str, str]]  # (text, gold, predicted)
    harmful: HarmReport = field(default_factory=lambda: HarmReport(0, 0.0, []))
    confirmations: int = 0  # replies the robot would confirm first (uncertain agreements)
    # The labelled file predates the FAQ topics: predicted topics were scored as their parent
    # intent (ask_price for money questions, ask_detail for the others).
    faq_as_parents: bool = False

    def as_json(self) -> dict:
        return {
            "n": self.n,
            "macro_f1": round(self.macro_f1, 4),
            "harmful": self.harmful.as_json(),
            "confirmations": self.confirmations,
            "faq_as_parents": self.faq_as_parents,
            "accuracy": round(self.accuracy, 4),
            "per_intent": {
                name: {
                    "precision": round(s.precision, 4),
                    "recall": round(s.recall, 4),
                    "f1": round(s.f1, 4),
                    "support": s.support,
                }
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
    # Retrieval intents keep their topic: faq/claims, not faq.
    examples = [
        (m.get("text"), m.get("intent_response_key") or m.get("intent"))
        for m in data.intent_examples
        if m.get("intent")
    ]
    if not examples:
        raise EvaluationInputError(
            f"{path}: no labelled examples found; expect `nlu:` with `- intent: NAME` and `examples: |`."
        )
    return examples


def evaluate(
    examples: Iterable[tuple[str, str]], predict: Callable[[str], Prediction], top_confusions: int = 10
) -> EvalReport:
    golds: list[str] = []
    preds: list[str] = []
    acted: list[str] = []
    texts: list[str] = []
    for text, gold in examples:
        texts.append(text)
        golds.append(gold)
        prediction = predict(text)
        understood, action = (prediction, prediction) if isinstance(prediction, str) else prediction
        preds.append(understood)
        acted.append(action)
    return score(texts, golds, preds, top_confusions, acted)


def score(
    texts: list[str], golds: list[str], preds: list[str], top_confusions: int = 10, acted: list[str] | None = None
) -> EvalReport:
    """`preds`: what the NLU read; `acted`: what the robot acts on (default: the same)."""
    acted = preds if acted is None else acted
    faq_as_parents = bool(golds) and not any(is_faq(g) for g in golds)
    if faq_as_parents:
        preds, acted = [faq_parent(p) for p in preds], [faq_parent(a) for a in acted]
    from sklearn.metrics import precision_recall_fscore_support

    labels = sorted(set(golds))
    precision, recall, f1, support = precision_recall_fscore_support(golds, preds, labels=labels, zero_division=0)
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
    confirmations = sum(1 for p, a in zip(preds, acted) if p != a)
    return EvalReport(
        n,
        accuracy,
        macro_f1,
        per_intent,
        confusions,
        errors,
        harmful_errors(texts, golds, acted),
        confirmations,
        faq_as_parents,
    )


def is_faq(intent: str) -> bool:
    return intent.startswith(RETRIEVAL_INTENT + "/")


def faq_parent(intent: str) -> str:
    """A predicted FAQ topic as the intent that covered it before the topics existed."""
    if not is_faq(intent):
        return intent
    return FAQ_PARENT_INTENTS.get(intent, FAQ_PARENT_DEFAULT)
