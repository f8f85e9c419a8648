"""waihu's own Rasa NLU components (named by module path in dialogs/config.yml).

`CharNgramIntentClassifier`: a logistic regression on character n-grams of the reply.
On short Mandarin phone replies it matches DIET at a fraction of the training time. It
trains on the hand-written examples plus `augment_variants` phone-channel variants of
each (intents.phone_speech: greetings, fillers, echoes, homophones, dialect, stutters),
made inside the component so Rasa's own pipeline only carries the hand-written data. It
learns FAQ examples by their topic (faq/claims …) and reports the retrieval intent `faq`
with the topics' summed probability; the ResponseSelector picks the answer.

`FaqResponseSelector`: Rasa's ResponseSelector, run only on replies the classifier read
as the retrieval intent `faq`. Its TensorFlow pass was half of every parse (12 of 22 ms)
and its answer is used only when the intent is `faq`; training is Rasa's own.

`ReplyCheck`: asymmetric safety after the classifiers.
- An agreement (agree_add_wecom, affirm) with a refusal of the WeCom add in it
  (我不加微信, 加微信就算了, 别让顾问加我) is a refusal.
- Any other agreement with a negation word in it, or below `agreement_threshold`, is
  `uncertain_agreement`: at the WeCom ask the robot confirms once instead of guessing.
- An FAQ question whose topic the ResponseSelector is unsure of is `ask_detail`: the
  robot says the advisor answers it on WeCom, and the call goes on.
- "Stop calling" with no word that says so (我手机是138…) is `nlu_fallback`: the robot
  asks again instead of ending the lead for good on a guess.
What it changed is in the parse output under `reply_check`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Optional

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.nlu.constants import INTENT, INTENT_RESPONSE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

log = logging.getLogger(__name__)

INTENT_RANKING = "intent_ranking"
RESPONSE_SELECTOR = "response_selector"
REPLY_CHECK = "reply_check"
RETRIEVAL_SEPARATOR = "/"
RANKING_LENGTH = 10

AGREEMENT_INTENTS = frozenset({"agree_add_wecom", "affirm"})
UNCERTAIN_AGREEMENT = "uncertain_agreement"
REFUSE = "refuse"
ASK_DETAIL = "ask_detail"
FAQ = "faq"
STOP_CALLING = "stop_calling"
NLU_FALLBACK = "nlu_fallback"
# Words without which a reply is not read as "stop calling me": negation, blocking,
# complaints and their authorities.
OPT_OUT_WORDS = re.compile(
    r"不|别|甭|莫|没|勿|停|删|屏蔽|拉黑|黑名单|投诉|举报|骚扰|烦|滚|再打|取消|退订|免打扰|名单"
    r"|告|消协|12315|110|报警|工信部|起诉"
)

# A refusal of the WeCom add, whatever else the reply says.
REFUSES_WECOM = re.compile(
    r"(不|别|甭|莫|不要|不用|不想|不愿意?|不需要|没必要|用不着)(再|去|给我|让.{0,4})?(加|添加)"
    r"|(加|添加).{0,6}(就|还是)?(算了|免了|拉倒|不用了|不要了|不必了|不加了)"
    r"|(微信|企微|顾问|链接|好友).{0,3}(就|还是|也)?(不加|不要|不用|算了|免了|不需要)"
    r"|(加|添加).{0,6}(也|都)?不(会)?(通过|同意)"
    r"|不(会)?(通过|同意)"
)
# "I did not say no": a negated negation, not a refusal.
NEGATED_NEGATION = re.compile(r"(没|没有|不是|并不是|也不是|又不是)(说)?(不|别|拒绝)|不会不")
NEGATION = re.compile(r"不|别|没|甭|莫|冇|算了|免了|拉倒")
# Words with a negation character that say nothing negative.
NOT_NEGATIONS = re.compile(
    r"不错|没问题|没得问题|莫得问题|冇问题|没事|没关系|不客气|不好意思|不过|不然|要不|不用谢|差不多|了不起|没多久"
)


def code_fingerprint() -> str:
    """A hash of the code that builds and runs these components (this module and the phone
    speech variants). Rasa fingerprints only the class body; a change to a helper must
    retrain too."""
    import hashlib
    import inspect
    import sys

    from intents import phone_speech

    digest = hashlib.sha256()
    for module in (sys.modules[__name__], phone_speech):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()


def _text_features(config: dict[str, Any]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        analyzer="char", ngram_range=(1, int(config["max_ngram"])), sublinear_tf=True, lowercase=True
    )


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class CharNgramIntentClassifier(GraphComponent, IntentClassifier):
    """Logistic regression on character 1..max_ngram-grams (TF-IDF, sublinear)."""

    @classmethod
    def required_components(cls) -> list[type]:
        return []

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        # exclude_texts_from: labelled test files (absolute paths, resolved by waihu train);
        # a variant that equals one of their lines is never trained on.
        return {"max_ngram": 3, "C": 20.0, "augment_variants": 2, "augment_seed": "waihu-1", "exclude_texts_from": []}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        vectorizer: Any = None,
        classifier: Any = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.vectorizer = vectorizer
        self.classifier = classifier

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CharNgramIntentClassifier:
        return cls(config, model_storage, resource)

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> Optional[str]:
        return code_fingerprint()

    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.linear_model import LogisticRegression

        examples = [m for m in training_data.intent_examples if m.get(INTENT) and m.get(TEXT)]
        if not examples:
            return self._resource
        texts, labels = training_set(
            [(m.get(TEXT), m.get(INTENT_RESPONSE_KEY) or m.get(INTENT)) for m in examples],
            int(self.config["augment_variants"]),
            str(self.config["augment_seed"]),
            excluded_texts(self.config["exclude_texts_from"]),
        )
        self.vectorizer = _text_features(self.config)
        features = self.vectorizer.fit_transform(texts)
        self.classifier = LogisticRegression(C=float(self.config["C"]), solver="liblinear")
        self.classifier.fit(features, labels)
        self.persist()
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        if self.classifier is None or not messages:
            return messages
        texts = [m.get(TEXT) or "" for m in messages]
        probabilities = self.classifier.predict_proba(self.vectorizer.transform(texts))
        labels = list(self.classifier.classes_)
        for message, row in zip(messages, probabilities):
            scores: dict[str, float] = {}
            for label, p in zip(labels, row):
                intent = label.split(RETRIEVAL_SEPARATOR, 1)[0]
                scores[intent] = scores.get(intent, 0.0) + float(p)
            ranking = [{"name": k, "confidence": v} for k, v in sorted(scores.items(), key=lambda kv: -kv[1])]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING, ranking[:RANKING_LENGTH], add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            np.savez_compressed(
                directory / "char_ngram_lr.npz",
                vocabulary=np.array(sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)),
                idf=self.vectorizer.idf_,
                classes=np.array(self.classifier.classes_),
                coef=self.classifier.coef_,
                intercept=self.classifier.intercept_,
            )

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CharNgramIntentClassifier:
        from sklearn.linear_model import LogisticRegression

        try:
            with model_storage.read_from(resource) as directory:
                saved = np.load(directory / "char_ngram_lr.npz", allow_pickle=False)
                arrays = {key: saved[key] for key in saved.files}
        except (ValueError, FileNotFoundError):
            log.debug("no trained %s in the model; it will not classify", cls.__name__)
            return cls(config, model_storage, resource)
        component = cls(config, model_storage, resource)
        vectorizer = _text_features(component.config)
        vectorizer.vocabulary_ = {str(token): index for index, token in enumerate(arrays["vocabulary"])}
        vectorizer.idf_ = arrays["idf"]
        classifier = LogisticRegression()
        classifier.classes_ = np.array([str(c) for c in arrays["classes"]], dtype=object)
        classifier.coef_ = arrays["coef"]
        classifier.intercept_ = arrays["intercept"]
        component.vectorizer, component.classifier = vectorizer, classifier
        return component


def training_set(
    examples: list[tuple[str, str]], variants: int, seed: str, excluded: frozenset[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """The hand-written (text, label) examples plus their phone-channel variants; a variant
    that equals a hand-written example (it keeps its own label) or an excluded text (a line
    of a test file) is left out."""
    from intents.phone_speech import variants_of

    written = {text for text, _ in examples} | excluded
    texts, labels = [t for t, _ in examples], [label for _, label in examples]
    for text, label in examples:
        for variant in variants_of(text, label, variants, seed) if variants else ():
            if variant not in written:
                texts.append(variant)
                labels.append(label)
    return texts, labels


def excluded_texts(paths: list[str]) -> frozenset[str]:
    """Every example line of the given Rasa NLU files (missing files are skipped)."""
    from pathlib import Path

    import yaml

    texts: set[str] = set()
    for path in map(Path, paths or ()):
        if not path.is_file():
            continue
        for block in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []:
            if isinstance(block, dict) and "intent" in block:
                texts |= {
                    line.strip()[2:].strip()
                    for line in str(block.get("examples") or "").splitlines()
                    if line.strip().startswith("- ")
                }
    return frozenset(texts)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class FaqResponseSelector(ResponseSelector):
    """ResponseSelector that picks an answer only for replies read as its retrieval intent."""

    def process(self, messages: list[Message]) -> list[Message]:
        retrieval_intent = self.retrieval_intent or FAQ
        asked = [m for m in messages if (m.get(INTENT) or {}).get("name") == retrieval_intent]
        if asked:
            super().process(asked)
        return messages


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class ReplyCheck(GraphComponent, IntentClassifier):
    """Agreement needs high confidence and no negation; an FAQ topic needs a sure answer."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [IntentClassifier]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"agreement_threshold": 0.5, "faq_threshold": 0.5}

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ReplyCheck:
        return cls(config)

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> Optional[str]:
        return code_fingerprint()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = message.get(INTENT) or {}
            verdict = check_reply(
                message.get(TEXT) or "",
                intent.get("name"),
                float(intent.get("confidence") or 0.0),
                _faq_confidence(message),
                self.config["agreement_threshold"],
                self.config["faq_threshold"],
            )
            if verdict is None:
                continue
            new_intent, reason = verdict
            confidence = float(intent.get("confidence") or 0.0)
            message.set(INTENT, {"name": new_intent, "confidence": confidence}, add_to_output=True)
            message.set(
                REPLY_CHECK,
                {"intent": intent.get("name"), "confidence": confidence, "reason": reason},
                add_to_output=True,
            )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data


def check_reply(
    text: str,
    intent: Optional[str],
    confidence: float,
    faq_confidence: Optional[float],
    agreement_threshold: float,
    faq_threshold: float,
) -> tuple[str, str] | None:
    """(new intent, reason) when the classifier's reading must not be acted on as it is."""
    if intent in AGREEMENT_INTENTS:
        if REFUSES_WECOM.search(text) and not NEGATED_NEGATION.search(text):
            return REFUSE, "refuses_wecom"
        if has_negation(text):
            return UNCERTAIN_AGREEMENT, "negation"
        if confidence < agreement_threshold:
            return UNCERTAIN_AGREEMENT, "low_confidence"
    if intent == FAQ and faq_confidence is not None and faq_confidence < faq_threshold:
        return ASK_DETAIL, "faq_topic_unsure"
    if intent == STOP_CALLING and not OPT_OUT_WORDS.search(text):
        # An opt-out ends the lead for good: without a word that says so (我手机是138…)
        # the robot asks again rather than act on a guess; a real opt-out says it again.
        return NLU_FALLBACK, "stop_calling_without_opt_out_words"
    return None


def has_negation(text: str) -> bool:
    """A negation word that is not part of a harmless phrase (不错, 没问题, 没说不要 …)."""
    return bool(NEGATION.search(NOT_NEGATIONS.sub("", NEGATED_NEGATION.sub("", text))))


def _faq_confidence(message: Message) -> Optional[float]:
    selector = message.get(RESPONSE_SELECTOR) or {}
    prediction = (selector.get(FAQ) or selector.get("default") or {}).get("response") or {}
    value = prediction.get("confidence")
    return float(value) if value is not None else None
