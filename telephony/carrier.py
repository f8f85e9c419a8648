"""What every carrier adapter (simulator, FreeSWITCH, SIP) offers the call runtime.

A carrier dials, plays prompts, stops them on barge-in and hangs up; everything that
happens on a call comes back as `CallEvent`s on the carrier's `events` queue.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

CallEventKind = Literal["answered", "speech", "playback_done", "hangup"]

# Call statuses for calls that never reached a person (DESIGN.md).
CALL_STATUSES = ("vacant_number", "suspended", "powered_off", "unreachable", "line_busy",
                 "no_answer", "voicemail", "call_restricted")
CARRIER_LOST = "carrier_lost"  # our link to the carrier dropped: the dialer must reconcile


@dataclass(frozen=True)
class Prompt:
    """One script line to play: the response name (what the script step is), its text
    (what a simulated callee "hears") and the rendered audio (what a real carrier plays)."""

    response: str
    text: str
    audio_path: str | None = None


@dataclass(frozen=True)
class CallEvent:
    call_id: str
    kind: CallEventKind
    text: str = ""  # speech: the ASR text (an operator recording is speech too)
    confidence: float | None = None
    cause: str = ""  # hang-up: the carrier's cause (e.g. Q.850 name)
    status: str | None = None  # hang-up: a call status when the call failed, else None
    answered: bool = False


class Carrier(Protocol):
    events: asyncio.Queue[CallEvent]

    async def dial(self, call_id: str, phone: str, timeout_s: int = 30) -> str:
        """Start the call; returns the carrier's id for it. Failures arrive as hang-ups."""

    async def play(self, call_id: str, prompt: Prompt) -> None: ...

    async def stop_playback(self, call_id: str) -> None: ...

    async def hangup(self, call_id: str, cause: str = "NORMAL_CLEARING") -> None: ...
