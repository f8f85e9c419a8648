"""Which script step a bot line came from, when a transcript has only the text.

The script's response templates (name → texts with `{slot}` holes) are passed in as
plain data, so this module never reads the Rasa domain itself. A template becomes a
regular expression where each slot matches any text; a rendered line is matched
against every template. Several script lines may be spoken as one bot turn (the
pitch followed by the WeCom question), so the *last* matching template in the text
is the step the callee answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_SLOT = re.compile(r"\{[^{}]+\}")
_PUNCTUATION = re.compile(r"[\s，。！？、,.!?：:；;“”\"'…]+")


def _normalise(text: str) -> str:
    # TTS scripts and logs differ in punctuation and spacing, never in words.
    return _PUNCTUATION.sub("", text)


@dataclass(frozen=True)
class ScriptLines:
    """Compiled templates: name → patterns, ready to match rendered bot lines."""

    patterns: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def from_templates(cls, templates: Mapping[str, Iterable[str]]) -> ScriptLines:
        compiled: list[tuple[str, re.Pattern[str]]] = []
        for name, texts in templates.items():
            for text in texts:
                pieces = _SLOT.split(_normalise(text))
                if not "".join(pieces):
                    continue  # a template made only of slots would match anything
                compiled.append((name, re.compile(".{0,40}?".join(re.escape(p) for p in pieces))))
        return cls(tuple(compiled))

    def step_of(self, text: str) -> str | None:
        """The script response a bot line ends with (None if no template matches)."""
        line = _normalise(text)
        best: tuple[int, int, str] | None = None  # (end, length, name): latest, then longest
        for name, pattern in self.patterns:
            for match in pattern.finditer(line):
                candidate = (match.end(), match.end() - match.start(), name)
                if best is None or candidate[:2] > best[:2]:
                    best = candidate
        return best[2] if best else None


NO_SCRIPT = ScriptLines(())
