"""Calls from a JSONL file, one call per line, as `FinishedCall`s.

    {"call_id": str, "status": "answered" | <call status>,
     "turns": [{"speaker": "bot" | "callee", "text": str, "t": seconds}],
     "hangup_by": "bot" | "callee", "duration_s": number,
     optional: "started_at": ISO 8601 (anchors callback times), "agreed_wecom": bool,
               "gold_grade": A/B/C/D or a call status (evaluation sets)}

A bad line is reported with its number and skipped; the other lines are still read,
so one broken record never stops a day's grading.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from intents.finished_call import ANSWERED, SPEAKERS, FinishedCall, Turn
from intents.rules_loader import GRADES
from intents.taxonomy import CALL_STATUSES

KNOWN_STATUSES = (ANSWERED, *CALL_STATUSES)
GOLD_LABELS = (*GRADES, *CALL_STATUSES)


class CallLogError(ValueError):
    """The file itself cannot be read (missing, not text)."""


@dataclass(frozen=True)
class LoggedCall:
    line: int
    call: FinishedCall
    gold: str | None = None


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def read_call_log(path: Path) -> tuple[list[LoggedCall], list[LineError]]:
    if not path.is_file():
        raise CallLogError(f"{path}: no such file; give a JSONL file with one call per line.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CallLogError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 JSONL.") from None
    calls: list[LoggedCall] = []
    errors: list[LineError] = []
    for number, line in _lines(text):
        try:
            calls.append(parse_call_line(line, number))
        except ValueError as exc:
            errors.append(LineError(number, str(exc)))
    return calls, errors


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def parse_call_line(line: str, number: int = 1) -> LoggedCall:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object with call_id, status and turns")
    call_id = record.get("call_id")
    if not isinstance(call_id, str) or not call_id.strip():
        raise ValueError("`call_id` must be a non-empty string")
    status = record.get("status", ANSWERED)
    if status not in KNOWN_STATUSES:
        raise ValueError(f"call {call_id}: unknown status {status!r}; use one of {', '.join(KNOWN_STATUSES)}")
    turns = tuple(_turns(record.get("turns", []), call_id))
    hangup_by = record.get("hangup_by")
    if hangup_by not in (None, *SPEAKERS):
        raise ValueError(f"call {call_id}: `hangup_by` must be bot or callee, not {hangup_by!r}")
    duration = _number(record.get("duration_s", 0), f"call {call_id}: `duration_s`")
    agreed = record.get("agreed_wecom")
    if agreed is not None and not isinstance(agreed, bool):
        raise ValueError(f"call {call_id}: `agreed_wecom` must be true or false")
    gold = record.get("gold_grade")
    if gold is not None and gold not in GOLD_LABELS:
        raise ValueError(f"call {call_id}: unknown gold_grade {gold!r}; use A/B/C/D or a call status")
    call = FinishedCall(
        call_id=call_id,
        turns=turns,
        status=status,
        hangup_by=hangup_by,
        duration_s=duration,
        started_at=_started_at(record.get("started_at"), call_id),
        agreed_wecom=agreed,
    )
    return LoggedCall(number, call, gold)


def _turns(raw: Any, call_id: str) -> Iterator[Turn]:
    if not isinstance(raw, list):
        raise ValueError(f"call {call_id}: `turns` must be a list")
    for i, turn in enumerate(raw, start=1):
        if not isinstance(turn, dict):
            raise ValueError(f"call {call_id}: turn {i} must be an object with speaker, text and t")
        speaker = turn.get("speaker")
        if speaker not in SPEAKERS:
            raise ValueError(f"call {call_id}: turn {i} has unknown speaker {speaker!r}; use bot or callee")
        text = turn.get("text", "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise ValueError(f"call {call_id}: turn {i} `text` must be a string")
        t = _number(turn.get("t", 0), f"call {call_id}: turn {i} `t`")
        step = turn.get("step")  # the script response a bot line came from, when the log knows it
        yield Turn(speaker=speaker, text=text, t=t, response=step if isinstance(step, str) else None)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{what} must be a non-negative number of seconds, not {value!r}")
    return float(value)


def _started_at(value: Any, call_id: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(
            f"call {call_id}: `started_at` must be an ISO 8601 time like 2026-03-11T10:20:00+08:00"
        ) from None
