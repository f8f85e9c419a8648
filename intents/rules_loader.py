"""Read and check the grading rules YAML (intents/grading_rules.yml).

Script writers edit that file by hand, so every mistake is reported as
`file:line: what is wrong, and what is allowed` — all of them at once, not only the
first. ruamel.yaml keeps the line of every key and list item for that.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from intents.taxonomy import CALLEE_INTENTS, FALLBACK_INTENT

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


class GradingRulesError(ValueError):
    """The rules file cannot be used; `problems` lists every `file:line: message`."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Comparison:
    op: str
    value: float

    def holds(self, actual: float) -> bool:
        return {
            ">=": actual >= self.value, "<=": actual <= self.value, ">": actual > self.value,
            "<": actual < self.value, "==": actual == self.value, "!=": actual != self.value,
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
    path = Path(path)
    if not path.is_file():
        raise GradingRulesError(f"{path}: no such rules file", [f"{path}: no such rules file"])
    return parse_rules(path.read_text(encoding="utf-8"), str(path))


def parse_rules(text: str, source: str = "<rules>") -> GradingRules:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        message = f"{source}:{line}: not valid YAML: {problem}"
        raise GradingRulesError(message, [message]) from None
    checker = _Checker(source)
    rules = checker.rules_file(data)
    if checker.problems:
        raise GradingRulesError(
            f"{source}: {len(checker.problems)} problem(s) in the grading rules", checker.problems
        )
    assert rules is not None
    return rules


class _Checker:
    """Turns the YAML tree into GradingRules, collecting every problem with its line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append(f"{self.source}:{line if line is not None else '?'}: {message}")

    def rules_file(self, data: Any) -> GradingRules | None:
        if not isinstance(data, Mapping):
            self.problem(1, "expected a mapping with `counters`, `rules` and `default`")
            return None
        self._unknown_keys(data, ("version", "min_confidence", "counters", "rules", "default"), "the rules file")
        min_confidence = self._min_confidence(data)
        counters = self._counters(data.get("counters"), _key_line(data, "counters"))
        rules = tuple(self._rules(data.get("rules"), _key_line(data, "rules"), counters))
        default_grade, default_reason = self._default(data)
        return GradingRules(min_confidence, counters, rules, default_grade, default_reason, self.source)

    def _min_confidence(self, data: Mapping) -> float:
        value = data.get("min_confidence", 0.4)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            self.problem(_value_line(data, "min_confidence"), f"min_confidence must be a number from 0 to 1, not {value!r}")
            return 0.4
        return float(value)

    def _counters(self, node: Any, line: int | None) -> dict[str, Counter]:
        counters: dict[str, Counter] = {}
        if node is None:
            return counters
        if not isinstance(node, Mapping):
            self.problem(line, "`counters` must map counter names to their definitions")
            return counters
        for name, spec in node.items():
            at = _key_line(node, name)
            if not isinstance(name, str) or not _COUNTER_NAME.match(name):
                self.problem(at, f"counter name {name!r} must be lower_case letters, digits and _")
                continue
            if name in MEASURES or name in INTENT_LIST_CONDITIONS + STEP_LIST_CONDITIONS + OTHER_CONDITIONS:
                self.problem(at, f"counter name '{name}' is a built-in condition; choose another name")
                continue
            counters[name] = self._counter(name, spec, at)
        return counters

    def _counter(self, name: str, spec: Any, line: int | None) -> Counter:
        if not isinstance(spec, Mapping):
            self.problem(line, f"counter '{name}' needs `intents`, `when_answering` or `text`")
            return Counter(name)
        self._unknown_keys(spec, ("intents", "when_answering", "text", "unless_text"), f"counter '{name}'")
        intents = self._intents(spec, "intents")
        answering: list[tuple[str, frozenset[str]]] = []
        node = spec.get("when_answering")
        if node is not None:
            if not isinstance(node, Mapping):
                self.problem(_value_line(spec, "when_answering"), "`when_answering` maps a robot step (utter_…) to a list of intents")
            else:
                for step, _ in node.items():
                    self._step_name(step, _key_line(node, step))
                    answering.append((str(step), self._intents(node, step)))
        text = self._phrases(spec, "text")
        unless = self._phrases(spec, "unless_text")
        if not intents and not answering and not text:
            self.problem(line, f"counter '{name}' counts nothing: give `intents`, `when_answering` or `text`")
        return Counter(name, intents, tuple(answering), text, unless)

    def _rules(self, node: Any, line: int | None, counters: Mapping[str, Counter]) -> Iterable[Rule]:
        if node is None:
            self.problem(1, "missing `rules`: a list of rules tried from top to bottom")
            return
        if not isinstance(node, list):
            self.problem(line, "`rules` must be a list of rules (`- name: …`)")
            return
        seen: set[str] = set()
        for index, spec in enumerate(node):
            at = _item_line(node, index)
            if not isinstance(spec, Mapping):
                self.problem(at, "each rule needs `name`, `grade`, `when` and `reason`")
                continue
            self._unknown_keys(spec, ("name", "grade", "when", "reason"), "a rule")
            name = spec.get("name")
            if not isinstance(name, str) or not name.strip():
                self.problem(at, "rule without a `name`")
                name = f"rule {index + 1}"
            elif name in seen:
                self.problem(_value_line(spec, "name"), f"rule name '{name}' is used twice")
            seen.add(name)
            grade = self._grade(spec, f"rule '{name}'")
            conditions = self._conditions(spec.get("when"), _key_line(spec, "when") or at, name, counters)
            reason = self._reason(spec, f"rule '{name}'", counters)
            yield Rule(name, grade, tuple(conditions), reason, at or 0)

    def _conditions(self, node: Any, line: int | None, rule: str, counters: Mapping[str, Counter]) -> list[Condition]:
        if not isinstance(node, Mapping) or not node:
            self.problem(line, f"rule '{rule}' needs `when:` with at least one condition")
            return []
        conditions: list[Condition] = []
        for key, value in node.items():
            at = _key_line(node, key)
            if key in counters or key in MEASURES:
                comparison = _comparison(value)
                if comparison is None:
                    self.problem(at, f"'{key}: {value}' must be a number or a comparison like \">= 1\"")
                    continue
                conditions.append(Condition(str(key), comparison=comparison))
            elif key in INTENT_LIST_CONDITIONS:
                conditions.append(Condition(key, names=self._intents(node, key)))
            elif key in STEP_LIST_CONDITIONS:
                steps = self._list(node, key)
                for i, step in enumerate(steps):
                    self._step_name(step, _item_line(node[key], i) or at)
                conditions.append(Condition(key, names=frozenset(map(str, steps))))
            elif key == "agreed_wecom":
                if not isinstance(value, bool):
                    self.problem(at, f"agreed_wecom must be true or false, not {value!r}")
                    continue
                conditions.append(Condition(key, flag=value))
            elif key == "hangup_by":
                if value not in ("bot", "callee"):
                    self.problem(at, f"hangup_by must be bot or callee, not {value!r}")
                    continue
                conditions.append(Condition(key, flag=value))
            else:
                known = sorted(counters) + list(MEASURES) + list(INTENT_LIST_CONDITIONS + STEP_LIST_CONDITIONS + OTHER_CONDITIONS)
                self.problem(at, f"unknown counter or condition '{key}' in rule '{rule}'; known: {', '.join(known)}")
        return conditions

    def _default(self, data: Mapping) -> tuple[str, str]:
        node = data.get("default")
        if not isinstance(node, Mapping):
            self.problem(_key_line(data, "default") or 1, "missing `default:` with `grade` and `reason` (used when no rule holds)")
            return "D", ""
        self._unknown_keys(node, ("grade", "reason"), "default")
        return self._grade(node, "default"), self._reason(node, "default", {})

    def _grade(self, node: Mapping, owner: str) -> str:
        grade = node.get("grade")
        if grade not in GRADES:
            self.problem(_value_line(node, "grade") or _first_line(node), f"{owner}: grade must be one of {'/'.join(GRADES)}, not {grade!r}")
            return "D"
        return str(grade)

    def _reason(self, node: Mapping, owner: str, counters: Mapping[str, Counter]) -> str:
        reason = node.get("reason")
        at = _value_line(node, "reason") or _first_line(node)
        if not isinstance(reason, str) or not reason.strip():
            self.problem(at, f"{owner}: `reason` must say in words why the grade was given")
            return ""
        for name in _PLACEHOLDER.findall(reason):
            if name not in counters and name not in MEASURES:
                self.problem(at, f"{owner}: unknown placeholder {{{name}}} in reason; use a counter or {', '.join(MEASURES)}")
        return reason.strip()

    def _intents(self, node: Mapping, key: Any) -> frozenset[str]:
        names = self._list(node, key)
        for i, name in enumerate(names):
            if name not in KNOWN_INTENTS:
                self.problem(_item_line(node[key], i) or _value_line(node, key),
                             f"unknown intent '{name}'; known intents: {', '.join(CALLEE_INTENTS)}")
        return frozenset(map(str, names))

    def _phrases(self, node: Mapping, key: str) -> tuple[str, ...]:
        phrases = self._list(node, key)
        for i, phrase in enumerate(phrases):
            if not isinstance(phrase, str) or not phrase.strip():
                self.problem(_item_line(node[key], i), f"`{key}` entries must be non-empty phrases")
        return tuple(str(p).strip() for p in phrases if isinstance(p, str) and p.strip())

    def _list(self, node: Mapping, key: Any) -> list[Any]:
        if key not in node or node[key] is None:
            return []
        value = node[key]
        if not isinstance(value, list):
            self.problem(_value_line(node, key), f"`{key}` must be a list like [a, b]")
            return []
        return list(value)

    def _step_name(self, step: Any, line: int | None) -> None:
        if not isinstance(step, str) or not _STEP_NAME.match(step):
            self.problem(line, f"'{step}' is not a script step; steps are response names like utter_ask_wecom")

    def _unknown_keys(self, node: Mapping, allowed: tuple[str, ...], owner: str) -> None:
        for key in node:
            if key not in allowed:
                self.problem(_key_line(node, key), f"unknown key '{key}' in {owner}; allowed: {', '.join(allowed)}")


def _comparison(value: Any) -> Comparison | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Comparison("==", float(value))
    match = _COMPARISON.match(str(value))
    if not match:
        return None
    return Comparison(match.group(1) or "==", float(match.group(2)))


# ruamel.yaml line numbers are 0-based; files are read by people counting from 1.
def _key_line(node: Any, key: Any) -> int | None:
    try:
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return None


def _value_line(node: Any, key: Any) -> int | None:
    try:
        return node.lc.value(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return _key_line(node, key)


def _item_line(node: Any, index: int) -> int | None:
    try:
        return node.lc.item(index)[0] + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def _first_line(node: Any) -> int | None:
    try:
        return node.lc.line + 1
    except AttributeError:
        return None
