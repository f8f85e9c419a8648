"""One call from dial to grade: carrier events in, the robot's lines out.

The runner is the same for every carrier (simulator, FreeSWITCH): dial, screen the
operator's recording if one plays, let the script talk on answer, feed each recognised
reply to the CallSession, play its lines, honour silence and hang-ups, then assess the
finished call (carrier status or grade, with follow-ups).

Hand-off to a human: when the script's reply contains `utter_handoff` (the callee asked for
a person), the runner lets that line finish playing and asks the carrier to transfer the
call (`HandoffPolicy`: WAIHU_HANDOFF_TARGET, WAIHU_HANDOFF_WAIT_S). An advisor took it:
outcome handed_off, and the robot's part of the call ends there (it does not hang up).
Nobody free within the wait: the robot says `utter_handoff_failed` ("我请顾问稍后给您回电") and
ends the call; the outcome is handoff_failed and the follow-up is an `advisor_callback` (also
when the callee hung up before anyone answered), unless the callee opted out, declined or is
not the lead. The call store turns it into a call-back task for a human advisor
(bot.wecom.advisor_tasks), never into a robot callback: what the robot promised is what
happens. A time the callee named in the same call becomes that task's window instead of a
robot callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from bot.conversation.agent import BotLine, DialogueAgent
from bot.conversation.session import HANDOFF, BotReply, CallSession, LeadContext
from bot.core.settings import get_settings
from intents.assess import CallOutcome, NluResult, assess_call
from intents.finished_call import ANSWERED, FinishedCall, Speaker, Turn
from intents.followups import (
    ADVISOR_CALLBACK,
    ADVISOR_CALLBACK_REASON,
    CALLBACK,
    DO_NOT_CALL,
    HANDED_OFF,
    HANDOFF_FAILED,
    RETIRE_LEAD,
    SOFT_DECLINE,
    advisor_callback,
)
from telephony.carrier import CALL_ENDED, CallEvent, Carrier, Prompt

Clock = Callable[[], datetime]
# A bot line → the audio file a real carrier plays (None for carriers that take text).
AudioFor = Callable[[BotLine], "str | None"]
CONFIRM_WECOM = "utter_confirm_wecom"
# Lines the callee cannot talk over (no barge-in): the compliance opening (who is calling, for
# whom, that the call is recorded) must be heard whole.
NON_INTERRUPTIBLE = frozenset({"utter_opening"})


@dataclass(frozen=True)
class HandoffPolicy:
    """Where a hand-off goes and how long the callee waits for a person."""

    target: str = "advisors"  # FreeSWITCH: extension or queue [dialplan [context]]; simulator: any
    wait_s: float = 20.0  # nobody picked up by then: advisor callback instead (carrier's clock)
    # The longest the robot waits for its hand-off line to finish playing before transferring
    # anyway (a carrier that does not report the end of a prompt).
    line_wait_s: float = 15.0

    @classmethod
    def from_settings(cls) -> HandoffPolicy:
        settings = get_settings()
        return cls(target=settings.handoff_target, wait_s=settings.handoff_wait_s)


class EventRouter:
    """A carrier has one event queue for all its calls; each call reads its own."""

    def __init__(self, carrier: Carrier) -> None:
        self._carrier = carrier
        self._queues: dict[str, asyncio.Queue[CallEvent]] = {}
        self._pump: asyncio.Task | None = None

    def open(self, call_id: str) -> asyncio.Queue[CallEvent]:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.ensure_future(self._run())
        return self._queues.setdefault(call_id, asyncio.Queue())

    def close(self, call_id: str) -> None:
        self._queues.pop(call_id, None)

    async def _run(self) -> None:
        while True:
            event = await self._carrier.events.get()
            queue = self._queues.get(event.call_id)
            if queue is not None:
                queue.put_nowait(event)

    async def aclose(self) -> None:
        if self._pump:
            self._pump.cancel()


@dataclass
class CallResult:
    call_id: str
    answered: bool = False
    carrier_status: str | None = None  # from the carrier's hang-up, for calls never answered
    cause: str = ""
    hangup_by: Speaker | None = None
    dialed_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    carrier_call_id: str = ""
    recording: list[str] = field(default_factory=list)  # operator announcement transcripts
    turns: list[Turn] = field(default_factory=list)  # the CallSession's turns
    handoff: str | None = None  # handed_off / handoff_failed when the callee asked for a human
    handoff_agent: str | None = None  # who took it (advisor, bridged channel)
    handoff_reason: str = ""  # why it failed: no_advisor, call_ended, rejected
    outcome: CallOutcome | None = None

    @property
    def talk_time_s(self) -> float:
        if not self.answered_at or not self.ended_at:
            return 0.0
        return (self.ended_at - self.answered_at).total_seconds()


async def run_call(
    carrier: Carrier,
    router: EventRouter,
    agent: DialogueAgent,
    *,
    call_id: str,
    phone: str,
    lead: LeadContext,
    clock: Clock,
    audio_for: AudioFor = lambda line: None,
    event_timeout_s: float | None = 120.0,
    dial_options: dict | None = None,
    handoff: HandoffPolicy | None = None,
) -> CallResult:
    result = CallResult(call_id)
    events = router.open(call_id)
    session: CallSession | None = None
    handoff = handoff or HandoffPolicy.from_settings()
    handoff_lines: int | None = None  # hand-off line prompts still playing before the transfer
    try:
        result.dialed_at = clock()
        result.carrier_call_id = await carrier.dial(call_id, phone, **(dial_options or {}))
        while True:
            try:
                event = await asyncio.wait_for(
                    events.get(),
                    event_timeout_s
                    if handoff_lines is None
                    else min(handoff.line_wait_s, event_timeout_s or handoff.line_wait_s),
                )
            except asyncio.TimeoutError:
                if handoff_lines is not None and session is not None:
                    handoff_lines = None  # the carrier did not say the line finished: transfer anyway
                    if await _hand_off(carrier, call_id, session, handoff, result, audio_for):
                        break
                    continue
                # No word from the carrier at all: end the call on our side and say so.
                await carrier.hangup(call_id)
                result.cause = result.cause or "NO_CARRIER_EVENT"
                result.carrier_status = result.carrier_status or ("unreachable" if not result.answered else None)
                break
            if event.kind == "answered" and session is None:
                result.answered, result.answered_at = True, clock()
                session = CallSession(agent, lead, call_id=call_id, clock=clock)
                await _speak(carrier, call_id, await session.start(), audio_for)
            elif event.kind == "speech" and not event.answered and session is None:
                result.recording.append(event.text)  # early media: the operator's recording
            elif event.kind == "playback_done" and handoff_lines is not None and session is not None:
                handoff_lines -= 1
                if handoff_lines <= 0:
                    handoff_lines = None
                    if await _hand_off(carrier, call_id, session, handoff, result, audio_for):
                        break
            elif event.kind == "speech" and handoff_lines is not None:
                pass  # said over "please hold": the transfer goes ahead
            elif event.kind == "speech" and session is not None and not session.ended:
                reply = await (session.hear(event.text) if event.text.strip() else session.silence())
                await _speak(carrier, call_id, reply, audio_for)
                if reply.end_call:
                    result.hangup_by = "bot"
                    await carrier.hangup(call_id)
                elif any(line.response == HANDOFF for line in reply.lines):
                    handoff_lines = len(reply.lines)  # transfer once the robot's turn has been heard
            elif event.kind == "hangup":
                result.cause = event.cause
                result.carrier_status = event.status
                if handoff_lines is not None:  # hung up before the transfer started
                    result.handoff, result.handoff_reason = HANDOFF_FAILED, CALL_ENDED
                if session is not None and not session.ended:
                    await session.hangup("callee")
                    result.hangup_by = "callee"
                break
    finally:
        router.close(call_id)
    result.ended_at = clock()
    if session is not None:
        result.turns = list(session.turns)
        result.hangup_by = result.hangup_by or session.hangup_by
    result.outcome = assess(result)
    return result


async def _hand_off(
    carrier: Carrier, call_id: str, session: CallSession, policy: HandoffPolicy, result: CallResult, audio_for: AudioFor
) -> bool:
    """Transfer the call to a human; True when the robot's part of the call is over."""
    transfer = await carrier.transfer(call_id, policy.target, policy.wait_s)
    result.handoff_agent = transfer.agent
    if transfer.bridged:
        result.handoff = HANDED_OFF
        await session.handed_off()
        return True
    result.handoff, result.handoff_reason = HANDOFF_FAILED, transfer.reason
    if transfer.reason != CALL_ENDED and not session.ended:
        reply = await session.handoff_failed()
        await _speak(carrier, call_id, reply, audio_for)
        result.hangup_by = "bot"
        await carrier.hangup(call_id)
    return False  # the hang-up event ends the loop


async def _speak(carrier: Carrier, call_id: str, reply: BotReply, audio_for: AudioFor) -> None:
    for line in reply.lines:
        interruptible = line.response not in NON_INTERRUPTIBLE
        await carrier.play(call_id, Prompt(line.response, line.text, audio_for(line), interruptible=interruptible))


def finished_call(result: CallResult) -> FinishedCall:
    """The call as grading reads it: the recording first, then the conversation."""
    start = result.answered_at or result.dialed_at or datetime.now(timezone.utc)
    recording = [Turn("callee", text, 0.0, intent="nlu_fallback", confidence=0.0) for text in result.recording]
    reached_someone = result.answered or bool(result.recording)
    status = ANSWERED if reached_someone else (result.carrier_status or "unreachable")
    return FinishedCall(
        call_id=result.call_id,
        turns=(*recording, *result.turns),
        status=status,
        hangup_by=result.hangup_by,
        duration_s=result.talk_time_s,
        started_at=start,
        agreed_wecom=any(t.response == CONFIRM_WECOM for t in result.turns),
    )


def assess(result: CallResult) -> CallOutcome:
    # Every reply was parsed during the call; anything else (an unrecognised recording)
    # counts as not understood rather than being parsed again.
    outcome = assess_call(finished_call(result), nlu=lambda text, at: NluResult("nlu_fallback", 0.0))
    if outcome.status == ANSWERED and not result.answered and result.carrier_status:
        # A recording nobody recognised and no person: keep the carrier's own status.
        return assess_call(
            FinishedCall(result.call_id, status=result.carrier_status),
            nlu=lambda text, at: NluResult("nlu_fallback", 0.0),
        )
    return _with_advisor_callback(outcome, result)


def _with_advisor_callback(outcome: CallOutcome, result: CallResult) -> CallOutcome:
    """A hand-off nobody took books an advisor's call back (a person, not the robot), unless
    the callee opted out or declined or is not the lead. A callback time the callee named in
    the same call becomes the advisor's window: the robot said an advisor will call, so the
    robot does not place that callback itself."""
    if result.handoff != HANDOFF_FAILED or outcome.status != ANSWERED:
        return outcome
    if any(f.action in (DO_NOT_CALL, SOFT_DECLINE, RETIRE_LEAD) for f in outcome.followups):
        return outcome
    if any(f.action == CALLBACK for f in outcome.followups):
        return replace(
            outcome,
            followups=tuple(
                replace(f, action=ADVISOR_CALLBACK, reason=f"{ADVISOR_CALLBACK_REASON}（{f.reason}）")
                if f.action == CALLBACK
                else f
                for f in outcome.followups
            ),
        )
    ended = result.ended_at or result.answered_at or datetime.now(timezone.utc)
    return replace(outcome, followups=(*outcome.followups, advisor_callback(ended)))
