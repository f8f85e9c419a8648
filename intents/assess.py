"""A finished call → its outcome: carrier status or grade, with follow-ups.

The order is the product's: carrier announcements are screened first (before any NLU),
so a recording is never graded as a person; only then are callee replies parsed and
the call graded. The NLU is passed in as a function, so this module stays free of the
Rasa application (and tests can pass hand-labelled intents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from intents.announcements import Announcement, detect_in_turns
from intents.finished_call import ANSWERED, FinishedCall, Turn
from intents.followups import FollowUp, FollowUpPolicy, decide_followups
from intents.grading import Grade, default_rules, grade_call
from intents.rules_loader import GradingRules
from intents.script_steps import NO_SCRIPT, ScriptLines


@dataclass(frozen=True)
class NluResult:
    intent: str
    confidence: float
    entities: tuple[Mapping[str, Any], ...] = ()


# (callee text, the moment it was said) → what the NLU made of it.
Nlu = Callable[[str, datetime], NluResult]


@dataclass(frozen=True)
class CallOutcome:
    call_id: str
    status: str  # "answered", or the call status of an unconnected call
    grade: Grade | None
    followups: tuple[FollowUp, ...]
    announcement: Announcement | None = None
    call: FinishedCall | None = None  # as graded: steps inferred, replies parsed

    @property
    def label(self) -> str:
        """The grade of a connected call, the status of an unconnected one."""
        return self.grade.grade if self.grade else self.status

    def as_json(self) -> dict:
        data: dict = {
            "call_id": self.call_id,
            "status": self.status,
            "label": self.label,
            "grade": self.grade.grade if self.grade else None,
            "reason": self.grade.reason if self.grade else _status_reason(self),
            "rule": self.grade.rule if self.grade else None,
            "followups": [f.as_json() for f in self.followups],
        }
        if self.grade:
            data["rounds"] = list(self.grade.rounds)
        if self.announcement:
            data["announcement"] = {"kind": self.announcement.kind, "phrase": self.announcement.phrase}
        return data


def screen_carrier(call: FinishedCall) -> tuple[FinishedCall, Announcement | None]:
    """Set the call status from a carrier announcement and drop the recording's turns."""
    if call.status != ANSWERED:
        return call, None
    announcement, used = detect_in_turns(call.turns)
    if announcement is None:
        return call, None
    remaining = _drop_leading_callee_turns(call.turns, used)
    if announcement.status is None:  # forwarded: whoever answers after it is graded
        return call.with_turns(remaining), announcement
    return call.with_status(announcement.status).with_turns(remaining), announcement


def call_start(call: FinishedCall, default: datetime | None = None) -> datetime:
    return call.started_at or default or datetime.now(timezone.utc)


def annotate(
    call: FinishedCall, nlu: Nlu, script: ScriptLines = NO_SCRIPT, default_start: datetime | None = None
) -> FinishedCall:
    """Fill the script step of bot lines and the NLU result of callee replies that lack them."""
    start = call_start(call, default_start)
    turns: list[Turn] = []
    for turn in call.turns:
        if turn.speaker == "bot" and turn.response is None:
            turn = replace(turn, response=script.step_of(turn.text))
        elif turn.is_callee and turn.intent is None and turn.text.strip():
            result = nlu(turn.text.strip(), start + timedelta(seconds=turn.t))
            turn = replace(turn, intent=result.intent, confidence=result.confidence, entities=tuple(result.entities))
        turns.append(turn)
    return call.with_turns(tuple(turns))


def assess_call(
    call: FinishedCall,
    nlu: Nlu,
    script: ScriptLines = NO_SCRIPT,
    rules: GradingRules | None = None,
    policy: FollowUpPolicy = FollowUpPolicy(),
    default_start: datetime | None = None,
) -> CallOutcome:
    rules = rules or default_rules()
    screened, announcement = screen_carrier(call)
    end = call_start(call, default_start) + timedelta(seconds=call.duration_s or 0)
    if screened.status != ANSWERED:
        return CallOutcome(
            call.call_id,
            screened.status,
            None,
            decide_followups(screened, None, end, rules.min_confidence, policy),
            announcement,
            screened,
        )
    annotated = annotate(screened, nlu, script, default_start)
    grade = grade_call(annotated, rules)
    followups = decide_followups(annotated, grade, end, rules.min_confidence, policy)
    return CallOutcome(call.call_id, ANSWERED, grade, followups, announcement, annotated)


def _drop_leading_callee_turns(turns: tuple[Turn, ...], count: int) -> tuple[Turn, ...]:
    kept: list[Turn] = []
    for turn in turns:
        if count and turn.is_callee and turn.text.strip():
            count -= 1
            continue
        kept.append(turn)
    return tuple(kept)


_STATUS_NAMES = {
    "vacant_number": "空号",
    "suspended": "停机",
    "powered_off": "关机",
    "unreachable": "无法接通",
    "line_busy": "正在通话中",
    "no_answer": "无人接听",
    "voicemail": "语音信箱",
    "call_restricted": "呼叫受限",
}


def _status_reason(outcome: CallOutcome) -> str:
    name = _STATUS_NAMES.get(outcome.status, outcome.status)
    if outcome.announcement is not None:
        return f"未接通：运营商提示{name}（“{outcome.announcement.text.strip()[:30]}”）"
    return f"未接通：{name}"
