"""A call's turns and the finished call as plain data: what the runtime records, the
call store saves, and grading, follow-ups and carrier detection read.

Both paths fill it: the live runtime (bot.conversation CallSession records its `Turn`s,
where the script response of every bot line is known) and call logs (JSONL transcripts,
where bot lines have only their text and `intents.script_steps` infers the step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

Speaker = Literal["bot", "callee"]
SPEAKERS: tuple[str, ...] = ("bot", "callee")

# The call reached a person (or at least something that is not a carrier recording).
ANSWERED = "answered"


@dataclass(frozen=True)
class Turn:
    """One line said on a call, by the robot or the callee."""

    speaker: Speaker
    text: str
    t: float = 0.0  # seconds since the call was answered
    response: str | None = None  # bot turns: the script response (step) this line came from
    intent: str | None = None  # callee turns: NLU intent (None until parsed)
    confidence: float | None = None
    entities: tuple[Mapping[str, Any], ...] = ()
    seq: int = 0  # 1, 2, … in the order the runtime recorded them; 0 when not numbered

    @property
    def is_callee(self) -> bool:
        return self.speaker == "callee"

    @property
    def offset_ms(self) -> int:
        return int(self.t * 1000)


@dataclass(frozen=True)
class FinishedCall:
    call_id: str
    turns: tuple[Turn, ...] = ()
    status: str = ANSWERED
    hangup_by: Speaker | None = None
    duration_s: float = 0.0
    started_at: datetime | None = None  # when the call was answered; anchors callback times
    # Known for live calls (the WeCom step ran); None when only a transcript exists.
    agreed_wecom: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def callee_turns(self) -> tuple[Turn, ...]:
        return tuple(t for t in self.turns if t.is_callee)

    def with_turns(self, turns: tuple[Turn, ...]) -> FinishedCall:
        return replace(self, turns=turns)

    def with_status(self, status: str) -> FinishedCall:
        return replace(self, status=status)
