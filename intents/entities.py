"""Entities in a callee's reply with spaCy: callback times, insurance types, family members.

The pipeline is a blank Chinese spaCy model with the jieba segmenter (the packaged zh
models cannot be downloaded here) and one rule-based component. The rules match on
characters, not tokens: jieba splits unseen compounds differently from one sentence to
the next (百万医疗险 → 百万/医疗险, 百万医疗 → 百万/医疗), so token patterns would miss
mentions. Matches become `doc.ents` (aligned to tokens, overlaps resolved longest-first)
with the exact character span and resolution kept on the span.

Callback times are resolved relative to `now` — the moment of the call — in
Asia/Shanghai (see `callback_times`). The pipeline is built once per process.

Output is Rasa-shaped entity dicts, so the call runtime can merge them into a parse:
`{"entity", "value", "start", "end", "extractor": "waihu_spacy"}`, plus `start_at` and
`end_at` (ISO 8601, or None when the time is unknown) for callback times.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from intents.callback_times import find_callback_times

EXTRACTOR = "waihu_spacy"
CALLBACK_TIME = "callback_time"
INSURANCE_TYPE = "insurance_type"
FAMILY_MEMBER = "family_member"

# (pattern, canonical value). Longer, more specific patterns first.
INSURANCE_TYPES: tuple[tuple[str, str], ...] = (
    (r"百万医疗(?:保险|险)?", "百万医疗险"),
    (r"惠民保", "惠民保"),
    (r"(?:重大疾病|重疾)(?:保险|险)?", "重疾险"),
    (r"防癌(?:保险|险)", "防癌险"),
    (r"(?:意外伤害|意外)(?:保险|险)", "意外险"),
    (r"(?:商业)?医疗(?:保险|险)", "医疗险"),
    (r"年金(?:保险|险)?", "年金险"),
    (r"(?:商业)?养老(?:保险|险|金)", "养老险"),
    (r"教育金|教育(?:保险|险)", "教育金"),
    (r"(?:终身|定期)?寿险|人寿保险", "寿险"),
    (r"车险|交强险|车损险", "车险"),
    (r"社保|医保|新农合", "社保"),
)
FAMILY_MEMBERS: tuple[tuple[str, str], ...] = (
    (r"老婆|媳妇儿?|妻子|爱人|太太|老公|丈夫|对象", "spouse"),
    (r"孩子|小孩|儿子|女儿|闺女|宝宝|娃", "child"),
    (r"父母|爸妈|爸爸|妈妈|我爸|我妈|老人家?|公公|婆婆|岳父|岳母|老丈人|丈母娘", "parent"),
)

_ENTITY_RULES = tuple(
    (label, re.compile(pattern), value)
    for label, table in ((INSURANCE_TYPE, INSURANCE_TYPES), (FAMILY_MEMBER, FAMILY_MEMBERS))
    for pattern, value in table
)
COMPONENT = "waihu_entity_rules"

_nlp: Any = None


def extract_entities(text: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """Entities in one reply; callback times resolved relative to `now` (default: the clock)."""
    if not text or not text.strip():
        return []
    nlp = pipeline()
    doc = nlp.make_doc(text)
    doc._.waihu_now = now or datetime.now(timezone.utc)
    doc = nlp.get_pipe(COMPONENT)(doc)
    return [_as_dict(span) for span in doc.ents]


def pipeline() -> Any:
    """The process-wide spaCy pipeline (built on first use, ~1 s for jieba's dictionary)."""
    global _nlp
    if _nlp is None:
        _nlp = _build_pipeline()
    return _nlp


def _build_pipeline() -> Any:
    import spacy
    from spacy.language import Language
    from spacy.tokens import Doc, Span

    if not Doc.has_extension("waihu_now"):
        Doc.set_extension("waihu_now", default=None)
    for name in ("waihu_value", "waihu_start", "waihu_end", "waihu_start_at", "waihu_end_at"):
        if not Span.has_extension(name):
            Span.set_extension(name, default=None)
    if COMPONENT not in Language.factories:
        Language.component(COMPONENT)(_match_entities)
    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    nlp.add_pipe(COMPONENT)
    nlp.make_doc("预热")  # jieba loads its dictionary on the first cut
    return nlp


def _match_entities(doc: Any) -> Any:
    """The rule-based component: character matches → token-aligned `doc.ents`.

    Overlaps are resolved on characters (longest match first) before aligning to tokens:
    after alignment two different matches can cover the same tokens (医疗险 inside
    百万医疗险 when jieba keeps 百万医疗险 whole), and the longer mention must win
    whatever the segmentation.
    """
    now = doc._.waihu_now or datetime.now(timezone.utc)
    matches: list[tuple[int, int, str, str, Any]] = []
    for found in find_callback_times(doc.text, now):
        matches.append((found.start, found.end, CALLBACK_TIME, found.text, found))
    for label, pattern, value in _ENTITY_RULES:
        for match in pattern.finditer(doc.text):
            matches.append((match.start(), match.end(), label, value, None))
    matches.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
    spans: list[Any] = []
    taken_chars: set[int] = set()
    taken_tokens: set[int] = set()
    for start, end, label, value, found in matches:
        if taken_chars.intersection(range(start, end)):
            continue
        span = _span(doc, start, end, label, value)
        if span is None or taken_tokens.intersection(range(span.start, span.end)):
            continue
        if found is not None:
            span._.waihu_start_at = found.start_at
            span._.waihu_end_at = found.end_at
        taken_chars.update(range(start, end))
        taken_tokens.update(range(span.start, span.end))
        spans.append(span)
    doc.ents = sorted(spans, key=lambda span: span.start)
    return doc


def _span(doc: Any, start: int, end: int, label: str, value: str) -> Any:
    span = doc.char_span(start, end, label=label, alignment_mode="expand")
    if span is None:
        return None
    span._.waihu_value = value
    span._.waihu_start, span._.waihu_end = start, end
    return span


def _as_dict(span: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "entity": span.label_,
        "value": span._.waihu_value,
        "start": span._.waihu_start,
        "end": span._.waihu_end,
        "extractor": EXTRACTOR,
    }
    if span.label_ == CALLBACK_TIME:
        entity["start_at"] = span._.waihu_start_at.isoformat() if span._.waihu_start_at else None
        entity["end_at"] = span._.waihu_end_at.isoformat() if span._.waihu_end_at else None
    return entity
