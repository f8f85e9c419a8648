"""Read and check the grading rules YAML (intents/grading_rules.yml).

Script writers edit that file by hand, so every mistake is reported as
`file:line:col: what is wrong, and what is allowed` — all of them at once, not only the
first. The file's shape is the `RulesFile` model, read by intents.yaml_source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Optional

from pydantic import Field, root_validator, validator

from intents.taxonomy import CALLEE_INTENTS, FALLBACK_INTENT
from intents.yaml_source import Probability, Problems, Text, YamlError, YamlModel, check, line_of, load_yaml, parse_yaml

DEFAULT_RULES_PATH = Path(__file__).with_name("grading_rules.yml")
GRADES: tuple[str, ...] = ("A", "B", "C", "D")

# Measures every call has, usable in `when` like a counter.
MEASURES: tuple[str, ...] = ("callee_turns", "understood_turns", "not_understood_turns", "talk_time_s")
# Conditions that are not numeric comparisons, with the kind of value each takes.
INTENT_LIST_CONDITIONS = ("has_intent", "lacks_intent", "last_intent", "not_last_intent")
STEP_LIST_CONDITIONS = ("reached_step", "not_reached_step")
OTHER_CONDITIONS = ("agreed_wecom", "hangup_by")

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(-?\d+(?:\.\d+)?)\s*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_STEP_NAME = re.compile(r"^utter_[a-z0-9_]+$")
_COUNTER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
KNOWN_INTENTS = frozenset(CALLEE_INTENTS) | {FALLBACK_INTENT}


# The rules file cannot be used: the one YAML error type; `problems` lists every `file:line:col: message`.
GradingRulesError = YamlError


@dataclass(frozen=True)
class Comparison:
    op: str
    value: float

    def holds(self, actual: float) -> bool:
        return {
            ">=": actual >= self.value,
            "<=": actual <= self.value,
            ">": actual > self.value,
            "<": actual < self.value,
            "==": actual == self.value,
            "!=": actual != self.value,
        }[self.op]

    @property
    def needs_some(self) -> bool:
        """True when the condition can only hold if something was counted (cites turns)."""
        return not self.holds(0)


@dataclass(frozen=True)
class Counter:
    name: str
    intents: frozenset[str] = frozenset()
    when_answering: tuple[tuple[str, frozenset[str]], ...] = ()  # (bot step, intents)
    text: tuple[str, ...] = ()
    unless_text: tuple[str, ...] = ()


@dataclass(frozen=True)
class Condition:
    name: str  # a counter, a measure, or one of the named conditions
    comparison: Comparison | None = None
    names: frozenset[str] = frozenset()  # intents or steps for list conditions
    flag: bool | str | None = None  # agreed_wecom (bool) or hangup_by (str)


@dataclass(frozen=True)
class Rule:
    name: str
    grade: str
    conditions: tuple[Condition, ...]
    reason: str
    line: int


@dataclass(frozen=True)
class GradingRules:
    min_confidence: float
    counters: Mapping[str, Counter]
    rules: tuple[Rule, ...]
    default_grade: str
    default_reason: str
    source: str


def load_rules(path: Path | str = DEFAULT_RULES_PATH) -> GradingRules:
    document = load_yaml(path)
    return _grading_rules(check(document, RulesFile, str(path)), document, str(path))


def parse_rules(text: str, source: str = "<rules>") -> GradingRules:
    document = parse_yaml(text, source)
    return _grading_rules(check(document, RulesFile, source), document, source)


# ---- the file's shape -------------------------------------------------------------------------


class _Checked(str):
    """A name checked on reading; subclasses say what a good one is."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], str]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> str:
        raise NotImplementedError


class IntentName(_Checked):
    @classmethod
    def check(cls, value: Any) -> str:
        if value not in KNOWN_INTENTS:
            raise ValueError(f"unknown intent '{value}'; known intents: {', '.join(CALLEE_INTENTS)}")
        return str(value)


class StepName(_Checked):
    @classmethod
    def check(cls, value: Any) -> str:
        if not isinstance(value, str) or not _STEP_NAME.match(value):
            raise ValueError(f"'{value}' is not a script step; steps are response names like utter_ask_wecom")
        return value


class Grade(_Checked):
    @classmethod
    def check(cls, value: Any) -> str:
        if value not in GRADES:
            raise ValueError(f"grade must be one of {'/'.join(GRADES)}, not {value!r}")
        return str(value)


class CounterModel(YamlModel):
    intents: Optional[list[IntentName]] = None
    when_answering: Optional[dict[StepName, Optional[list[IntentName]]]] = Field(
        None, hint="a robot step (utter_…) → the intents that count as replies to it"
    )
    text: Optional[list[Text]] = None
    unless_text: Optional[list[Text]] = None

    @root_validator(skip_on_failure=True)
    def _counts_something(cls, values: dict) -> dict:
        if not values["intents"] and not values["when_answering"] and not values["text"]:
            raise ValueError("counts nothing: give `intents`, `when_answering` or `text`")
        return values

    def counter(self, name: str) -> Counter:
        answering = tuple((step, frozenset(intents or ())) for step, intents in (self.when_answering or {}).items())
        return Counter(
            name, frozenset(self.intents or ()), answering, tuple(self.text or ()), tuple(self.unless_text or ())
        )


class RuleModel(YamlModel):
    name: Text = Field(..., hint="what the rule is called (reports, `waihu grade --explain`)")
    grade: Grade = Field(..., hint="A, B, C or D")
    when: dict[str, Any] = Field(..., hint="the conditions that must all hold")
    reason: Text = Field(..., hint="why the grade was given, in words a manager reads")

    @validator("when")
    def _some_condition(cls, when: dict[str, Any]) -> dict[str, Any]:
        if not when:
            raise ValueError("needs at least one condition")
        return when


class DefaultModel(YamlModel):
    grade: Grade = Field(..., hint="A, B, C or D")
    reason: Text = Field(..., hint="why the grade was given, in words a manager reads")


class RulesFile(YamlModel):
    """intents/grading_rules.yml."""

    version: Any = None
    min_confidence: Probability = Probability(0.4)
    counters: Optional[dict[str, CounterModel]] = None
    rules: list[RuleModel] = Field(..., hint="a list of rules tried from top to bottom")
    default: DefaultModel = Field(..., hint="`grade` and `reason`, used when no rule holds")

    @root_validator
    def _names_refer_to_what_is_defined(cls, values: dict) -> dict:
        """Counter names are free, rule names unique, conditions and reason placeholders name
        counters or measures. Checks the parts that are well-formed."""
        problems = Problems()
        counters: dict[str, CounterModel] = values.get("counters") or {}
        for name in counters:
            problems.attempt(_counter_name, name, "counters", name)
        counters_read = "counters" in values  # else broken counters would make every use look unknown
        seen: set[str] = set()
        for index, rule in enumerate(values.get("rules") or ()):
            if rule.name in seen:
                problems.add(f"rule name '{rule.name}' is used twice", "rules", index, "name")
            seen.add(rule.name)
            for key, value in rule.when.items() if counters_read else ():
                problems.attempt(
                    partial(_condition, key, counters=counters, rule=rule.name), value, "rules", index, "when", key
                )
            if counters_read:
                problems.attempt(partial(_placeholders_known, counters=counters), rule.reason, "rules", index, "reason")
        if values.get("default") is not None:
            problems.attempt(_placeholders_known, values["default"].reason, "default", "reason")
        problems.raise_any()
        return values


def _counter_name(name: Any) -> None:
    if not isinstance(name, str) or not _COUNTER_NAME.match(name):
        raise ValueError(f"counter name {name!r} must be lower_case letters, digits and _")
    if name in MEASURES or name in INTENT_LIST_CONDITIONS + STEP_LIST_CONDITIONS + OTHER_CONDITIONS:
        raise ValueError(f"counter name '{name}' is a built-in condition; choose another name")


def _placeholders_known(reason: str, counters: Mapping[str, Any] | None = None) -> None:
    """The {placeholders} of a reason name counters or measures."""
    problems = Problems()
    for name in _PLACEHOLDER.findall(reason):
        if name not in (counters or {}) and name not in MEASURES:
            problems.add(f"unknown placeholder {{{name}}} in reason; use a counter or {', '.join(MEASURES)}")
    problems.raise_any()


def _condition(key: str, value: Any, counters: Mapping[str, Any], rule: str) -> Condition:
    """One `when` entry as a Condition; ValueError or Problems say what is wrong."""
    if key in counters or key in MEASURES:
        comparison = _comparison(value)
        if comparison is None:
            raise ValueError(f"'{key}: {value}' must be a number or a comparison like \">= 1\"")
        return Condition(key, comparison=comparison)
    if key in INTENT_LIST_CONDITIONS:
        return Condition(key, names=frozenset(_names(value, IntentName.check)))
    if key in STEP_LIST_CONDITIONS:
        return Condition(key, names=frozenset(_names(value, StepName.check)))
    if key == "agreed_wecom":
        if not isinstance(value, bool):
            raise ValueError(f"agreed_wecom must be true or false, not {value!r}")
        return Condition(key, flag=value)
    if key == "hangup_by":
        if value not in ("bot", "callee"):
            raise ValueError(f"hangup_by must be bot or callee, not {value!r}")
        return Condition(key, flag=value)
    known = sorted(counters) + list(MEASURES) + list(INTENT_LIST_CONDITIONS + STEP_LIST_CONDITIONS + OTHER_CONDITIONS)
    raise ValueError(f"unknown counter or condition '{key}' in rule '{rule}'; known: {', '.join(known)}")


def _names(value: Any, check_name: Callable[[Any], str]) -> list[str]:
    """A list condition's names (intents or steps), each checked."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("must be a list like [a, b]")
    problems = Problems()
    names = [problems.attempt(check_name, name, index) for index, name in enumerate(value)]
    problems.raise_any()
    return [name for name in names if name is not None]


def _comparison(value: Any) -> Comparison | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Comparison("==", float(value))
    match = _COMPARISON.match(str(value))
    if not match:
        return None
    return Comparison(match.group(1) or "==", float(match.group(2)))


def _grading_rules(model: RulesFile, document: Any, source: str) -> GradingRules:
    counters = {name: spec.counter(name) for name, spec in (model.counters or {}).items()}
    rules = tuple(
        Rule(
            rule.name,
            rule.grade,
            tuple(_condition(key, value, counters, rule.name) for key, value in rule.when.items()),
            rule.reason,
            line_of(document, "rules", index) or 0,
        )
        for index, rule in enumerate(model.rules)
    )
    return GradingRules(float(model.min_confidence), counters, rules, model.default.grade, model.default.reason, source)
