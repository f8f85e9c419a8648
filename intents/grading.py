"""A/B/C/D grading of a connected call, with the reason a manager can read.

The rules are data (intents/grading_rules.yml, checked by `rules_loader`); this module
only measures the call and applies them, first match wins. Grading is a pure function
of the call and the rules, so the same call always gets the same grade.

Reply numbering: "第3轮" is the callee's third reply with speech — the round a manager
counts when reading the transcript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from intents.finished_call import FinishedCall, Turn
from intents.rules_loader import Condition, Counter, GradingRules, Rule, load_rules
from intents.taxonomy import FALLBACK_INTENT

# Script lines the robot only says once the callee agreed to be added on WeCom.
WECOM_CONFIRMED_STEPS = frozenset({"utter_confirm_wecom", "utter_close_success"})
# Small talk that says nothing about the callee's decision; skipped by last_intent.
NEUTRAL_INTENTS = frozenset({"goodbye", "greet", "not_heard"})


@dataclass(frozen=True)
class Reply:
    """One callee reply with speech, as grading sees it."""

    round: int  # 1-based among the callee's replies
    index: int  # 1-based position in the whole transcript
    text: str
    intent: str | None  # None: not understood (fallback or below min_confidence)
    answering: str | None  # the last script step the robot said before it


@dataclass(frozen=True)
class Grade:
    grade: str  # A/B/C/D
    rule: str  # the rule that fired ("default" when none did)
    reason: str  # e.g. "A：第3轮同意添加企业微信"
    rounds: tuple[int, ...]  # the callee replies that triggered the rule
    turn_indices: tuple[int, ...]  # the same replies as 1-based transcript positions

    def as_json(self) -> dict:
        return {
            "grade": self.grade,
            "rule": self.rule,
            "reason": self.reason,
            "rounds": list(self.rounds),
            "turns": list(self.turn_indices),
        }


@dataclass(frozen=True)
class CallFacts:
    """Everything the rules can ask about one call."""

    replies: tuple[Reply, ...]
    counted: Mapping[str, tuple[int, ...]]  # counter name → rounds it counted
    steps: frozenset[str]
    agreed_wecom: bool
    agreement_rounds: tuple[int, ...]
    hangup_by: str | None
    talk_time_s: float

    def measure(self, name: str) -> tuple[float, tuple[int, ...]]:
        """(value, rounds that make it up) for a counter or a built-in measure."""
        if name in self.counted:
            rounds = self.counted[name]
            return float(len(rounds)), rounds
        if name == "callee_turns":
            return float(len(self.replies)), ()
        if name == "understood_turns":
            return float(sum(1 for r in self.replies if r.intent)), ()
        if name == "not_understood_turns":
            return float(sum(1 for r in self.replies if not r.intent)), ()
        if name == "talk_time_s":
            return self.talk_time_s, ()
        raise KeyError(name)  # the loader only lets known names through

    @property
    def last_intent(self) -> Reply | None:
        for reply in reversed(self.replies):
            if reply.intent and reply.intent not in NEUTRAL_INTENTS:
                return reply
        return None


def understood_intent(turn: Turn, min_confidence: float) -> str | None:
    """The intent to act on, or None when the NLU did not really understand the reply."""
    if not turn.intent or turn.intent == FALLBACK_INTENT:
        return None
    # Hand-labelled turns carry no confidence; a parsed one below the fallback threshold
    # must never count as a refusal or an agreement.
    if turn.confidence is not None and turn.confidence < min_confidence:
        return None
    return turn.intent


def measure_call(call: FinishedCall, rules: GradingRules) -> CallFacts:
    replies = callee_replies(call, rules.min_confidence)
    counted = {name: tuple(r.round for r in replies if _counts(counter, r)) for name, counter in rules.counters.items()}
    steps = frozenset(t.response for t in call.turns if t.speaker == "bot" and t.response)
    agreement_rounds = counted.get("agreements", ())
    if call.agreed_wecom is not None:
        agreed = call.agreed_wecom
    else:
        agreed = bool(agreement_rounds) or bool(steps & WECOM_CONFIRMED_STEPS)
    if agreed and not agreement_rounds:
        agreement_rounds = _rounds_before_confirmation(call, replies)
    return CallFacts(replies, counted, steps, agreed, agreement_rounds, call.hangup_by, _talk_time(call))


def grade_call(call: FinishedCall, rules: GradingRules | None = None) -> Grade:
    rules = rules or default_rules()
    facts = measure_call(call, rules)
    for rule in rules.rules:
        evidence = _rule_holds(rule, facts)
        if evidence is not None:
            return _grade(rule.grade, rule.name, rule.reason, evidence, facts)
    return _grade(rules.default_grade, "default", rules.default_reason, (), facts)


_default_rules: GradingRules | None = None


def default_rules() -> GradingRules:
    """The shipped rules file, read once per process."""
    global _default_rules
    if _default_rules is None:
        _default_rules = load_rules()
    return _default_rules


def callee_replies(call: FinishedCall, min_confidence: float) -> tuple[Reply, ...]:
    """The callee's replies with speech, numbered, with their understood intents."""
    replies: list[Reply] = []
    answering: str | None = None
    for index, turn in enumerate(call.turns, start=1):
        if turn.speaker == "bot":
            answering = turn.response or answering
            continue
        if not turn.text.strip():
            continue  # silence is not a reply
        replies.append(Reply(len(replies) + 1, index, turn.text, understood_intent(turn, min_confidence), answering))
    return tuple(replies)


def _counts(counter: Counter, reply: Reply) -> bool:
    if any(phrase in reply.text for phrase in counter.unless_text):
        return False
    if reply.intent and reply.intent in counter.intents:
        return True
    if reply.intent and any(
        step == reply.answering and reply.intent in intents for step, intents in counter.when_answering
    ):
        return True
    return any(phrase in reply.text for phrase in counter.text)


def _rounds_before_confirmation(call: FinishedCall, replies: tuple[Reply, ...]) -> tuple[int, ...]:
    """The reply the robot's WeCom confirmation followed (for the reason's 第N轮)."""
    last: Reply | None = None
    by_index = {r.index: r for r in replies}
    for index, turn in enumerate(call.turns, start=1):
        if index in by_index:
            last = by_index[index]
        elif turn.speaker == "bot" and turn.response in WECOM_CONFIRMED_STEPS:
            return (last.round,) if last else ()
    return ()


def _talk_time(call: FinishedCall) -> float:
    if call.duration_s:
        return float(call.duration_s)
    return max((t.t for t in call.turns), default=0.0)


def _rule_holds(rule: Rule, facts: CallFacts) -> tuple[int, ...] | None:
    """The rounds that triggered the rule when all its conditions hold, else None."""
    evidence: set[int] = set()
    for condition in rule.conditions:
        rounds = _condition_holds(condition, facts)
        if rounds is None:
            return None
        evidence.update(rounds)
    return tuple(sorted(evidence))


def _condition_holds(condition: Condition, facts: CallFacts) -> tuple[int, ...] | None:
    name = condition.name
    if condition.comparison is not None:
        value, rounds = facts.measure(name)
        if not condition.comparison.holds(value):
            return None
        return rounds if condition.comparison.needs_some else ()
    if name == "agreed_wecom":
        if facts.agreed_wecom != condition.flag:
            return None
        return facts.agreement_rounds if facts.agreed_wecom else ()
    if name == "hangup_by":
        return () if facts.hangup_by == condition.flag else None
    if name == "has_intent":
        rounds = tuple(r.round for r in facts.replies if r.intent in condition.names)
        return rounds or None
    if name == "lacks_intent":
        return None if any(r.intent in condition.names for r in facts.replies) else ()
    if name in ("last_intent", "not_last_intent"):
        last = facts.last_intent
        inside = last is not None and last.intent in condition.names
        if name == "last_intent":
            return (last.round,) if inside and last else None
        return None if inside else ()
    if name == "reached_step":
        return () if facts.steps & condition.names else None
    if name == "not_reached_step":
        return None if facts.steps & condition.names else ()
    raise KeyError(name)  # the loader only lets known conditions through


def _grade(grade: str, rule: str, reason: str, rounds: tuple[int, ...], facts: CallFacts) -> Grade:
    values = {
        name: _format_number(facts.measure(name)[0])
        for name in (*facts.counted, "callee_turns", "understood_turns", "not_understood_turns", "talk_time_s")
    }
    text = reason.format_map(values)
    prefix = f"第{'、'.join(map(str, rounds))}轮" if rounds else ""
    by_round = {r.round: r.index for r in facts.replies}
    return Grade(grade, rule, f"{grade}：{prefix}{text}", rounds, tuple(by_round[r] for r in rounds))


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
