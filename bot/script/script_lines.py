"""The script's lines per variant, read from dialogs/domain as plain YAML (loading
Rasa's Domain would add ~6 s): what prompt rendering and the dialer's audio need.

A response's variation for a call is the one whose slot conditions all hold for the call's
`script_variant` and `add_mode` (Rasa's rule); the unconditioned one is the default
(dialogs/domain/variants.yml, responses.yml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from bot.core.add_modes import ADD_MODE_SLOT, LINK
from bot.core.errors import UserError
from bot.script.project import DialogsProject

VARIANT_SLOT = "script_variant"
# A typical title the call runtime fills in (surname + 先生/女士); the slot's own
# initial value "您" would make every line shorter than a real call.
SAMPLE_CALLEE_TITLE = "王先生"


@dataclass(frozen=True)
class ScriptLine:
    response: str  # utter_opening; utter_x#2 when a variant has several variations of a response
    template: str


@dataclass(frozen=True)
class ScriptDomain:
    responses: dict[str, list[dict[str, Any]]]
    slots: dict[str, dict[str, Any]]

    def variants(self) -> list[str]:
        """Variants declared on the script_variant slot, then any only used in conditions."""
        declared = list(self.slots.get(VARIANT_SLOT, {}).get("values") or [])
        used = [
            value
            for variations in self.responses.values()
            for v in variations
            if isinstance(value := _variant_condition(v), str)
        ]
        return list(dict.fromkeys([*declared, *used]))

    def sample_slots(self, variant: str, add_mode: str = LINK) -> dict[str, str]:
        values = {
            name: str(spec["initial_value"])
            for name, spec in self.slots.items()
            if isinstance(spec, dict) and spec.get("initial_value") is not None
        }
        return {**values, "callee_title": SAMPLE_CALLEE_TITLE, VARIANT_SLOT: variant, ADD_MODE_SLOT: add_mode}

    def lines_for_variant(self, variant: str, add_mode: str = LINK) -> list[ScriptLine]:
        """What a call with this variant (and add mode) can say, per response, by Rasa's
        choice rule: the variations whose conditions all hold if there are any, else the
        unconditioned ones."""
        call_slots = {VARIANT_SLOT: variant, ADD_MODE_SLOT: add_mode}
        lines: list[ScriptLine] = []
        for response, variations in self.responses.items():
            spoken = [v for v in variations if isinstance(v, dict) and v.get("text")]
            chosen = [v for v in spoken if _conditions(v) and _holds(_conditions(v), call_slots)] or [
                v for v in spoken if not _conditions(v)
            ]
            for number, variation in enumerate(chosen, start=1):
                name = response if len(chosen) == 1 else f"{response}#{number}"
                lines.append(ScriptLine(name, str(variation["text"])))
        return lines


def _conditions(variation: Any) -> list[Any]:
    conditions = variation.get("condition") if isinstance(variation, dict) else None
    return list(conditions or [])


def _holds(conditions: list[Any], slots: dict[str, str]) -> bool:
    """Every slot condition names a slot the call sets, with its value (Rasa's matching)."""
    return all(
        isinstance(c, dict) and c.get("type") == "slot" and slots.get(str(c.get("name"))) == str(c.get("value"))
        for c in conditions
    )


def _variant_condition(variation: Any) -> str | None:
    """The script variant a variation is for (None if it is not conditioned on one)."""
    for condition in _conditions(variation):
        if isinstance(condition, dict) and condition.get("type") == "slot" and condition.get("name") == VARIANT_SLOT:
            return str(condition.get("value"))
    return None


def load_script_domain(project: DialogsProject) -> ScriptDomain:
    project.check_layout()
    responses: dict[str, list[dict[str, Any]]] = {}
    slots: dict[str, dict[str, Any]] = {}
    for path in sorted(project.domain_dir.rglob("*.yml")):
        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{project.relative(path)}: not valid YAML ({exc}). Run `waihu validate`.") from exc
        if not isinstance(content, dict):
            continue
        responses.update(content.get("responses") or {})
        slots.update(content.get("slots") or {})
    if not responses:
        raise UserError(f"{project.relative(project.domain_dir)}: no responses to render.")
    return ScriptDomain(responses, slots)
