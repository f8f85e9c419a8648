"""Audio for a call's lines: the variant's template with the call's slots, rendered once."""
from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from bot.dialing.call_prompts import CallPrompts
from bot.conversation.agent import BotLine
from bot.conversation.session import LeadContext
from bot.script.project import DialogsProject
from bot.script.script_lines import load_script_domain
from bot.core.settings import PROJECT_ROOT
from telephony.prompts import EspeakNgProvider, PromptRenderer

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (make setup)")


class CountingProvider(EspeakNgProvider):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def synthesize(self, text: str):
        self.texts.append(text)
        return super().synthesize(text)


def test_lines_are_rendered_per_variant_and_reused(tmp_path: Path) -> None:
    provider = CountingProvider()
    prompts = CallPrompts(PromptRenderer(provider, tmp_path), load_script_domain(DialogsProject(PROJECT_ROOT / "dialogs")))
    wang = prompts.for_call(LeadContext(surname="王", gender="M", script_variant="standard"))
    li = prompts.for_call(LeadContext(surname="李", gender="F", script_variant="benefit_first"))

    opening = Path(wang(BotLine("utter_opening", "…")))
    with wave.open(str(opening)) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2)
    assert "王先生" in provider.texts
    assert Path(li(BotLine("utter_opening", "…"))) != opening  # another variant, another title
    before = len(provider.texts)
    again = prompts.for_call(LeadContext(surname="王", gender="M", script_variant="standard"))
    assert Path(again(BotLine("utter_opening", "…"))) == opening
    assert len(provider.texts) == before  # the whole line came from the cache
    # a line with no template (Rasa's default fallback) is rendered as said
    assert Path(wang(BotLine("utter_unknown", "不好意思我没听清"))).exists()
