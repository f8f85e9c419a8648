"""Training examples from real calls: one tool-owned NLU file the review queue writes into.

A script writer labels a caller turn the model was unsure about; its (masked) text becomes an
example in `dialogs/data/nlu/from_calls.yml` for the next training. Three rules keep the
figures honest:

* never a line of a test file (`dialogs/tests/*.yml`): the NLU figures are measured on them,
  and a trained-on test line would inflate them (refused, naming the file and line);
* never a second copy of an example any training file already has (compared after
  normalising width, case, spaces and punctuation), whatever its label;
* only an intent the domain declares (retrieval intents by topic: `faq/claims`).

The file is rewritten whole, one block per intent, intents and examples sorted, so a diff
shows exactly the examples added; the write is atomic (a temporary file, then a rename).
Callers hold the script edit lock around `add_example` and `remove_examples` (the console's
editor saves under it). `remove_examples` takes an erased person's words out again
(`waihu leads forget`, bot.erasure).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.core.errors import UserError
from bot.script.project import DialogsProject
from intents.taxonomy import CALL_START_INTENT, SYSTEM_INTENTS

TOOL_FILE = Path("data") / "nlu" / "from_calls.yml"
HEADER = (
    "# Caller turns labelled by script writers (waihu review / 控制台“待标注”), masked.\n"
    "# Written by the tool: one block per intent, sorted. Remove a line to drop an example;\n"
    "# the tool keeps what you leave.\n"
)
ADDED, DUPLICATE, IN_TEST_SET = "added", "duplicate", "in_test_set"
# Rasa reads [text](entity) inside an example as entity markup: a caller's brackets are
# kept as full-width ones, which the tokenizer treats the same way.
_MARKUP_BRACKETS = str.maketrans({"[": "【", "]": "】"})
_ENTITY_MARKUP = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")
_INTENT_LINE = re.compile(r"^\s*-\s*intent:\s*(?P<name>\S+)\s*$")
_OTHER_BLOCK = re.compile(r"^\s*-\s*(regex|synonym|lookup):")
_EXAMPLE_LINE = re.compile(r"^\s*-\s+(?P<text>.+?)\s*$")


class UnknownIntent(UserError):
    def __init__(self, intent: str, choices: list[str]) -> None:
        super().__init__(f"unknown intent '{intent}'; choose one of: {', '.join(choices)}")
        self.intent = intent
        self.choices = choices


class NoWords(UserError):
    def __init__(self) -> None:
        super().__init__("nothing to add: the turn has no words (silence or only punctuation); skip it instead")


@dataclass(frozen=True)
class Place:
    """A line of a file in the project, for messages: dialogs/tests/nlu_dev.yml:123."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class AddResult:
    outcome: str  # added | duplicate | in_test_set
    text: str  # the example as written (or as it would have been)
    place: Place | None = None  # the line added, the existing example, or the test line
    existing_intent: str | None = None  # a duplicate's label in the training data

    @property
    def message(self) -> str:
        if self.outcome == IN_TEST_SET:
            return f"not added: “{self.text}” is a test line ({self.place}); test lines are never trained on"
        if self.outcome == DUPLICATE:
            return f"already a training example ({self.place}, intent {self.existing_intent}); not added again"
        return f"added to {self.place}; it takes effect at the next training"


def normalise_example(text: str) -> str:
    """What two examples must share to count as one: full-width folded, lower case, without
    spaces, punctuation or Rasa entity markup."""
    text = _ENTITY_MARKUP.sub(r"\1", unicodedata.normalize("NFKC", text)).lower()
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "Z", "C")))


def clean_example(text: str) -> str:
    """A caller's (already masked) words as one example line: one line, single spaces, no
    markup brackets."""
    return " ".join(text.split()).translate(_MARKUP_BRACKETS)


def labellable_intents(project: DialogsProject) -> list[str]:
    """The intents a caller's words may be labelled with, as the domain names them: no
    system intents, retrieval intents by topic (faq/claims, from the responses utter_faq/claims)."""
    declared: list[str] = []
    responses: set[str] = set()
    for path in sorted(project.domain_dir.rglob("*.yml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{project.relative(path)}: not valid YAML ({exc}). Run `waihu validate`.") from None
        if not isinstance(doc, dict):
            continue
        for item in doc.get("intents") or []:
            name = str(next(iter(item))) if isinstance(item, dict) else str(item)
            if name not in declared:
                declared.append(name)
        responses.update(str(key) for key in (doc.get("responses") or {}))
    intents: list[str] = []
    for name in declared:
        if name == CALL_START_INTENT or name in SYSTEM_INTENTS:
            continue
        topics = sorted(r.removeprefix("utter_") for r in responses if r.startswith(f"utter_{name}/"))
        intents += topics or [name]
    return intents


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)


def find_in_test_files(project: DialogsProject, text: str) -> Place | None:
    """The first line of a test file (NLU test sets, conversation tests) that says `text`."""
    wanted = normalise_example(text)
    if not wanted:
        return None
    for path in sorted(project.tests_dir.rglob("*.yml")):
        for number, line in _lines(path):
            content = line.strip()
            content = content[2:] if content.startswith("- ") else content
            content = content[5:] if content.startswith("user:") else content
            if normalise_example(content) == wanted:
                return Place(project.relative(path), number)
    return None


def find_in_training(project: DialogsProject, text: str) -> tuple[Place, str] | None:
    """The first NLU training example (any file under data/) equal to `text`, and its intent."""
    wanted = normalise_example(text)
    for path in sorted(project.data_dir.rglob("*.yml")):
        intent: str | None = None
        for number, line in _lines(path):
            header = _INTENT_LINE.match(line)
            if header:
                intent = header.group("name").strip("\"'")
                continue
            if _OTHER_BLOCK.match(line):
                intent = None
                continue
            example = _EXAMPLE_LINE.match(line)
            if intent and example and normalise_example(example.group("text")) == wanted:
                return Place(project.relative(path), number), intent
    return None


def read_tool_file(path: Path) -> dict[str, list[str]]:
    """The examples of the tool's file by intent (empty if it does not exist yet)."""
    if not path.exists():
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc}); fix or delete the file, then label again.") from None
    blocks: dict[str, list[str]] = {}
    for block in doc.get("nlu") or [] if isinstance(doc, dict) else []:
        if isinstance(block, dict) and block.get("intent"):
            lines = str(block.get("examples") or "").splitlines()
            examples = [line.strip()[2:].strip() for line in lines if line.strip().startswith("- ")]
            blocks.setdefault(str(block["intent"]), []).extend(e for e in examples if e)
    return blocks


def render_tool_file(blocks: dict[str, list[str]]) -> str:
    """Rasa 3.x NLU YAML: intents sorted, each block's examples sorted and unique."""
    out = [HEADER, 'version: "3.1"\n', "nlu:\n"]
    for intent in sorted(blocks):
        examples = sorted(set(blocks[intent]))
        if not examples:
            continue
        out.append(f"- intent: {intent}\n  examples: |\n")
        out += [f"    - {example}\n" for example in examples]
    return "".join(out)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def remove_examples(project: DialogsProject, texts: Iterable[str]) -> list[str]:
    """Removes from the tool's file every example equal to one of `texts` (compared as
    `normalise_example` does, whatever its intent): a person's words when they are erased
    (`bot.erasure`). Returns the examples removed; the file is rewritten (atomically) only
    when one was. Other training files are not the tool's and are left alone. Callers hold
    the script edit lock, as around `add_example`."""
    wanted = {normalise_example(text) for text in texts} - {""}
    path = project.root / TOOL_FILE
    if not wanted or not path.exists():
        return []
    blocks = read_tool_file(path)
    removed: list[str] = []
    for intent, examples in blocks.items():
        removed += [example for example in examples if normalise_example(example) in wanted]
        blocks[intent] = [example for example in examples if normalise_example(example) not in wanted]
    if not removed:
        return []
    if any(blocks.values()):
        _write_atomically(path, render_tool_file(blocks))
    else:  # nothing left: the file goes, as before the first label (an empty `nlu:` is not a list)
        path.unlink()
    return removed


def add_example(project: DialogsProject, intent: str, text: str) -> AddResult:
    """Adds `text` (masked by the caller) as an example of `intent` to the tool's file, unless
    a test file says it (refused) or a training file already has it."""
    intents = labellable_intents(project)
    if intent not in intents:
        raise UnknownIntent(intent, intents)
    example = clean_example(text)
    if not normalise_example(example):
        raise NoWords()
    in_tests = find_in_test_files(project, example)
    if in_tests is not None:
        return AddResult(IN_TEST_SET, example, in_tests)
    existing = find_in_training(project, example)
    if existing is not None:
        return AddResult(DUPLICATE, example, existing[0], existing[1])
    path = project.root / TOOL_FILE
    blocks = read_tool_file(path)
    blocks.setdefault(intent, []).append(example)
    rendered = render_tool_file(blocks)
    _write_atomically(path, rendered)
    line = next(n for n, content in enumerate(rendered.splitlines(), 1) if content == f"    - {example}")
    return AddResult(ADDED, example, Place(project.relative(path), line))


# Rasa's FallbackClassifier default, for a config that names the component without a threshold.
RASA_FALLBACK_THRESHOLD = 0.3


def fallback_threshold(project: DialogsProject) -> float | None:
    """The FallbackClassifier's threshold in config.yml: below it the model was unsure enough
    to answer nlu_fallback. None when the pipeline has no FallbackClassifier."""
    try:
        config = yaml.safe_load(project.config_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(
            f"{project.relative(project.config_file)}: not valid YAML ({exc}). Run `waihu validate`."
        ) from None
    for component in config.get("pipeline") or []:
        if isinstance(component, dict) and component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", RASA_FALLBACK_THRESHOLD))
    return None
