"""Call recordings: where a call's WAV lives, and the simulator's mixed recording.

A real carrier records the line itself (FreeSWITCH `uuid_record`); the simulator has no
audio, so its recording is assembled after the call from what was said: the robot's lines
rendered by the prompt renderer (the voice the callee would have heard) and the callee's
replies synthesised in another voice (espeak-ng's female variant, so a listener can tell
them apart), each overlaid at its offset on a silent track as long as the call. The result
is what a carrier hands over: 8 kHz mono 16-bit PCM WAV.

Files are named by attempt id only — `<yyyy>/<mm>/<attempt id>.wav` — never by phone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from intents.finished_call import Turn
from telephony.prompts import EspeakNgProvider, PromptRenderer, PromptTemplateError, TtsError
from telephony.prompts.audio import AudioSegment, read_wav, silence, write_wav_atomically
from telephony.prompts.tts import DEFAULT_ESPEAK_VOICE

log = logging.getLogger(__name__)

RECORDING_FORMAT = "wav"
# The callee's voice in a simulated recording: the robot's voice with espeak-ng's female
# variant (higher pitch, other formants).
CALLEE_VOICE = f"{DEFAULT_ESPEAK_VOICE}+f3"
# The ASR's end-of-turn silence: a reply is heard this long after the callee stopped talking
# (the simulator's endpointing), so a reply's audio ends this long before its turn's offset.
ENDPOINTING_MS = 700
# Between one speaker's end and the other's start, when the audio ran later than the offsets.
TURN_GAP_MS = 300
MIN_LENGTH_MS = 100


def recording_relpath(attempt_id: int, at: datetime) -> str:
    """`<yyyy>/<mm>/<attempt id>.wav`: by attempt id and month, never by phone."""
    return f"{at:%Y}/{at:%m}/{int(attempt_id)}.{RECORDING_FORMAT}"


@dataclass(frozen=True)
class PlacedAudio:
    """One line in the mix: who said it, the text, where it starts (ms from the answer)."""

    speaker: str
    text: str
    start_ms: int
    duration_ms: int


@dataclass(frozen=True)
class MixedRecording:
    path: Path
    duration_s: float
    bytes: int
    placed: tuple[PlacedAudio, ...]


class CallMixer:
    """Mixes a simulated call's turns into one WAV. Synthesis is cached per text (the
    renderers' segment and line caches), so the same reply is synthesised once."""

    def __init__(self, robot: PromptRenderer, callee: PromptRenderer) -> None:
        self.robot = robot
        self.callee = callee

    @classmethod
    def with_espeak(cls, cache_dir: Path) -> CallMixer:
        """The robot in the prompt voice, the callee in CALLEE_VOICE, both cached under cache_dir."""
        return cls(
            PromptRenderer(EspeakNgProvider(), cache_dir), PromptRenderer(EspeakNgProvider(CALLEE_VOICE), cache_dir)
        )

    def mix(
        self, turns: Sequence[Turn], talk_time_s: float, path: Path, *, callee_hung_up: bool = False
    ) -> MixedRecording:
        """Write the call's recording to `path` (atomically) and say what went where.

        The robot's lines play one after another from their offsets (a carrier queues
        prompts); a reply ends ENDPOINTING_MS before the offset the ASR reported it at. Where
        the synthesised speech is slower than the simulated timing, turns keep their order
        (nobody answers a question before it is asked), so the track may run longer than
        the call (answer to hang-up) by that difference. When the callee hung up, the track
        ends there (shifted by that same lag): whatever the robot was still saying is cut."""
        placed: list[PlacedAudio] = []
        clips: list[tuple[int, AudioSegment]] = []
        # When the robot's previous line finished playing, and the callee's previous reply
        # ended (before anything was said: no wait).
        robot_free_ms = callee_free_ms = -TURN_GAP_MS
        lag_ms = 0  # how much later than its offset the last line was placed
        for turn in turns:
            if not turn.text.strip():
                continue  # silence: nothing was said
            audio = self._speech(turn)
            if audio is None:
                continue
            if turn.speaker == "bot":
                start = max(turn.offset_ms, robot_free_ms, callee_free_ms + TURN_GAP_MS)
                robot_free_ms = start + len(audio)
                lag_ms = start - turn.offset_ms
            else:
                # The callee answers once the robot's line has been heard (the simulator's
                # callees do; TTS may speak slower than the simulated timing assumed).
                nominal = max(0, turn.offset_ms - ENDPOINTING_MS - len(audio))
                start = max(nominal, robot_free_ms + TURN_GAP_MS)
                callee_free_ms = start + len(audio)
                lag_ms = start - nominal
            clips.append((start, audio))
            placed.append(PlacedAudio(turn.speaker, turn.text, start, len(audio)))
        # At least a moment of audio: a player cannot load a file of no frames.
        call_ms = int(talk_time_s * 1000)
        if callee_hung_up:
            length_ms = max(MIN_LENGTH_MS, call_ms + lag_ms)
        else:
            length_ms = max([MIN_LENGTH_MS, call_ms, *(start + len(audio) for start, audio in clips)])
        track = silence(length_ms)
        for start, audio in clips:
            if start < length_ms:
                track = track.overlay(audio[: length_ms - start], position=start)
        write_wav_atomically(track, path)
        return MixedRecording(path, track.frame_count() / track.frame_rate, path.stat().st_size, tuple(placed))

    def _speech(self, turn: Turn) -> AudioSegment | None:
        renderer = self.robot if turn.speaker == "bot" else self.callee
        try:
            return read_wav(renderer.render_line(turn.text, {}).path)
        except (PromptTemplateError, TtsError) as exc:
            # A line the engine cannot say (e.g. only symbols) is left out, not the recording.
            log.warning("recording: a %s line was left out (%s)", turn.speaker, type(exc).__name__)
            return None


__all__ = ["CALLEE_VOICE", "CallMixer", "MixedRecording", "PlacedAudio", "RECORDING_FORMAT", "recording_relpath"]
