"""Calls through FreeSWITCH: originate, answer/hang-up events, prompts, speech, barge-in.

Each call carries our call id as the channel variable `waihu_call_id`, so every event
FreeSWITCH sends (as `variable_waihu_call_id`) maps back to the call attempt.

Hand-off to a human: `uuid_transfer <uuid> <target>` (mod_commands; FreeSWITCH replies
+OK and the channel runs the dialplan at the target). The target is an extension, with an
optional dialplan and context ("advisors XML default"), normally one that holds the caller
while it rings the advisors (a mod_callcenter or mod_fifo queue). The transfer bridged
when CHANNEL_BRIDGE arrives for our channel; a CHANNEL_HANGUP_COMPLETE instead means the
dialplan gave up and hung up. When neither came within the wait, the channel is taken
back (`uuid_transfer <uuid> park inline`, as it was after originate) so the robot can tell
the callee nobody is free.

Recording (全程录音): a dial with `recording_path` (a file on the switch host) starts
`uuid_record <uuid> start <path>` when the call is answered and `uuid_record <uuid> stop
<path>` when the robot hangs up (a callee's hang-up closes the file by itself).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from xml.etree import ElementTree

from telephony.carrier import CALL_ENDED, CARRIER_LOST, NO_ADVISOR, REJECTED, CallEvent, Prompt, TransferResult
from telephony.freeswitch.esl import EslConnection, EslConnectionLost, EslError, EslEvent
from telephony.hangup_causes import status_for_hangup

log = logging.getLogger(__name__)

EVENTS = (
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP_COMPLETE",
    "BACKGROUND_JOB",
    "DETECTED_SPEECH",
    "PLAYBACK_STOP",
    "CHANNEL_BRIDGE",
)
# uuid_transfer's <dest-exten> [<dialplan>] [<context>]: one command line, nothing to inject.
TRANSFER_TARGET = re.compile(r"[\w+*#.@/:-]+(?: [\w.-]+){0,2}")
# Where a channel goes back to when nobody took the transfer: parked, as after originate.
TAKE_BACK = "park inline"
# A recording path goes on one api command line: no spaces, nothing to inject.
RECORDING_PATH = re.compile(r"/[\w./-]+\.wav")


def speech_from_event(event: EslEvent, text_header: str) -> tuple[str, float | None]:
    """ASR text from DETECTED_SPEECH (NLSML or plain body) or a vendor CUSTOM event."""
    if event.name == "CUSTOM":
        confidence: str | None = event.get("ASR-Confidence")
        return event.get(text_header).strip(), float(confidence) if confidence else None
    body = event.body.strip()
    if body.startswith("<"):
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            return re.sub(r"<[^>]+>", "", body).strip(), None
        node = root.find(".//input")
        interpretation = root.find(".//interpretation")
        confidence = interpretation.get("confidence") if interpretation is not None else None
        text = (node.text or "").strip() if node is not None else ""
        value = float(confidence) if confidence else None
        return text, value / 100 if value and value > 1 else value
    return body, None


class FreeSwitchCarrier:
    def __init__(
        self,
        connection: EslConnection,
        gateway: str,
        caller_id: str,
        asr_subclass: str | None = None,
        asr_text_header: str = "ASR-Text",
        barge_in: bool = True,
    ) -> None:
        self.connection = connection
        self.gateway = gateway
        self.caller_id = caller_id
        self.asr_subclass = asr_subclass
        self.asr_text_header = asr_text_header
        self.barge_in = barge_in
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._channels: dict[str, str] = {}  # call id → channel uuid
        self._answered: set[str] = set()
        self._playing: set[str] = set()
        self._transfers: dict[str, asyncio.Future[TransferResult]] = {}  # call id → pending transfer
        self._handed_off: set[str] = set()  # bridged to a human: no longer the robot's
        self._recordings: dict[str, str] = {}  # call id → the file the switch records it to
        self._recording: set[str] = set()  # call ids whose uuid_record has started
        connection.on_event(self._on_event)

    async def start(self) -> None:
        names = list(EVENTS)
        if self.asr_subclass:
            names += ["CUSTOM", self.asr_subclass]
        await self.connection.subscribe(*names)

    async def dial(
        self,
        call_id: str,
        phone: str,
        timeout_s: int = 30,
        *,
        caller_id: str | None = None,
        audience_pack: str | None = None,  # the simulator's hint; nothing for a real carrier
        recording_path: str | None = None,
    ) -> str:
        """Originate the call; returns the channel uuid. Failures arrive as hang-up events.
        `caller_id` (a campaign's pool number) overrides the trunk's default caller id."""
        if caller_id is not None and not re.fullmatch(r"\+?\d{5,20}", caller_id):
            raise ValueError("caller_id must be digits only")
        if not re.fullmatch(r"\+?\d{5,20}", phone):
            raise ValueError("phone must be digits only")
        if recording_path is not None and not RECORDING_PATH.fullmatch(recording_path):
            raise ValueError(f"recording_path {recording_path!r}: an absolute .wav path without spaces")
        channel = str(uuid.uuid4())
        self._channels[call_id] = channel
        if recording_path is not None:
            self._recordings[call_id] = recording_path
        variables = ",".join(
            [
                f"origination_uuid={channel}",
                f"waihu_call_id={call_id}",
                f"origination_caller_id_number={caller_id or self.caller_id}",
                f"originate_timeout={timeout_s}",
            ]
        )
        job = await self.connection.bgapi(
            f"originate {{{variables}}}sofia/gateway/{self.gateway}/{phone} &park()", str(uuid.uuid4())
        )
        asyncio.ensure_future(self._watch_originate(call_id, job))
        return channel

    async def play(self, call_id: str, prompt: Prompt) -> None:
        if not prompt.audio_path:
            raise ValueError(f"prompt {prompt.response} has no rendered audio; render prompts first")
        self._playing.add(call_id)
        await self.connection.api(f"uuid_broadcast {self._channel(call_id)} {prompt.audio_path} aleg")

    async def stop_playback(self, call_id: str) -> None:
        self._playing.discard(call_id)
        await self.connection.api(f"uuid_break {self._channel(call_id)} all")

    async def hangup(self, call_id: str, cause: str = "NORMAL_CLEARING") -> None:
        await self._stop_recording(call_id)
        try:
            await self.connection.api(f"uuid_kill {self._channel(call_id)} {cause}")
        except EslError:
            pass  # already gone: its CHANNEL_HANGUP_COMPLETE is on the way or was sent

    async def transfer(self, call_id: str, target: str, wait_s: float = 20.0) -> TransferResult:
        """`uuid_transfer` the call to `target`; bridged, or taken back after `wait_s` (see the module docstring)."""
        if not TRANSFER_TARGET.fullmatch(target):
            raise ValueError(f"transfer target {target!r}: an extension or queue, optionally with dialplan and context")
        channel = self._channels.get(call_id)
        if channel is None or call_id in self._handed_off:
            return TransferResult(False, CALL_ENDED)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[TransferResult] = loop.create_future()
        self._transfers[call_id] = outcome
        started = loop.time()
        try:
            try:
                reply = (await self.connection.api(f"uuid_transfer {channel} {target}")).strip()
            except (EslError, EslConnectionLost) as exc:
                return TransferResult(False, REJECTED if call_id in self._channels else CALL_ENDED, detail=str(exc))
            if not reply.startswith("+OK"):
                return TransferResult(False, REJECTED, detail=reply)
            try:
                result = await asyncio.wait_for(asyncio.shield(outcome), wait_s)
            except asyncio.TimeoutError:
                result = await self._take_back(call_id, channel, outcome)
            return TransferResult(
                result.bridged, result.reason, result.agent, round(loop.time() - started, 3), result.detail
            )
        finally:
            self._transfers.pop(call_id, None)

    async def _take_back(self, call_id: str, channel: str, outcome: asyncio.Future[TransferResult]) -> TransferResult:
        """Nobody took the call in time: park it again for the robot (unless it just bridged or ended)."""
        if outcome.done():
            return outcome.result()
        try:
            await self.connection.api(f"uuid_transfer {channel} {TAKE_BACK}")
        except (EslError, EslConnectionLost) as exc:
            return outcome.result() if outcome.done() else TransferResult(False, CALL_ENDED, detail=str(exc))
        if outcome.done():
            return outcome.result()
        return TransferResult(False, NO_ADVISOR)

    async def _start_recording(self, call_id: str) -> None:
        """uuid_record start on answer; a refusal is logged, never the end of the call."""
        path = self._recordings.get(call_id)
        channel = self._channels.get(call_id)
        if path is None or channel is None:
            return
        try:
            reply = (await self.connection.api(f"uuid_record {channel} start {path}")).strip()
        except (EslError, EslConnectionLost) as exc:
            reply = f"-ERR {exc}"
        if reply.startswith("+OK"):
            self._recording.add(call_id)
        else:
            log.warning("call %s: the switch did not start recording: %s", call_id, reply)

    async def _stop_recording(self, call_id: str) -> None:
        path = self._recordings.pop(call_id, None)
        channel = self._channels.get(call_id)
        if call_id not in self._recording or path is None or channel is None:
            return
        self._recording.discard(call_id)
        try:
            await self.connection.api(f"uuid_record {channel} stop {path}")
        except (EslError, EslConnectionLost):
            pass  # the channel is gone: the switch closed the file with it

    def _channel(self, call_id: str) -> str:
        try:
            return self._channels[call_id]
        except KeyError:
            raise KeyError(f"no live channel for call {call_id}") from None

    async def _watch_originate(self, call_id: str, job: asyncio.Future) -> None:
        try:
            result = (await job).strip()
        except EslConnectionLost:
            return  # SOCKET_LOST handling reports every live call
        if result.startswith("-ERR"):
            cause = result.removeprefix("-ERR").strip() or "NORMAL_TEMPORARY_FAILURE"
            if self._channels.pop(call_id, None) is not None:
                await self.events.put(
                    CallEvent(call_id, "hangup", cause=cause, status=status_for_hangup(cause, answered=False))
                )

    async def _on_event(self, event: EslEvent) -> None:
        if event.name == "SOCKET_LOST":
            for transfer in self._transfers.values():
                if not transfer.done():
                    transfer.set_result(TransferResult(False, CALL_ENDED, detail=event.get("Reason")))
            for call_id in list(self._channels):
                self._channels.pop(call_id)
                await self.events.put(
                    CallEvent(
                        call_id,
                        "hangup",
                        cause=event.get("Reason"),
                        status=CARRIER_LOST,
                        answered=call_id in self._answered,
                    )
                )
            return
        call_id = event.get("variable_waihu_call_id")
        if not call_id or call_id not in self._channels:
            return
        if event.name == "CHANNEL_BRIDGE":
            pending = self._transfers.get(call_id)
            if pending is not None and not pending.done():
                self._handed_off.add(call_id)
                self._playing.discard(call_id)
                agent = event.get("Other-Leg-Unique-ID") or event.get("Bridge-B-Unique-ID") or None
                pending.set_result(TransferResult(True, agent=agent))
        elif call_id in self._handed_off and event.name != "CHANNEL_HANGUP_COMPLETE":
            return  # the callee talks with the advisor now: nothing of it is the robot's
        elif call_id in self._transfers and event.name in ("DETECTED_SPEECH", "CUSTOM", "PLAYBACK_STOP"):
            return  # on hold for an advisor: not a reply to the robot
        elif event.name == "CHANNEL_ANSWER":
            self._answered.add(call_id)
            await self._start_recording(call_id)  # before the robot's first word
            await self.events.put(CallEvent(call_id, "answered", answered=True))
        elif event.name in ("DETECTED_SPEECH", "CUSTOM"):
            if event.name == "DETECTED_SPEECH" and event.get("Speech-Type") != "detected-speech":
                return
            if event.name == "CUSTOM" and event.get("Event-Subclass") != self.asr_subclass:
                return
            text, confidence = speech_from_event(event, self.asr_text_header)
            if self.barge_in and call_id in self._playing:
                await self.stop_playback(call_id)  # the callee talks over the robot: stop talking
            await self.events.put(CallEvent(call_id, "speech", text=text, confidence=confidence, answered=True))
        elif event.name == "PLAYBACK_STOP":
            self._playing.discard(call_id)
            await self.events.put(CallEvent(call_id, "playback_done", answered=True))
        elif event.name == "CHANNEL_HANGUP_COMPLETE":
            cause = event.get("Hangup-Cause")
            answered = call_id in self._answered
            self._channels.pop(call_id, None)
            self._answered.discard(call_id)
            self._playing.discard(call_id)
            self._handed_off.discard(call_id)
            self._recordings.pop(call_id, None)  # the switch closes the file with the channel
            self._recording.discard(call_id)
            waiting = self._transfers.get(call_id)
            if waiting is not None and not waiting.done():
                waiting.set_result(TransferResult(False, CALL_ENDED, detail=cause))
            await self.events.put(
                CallEvent(call_id, "hangup", cause=cause, status=status_for_hangup(cause, answered), answered=answered)
            )
