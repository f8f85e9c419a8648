"""Checks on the script writers' files that Rasa does not make, with file and line.

Rasa validates structure; this lint knows the product: every response slot exists, the
opening carries the compliance elements, closing lines carry the AI label, the robot
never denies being a robot, every callee intent is handled, TTS lines are neither empty
nor too long, each script variant has all of its lines, and no line promises an add
mode (who adds whom on WeCom) that the call does not use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.core.add_modes import ADD_MODE_SLOT, ADVISOR_ADDS, CALLBACK, LINK, SCRIPT_ADD_MODES
from bot.script.project import DialogsProject
from bot.script.regex_safety import check_project_regexes
from intents.taxonomy import CALL_START_INTENT, CALLEE_INTENTS, FALLBACK_INTENT, SYSTEM_INTENTS
from intents.yaml_source import YamlError, YamlSyntaxError, line_of, load_yaml

Severity = Literal["error", "warning"]

# The default TTS (espeak-ng cmn-latn-pinyin) says about 3.8 characters a second (measured
# with `waihu prompts render`); a prompt over 15 s loses the callee.
TTS_CHARS_PER_SECOND = 3.8
MAX_TTS_SECONDS = 15.0
TYPICAL_SLOT_CHARS = 6
MIN_EXAMPLES_PER_INTENT = 40

# Responses the call runtime says by itself (not through rules or stories).
RUNTIME_RESPONSES = frozenset(
    {"utter_reprompt_silence", "utter_close_silence", "utter_default", "utter_handoff_failed"}
)
# faq/claims: a retrieval intent (`faq` in the domain) and its topic; answered by utter_faq/claims.
RETRIEVAL_SEPARATOR = "/"
RASA_DEFAULT_ACTIONS = frozenset(
    {
        "action_listen",
        "action_restart",
        "action_session_start",
        "action_default_fallback",
        "action_deactivate_loop",
        "action_revert_fallback_events",
        "action_default_ask_affirmation",
        "action_default_ask_rephrase",
        "action_two_stage_fallback",
        "action_unlikely_intent",
        "action_back",
        "action_extract_slots",
    }
)

AI_WORD = re.compile(r"人工智能|AI|ai")
SYNTHESIS_WORD = re.compile(r"合成|生成")
# Compliance elements of the opening (DESIGN.md, GB 45438-2025, 保险销售行为管理办法 Art 24).
OPENING_ELEMENTS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("the institution", re.compile(r"\{institution\}|平台|公司"), "name the institution ({institution})"),
    ("the purpose (insurance)", re.compile(r"保险|保障"), "say the call is about insurance"),
    ("the recording notice", re.compile(r"录音"), "say the call is recorded (录音)"),
    (
        "how to opt out",
        re.compile(r"不要再打|别再打|退订|拒绝|不需要"),
        "tell the callee how to opt out (e.g. 说“不要再打”)",
    ),
)
# What a line may not promise in each add mode (bot.core.add_modes): (words, the promise, the fix).
ADD_MODE_PROMISES: dict[str, tuple[re.Pattern[str], str, str]] = {
    LINK: (
        re.compile(r"(顾问|\{advisor\}).{0,8}?(加您|添加您)|用您(现在)?(这个)?手机号"),
        "that the advisor adds the callee",
        "in link mode the callee adds the advisor from the SMS link: say so (e.g. 我给您发一条短信，点开链接就能添加顾问的企业微信)",
    ),
    ADVISOR_ADDS: (
        re.compile(r"短信"),
        "an SMS",
        "in advisor_adds mode no SMS is sent: the advisor adds the callee's mobile number in WeCom",
    ),
    CALLBACK: (
        re.compile(r"企业微信|微信|短信|链接|加您|添加您"),
        "WeCom, an SMS or a link",
        "a landline callee cannot be added on WeCom: give the response a variation with condition "
        "add_mode: callback that promises the advisor's call back (顾问给您回电话)",
    ),
}
DENIES_ROBOT = re.compile(r"我(不是|并不是|可不是)(机器人|AI|人工智能|录音)|我是真人")
SLOT_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class _Located:
    value: Any
    file: Path
    line: int | None


@dataclass
class _Domain:
    intents: dict[str, _Located] = field(default_factory=dict)
    slots: dict[str, _Located] = field(default_factory=dict)
    responses: dict[str, _Located] = field(default_factory=dict)
    actions: dict[str, _Located] = field(default_factory=dict)


class _Linter:
    def __init__(self, project: DialogsProject) -> None:
        self.project = project
        self.problems: list[Problem] = []
        self.docs: dict[Path, Any] = {}

    # -- reporting -----------------------------------------------------------------
    def error(self, file: Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.project.relative(file), line, message, "error"))

    def warn(self, file: Path, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.project.relative(file), line, message, "warning"))

    # -- loading -------------------------------------------------------------------
    def read_files(self) -> bool:
        """Every YAML file of the project, through the shared loader (line numbers, no
        duplicate keys); False when one cannot be read, so no check runs on a partial project."""
        ok = True
        for path in self.project.yaml_files():
            try:
                self.docs[path] = load_yaml(path) or {}
            except YamlSyntaxError as exc:
                self.error(
                    path, exc.finding.line, f"malformed YAML: {exc.problem}. Fix the indentation or quoting there."
                )
                ok = False
            except YamlError as exc:
                for finding in exc.findings:
                    self.error(path, finding.line, finding.message)
                ok = False
        return ok

    def domain(self) -> _Domain:
        dom = _Domain()
        for path, doc in self._docs_under(self.project.domain_dir):
            for item, line in _seq_items(doc.get("intents")):
                name = next(iter(item)) if isinstance(item, dict) else str(item)
                dom.intents[name] = _Located(item, path, line)
            for section, target in (("slots", dom.slots), ("responses", dom.responses)):
                for key, value, line in _map_items(doc.get(section)):
                    if key in target and section == "responses":
                        other = target[key]
                        self.error(
                            path,
                            line,
                            f"response '{key}' is defined twice (also "
                            f"{self.project.relative(other.file)}:{other.line}); keep one.",
                        )
                    target[key] = _Located(value, path, line)
            for item, line in _seq_items(doc.get("actions")):
                dom.actions[str(item)] = _Located(item, path, line)
        return dom

    def _docs_under(self, folder: Path) -> Iterator[tuple[Path, Any]]:
        for path, doc in self.docs.items():
            if folder in path.parents and hasattr(doc, "get"):
                yield path, doc

    # -- checks --------------------------------------------------------------------
    def check_responses(self, dom: _Domain) -> None:
        for name, located in dom.responses.items():
            variations = list(_seq_items(located.value))
            if not variations:
                self.error(located.file, located.line, f"response '{name}' has no text; add `- text: ...`.")
            for variation, line in variations:
                text = variation.get("text") if hasattr(variation, "get") else None
                line = line_of(variation, "text") or line
                if not isinstance(text, str) or not text.strip():
                    self.error(
                        located.file, line, f"response '{name}' has an empty line; the callee would hear silence."
                    )
                    continue
                for slot in SLOT_PLACEHOLDER.findall(text):
                    if slot not in dom.slots:
                        self.error(
                            located.file,
                            line,
                            f"response '{name}' uses {{{slot}}}, which is not a slot; "
                            "define it under `slots:` in dialogs/domain or fix the name.",
                        )
                seconds = _spoken_seconds(text)
                if seconds > MAX_TTS_SECONDS:
                    self.error(
                        located.file,
                        line,
                        f"response '{name}' is too long to say (≈{seconds:.0f} s, limit "
                        f"{MAX_TTS_SECONDS:.0f} s); split it into two responses.",
                    )
                if DENIES_ROBOT.search(text):
                    self.error(
                        located.file,
                        line,
                        f"response '{name}' denies being a robot; the robot must always say it is an AI when asked.",
                    )
                if name.startswith("utter_close_") and not _has_ai_label(text):
                    self.error(
                        located.file,
                        line,
                        f"closing line '{name}' lacks the AI label: say "
                        "人工智能/AI and 合成/生成 (e.g. 本次通话由AI合成语音完成).",
                    )

    def check_opening(self, dom: _Domain) -> None:
        opening = dom.responses.get("utter_opening")
        if opening is None:
            self.error(
                self.project.domain_dir, None, "no 'utter_opening' response: the call needs a compliant opening line."
            )
            return
        for variation, line in _seq_items(opening.value):
            text = (variation.get("text") if hasattr(variation, "get") else "") or ""
            line = line_of(variation, "text") or line
            variant = _variant_of(variation) or "default"
            if not _has_ai_label(text):
                self.error(
                    opening.file,
                    line,
                    f"opening ({variant}) lacks the AI label: it must say 人工智能/AI and 合成/生成 (GB 45438-2025).",
                )
            for element, pattern, fix in OPENING_ELEMENTS:
                if not pattern.search(text):
                    self.error(opening.file, line, f"opening ({variant}) lacks {element}: {fix}.")

    def check_variants(self, dom: _Domain) -> None:
        slot = dom.slots.get("script_variant")
        if slot is None:
            return
        values = [str(v) for v in (slot.value.get("values") or [])] if hasattr(slot.value, "get") else []
        for name, located in dom.responses.items():
            variations = [v for v, _ in _seq_items(located.value)]
            covered = {_variant_of(v) for v in variations} - {None}
            if not covered:
                continue
            for unknown in sorted(str(v) for v in covered - set(values)):
                self.error(
                    located.file,
                    located.line,
                    f"response '{name}' has a line for variant '{unknown}', "
                    f"which is not among script_variant values ({', '.join(values)}).",
                )
            for missing in [v for v in values if v not in covered]:
                self.error(
                    located.file,
                    located.line,
                    f"response '{name}' has no line for script variant "
                    f"'{missing}'; add a variation with a script_variant condition.",
                )

    def check_add_modes(self, dom: _Domain) -> None:
        """What the robot promises about WeCom must be what the call's add mode does: no
        "the advisor adds you" in `link` mode, no SMS in `advisor_adds`, and no WeCom at all
        to a landline (`callback`). Checked on the line Rasa would say for every script
        variant × add mode (a mode without its own variation says the unconditioned one)."""
        variants: list[str | None] = list(_slot_values(dom, "script_variant")) or [None]
        declared = _slot_values(dom, ADD_MODE_SLOT)
        reported: set[tuple[Path, int | None, str]] = set()
        for name, located in dom.responses.items():
            variations = list(_seq_items(located.value))
            for variation, line in variations:
                used = _condition_value(variation, ADD_MODE_SLOT)
                if used is not None and used not in SCRIPT_ADD_MODES:
                    self.error(
                        located.file,
                        line_of(variation, "condition") or line,
                        f"response '{name}' has a line for add mode '{used}'; the modes are {', '.join(SCRIPT_ADD_MODES)}.",
                    )
            for variant in variants:
                for mode in SCRIPT_ADD_MODES:
                    if declared and mode not in declared:
                        continue
                    for variation, line in _said_in(variations, variant, mode):
                        text = (variation.get("text") if hasattr(variation, "get") else "") or ""
                        line = line_of(variation, "text") or line
                        pattern, promise, fix = ADD_MODE_PROMISES[mode]
                        if not isinstance(text, str) or not pattern.search(text):
                            continue
                        if (located.file, line, mode) in reported:
                            continue
                        reported.add((located.file, line, mode))
                        where = f"{variant}, " if variant else ""
                        self.error(
                            located.file,
                            line,
                            f"response '{name}' ({where}add mode {mode}) promises {promise}, which the "
                            f"{mode} mode does not do; {fix}.",
                        )

    def check_intents(self, dom: _Domain) -> None:
        domain_file = self.project.domain_dir
        missing: set[str] = set()
        for intent in CALLEE_INTENTS:
            base, _, topic = intent.partition(RETRIEVAL_SEPARATOR)
            if base not in dom.intents:
                if base in missing:
                    continue
                missing.add(base)
                self.error(
                    domain_file,
                    None,
                    f"callee intent '{base}' is missing from the domain's intents "
                    "(the taxonomy in intents/taxonomy.py); add it.",
                )
            elif topic and f"utter_{intent}" not in dom.responses:
                self.error(
                    domain_file,
                    None,
                    f"FAQ topic '{intent}' has no answer; add the response 'utter_{intent}' in dialogs/domain.",
                )
        retrieval = {i.partition(RETRIEVAL_SEPARATOR)[0] for i in CALLEE_INTENTS if RETRIEVAL_SEPARATOR in i}
        for name, located in dom.intents.items():
            if (
                name not in CALLEE_INTENTS
                and name not in retrieval
                and name not in SYSTEM_INTENTS
                and name != CALL_START_INTENT
            ):
                self.warn(
                    located.file,
                    located.line,
                    f"intent '{name}' is not in the callee taxonomy (intents/taxonomy.py); grading will not know it.",
                )

    def check_flows(self, dom: _Domain) -> None:
        known_intents = set(dom.intents) | {FALLBACK_INTENT}
        # A retrieval intent's answers (utter_faq/claims …) are said by its action, utter_faq.
        retrieval_actions = {
            name.partition(RETRIEVAL_SEPARATOR)[0] for name in dom.responses if RETRIEVAL_SEPARATOR in name
        }
        known_actions = set(dom.responses) | set(dom.actions) | RASA_DEFAULT_ACTIONS | retrieval_actions
        handled: set[str] = set()
        used_responses: set[str] = set()
        flow_docs = list(self._docs_under(self.project.data_dir)) + list(self._docs_under(self.project.tests_dir))
        for path, doc in flow_docs:
            for section in ("rules", "stories"):
                for flow, _ in _seq_items(doc.get(section)):
                    for step, line in _seq_items(flow.get("steps") if hasattr(flow, "get") else None):
                        if not hasattr(step, "get"):
                            continue
                        intent, action = step.get("intent"), step.get("action")
                        if intent is not None:
                            line = line_of(step, "intent") or line
                            base = str(intent).partition(RETRIEVAL_SEPARATOR)[0]  # faq/claims → faq
                            if base not in known_intents:
                                self.error(
                                    path,
                                    line,
                                    f"unknown intent '{intent}'; it is not in the domain's "
                                    "intents. Fix the name or add the intent to dialogs/domain.",
                                )
                            elif self.project.tests_dir not in path.parents:
                                handled.add(base)
                        if action is not None:
                            line = line_of(step, "action") or line
                            if action not in known_actions:
                                self.error(
                                    path,
                                    line,
                                    f"unknown action '{action}'; define a response with "
                                    "that name in dialogs/domain or fix the name.",
                                )
                            used_responses.add(action)
                        for slot_event, slot_line in _seq_items(step.get("slot_was_set")):
                            slot = next(iter(slot_event)) if hasattr(slot_event, "keys") else str(slot_event)
                            if slot not in dom.slots:
                                self.error(path, slot_line or line, f"unknown slot '{slot}' in slot_was_set.")
        for intent, located in dom.intents.items():
            if intent not in handled and intent != FALLBACK_INTENT:
                self.error(
                    located.file,
                    located.line,
                    f"intent '{intent}' is never handled: no rule or story "
                    "uses it. Add a rule in dialogs/data/rules.yml.",
                )
        if FALLBACK_INTENT not in handled:
            self.warn(self.project.data_dir, None, "no rule handles nlu_fallback (unclear replies).")
        for name, located in dom.responses.items():
            if name.partition(RETRIEVAL_SEPARATOR)[0] in used_responses:
                continue
            if name not in used_responses and name not in RUNTIME_RESPONSES:
                self.warn(located.file, located.line, f"response '{name}' is never used by a rule or story.")

    def check_nlu(self, dom: _Domain) -> None:
        counts: dict[str, int] = {}
        seen: dict[str, tuple[str, Path, int | None]] = {}
        nlu_docs = [(p, d) for p, d in self._docs_under(self.project.data_dir) if d.get("nlu") is not None]
        for path, doc in nlu_docs:
            for block, block_line in _seq_items(doc.get("nlu")):
                if not hasattr(block, "get") or "intent" not in block:
                    continue
                intent = str(block["intent"])
                if intent.partition(RETRIEVAL_SEPARATOR)[0] not in dom.intents:
                    self.error(
                        path,
                        line_of(block, "intent") or block_line,
                        f"NLU examples for unknown intent '{intent}'; add it to the domain or fix the name.",
                    )
                examples_line = line_of(block, "examples") or block_line
                for offset, example in _examples(block.get("examples")):
                    line = examples_line + 1 + offset if examples_line else None
                    counts[intent] = counts.get(intent, 0) + 1
                    previous = seen.get(example)
                    if previous and previous[0] != intent:
                        self.error(
                            path,
                            line,
                            f"example '{example}' is labelled '{intent}' here and "
                            f"'{previous[0]}' at {self.project.relative(previous[1])}:{previous[2]}; keep one label.",
                        )
                    elif previous:
                        self.warn(path, line, f"example '{example}' repeats an earlier one for '{intent}'.")
                    else:
                        seen[example] = (intent, path, line)
        labels = [i for i in dom.intents if i != CALL_START_INTENT and i not in SYSTEM_INTENTS]
        labels = [
            topic for i in labels for topic in ([t for t in counts if t.startswith(i + RETRIEVAL_SEPARATOR)] or [i])
        ]
        for intent in labels:
            n = counts.get(intent, 0)
            if n < MIN_EXAMPLES_PER_INTENT:
                self.warn(
                    self.project.data_dir / "nlu",
                    None,
                    f"intent '{intent}' has {n} NLU examples; write at least {MIN_EXAMPLES_PER_INTENT} varied ones.",
                )

    def check_config(self) -> None:
        doc = self.docs.get(self.project.config_file) or {}
        if str(doc.get("language", "")) != "zh":
            self.error(self.project.config_file, line_of(doc, "language"), "language must be 'zh' for Mandarin calls.")
        for component, line in _seq_items(doc.get("pipeline")):
            if not hasattr(component, "get"):
                continue
            name = component.get("name")
            if name in ("RegexFeaturizer", "RegexEntityExtractor") and component.get("use_word_boundaries", True):
                self.error(
                    self.project.config_file, line, f"{name} needs `use_word_boundaries: false` for Chinese text."
                )
            if name == "JiebaTokenizer" and component.get("dictionary_path"):
                folder = self.project.root / str(component["dictionary_path"])
                if not folder.is_dir():
                    self.error(
                        self.project.config_file,
                        line_of(component, "dictionary_path") or line,
                        f"JiebaTokenizer dictionary_path '{component['dictionary_path']}' must be a folder "
                        "(relative to dialogs/) holding jieba dictionary files.",
                    )


def lint_project(project: DialogsProject) -> list[Problem]:
    """Every problem found in dialogs/, errors first, each with file and line."""
    project.check_layout()
    linter = _Linter(project)
    if linter.read_files():
        dom = linter.domain()
        linter.check_config()
        linter.check_responses(dom)
        linter.check_opening(dom)
        linter.check_variants(dom)
        linter.check_add_modes(dom)
        linter.check_intents(dom)
        linter.check_flows(dom)
        linter.check_nlu(dom)
        linter.problems += [
            Problem(project.relative(p.file), p.line, p.message) for p in check_project_regexes(project)
        ]
    return sorted(linter.problems, key=lambda p: (p.severity != "error", p.file, p.line or 0))


# -- helpers -------------------------------------------------------------------------
def _seq_items(seq: Any) -> Iterator[tuple[Any, int | None]]:
    """(item, its line) for a YAML list; nothing for anything else."""
    if not isinstance(seq, list):
        return
    for index, item in enumerate(seq):
        yield item, line_of(seq, index)


def _map_items(mapping: Any) -> Iterator[tuple[str, Any, int | None]]:
    """(key, value, the key's line) for a YAML mapping; nothing for anything else."""
    if not hasattr(mapping, "items"):
        return
    for key, value in mapping.items():
        yield str(key), value, line_of(mapping, key)


def _examples(block: Any) -> list[tuple[int, str]]:
    """(line offset inside the block, example text) for each `- example` line."""
    if not isinstance(block, str):
        return []
    return [(i, line.strip()[2:].strip()) for i, line in enumerate(block.splitlines()) if line.strip().startswith("- ")]


def _variant_of(variation: Any) -> str | None:
    conditions = variation.get("condition") if hasattr(variation, "get") else None
    for condition in conditions or []:
        if hasattr(condition, "get") and condition.get("name") == "script_variant":
            return str(condition.get("value"))
    return None


def _slot_values(dom: _Domain, slot: str) -> list[str]:
    located = dom.slots.get(slot)
    if located is None or not hasattr(located.value, "get"):
        return []
    return [str(v) for v in (located.value.get("values") or [])]


def _condition_value(variation: Any, slot: str) -> str | None:
    conditions = variation.get("condition") if hasattr(variation, "get") else None
    for condition in conditions or []:
        if hasattr(condition, "get") and condition.get("name") == slot:
            return str(condition.get("value"))
    return None


def _said_in(variations: list[tuple[Any, int | None]], variant: str | None, mode: str) -> list[tuple[Any, int | None]]:
    """The variations Rasa chooses from for a call with this variant and add mode: those
    whose slot conditions all hold, else the unconditioned ones."""
    call_slots = {"script_variant": variant, ADD_MODE_SLOT: mode}

    def conditions(variation: Any) -> list[Any]:
        found = variation.get("condition") if hasattr(variation, "get") else None
        return list(found or [])

    def holds(variation: Any) -> bool:
        return all(
            hasattr(c, "get") and call_slots.get(str(c.get("name"))) == str(c.get("value"))
            for c in conditions(variation)
        )

    matching = [(v, line) for v, line in variations if conditions(v) and holds(v)]
    return matching or [(v, line) for v, line in variations if not conditions(v)]


def _has_ai_label(text: str) -> bool:
    return bool(AI_WORD.search(text) and SYNTHESIS_WORD.search(text))


def _spoken_seconds(text: str) -> float:
    spoken = SLOT_PLACEHOLDER.sub("x" * TYPICAL_SLOT_CHARS, text)
    spoken = re.sub(r"[\s，。、！？“”,.!?:：;；]", "", spoken)
    return len(spoken) / TTS_CHARS_PER_SECOND
