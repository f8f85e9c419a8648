"""What every carrier adapter (simulator, FreeSWITCH, SIP) offers the call runtime.

A carrier dials, plays prompts, stops them on barge-in and hangs up; everything that
happens on a call comes back as `CallEvent`s on the carrier's `events` queue.

What the events mean, for every adapter:
- "answered": a person (or a voicemail box) picked up; the dialogue starts.
- "speech" with answered=False: early media before any answer — an operator recording
  (您拨打的电话已关机 …) as ASR text; `intents.announcements` reads the call status from it.
  A hang-up with answered=False follows.
- "speech" with answered=True: the callee's reply (ASR final text). Empty text
  (`SILENCE`) means the callee said nothing until the endpointing no-input timeout: the
  runtime re-prompts (`CallSession.silence()`); the carrier, not the runtime, times it.
- "playback_done": a prompt finished (or was stopped).
- "hangup": the call is over. answered=False with a call status when it never reached a
  person (no_answer when it rang out); answered=True with status None when either side
  ended a conversation (cause NORMAL_CLEARING for a callee who hangs up). `hangup()` by
  the runtime is answered with a hang-up event too.
The simulator (telephony.simulator) replies after each prompt whose response is a
question (`utter_ask_*`) once the robot's turn has finished playing.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

CallEventKind = Literal["answered", "speech", "playback_done", "hangup"]

CARRIER_LOST = "carrier_lost"  # our link to the carrier dropped: the dialer must reconcile
SILENCE = ""  # speech text meaning: no reply before the no-input timeout


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
