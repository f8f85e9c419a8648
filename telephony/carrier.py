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

Hand-off to a human: `transfer(call_id, target, wait_s)` sends the callee to a human
(FreeSWITCH: `uuid_transfer` to an extension or queue; the simulator: its advisor pool) and
returns once the outcome is known, at most `wait_s` (the carrier's clock) after the request:
- bridged: an advisor took the call; the robot's part is over (the carrier sends no more
  speech for it, and the robot must not hang it up; a later hang-up event may follow).
- not bridged, reason NO_ADVISOR: nobody was free within `wait_s`; the callee is back with
  the robot (who can say so and end the call).
- not bridged, reason CALL_ENDED: the call ended before anyone took it (its hang-up event is
  on the queue, as usual), or it was not live any more.
- not bridged, reason REJECTED: the carrier refused the transfer; the callee is still there.
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
    (what a simulated callee "hears") and the rendered audio (what a real carrier plays).
    Barge-in: a carrier that hears the callee start talking during an interruptible prompt
    stops it (and drops the prompts queued after it) and reports playback_done."""

    response: str
    text: str
    audio_path: str | None = None
    # False: the callee's voice does not stop it (the compliance opening must be heard whole).
    interruptible: bool = True


@dataclass(frozen=True)
class CallEvent:
    call_id: str
    kind: CallEventKind
    text: str = ""  # speech: the ASR text (an operator recording is speech too)
    confidence: float | None = None
    cause: str = ""  # hang-up: the carrier's cause (e.g. Q.850 name)
    status: str | None = None  # hang-up: a call status when the call failed, else None
    answered: bool = False


# Why a transfer did not bridge.
NO_ADVISOR = "no_advisor"
CALL_ENDED = "call_ended"
REJECTED = "rejected"


@dataclass(frozen=True)
class TransferResult:
    bridged: bool
    reason: str = ""  # when not bridged: NO_ADVISOR, CALL_ENDED or REJECTED
    agent: str | None = None  # who took the call (an advisor name, the bridged channel)
    waited_s: float = 0.0  # from the request until it bridged or was given up (carrier clock)
    detail: str = ""  # the carrier's own words (e.g. an -ERR reply or a hang-up cause)


class NoLineFree(Exception):
    """The carrier could not place the dial for want of a line of its own (SIP: every PJSIP
    call slot still taken after a short wait). Nothing was sent: not a result of the callee's."""


class LineReserving(Protocol):
    """A carrier with a fixed number of lines (SIP). The dialer reserves a line BEFORE its
    last compliance check, so no wait for a line falls between the check and the dial."""

    async def reserve_line(self, call_id: str) -> None: ...

    def release_line(self, call_id: str) -> None: ...


class Carrier(Protocol):
    events: asyncio.Queue[CallEvent]

    async def dial(self, call_id: str, phone: str, timeout_s: int = 30, *, caller_id: str | None = None) -> str:
        """Start the call; returns the carrier's id for it. Failures arrive as hang-ups.
        `caller_id`: the number the callee sees (a campaign's caller-number pool); None: the
        carrier's default."""

    async def play(self, call_id: str, prompt: Prompt) -> None: ...

    async def stop_playback(self, call_id: str) -> None: ...

    async def hangup(self, call_id: str, cause: str = "NORMAL_CLEARING") -> None: ...

    async def transfer(self, call_id: str, target: str, wait_s: float = 20.0) -> TransferResult:
        """Hand the call to a human at `target` (an extension or queue); see the module docstring."""
