"""Audio for a call's script lines, for carriers that play files (FreeSWITCH).

Each line is rendered from its template for the call's variant and add mode with the call's slot
values, so the fixed parts are synthesised once per campaign and only the callee's
title is new per call (the renderer caches segments and whole lines).
"""

from __future__ import annotations

from pathlib import Path

from bot.conversation.agent import BotLine
from bot.conversation.session import LeadContext
from bot.script.script_lines import ScriptDomain
from telephony.prompts import PromptRenderer


class CallPrompts:
    def __init__(self, renderer: PromptRenderer, domain: ScriptDomain) -> None:
        self.renderer = renderer
        self.domain = domain
        self._templates: dict[tuple[str, str], dict[str, str]] = {}

    def for_call(self, lead: LeadContext):
        """A function BotLine → WAV path for one call."""
        templates = self._templates_for(lead.script_variant, lead.add_mode)
        slots = {**self.domain.sample_slots(lead.script_variant, lead.add_mode), **lead.slots()}

        def audio_for(line: BotLine) -> str:
            template = templates.get(line.response)
            # A line without a single template (several variations) is rendered as said.
            rendered = (
                self.renderer.render_line(template, slots) if template else self.renderer.render_line(line.text, {})
            )
            return str(Path(rendered.path))

        return audio_for

    def _templates_for(self, variant: str, add_mode: str) -> dict[str, str]:
        key = (variant, add_mode)
        if key not in self._templates:
            self._templates[key] = {
                line.response: line.template
                for line in self.domain.lines_for_variant(variant, add_mode)
                if "#" not in line.response
            }
        return self._templates[key]
