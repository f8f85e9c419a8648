"""Text-to-speech providers: one small interface, espeak-ng as the default engine.

A cloud TTS joins later behind the same `TtsProvider` protocol; the renderer only
needs a name and a voice (for the cache key) and `synthesize(text)`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

from telephony.prompts.audio import AudioSegment, CouldntDecodeError, read_wav

# Mandarin with Latin letters read as pinyin. Han characters are looked up in
# espeak-ng's cmn_dict (character → pinyin with tone), so script lines go in as they
# are written; the plain `cmn` voice would read that pinyin, and any Latin text, with
# English letter-to-sound rules.
DEFAULT_ESPEAK_VOICE = "cmn-latn-pinyin"
ESPEAK_TIMEOUT_S = 60

# Upper-case Latin runs (AI, APP, VIP, ID) that are not the start of a capitalised
# pinyin word. Glued to Han text, this voice reads "AI" as the syllable "ài" (爱) and
# "VIP" as an English word; one letter per word makes it spell them out ("A I").
_ACRONYM = re.compile(r"(?<![A-Za-z])[A-Z]+(?![a-z])")


class TtsUnavailableError(RuntimeError):
    """The TTS engine cannot run on this machine (not installed, wrong path)."""


class TtsError(RuntimeError):
    """The TTS engine ran but did not produce audio."""


@runtime_checkable
class TtsProvider(Protocol):
    name: str
    voice: str

    def synthesize(self, text: str) -> AudioSegment:
        """Speech for `text` as a PCM segment, at whatever rate the engine produces."""
        ...


def spell_out_acronyms(text: str) -> str:
    return _ACRONYM.sub(lambda match: " " + " ".join(match.group()) + " ", text)


class EspeakNgProvider:
    """espeak-ng run as a program, one process per text (about 20–50 ms each)."""

    name = "espeak-ng"

    def __init__(self, voice: str = DEFAULT_ESPEAK_VOICE, program: str = "espeak-ng") -> None:
        self.voice = voice
        self.program = program

    def executable(self) -> str:
        found = shutil.which(self.program)
        if found is None:
            raise TtsUnavailableError(
                f"espeak-ng is not installed (no program '{self.program}' found); audio prompts need it. "
                "Install it with `apt-get install espeak-ng` (Debian/Ubuntu, as root) or run `make setup`."
            )
        return found

    def synthesize(self, text: str) -> AudioSegment:
        executable = self.executable()
        with tempfile.TemporaryDirectory(prefix="waihu-tts-") as folder:
            wav_path = Path(folder) / "speech.wav"
            # Text goes in on stdin as UTF-8 (-b 1): a line starting with "-" is never
            # taken for an option, and no locale guessing is involved.
            result = subprocess.run(
                [executable, "-v", self.voice, "-b", "1", "-w", str(wav_path)],
                input=spell_out_acronyms(text).encode("utf-8"),
                capture_output=True,
                timeout=ESPEAK_TIMEOUT_S,
            )
            problem = result.stderr.decode("utf-8", "replace").strip()
            if result.returncode != 0 or not wav_path.exists():
                raise TtsError(
                    f"espeak-ng (voice {self.voice}) failed with exit code {result.returncode} "
                    f"on {text!r}: {problem or 'no message'}"
                )
            try:
                return read_wav(wav_path)
            except CouldntDecodeError as exc:
                raise TtsError(
                    f"espeak-ng (voice {self.voice}) wrote audio that is not PCM WAV for {text!r}: {exc}"
                ) from exc

    def __repr__(self) -> str:
        return f"EspeakNgProvider(voice={self.voice!r}, program={self.program!r})"
