"""A deterministic recogniser for tests and benches: it knows a set of WAV clips and their
text, and returns the text of the clip an utterance sounds like.

The match is on the loudness envelope (log energy per 10 ms), not the bytes: the clip that
comes back over a phone line went through G.711, jitter buffers and the endpointer's trimming,
so no byte or hash survives, but the rhythm of the syllables does. Each envelope is compared
with each clip's at small shifts; the best Pearson correlation above `threshold` wins.
"""

from __future__ import annotations

import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from telephony.asr import Transcript

ENVELOPE_MS = 10
MAX_SHIFT_MS = 400  # the endpointer may trim this much more or less at either edge
QUIET_DBFS = -45.0  # envelope frames quieter than this are edge silence


class ClipError(ValueError):
    """A clip that cannot be learnt (not a 16-bit mono WAV)."""


def read_pcm(path: Path) -> tuple[bytes, int]:
    """The 16-bit mono PCM of a WAV file and its sample rate."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise ClipError(
                    f"{path}: need a 16-bit mono WAV (got {wav.getnchannels()} ch, {8 * wav.getsampwidth()} bit)"
                )
            return wav.readframes(wav.getnframes()), wav.getframerate()
    except (wave.Error, EOFError) as error:
        raise ClipError(f"{path}: not a WAV file ({error})") from None


def envelope(pcm: bytes, sample_rate: int) -> np.ndarray:
    """Log energy per 10 ms with the quiet edges cut off."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    step = sample_rate * ENVELOPE_MS // 1000
    frames = samples[: len(samples) // step * step].reshape(-1, step)
    if not len(frames):
        return np.zeros(0)
    db = 10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-10)
    loud = np.flatnonzero(db > QUIET_DBFS)
    return db[loud[0] : loud[-1] + 1] if len(loud) else np.zeros(0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best Pearson correlation of two envelopes over shifts up to MAX_SHIFT_MS; 0 when their
    lengths are too different to be the same words."""
    if len(a) < 5 or len(b) < 5 or min(len(a), len(b)) < 0.6 * max(len(a), len(b)):
        return 0.0
    best = 0.0
    max_shift = MAX_SHIFT_MS // ENVELOPE_MS
    for shift in range(-max_shift, max_shift + 1):
        x, y = (a[shift:], b) if shift >= 0 else (a, b[-shift:])
        n = min(len(x), len(y))
        if n < 0.6 * min(len(a), len(b)):
            continue
        x, y = x[:n], y[:n]
        if x.std() == 0 or y.std() == 0:
            continue
        best = max(best, float(np.corrcoef(x, y)[0, 1]))
    return best


@dataclass
class ClipRecogniser:
    """Known clips → their text. `threshold`: the least similarity that counts as a match."""

    threshold: float = 0.8
    _clips: list[tuple[str, np.ndarray]] = field(default_factory=list)

    @classmethod
    def from_files(cls, clips: Mapping[str | Path, str], threshold: float = 0.8) -> ClipRecogniser:
        recogniser = cls(threshold)
        for path, text in clips.items():
            recogniser.learn_file(Path(path), text)
        return recogniser

    def learn_file(self, path: Path, text: str) -> None:
        pcm, rate = read_pcm(path)
        self.learn(pcm, rate, text)

    def learn(self, pcm: bytes, sample_rate: int, text: str) -> None:
        self._clips.append((text, envelope(pcm, sample_rate)))

    def recognise(self, pcm: bytes, sample_rate: int = 8000) -> Transcript:
        heard = envelope(pcm, sample_rate)
        scored = [(similarity(heard, clip), text) for text, clip in self._clips]
        score, text = max(scored, default=(0.0, ""))
        return Transcript(text, round(score, 3)) if score >= self.threshold else Transcript("", round(score, 3))

    async def open(self, sample_rate: int = 8000) -> _ClipStream:
        return _ClipStream(self, sample_rate)


@dataclass
class _ClipStream:
    recogniser: ClipRecogniser
    sample_rate: int
    audio: bytearray = field(default_factory=bytearray)

    async def feed(self, pcm: bytes) -> None:
        self.audio += pcm

    async def finish(self) -> Transcript:
        return self.recogniser.recognise(bytes(self.audio), self.sample_rate)

    async def aclose(self) -> None:
        self.audio.clear()
