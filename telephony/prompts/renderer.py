"""Render script lines to telephone WAV prompts, each piece synthesized once and cached.

A script line is a Rasa response template, "{callee_title}您好，我是{institution}的AI客服…".
It is split into fixed-text pieces and slot pieces; every piece is synthesized and
cached on its own (key: provider, voice, text, recipe version), so a campaign that
calls ten thousand people with a hundred surnames synthesizes the fixed text once and
each surname once. The joined, normalised line is cached too, so a repeat render
is one file-exists check.

Cache layout under cache_dir: segments/<sha256>.wav and lines/<sha256>.wav, all 8 kHz
mono 16-bit PCM. Files are written to a temporary name and renamed, so concurrent
renderers (several dial workers, a CLI pre-render) never see or leave a torn file.
"""

from __future__ import annotations

import hashlib
import json
import re
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from telephony.prompts.audio import (
    AudioSegment,
    CouldntDecodeError,
    normalise_loudness,
    read_wav,
    silence,
    to_telephone_audio,
    trim_edge_silence,
    wav_duration_s,
    write_wav_atomically,
)
from telephony.prompts.tts import TtsProvider

# Bump whenever anything that shapes the audio changes (espeak input rewriting,
# filter, loudness target, pauses): old cache entries are then simply not found.
RENDER_RECIPE_VERSION = "1"

# A line the callee has to sit through for more than 15 s invites talk-over and
# hang-ups (the limit); such lines are flagged for the script writers.
LONG_PROMPT_SECONDS = 15.0

# Pauses where two separately synthesized pieces meet: a breath at a comma or full
# stop, and only a short gap inside a phrase ("我是|安心保险服务平台|的AI客服"), where
# a real speaker does not pause at all but synthetic pieces need a clean joint.
CLAUSE_PAUSE_MS = 250
JOINT_PAUSE_MS = 60
CLAUSE_PUNCTUATION = set("，。？！、；：…—,.?!;:")

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PromptTemplateError(ValueError):
    """A template that cannot be rendered with the slot values given."""


@dataclass(frozen=True)
class TemplatePiece:
    text: str
    slot: Optional[str] = None  # the slot this text came from; None for fixed text

    @property
    def is_spoken(self) -> bool:
        """Pieces that are only punctuation ("，") make a pause, not a synthesis call."""
        return any(ch.isalnum() for ch in self.text)


@dataclass(frozen=True)
class RenderedSegment:
    text: str
    slot: Optional[str]
    path: Optional[Path]  # None for a punctuation-only piece
    duration_s: float
    cached: bool  # True: taken from the cache, no TTS call


@dataclass(frozen=True)
class RenderedPrompt:
    path: Path
    duration_s: float
    segments: tuple[RenderedSegment, ...]
    cached: bool  # True: the joined line came from the cache

    @property
    def is_long(self) -> bool:
        return self.duration_s > LONG_PROMPT_SECONDS


def split_template(template: str, slots: Mapping[str, object]) -> list[TemplatePiece]:
    """Fixed text and slot values, in order; empty pieces dropped."""
    pieces: list[TemplatePiece] = []
    position = 0
    for match in _SLOT.finditer(template):
        if match.start() > position:
            pieces.append(TemplatePiece(template[position : match.start()]))
        name = match.group(1)
        if name not in slots or slots[name] is None:
            raise PromptTemplateError(f"the line needs a value for slot '{name}': {template!r}")
        value = str(slots[name])
        if value:
            pieces.append(TemplatePiece(value, slot=name))
        position = match.end()
    if position < len(template):
        pieces.append(TemplatePiece(template[position:]))
    if not any(piece.is_spoken for piece in pieces):
        raise PromptTemplateError(f"nothing to say in {template!r}")
    return pieces


class PromptRenderer:
    def __init__(self, provider: TtsProvider, cache_dir: Path) -> None:
        self.provider = provider
        self.cache_dir = Path(cache_dir)

    def render_line(self, template: str, slots: Mapping[str, object]) -> RenderedPrompt:
        pieces = split_template(template, slots)
        line_path = self.cache_dir / "lines" / f"{self._key('line', *[p.text for p in pieces])}.wav"
        cached_duration = _readable_duration(line_path)
        if cached_duration is not None:
            segments = tuple(self._cached_segment(piece) for piece in pieces)
            return RenderedPrompt(line_path, cached_duration, segments, cached=True)

        rendered = [self._render_segment(piece) for piece in pieces]
        line = normalise_loudness(_join(pieces, [audio for _, audio in rendered]))
        write_wav_atomically(line, line_path)
        return RenderedPrompt(line_path, _seconds(line), tuple(segment for segment, _ in rendered), cached=False)

    def segment_path(self, text: str) -> Path:
        return self.cache_dir / "segments" / f"{self._key('segment', text)}.wav"

    def _key(self, kind: str, *texts: str) -> str:
        identity = [RENDER_RECIPE_VERSION, self.provider.name, self.provider.voice, kind, *texts]
        return hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode("utf-8")).hexdigest()

    def _cached_segment(self, piece: TemplatePiece) -> RenderedSegment:
        if not piece.is_spoken:
            return RenderedSegment(piece.text, piece.slot, None, 0.0, cached=True)
        path = self.segment_path(piece.text)
        duration = _readable_duration(path)
        return RenderedSegment(piece.text, piece.slot, path, duration or 0.0, cached=duration is not None)

    def _render_segment(self, piece: TemplatePiece) -> tuple[RenderedSegment, Optional[AudioSegment]]:
        if not piece.is_spoken:
            return RenderedSegment(piece.text, piece.slot, None, 0.0, cached=True), None
        path = self.segment_path(piece.text)
        audio = _read_cached(path)
        cached = audio is not None
        if audio is None:
            speech = to_telephone_audio(self.provider.synthesize(piece.text.strip()))
            # Each piece at the target level first, so a slot value and the fixed text
            # around it sound equally loud whatever the engine produced.
            audio = normalise_loudness(trim_edge_silence(speech))
            write_wav_atomically(audio, path)
        return RenderedSegment(piece.text, piece.slot, path, _seconds(audio), cached), audio


def _join(pieces: list[TemplatePiece], audios: list[Optional[AudioSegment]]) -> AudioSegment:
    line = silence(0)
    previous_spoken: Optional[TemplatePiece] = None
    punctuation_between = False
    for piece, audio in zip(pieces, audios):
        if audio is None:
            punctuation_between = punctuation_between or any(ch in CLAUSE_PUNCTUATION for ch in piece.text)
            continue
        if previous_spoken is not None:
            clause_break = (
                punctuation_between
                or previous_spoken.text.rstrip()[-1:] in CLAUSE_PUNCTUATION
                or piece.text.lstrip()[:1] in CLAUSE_PUNCTUATION
            )
            line += silence(CLAUSE_PAUSE_MS if clause_break else JOINT_PAUSE_MS)
        line += audio
        previous_spoken, punctuation_between = piece, False
    return line


def _seconds(audio: AudioSegment) -> float:
    return audio.frame_count() / audio.frame_rate


def _readable_duration(path: Path) -> Optional[float]:
    """Duration of a cached file, or None if it is missing or damaged (then re-render)."""
    try:
        return wav_duration_s(path)
    except (FileNotFoundError, wave.Error, EOFError):
        return None


def _read_cached(path: Path) -> Optional[AudioSegment]:
    try:
        return read_wav(path)
    except (FileNotFoundError, CouldntDecodeError):
        return None
