"""Telephone audio for prompts: 8 kHz mono 16-bit WAV, band-limited, at one loudness.

Only WAV is read and written, and pydub handles WAV in pure Python, so no ffmpeg is
needed (keep it that way: the call machines do not have it).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
import wave
from pathlib import Path

import numpy as np

with warnings.catch_warnings():
    # pydub looks for ffmpeg when imported and warns if it is missing; WAV never needs it.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError
    from pydub.silence import detect_leading_silence

TELEPHONE_FRAME_RATE = 8000
TELEPHONE_SAMPLE_WIDTH = 2  # bytes: 16-bit linear PCM, what carriers transcode to G.711

# −20 dBFS RMS of active speech: close to the nominal speech level of a telephone line
# (about −20 dBm0 on G.711), so the robot sounds as loud as a human agent, and it leaves
# ~20 dB of headroom for the peaks of synthetic speech (espeak-ng's crest factor is
# 18–19 dB). Loud prompts next to quiet ones make callees reach for the volume key or
# hang up; one level for every line and every slot segment avoids that.
TARGET_ACTIVE_DBFS = -20.0
# Peaks never go above −1 dBFS: the gain is reduced instead, so normalising never clips
# (a clipped sample turns into a click after μ-law/A-law encoding).
PEAK_CEILING_DBFS = -1.0

# Anti-alias filter before going down to 8 kHz: pydub's set_frame_rate (audioop.ratecv)
# does no low-pass filtering, and espeak-ng puts ~1 % of its energy above 4 kHz
# (fricatives), which would fold back into the band as hiss. 3.5 kHz keeps the whole
# telephone band (300–3400 Hz); 127 Hamming-windowed taps stop by ~3.8 kHz at 22 kHz.
ANTI_ALIAS_CUTOFF_HZ = 3500.0
ANTI_ALIAS_TAPS = 127

# Silence at the edges of a synthesized segment (espeak-ng appends ~300 ms); trimmed so
# the renderer decides the pauses between segments itself.
EDGE_SILENCE_DBFS = -50.0
# Loudness is measured over active 20 ms frames only: pauses would otherwise make a
# line with many commas sound louder than one without.
LEVEL_FRAME_MS = 20
ACTIVE_FRAME_GATE_DB = 35.0


def to_telephone_audio(audio: AudioSegment) -> AudioSegment:
    """Any PCM segment as 8 kHz mono 16-bit, band-limited before resampling."""
    mono = audio.set_channels(1).set_sample_width(TELEPHONE_SAMPLE_WIDTH)
    if mono.frame_rate > TELEPHONE_FRAME_RATE:
        mono = low_pass(mono, ANTI_ALIAS_CUTOFF_HZ)
    return mono.set_frame_rate(TELEPHONE_FRAME_RATE)


def low_pass(audio: AudioSegment, cutoff_hz: float, taps: int = ANTI_ALIAS_TAPS) -> AudioSegment:
    """A linear-phase FIR low-pass (windowed sinc) on a mono 16-bit segment."""
    samples = np.asarray(audio.get_array_of_samples(), dtype=np.float64)
    if samples.size == 0:
        return audio
    offsets = np.arange(taps) - (taps - 1) / 2
    kernel = np.sinc(2 * cutoff_hz / audio.frame_rate * offsets) * np.hamming(taps)
    kernel /= kernel.sum()  # unity gain in the pass band
    filtered = np.convolve(samples, kernel, mode="same")
    return audio._spawn(np.clip(np.round(filtered), -32768, 32767).astype("<i2").tobytes())


def trim_edge_silence(audio: AudioSegment, threshold_dbfs: float = EDGE_SILENCE_DBFS) -> AudioSegment:
    lead = detect_leading_silence(audio, silence_threshold=threshold_dbfs, chunk_size=5)
    trail = detect_leading_silence(audio.reverse(), silence_threshold=threshold_dbfs, chunk_size=5)
    if lead + trail >= len(audio):
        return audio[:0]
    return audio[lead : len(audio) - trail]


def active_level_dbfs(audio: AudioSegment) -> float:
    """RMS level (dBFS) over the frames that carry speech; −inf for digital silence.

    A frame is active when it is within ACTIVE_FRAME_GATE_DB of the loudest frame (a
    simple stand-in for ITU-T P.56 active speech level)."""
    samples = np.asarray(audio.get_array_of_samples(), dtype=np.float64) / 32768.0
    if samples.size == 0:
        return -math.inf
    frame = max(1, audio.frame_rate * LEVEL_FRAME_MS // 1000)
    whole_frames = (
        samples[: samples.size // frame * frame].reshape(-1, frame) if samples.size >= frame else samples[None, :]
    )
    power = (whole_frames**2).mean(axis=1)
    if power.max() <= 0:
        return -math.inf
    gate = power.max() * 10 ** (-ACTIVE_FRAME_GATE_DB / 10)
    return 10 * math.log10(power[power >= gate].mean())


def normalise_loudness(
    audio: AudioSegment,
    target_dbfs: float = TARGET_ACTIVE_DBFS,
    peak_ceiling_dbfs: float = PEAK_CEILING_DBFS,
) -> AudioSegment:
    """Gain to bring active speech to target_dbfs, reduced if peaks would pass the ceiling."""
    level = active_level_dbfs(audio)
    if math.isinf(level):
        return audio
    gain = target_dbfs - level
    gain = min(gain, peak_ceiling_dbfs - audio.max_dBFS)
    return audio.apply_gain(gain)


def silence(milliseconds: int) -> AudioSegment:
    return AudioSegment.silent(duration=milliseconds, frame_rate=TELEPHONE_FRAME_RATE).set_sample_width(
        TELEPHONE_SAMPLE_WIDTH
    )


def read_wav(path: Path) -> AudioSegment:
    """A WAV file as a segment, decoded by pydub's pure-Python reader (never ffmpeg).

    Raises CouldntDecodeError on a file that is not PCM WAV."""
    return AudioSegment(data=Path(path).read_bytes())


def wav_duration_s(path: Path) -> float:
    """Duration from the WAV header; raises wave.Error/EOFError on a damaged file."""
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def write_wav_atomically(audio: AudioSegment, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename over `path`.

    Rename is atomic on POSIX, so another process rendering the same prompt at the same
    time, or a player opening it, sees either no file or a whole one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            with wave.open(handle, "wb") as wav:
                wav.setnchannels(audio.channels)
                wav.setsampwidth(audio.sample_width)
                wav.setframerate(audio.frame_rate)
                wav.writeframes(audio.raw_data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = [
    "AudioSegment",
    "CouldntDecodeError",
    "TARGET_ACTIVE_DBFS",
    "PEAK_CEILING_DBFS",
    "TELEPHONE_FRAME_RATE",
    "to_telephone_audio",
    "low_pass",
    "trim_edge_silence",
    "active_level_dbfs",
    "normalise_loudness",
    "silence",
    "read_wav",
    "wav_duration_s",
    "write_wav_atomically",
]
