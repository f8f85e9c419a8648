"""Real speech for the VAD/ASR tests: espeak-ng Mandarin at 8 kHz, cached per test session."""

from __future__ import annotations

import shutil
from functools import cache

import pytest

from telephony.prompts.audio import AudioSegment, silence, to_telephone_audio
from telephony.prompts.tts import EspeakNgProvider

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (make setup, or apt-get install espeak-ng)"
)


@cache
def speech(text: str) -> AudioSegment:
    """`text` spoken in Mandarin, as the telephone carries it (8 kHz mono 16-bit)."""
    return to_telephone_audio(EspeakNgProvider().synthesize(text))


def pcm(*parts: AudioSegment | int) -> bytes:
    """Raw PCM of speech segments and silences (an int: that many milliseconds of silence)."""
    audio = silence(0)
    for part in parts:
        audio += silence(part) if isinstance(part, int) else part
    return to_telephone_audio(audio).raw_data
