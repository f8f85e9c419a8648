"""The simulator carrier: simulated callees behind the same interface as FreeSWITCH.

What a dialed number does, in order (all waits on the carrier's clock):
1. Carrier announcement: a share of each audience pack's numbers (fixed per number)
   reaches an operator recording — its transcript arrives as answered=False speech,
   then a hang-up with the matching call status.
2. Otherwise the callee answers with the pack's probability for the local hour and
   weekday (Asia/Shanghai) at dial time, after `ring_s`; if not, the call rings out
   after `timeout_s`: a hang-up with status no_answer and no speech.
3. On answer a persona is drawn from the pack's mix. The callee listens to every
   prompt (playback takes len(text) / speech_chars_per_s) and, when the robot's turn
   ends with a question (utter_ask_*), replies with a speech event after thinking,
   speaking and endpointing time — or stays silent (an empty speech event after
   silence_timeout_s), or hangs up (answered=True, NORMAL_CLEARING, status None).

Which audience pack a call belongs to: `dial(..., audience_pack="宝妈")`, or else the
`audience_of(call_id, phone)` resolver given at construction (what a generic call
runtime that only calls `dial(call_id, phone)` relies on), or else the `default` pack.
Pass the pack's scene (车主, 宝妈 …) or a name listed in personas.yml.

Reproducible: same seed + call id (+ the same dial time and prompts) → the same
events; see `personas.call_rng`.

For fault tests: `log_path` makes the carrier keep its own append-only log (one JSON line
per dial, answer and hang-up, written with one O_APPEND write each, so several worker
processes can share a file and a killed process loses nothing it wrote) to compare with
what the dialer stored; `hang_dial_share` of the dials never return from `dial()`, and
`hang_call_share` of the answered calls go silent for good (no speech, no hang-up) —
the carrier that hangs. Which calls hang is drawn per call id, like everything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from telephony.carrier import CALL_ENDED, SILENCE, CallEvent, Prompt, TransferResult
from telephony.clock import Clock, RealClock
from telephony.hangup_causes import status_for_hangup
from telephony.simulator.advisors import AdvisorPool, Handoff
from telephony.simulator.caller_locality import pickup_factor
from telephony.simulator.personas import (
    CLOSING_PREFIX,
    QUESTION_PREFIX,
    Persona,
    SimulatorConfig,
    call_rng,
    load_simulator_config,
    phone_fraction,
)

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NORMAL_CLEARING = "NORMAL_CLEARING"
# The Q.850 cause a CN carrier gateway reports after each recording (the status is what counts).
ANNOUNCEMENT_CAUSES: dict[str, str] = {
    "vacant_number": "UNALLOCATED_NUMBER",
    "suspended": "CALL_REJECTED",
    "powered_off": "SUBSCRIBER_ABSENT",
    "unreachable": "NO_ROUTE_DESTINATION",
    "line_busy": "USER_BUSY",
    "no_answer": "NO_ANSWER",
    "voicemail": "NORMAL_CLEARING",
    "call_restricted": "CALL_REJECTED",
}
# ASR confidence of a simulated reply: real engines report ~0.8-0.98 on clear speech.
CONFIDENCE_RANGE = (0.80, 0.98)

# How long a hung dial or call waits for nothing (simulated seconds): forever, in practice.
HANG_S = 10 * 365 * 86400.0

EndedBy = Literal["callee", "robot", "carrier"]
AudienceResolver = Callable[[str, str], "str | None"]  # (call id, phone) → audience pack


@dataclass
class SimulatedCall:
    """What happened on one simulated call (kept for tests, demos and reports)."""

    call_id: str
    phone: str
    audience_pack: str
    dialed_at: datetime
    announcement: str | None = None
    caller_id: str | None = None  # the caller number the callee sees (a campaign's pool), if any
    answered: bool = False
    persona: str | None = None
    status: str | None = None  # the hang-up's call status (None for a conversation)
    ended_by: EndedBy | None = None
    replies: list[str] = field(default_factory=list)  # what the callee said ("" = silence)


class CarrierLog:
    """What the carrier saw, one JSON object per line, appended with a single write(2) on an
    O_APPEND descriptor: lines from several processes never interleave, and a process
    killed with SIGKILL loses nothing it had written (the kernel holds it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, event: str, call_id: str, at: datetime, **fields) -> None:
        line = {"event": event, "call_id": call_id, "at": at.isoformat(), "pid": os.getpid(), **fields}
        os.write(self._fd, (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))

    def close(self) -> None:
        os.close(self._fd)

    @staticmethod
    def read(path: str | Path) -> list[dict]:
        """Every complete line of a log (a torn last line is left out)."""
        entries = []
        for raw in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(raw))
            except json.JSONDecodeError:
                continue
        return entries


def _masked(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 7 else "****"


@dataclass
class _LiveCall:
    record: SimulatedCall
    prompts: asyncio.Queue[Prompt] = field(default_factory=asyncio.Queue)
    task: asyncio.Task | None = None
    asked: Counter = field(default_factory=Counter)  # question → times asked in this call


class SimulatorCarrier:
    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Clock | None = None,
        seed: int | str = 0,
        audience_of: AudienceResolver | None = None,
        local_tz: tzinfo = SHANGHAI,
        max_records: int = 100_000,
        log_path: str | Path | None = None,
        hang_dial_share: float = 0.0,
        hang_call_share: float = 0.0,
        advisors: AdvisorPool | None = None,
    ) -> None:
        self.config = config or load_simulator_config()
        self.clock: Clock = clock or RealClock()
        self.seed = seed
        self.audience_of = audience_of
        self.local_tz = local_tz
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue()
        # How dials ended: "answered" or a call status; personas met; who hung up.
        self.outcomes: Counter[str] = Counter()
        self.personas: Counter[str] = Counter()
        self.ended_by: Counter[str] = Counter()
        self.barge_ins = 0  # prompts a callee talked over (interrupting personas)
        self._live: dict[str, _LiveCall] = {}
        self._records: OrderedDict[str, SimulatedCall] = OrderedDict()
        self._max_records = max_records
        self.log = CarrierLog(log_path) if log_path else None
        self.hang_dial_share = hang_dial_share
        self.hang_call_share = hang_call_share
        self.advisors = advisors or AdvisorPool(seed=seed)  # who takes hand-offs (advisors.py)

    # ------------------------------------------------------------------ Carrier

    async def dial(
        self,
        call_id: str,
        phone: str,
        timeout_s: int = 30,
        *,
        audience_pack: str | None = None,
        caller_id: str | None = None,
    ) -> str:
        """Start a simulated call; returns the carrier's id for it ("sim-<call id>"). A local
        `caller_id` is picked up more often than a far one (caller_locality)."""
        if call_id in self._live:
            raise ValueError(f"call {call_id} is already in progress")
        pack = audience_pack or (self.audience_of(call_id, phone) if self.audience_of else None)
        profile = self.config.pack(pack)
        record = SimulatedCall(call_id, phone, profile.name, self.clock.now(), caller_id=caller_id)
        self._remember(record)
        live = _LiveCall(record)
        self._live[call_id] = live
        if self.log is not None:
            self.log.write("dial", call_id, record.dialed_at, phone=_masked(phone), pack=profile.name)
        if self.hang_dial_share and call_rng(self.seed, call_id, "hang_dial").random() < self.hang_dial_share:
            # The carrier took the dial and never answers the request: no events, no return.
            await self.clock.sleep(HANG_S)
        live.task = asyncio.ensure_future(self._run_call(live, timeout_s))
        return f"sim-{call_id}"

    async def play(self, call_id: str, prompt: Prompt) -> None:
        live = self._live.get(call_id)
        if live is None:
            self._check_known(call_id)
            return  # the callee hung up while the robot was thinking: nobody hears it
        live.prompts.put_nowait(prompt)

    async def stop_playback(self, call_id: str) -> None:
        """Barge-in: drop the prompts not yet played (the one playing finishes)."""
        live = self._live.get(call_id)
        if live is None:
            self._check_known(call_id)
            return
        while not live.prompts.empty():
            live.prompts.get_nowait()

    async def hangup(self, call_id: str, cause: str = NORMAL_CLEARING) -> None:
        live = self._live.get(call_id)
        if live is None:
            self._check_known(call_id)
            return  # already over: its hang-up event was sent
        if live.task is not None and live.task is not asyncio.current_task():
            live.task.cancel()
        answered = live.record.answered
        self._end(
            live,
            "robot",
            CallEvent(call_id, "hangup", cause=cause, status=status_for_hangup(cause, answered), answered=answered),
        )

    async def transfer(self, call_id: str, target: str, wait_s: float = 20.0) -> TransferResult:
        """Hand the call to the simulated advisors (every target reaches the one pool): once
        one answers, the callee talks with them and hangs up at the end; the robot hears no more."""
        live = self._live.get(call_id)
        if live is None:
            self._check_known(call_id)
            return TransferResult(False, CALL_ENDED)
        result, handoff = await self.advisors.transfer(call_id, self.clock, wait_s, lambda: call_id in self._live)
        if handoff is not None:
            if live.task is not None:
                live.task.cancel()  # the callee no longer listens to the robot
            live.task = asyncio.ensure_future(self._with_advisor(live, handoff))
        return result

    async def _with_advisor(self, live: _LiveCall, handoff: Handoff) -> None:
        await self.clock.sleep(handoff.talk_s)
        self._callee_hangs_up(live)

    # ------------------------------------------------------------------ queries

    def call(self, call_id: str) -> SimulatedCall | None:
        """The record of a recent call (the newest `max_records` are kept)."""
        return self._records.get(call_id)

    @property
    def live_calls(self) -> int:
        return len(self._live)

    async def aclose(self) -> None:
        """Cancel every call still in progress (no events are sent for them)."""
        tasks = [live.task for live in self._live.values() if live.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._live.clear()

    # ------------------------------------------------------------------ one call

    async def _run_call(self, live: _LiveCall, timeout_s: float) -> None:
        try:
            if await self._announcement(live):
                return
            if not await self._ring(live, timeout_s):
                return
            if (
                self.hang_call_share
                and call_rng(self.seed, live.record.call_id, "hang_call").random() < self.hang_call_share
            ):
                await self.clock.sleep(HANG_S)  # answered, then nothing more: no speech, no hang-up
            await self._converse(live)
        except asyncio.CancelledError:
            raise
        except Exception:  # a simulator bug must not leave the dialer waiting forever
            log.exception("simulated call %s failed", live.record.call_id)
            if live.record.call_id in self._live:
                self._end(
                    live,
                    "carrier",
                    CallEvent(
                        live.record.call_id,
                        "hangup",
                        cause="NORMAL_TEMPORARY_FAILURE",
                        status="unreachable" if not live.record.answered else None,
                        answered=live.record.answered,
                    ),
                )

    async def _announcement(self, live: _LiveCall) -> bool:
        """Play the number's operator recording if it has one; True if the call ended."""
        record = live.record
        rng = call_rng(self.seed, record.call_id, "announcement")
        profile = self.config.pack(record.audience_pack)
        status = profile.announcement_for(phone_fraction(self.seed, record.phone))
        if status is None or rng.random() >= profile.announcements[status].per_attempt:
            return False
        timing = self.config.timing
        await self.clock.sleep(rng.uniform(*timing.announcement_after_s))
        text = self.config.announcements[status].pick(rng)
        record.announcement = status
        self._emit(CallEvent(record.call_id, "speech", text=text, confidence=0.9, answered=False))
        await self.clock.sleep(len(text) / timing.speech_chars_per_s)
        self._end(
            live,
            "carrier",
            CallEvent(record.call_id, "hangup", cause=ANNOUNCEMENT_CAUSES[status], status=status, answered=False),
        )
        return True

    async def _ring(self, live: _LiveCall, timeout_s: float) -> bool:
        """Ring; True once a person answered, False when the call rang out."""
        record = live.record
        rng = call_rng(self.seed, record.call_id, "answer")
        profile = self.config.pack(record.audience_pack)
        local = record.dialed_at.astimezone(self.local_tz)
        answers = rng.random() < profile.answer_probability(local) * pickup_factor(record.phone, record.caller_id)
        ring_s = rng.uniform(*profile.ring_s)
        if not answers or ring_s >= timeout_s:
            await self.clock.sleep(timeout_s)
            self._end(
                live,
                "carrier",
                CallEvent(record.call_id, "hangup", cause="NO_ANSWER", status="no_answer", answered=False),
            )
            return False
        await self.clock.sleep(ring_s)
        persona = profile.persona_mix.pick(call_rng(self.seed, record.call_id, "persona"))
        record.answered, record.persona = True, persona
        self.personas[persona] += 1
        if self.log is not None:
            self.log.write("answer", record.call_id, self.clock.now(), persona=persona)
        self._emit(CallEvent(record.call_id, "answered", answered=True))
        return True

    async def _converse(self, live: _LiveCall) -> None:
        record = live.record
        persona = self.config.personas[record.persona or ""]
        rng = call_rng(self.seed, record.call_id, "talk")
        timing = self.config.timing
        if rng.random() < persona.hangup_on_answer:
            await self.clock.sleep(rng.uniform(*persona.reply_delay_s))
            self._callee_hangs_up(live)
            return
        while True:
            prompt = await live.prompts.get()
            if await self._barged_in(live, persona, prompt, rng):
                continue
            await self.clock.sleep(len(prompt.text) / timing.speech_chars_per_s)
            self._emit(CallEvent(record.call_id, "playback_done", answered=True))
            if prompt.response.startswith(CLOSING_PREFIX):
                continue  # the robot says goodbye and hangs up; the callee waits for that
            if not live.prompts.empty():
                # More of the robot's turn is queued: the callee listens on, but may hang up.
                listening = not prompt.response.startswith(QUESTION_PREFIX)
                if listening and persona.react(prompt.response, rng, asked_before=False).kind == "hangup":
                    self._callee_hangs_up(live)
                    return
                continue
            if not await self._answer(live, persona, prompt.response, rng):
                return

    async def _barged_in(self, live: _LiveCall, persona: Persona, prompt: Prompt, rng) -> bool:
        """A persona that talks over this line (once per line and call) does so: the robot stops
        (the rest of the line and of its turn are dropped, playback_done) and the callee's words
        arrive as speech once they have finished. False when the line plays on."""
        behaviour = persona.steps.get(prompt.response)
        key = f"interrupt:{prompt.response}"
        if not prompt.interruptible or behaviour is None or not behaviour.interrupt or live.asked[key]:
            return False
        live.asked[key] += 1
        timing = self.config.timing
        await self.clock.sleep(min(behaviour.interrupt_after_s, len(prompt.text) / timing.speech_chars_per_s))
        while not live.prompts.empty():
            live.prompts.get_nowait()
        self.barge_ins += 1
        record = live.record
        self._emit(CallEvent(record.call_id, "playback_done", answered=True))
        text = behaviour.interrupt.pick(rng)
        await self.clock.sleep(len(text) / timing.callee_chars_per_s + timing.endpointing_s)
        heard = self.config.asr_noise.apply(text, rng)
        record.replies.append(heard)
        self._emit(
            CallEvent(
                record.call_id, "speech", text=heard, confidence=round(rng.uniform(*CONFIDENCE_RANGE), 3), answered=True
            )
        )
        return True

    async def _answer(self, live: _LiveCall, persona: Persona, step: str, rng) -> bool:
        """The callee's reaction at the end of the robot's turn; False once they hung up."""
        record = live.record
        timing = self.config.timing
        is_question = step.startswith(QUESTION_PREFIX)
        if is_question and len(record.replies) >= timing.patience_replies:
            reply_kind, text = "hangup", ""  # enough of this call
        else:
            reply = persona.react(step, rng, asked_before=live.asked[step] > 0)
            reply_kind, text = reply.kind, reply.text
        live.asked[step] += 1
        if reply_kind == "hangup":
            await self.clock.sleep(rng.uniform(*persona.reply_delay_s))
            self._callee_hangs_up(live)
            return False
        if not is_question:
            return True  # nothing asked: the callee waits for the robot
        if reply_kind == "silence":
            await self.clock.sleep(timing.silence_timeout_s)
            record.replies.append(SILENCE)
            self._emit(CallEvent(record.call_id, "speech", text=SILENCE, answered=True))
            return True
        heard = self.config.asr_noise.apply(text, rng)
        speaking_s = len(text) / timing.callee_chars_per_s
        await self.clock.sleep(rng.uniform(*persona.reply_delay_s) + speaking_s + timing.endpointing_s)
        record.replies.append(heard)
        self._emit(
            CallEvent(
                record.call_id, "speech", text=heard, confidence=round(rng.uniform(*CONFIDENCE_RANGE), 3), answered=True
            )
        )
        return True

    # ------------------------------------------------------------------ helpers

    def _callee_hangs_up(self, live: _LiveCall) -> None:
        self._end(
            live, "callee", CallEvent(live.record.call_id, "hangup", cause=NORMAL_CLEARING, status=None, answered=True)
        )

    def _end(self, live: _LiveCall, ended_by: EndedBy, event: CallEvent) -> None:
        record = live.record
        self._live.pop(record.call_id, None)
        record.status, record.ended_by = event.status, ended_by
        if self.log is not None:
            self.log.write(
                "end",
                record.call_id,
                self.clock.now(),
                status=event.status,
                answered=event.answered,
                ended_by=ended_by,
                cause=event.cause,
            )
        self.outcomes["answered" if event.answered else (event.status or "unreachable")] += 1
        self.ended_by[ended_by] += 1
        self._emit(event)

    def _emit(self, event: CallEvent) -> None:
        self.events.put_nowait(event)

    def _remember(self, record: SimulatedCall) -> None:
        self._records[record.call_id] = record
        self._records.move_to_end(record.call_id)
        while len(self._records) > self._max_records:
            self._records.popitem(last=False)

    def _check_known(self, call_id: str) -> None:
        if call_id not in self._records:
            raise KeyError(f"no simulated call {call_id}; dial it first")
