"""Calls through FreeSWITCH: originate, answer/hang-up events, prompts, speech, barge-in.

Each call carries our call id as the channel variable `waihu_call_id`, so every event
FreeSWITCH sends (as `variable_waihu_call_id`) maps back to the call attempt.
"""
from __future__ import annotations

import asyncio
import re
import uuid
from xml.etree import ElementTree

from telephony.carrier import CARRIER_LOST, CallEvent, Prompt
from telephony.freeswitch.esl import EslConnection, EslConnectionLost, EslError, EslEvent
from telephony.hangup_causes import status_for_hangup

EVENTS = ("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB", "DETECTED_SPEECH",
          "PLAYBACK_STOP")


def speech_from_event(event: EslEvent, text_header: str) -> tuple[str, float | None]:
    """ASR text from DETECTED_SPEECH (NLSML or plain body) or a vendor CUSTOM event."""
    if event.name == "CUSTOM":
        confidence = event.get("ASR-Confidence")
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
    def __init__(self, connection: EslConnection, gateway: str, caller_id: str,
                 asr_subclass: str | None = None, asr_text_header: str = "ASR-Text",
                 barge_in: bool = True) -> None:
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
        connection.on_event(self._on_event)

    async def start(self) -> None:
        names = list(EVENTS)
        if self.asr_subclass:
            names += ["CUSTOM", self.asr_subclass]
        await self.connection.subscribe(*names)

    async def dial(self, call_id: str, phone: str, timeout_s: int = 30) -> str:
        """Originate the call; returns the channel uuid. Failures arrive as hang-up events."""
        if not re.fullmatch(r"\+?\d{5,20}", phone):
            raise ValueError("phone must be digits only")
        channel = str(uuid.uuid4())
        self._channels[call_id] = channel
        variables = ",".join([
            f"origination_uuid={channel}", f"waihu_call_id={call_id}",
            f"origination_caller_id_number={self.caller_id}", f"originate_timeout={timeout_s}",
        ])
        job = await self.connection.bgapi(
            f"originate {{{variables}}}sofia/gateway/{self.gateway}/{phone} &park()", str(uuid.uuid4()))
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
        try:
            await self.connection.api(f"uuid_kill {self._channel(call_id)} {cause}")
        except EslError:
            pass  # already gone: its CHANNEL_HANGUP_COMPLETE is on the way or was sent

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
                await self.events.put(CallEvent(call_id, "hangup", cause=cause,
                                                status=status_for_hangup(cause, answered=False)))

    async def _on_event(self, event: EslEvent) -> None:
        if event.name == "SOCKET_LOST":
            for call_id in list(self._channels):
                self._channels.pop(call_id)
                await self.events.put(CallEvent(call_id, "hangup", cause=event.get("Reason"),
                                                status=CARRIER_LOST, answered=call_id in self._answered))
            return
        call_id = event.get("variable_waihu_call_id")
        if not call_id or call_id not in self._channels:
            return
        if event.name == "CHANNEL_ANSWER":
            self._answered.add(call_id)
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
            await self.events.put(CallEvent(call_id, "hangup", cause=cause,
                                            status=status_for_hangup(cause, answered), answered=answered))
