"""Speech recognition behind one interface: the carrier streams the callee's audio in and
takes the final text at the end of the turn (the endpointer in telephony.vad decides when).

- `ClipRecogniser` (clips.py): deterministic, for tests and benches — known WAV clips → their text.
- `AliyunNlsASR` (aliyun_nls.py): Alibaba Cloud Intelligent Speech Interaction real-time speech
  recognition (NLS SpeechTranscriber) over its WebSocket protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Transcript:
    text: str  # "" when nothing was recognised
    confidence: float | None = None


class ASRError(RuntimeError):
    """The recogniser failed (connection, authentication, a TaskFailed from the service)."""


class ASRStream(Protocol):
    """One utterance: audio goes in as it arrives, the final text comes out at its end."""

    async def feed(self, pcm: bytes) -> None: ...

    async def finish(self) -> Transcript:
        """The utterance is over (end of turn): its final text. The stream is closed after."""

    async def aclose(self) -> None:
        """Abandon the utterance (the call ended mid-sentence)."""


class ASR(Protocol):
    async def open(self, sample_rate: int = 8000) -> ASRStream:
        """Start recognising one utterance of 16-bit mono PCM at `sample_rate`."""
