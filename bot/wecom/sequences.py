"""Follow-up sequences after the add (SOP): `dialogs/wecom/sequences.yml`.

A sequence is a list of steps (day N after the add, at a local time of day, a WeCom message:
text, link or mini-program card) and branches on events (a tracked link click, a purchase, a
reply) that switch the contact to another sequence or stop it. Which sequence a contact
gets: per audience pack (pack name, then scene, then `default`) × grade, and when the block
lists several sequences they are A/B arms, assigned per lead by a deterministic hash
(bot.campaigns.assignment), reported as the `sequence` factor.

Loading checks the file against the models below (intents.yaml_source) and reports every
mistake as `file:line:col: problem` at once — cross references (an unknown sequence, a
branch to one) included.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pydantic import Field, root_validator

from bot.campaigns.assignment import Arm, assign
from bot.core.errors import UserError
from bot.core.settings import get_settings
from intents.yaml_source import Problems, Text, WholeNumber, YamlModel, check, line_of, load_yaml, parse_yaml

DEFAULT_AUDIENCE = "default"
GRADES = ("A", "B")
STEP_TYPES = ("text", "link", "miniprogram")
BRANCH_EVENTS = ("click", "purchase", "reply")
STOP = "stop"
# Marketing messages must say how to stop them (as the invitation SMS must): a reply of
# 退订 is also what bot.wecom.sop treats as an opt-out.
OPT_OUT_WORD = "退订"
MAX_TEXT_CHARS = 1000  # WeCom: text.content ≤ 4000 bytes
MAX_DAY = 90
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def default_sequences_path() -> Path:
    return get_settings().dialogs_dir / "wecom" / "sequences.yml"


@dataclass(frozen=True)
class Step:
    index: int
    day: int  # days after the enrolment (the add, or the switch)
    at: str  # "HH:MM", local time of the compliance profile
    type: str  # text | link | miniprogram
    text: str
    link: Mapping[str, str] | None = None
    miniprogram: Mapping[str, str] | None = None
    tag_on_click: str | None = None
    line: int = 0

    @property
    def at_minutes(self) -> int:
        hours, minutes = self.at.split(":")
        return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class Sequence:
    name: str
    steps: tuple[Step, ...]
    branches: Mapping[str, str]  # event → sequence name or "stop"
    line: int = 0


@dataclass(frozen=True)
class Sequences:
    path: str
    seed: str
    redirect_base: str  # public base of our redirect endpoint: <redirect_base>/<token>
    sequences: Mapping[str, Sequence]
    audiences: Mapping[str, Mapping[str, tuple[str, ...]]]  # pack/scene/default → grade → arms

    def arms_for(self, audience: Any, grade: str) -> tuple[str, ...]:
        for key in _audience_keys(audience):
            block = self.audiences.get(key)
            if block and grade in block:
                return block[grade]
        return self.audiences.get(DEFAULT_AUDIENCE, {}).get(grade, ())

    def sequence_for(self, audience: Any, grade: str, lead_id: int, arm: str | None = None) -> str | None:
        """The sequence this lead gets after the add: the campaign's arm when it names one of
        the block's sequences, else one of them by a hash of the lead (A/B); None: no SOP."""
        arms = self.arms_for(audience, grade)
        if not arms:
            return None
        if arm in arms:
            return arm
        if len(arms) == 1:
            return arms[0]
        return assign(f"{self.seed}-{grade}", str(lead_id), [Arm(name, 1.0) for name in arms])


def _audience_keys(audience: Any) -> Iterator[str]:
    if audience is None:
        return
    if isinstance(audience, str):
        yield audience
        return
    for attr in ("name", "scene"):
        value = getattr(audience, attr, None)
        if value:
            yield str(value)


# ---- the file's shape ---------------------------------------------------------------------------


class DayNumber(WholeNumber):
    ge, le = 0, MAX_DAY


class LinkModel(YamlModel):
    title: Text = Field(..., hint="the card's title")
    url: Optional[str] = Field(None, hint="https://… (the target; we send a tracked link to it)")
    desc: Optional[str] = None
    picurl: Optional[str] = None

    @root_validator(skip_on_failure=True)
    def _url(cls, values: dict) -> dict:
        url = values.get("url")
        if not url or not str(url).startswith(("https://", "http://")):
            raise ValueError("a link needs a url starting with https:// (the page the customer lands on)")
        return values


class MiniprogramModel(YamlModel):
    title: Text
    pic_media_id: Text
    appid: Text
    page: Text


class StepModel(YamlModel):
    day: DayNumber = Field(..., hint="days after the add (0–90)")
    at: str = Field(..., hint='local time of day, "10:00"')
    type: str = Field(..., hint="text, link or miniprogram")
    text: Optional[str] = None
    link: Optional[LinkModel] = None
    miniprogram: Optional[MiniprogramModel] = None
    tag_on_click: Optional[Text] = None

    @root_validator()
    def _content(cls, values: dict) -> dict:
        # Runs after field errors too (a bad card must not hide a bad time); a field that
        # failed is absent from `values`, so nothing is reported twice.
        problems = Problems()
        if "at" in values and not _TIME.match(str(values.get("at") or "")):
            problems.add(f'{values.get("at")!r} is not a time of day; write it like "10:00"', "at")
        kind = values.get("type")
        if "type" in values and kind not in STEP_TYPES:
            problems.add(f"unknown type {kind!r}; use one of {', '.join(STEP_TYPES)}", "type")
        text = values.get("text")
        if not text or not str(text).strip():
            problems.add("the message text is missing (every step sends a text, with a card for link/miniprogram)")
        else:
            if len(text) > MAX_TEXT_CHARS:
                problems.add(f"{len(text)} characters; at most {MAX_TEXT_CHARS}", "text")
            if OPT_OUT_WORD not in text:
                problems.add(f"a marketing message must say how to stop it (e.g. “回复{OPT_OUT_WORD}不再接收”)", "text")
        if kind == "link" and "link" in values and values["link"] is None:
            problems.add("a link step needs link: {title, url}", "type")
        if kind == "miniprogram" and "miniprogram" in values and values["miniprogram"] is None:
            problems.add("a miniprogram step needs miniprogram: {title, pic_media_id, appid, page}", "type")
        if values.get("tag_on_click") and kind != "link":
            problems.add("tag_on_click only applies to a link step (a click is seen only on our tracked link)")
        problems.raise_any()
        return values


class BranchModel(YamlModel):
    on: str = Field(..., hint="click, purchase or reply")
    switch_to: Text = Field(..., hint="a sequence name, or stop")


class SequenceModel(YamlModel):
    steps: list[StepModel] = Field(..., hint="the messages, in order of day and time")
    branches: Optional[list[BranchModel]] = None


class SequencesFile(YamlModel):
    version: WholeNumber = Field(..., hint="1")
    seed: Text = Field("wecom-sequence", hint="hash seed of the A/B assignment")
    redirect_base: str = Field(..., hint="public URL of our redirect endpoint, e.g. https://waihu.example.com/r")
    audiences: dict[str, dict[str, list[str]]] = Field(..., hint="pack or scene (or default) → grade → sequences")
    sequences: dict[str, SequenceModel] = Field(..., hint="name → steps and branches")

    @root_validator(skip_on_failure=True)
    def _references(cls, values: dict) -> dict:
        problems = Problems()
        base = str(values.get("redirect_base") or "")
        if not base.startswith(("https://", "http://")):
            problems.add("must start with https:// (the public address of GET /r/{token})", "redirect_base")
        names = set(values.get("sequences") or {})
        audiences = values.get("audiences") or {}
        if DEFAULT_AUDIENCE not in audiences:
            problems.add(f"add a `{DEFAULT_AUDIENCE}` block: the sequences of packs without their own", "audiences")
        for key, grades in audiences.items():
            for grade, arms in grades.items():
                if grade not in GRADES:
                    problems.add(f"unknown grade {grade!r}; sequences follow A and B leads", "audiences", key, grade)
                if not arms:
                    problems.add("list at least one sequence (several are A/B arms)", "audiences", key, grade)
                for index, arm in enumerate(arms):
                    if arm not in names:
                        problems.add(
                            f"unknown sequence {arm!r}; defined: {', '.join(sorted(names))}",
                            "audiences",
                            key,
                            grade,
                            index,
                        )
        for name, sequence in (values.get("sequences") or {}).items():
            seen: set[str] = set()
            for index, branch in enumerate(sequence.branches or []):
                if branch.on not in BRANCH_EVENTS:
                    problems.add(
                        f"unknown event {branch.on!r}; use {', '.join(BRANCH_EVENTS)}",
                        "sequences",
                        name,
                        "branches",
                        index,
                        "on",
                    )
                if branch.on in seen:
                    problems.add(f"a second branch on {branch.on}; one per event", "sequences", name, "branches", index)
                seen.add(branch.on)
                if branch.switch_to != STOP and branch.switch_to not in names:
                    problems.add(
                        f"unknown sequence {branch.switch_to!r}; use a defined sequence or {STOP}",
                        "sequences",
                        name,
                        "branches",
                        index,
                        "switch_to",
                    )
            if not sequence.steps:
                problems.add("a sequence needs at least one step", "sequences", name, "steps")
        problems.raise_any()
        return values

    def build(self, document: Any, path: str) -> Sequences:
        sequences = {}
        for name, model in self.sequences.items():
            steps = sorted(
                (
                    Step(
                        index=index,
                        day=int(step.day),
                        at=step.at,
                        type=step.type,
                        text=str(step.text),
                        link={k: str(v) for k, v in step.link.dict().items() if v} if step.link else None,
                        miniprogram=dict(step.miniprogram.dict()) if step.miniprogram else None,
                        tag_on_click=step.tag_on_click,
                        line=line_of(document, "sequences", name, "steps", index) or 0,
                    )
                    for index, step in enumerate(model.steps)
                ),
                key=lambda s: (s.day, s.at, s.index),
            )
            sequences[name] = Sequence(
                name=name,
                steps=tuple(steps),
                branches={b.on: str(b.switch_to) for b in model.branches or []},
                line=line_of(document, "sequences", name) or 0,
            )
        return Sequences(
            path=path,
            seed=self.seed,
            redirect_base=self.redirect_base.rstrip("/"),
            sequences=sequences,
            audiences={key: {g: tuple(arms) for g, arms in grades.items()} for key, grades in self.audiences.items()},
        )


# ---- loading ------------------------------------------------------------------------------------

_cache: dict[str, tuple[float, Sequences]] = {}


def load_sequences(path: Path | str | None = None) -> Sequences:
    """The sequences file, checked; cached until the file changes. YamlError (a UserError)
    lists every mistake as `file:line:col: problem`."""
    path = Path(path) if path else default_sequences_path()
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise UserError(
            f"{path}: the follow-up sequences file does not exist (copy dialogs/wecom/sequences.yml)"
        ) from None
    cached = _cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    document = load_yaml(path)
    sequences = check(document, SequencesFile, str(path)).build(document, str(path))
    _cache[str(path)] = (mtime, sequences)
    return sequences


def parse_sequences(text: str, path: str = "sequences.yml") -> Sequences:
    document = parse_yaml(text, path)
    return check(document, SequencesFile, path).build(document, path)
