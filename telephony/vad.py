"""Endpointing on the callee's audio: when they start talking, when their turn ends, and
how long they have been silent.

A streaming endpointer fed 16-bit mono PCM (8 or 16 kHz) in chunks of any size: it cuts the
audio into 20 ms frames, asks webrtcvad whether each frame is voiced and reports
- "speech_start": `start_ms` of voice in a row (a cough or a click is shorter) — a carrier
  stops an interruptible prompt on it (barge-in);
- "end_of_turn": `end_silence_ms` of unvoiced frames after speech (WAIHU_VAD_END_SILENCE_MS,
  700 by default); the utterance's audio goes with it to the ASR;
- "no_input": `reprompt_ms` (10 s) without speech since the last turn or `reset_silence()`
  (the robot finished its prompt) — the runtime re-prompts;
- "silence_timeout": `hangup_ms` (30 s) without speech (re-prompts do not restart this
  clock, only the callee's voice does) — the carrier hangs up.
Times are audio time (frames fed), so the same audio always gives the same events.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import webrtcvad

VadEventKind = Literal["speech_start", "end_of_turn", "no_input", "silence_timeout"]
FRAME_MS = 20  # webrtcvad takes 10, 20 or 30 ms frames
SAMPLE_WIDTH = 2  # 16-bit PCM


class VadConfigError(ValueError):
    """A WAIHU_VAD_* setting that is not a usable number."""


@dataclass(frozen=True)
class EndpointerConfig:
    sample_rate: int = 8000
    aggressiveness: int = 2  # webrtcvad 0 (lenient) … 3 (strict about what is voice)
    start_ms: int = 100  # voice in a row before it counts as speech (barge-in)
    end_silence_ms: int = 700  # unvoiced after speech: end of turn
    reprompt_ms: int = 10_000  # no speech: the robot asks again
    hangup_ms: int = 30_000  # no speech: the robot gives up

    def __post_init__(self) -> None:
        if self.sample_rate not in (8000, 16000):
            raise VadConfigError(f"sample rate {self.sample_rate}: use 8000 or 16000 Hz")
        if self.aggressiveness not in (0, 1, 2, 3):
            raise VadConfigError(f"WAIHU_VAD_AGGRESSIVENESS={self.aggressiveness}: use 0, 1, 2 or 3")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, sample_rate: int = 8000) -> EndpointerConfig:
        """WAIHU_VAD_AGGRESSIVENESS, WAIHU_VAD_END_SILENCE_MS, WAIHU_VAD_REPROMPT_MS, WAIHU_VAD_HANGUP_MS."""
        env = os.environ if env is None else env
        defaults = cls()

        def number(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise VadConfigError(f"{name}={raw!r}: set it to a whole number of milliseconds") from None
            if value < 0:
                raise VadConfigError(f"{name}={raw!r}: must not be negative")
            return value

        return cls(
            sample_rate=sample_rate,
            aggressiveness=number("WAIHU_VAD_AGGRESSIVENESS", defaults.aggressiveness),
            end_silence_ms=number("WAIHU_VAD_END_SILENCE_MS", defaults.end_silence_ms),
            reprompt_ms=number("WAIHU_VAD_REPROMPT_MS", defaults.reprompt_ms),
            hangup_ms=number("WAIHU_VAD_HANGUP_MS", defaults.hangup_ms),
        )

    @property
    def frame_bytes(self) -> int:
        return self.sample_rate * FRAME_MS // 1000 * SAMPLE_WIDTH


@dataclass(frozen=True)
class VadEvent:
    kind: VadEventKind
    at_ms: int  # audio time of the frame that triggered it
    # speech_start: the voiced frames so far (this frame included); end_of_turn: the whole
    # utterance, from its first voiced frame to its last
    audio: bytes = b""
    last_voiced_ms: int = 0  # end_of_turn: end of the last voiced frame


@dataclass
class Endpointer:
    config: EndpointerConfig = field(default_factory=EndpointerConfig)

    def __post_init__(self) -> None:
        self._vad = webrtcvad.Vad(self.config.aggressiveness)
        self._pending = b""
        self._now_ms = 0
        self._voiced_run_ms = 0
        self._unvoiced_run_ms = 0
        self._in_speech = False
        self._utterance = bytearray()
        self._lead_in: list[bytes] = []  # frames of the voiced run before speech_start
        self._last_voiced_ms = 0
        self._silent_since_ms = 0  # the no-input (re-prompt) clock
        self._spoke_at_ms = 0  # the hang-up clock: only the callee's speech restarts it
        self._reprompted = False
        self._gave_up = False

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reset_silence(self) -> None:
        """Start the no-input clock again (the robot has just finished speaking); the
        hang-up clock keeps running until the callee says something."""
        self._silent_since_ms = self._now_ms
        self._reprompted = False

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Feed audio (any length); the events its complete frames triggered."""
        self._pending += pcm
        size = self.config.frame_bytes
        events: list[VadEvent] = []
        while len(self._pending) >= size:
            frame, self._pending = self._pending[:size], self._pending[size:]
            events.extend(self._frame(frame))
        return events

    def _frame(self, frame: bytes) -> list[VadEvent]:
        cfg = self.config
        voiced = self._vad.is_speech(frame, cfg.sample_rate)
        self._now_ms += FRAME_MS
        events: list[VadEvent] = []
        if voiced:
            self._voiced_run_ms += FRAME_MS
            self._unvoiced_run_ms = 0
            self._last_voiced_ms = self._now_ms
            if self._in_speech:
                self._utterance += frame
            else:
                self._lead_in.append(frame)
                if self._voiced_run_ms >= cfg.start_ms:
                    self._in_speech = True
                    self._utterance = bytearray(b"".join(self._lead_in))
                    self._lead_in = []
                    events.append(VadEvent("speech_start", self._now_ms, audio=bytes(self._utterance)))
        else:
            self._voiced_run_ms = 0
            self._lead_in = []
            self._unvoiced_run_ms += FRAME_MS
            if self._in_speech:
                self._utterance += frame  # pauses inside a sentence belong to it
                if self._unvoiced_run_ms >= cfg.end_silence_ms:
                    self._in_speech = False
                    voiced_bytes = len(self._utterance) - self._unvoiced_run_ms // FRAME_MS * cfg.frame_bytes
                    events.append(
                        VadEvent(
                            "end_of_turn",
                            self._now_ms,
                            audio=bytes(self._utterance[:voiced_bytes]),
                            last_voiced_ms=self._last_voiced_ms,
                        )
                    )
                    self._utterance = bytearray()
                    self._silent_since_ms = self._spoke_at_ms = self._last_voiced_ms
                    self._reprompted = self._gave_up = False
        if self._in_speech or self._voiced_run_ms:
            return events
        if not self._reprompted and self._now_ms - self._silent_since_ms >= cfg.reprompt_ms:
            self._reprompted = True
            events.append(VadEvent("no_input", self._now_ms))
        if not self._gave_up and self._now_ms - self._spoke_at_ms >= cfg.hangup_ms:
            self._gave_up = True
            events.append(VadEvent("silence_timeout", self._now_ms))
        return events
