"""Simulated callees: who answers when, which numbers are dead, and what people say.

`personas.yml` (ops edit it) holds, per audience pack (scene), the answer probability
by hour of day with a weekend factor, the share of numbers that reach each carrier
announcement, and the mix of persona types; per persona type, the replies to each
script question. Loading checks the file against the models below (intents.yaml_source)
and reports `file:line:col: problem` for each mistake at once, so an edited file is
fixed in one pass.

Randomness is never global: every decision draws from `call_rng(seed, call_id,
purpose)`, a stream of its own per call and per purpose, so the same seed and call id
behave the same in any process and order, and what the robot says (which changes the
reply draws) never changes who answered or which persona picked up — an A/B test of
script variants compares like with like.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, root_validator, validator

from intents.announcements import detect_announcement
from intents.taxonomy import CALL_STATUSES
from intents.yaml_source import (
    At,
    Number,
    Probability,
    Problems,
    Text,
    WholeNumber,
    YamlError,
    YamlModel,
    check,
    load_yaml,
    plain,
)

DEFAULT_PERSONAS_PATH = Path(__file__).with_name("personas.yml")
DEFAULT_PACK = "default"

QUESTION_PREFIX = "utter_ask_"
CLOSING_PREFIX = "utter_close_"
# The script's questions (dialogs/domain): the callee answers these.
QUESTION_STEPS: tuple[str, ...] = (
    "utter_ask_good_time",
    "utter_ask_wecom",
    "utter_ask_callback_time",
)
# The script's other lines: a callee may hang up while hearing them, never answers them.
LISTENING_STEPS: tuple[str, ...] = (
    "utter_opening",
    "utter_pitch",
    "utter_confirm_wecom",
    "utter_fallback",
    "utter_default",
    "utter_reprompt_silence",
    "utter_answer_identity",
    "utter_answer_number_source",
    "utter_answer_is_robot",
    "utter_answer_price",
    "utter_answer_detail",
    "utter_answer_already_insured",
    # Questions the personas do not answer yet (they stay silent, the robot re-prompts):
    # the re-ask after a hesitation and the confirmation of an uncertain agreement.
    "utter_ask_wecom_again",
    "utter_ask_confirm_wecom",
    "utter_reassure_hesitation",
    "utter_handoff",
    "utter_handoff_failed",
    *(
        f"utter_faq/{topic}"
        for topic in (
            "waiting_period",
            "coverage",
            "claims",
            "is_it_free",
            "auto_charge",
            "term",
            "advisor_role",
            "privacy",
            "age_limit",
            "company",
        )
    ),
)
KNOWN_STEPS: tuple[str, ...] = QUESTION_STEPS + LISTENING_STEPS

_PUNCTUATION = re.compile(r"[，。！？、,.!?；;：:]")
_HOURS = re.compile(r"\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?")

# personas.yml is wrong: the one YAML error type; `problems` holds every `file:line:col: problem`.
PersonaConfigError = YamlError


def call_rng(seed: int | str, call_id: str, purpose: str) -> random.Random:
    """An independent, reproducible random stream for one decision area of one call."""
    return random.Random(f"{seed}|{call_id}|{purpose}")  # str seeds hash with SHA-512: stable


def phone_fraction(seed: int | str, phone: str) -> float:
    """A fixed number in [0, 1) per phone number: what makes a vacant number stay vacant."""
    digest = hashlib.blake2b(f"{seed}|{phone}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Weighted:
    """Texts (or names) with weights; `pick` draws one."""

    items: tuple[str, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> Weighted:
        items = tuple(k for k, w in weights.items() if w > 0)
        cumulative, total = [], 0.0
        for item in items:
            total += weights[item]
            cumulative.append(total)
        return cls(items, tuple(cumulative))

    def __bool__(self) -> bool:
        return bool(self.items)

    def pick(self, rng: random.Random) -> str:
        index = bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
        return self.items[min(index, len(self.items) - 1)]

    def share(self, item: str) -> float:
        if item not in self.items:
            return 0.0
        i = self.items.index(item)
        return (self.cumulative[i] - (self.cumulative[i - 1] if i else 0.0)) / self.cumulative[-1]


ReplyKind = Literal["speech", "silence", "hangup"]


@dataclass(frozen=True)
class Reply:
    kind: ReplyKind
    text: str = ""


@dataclass(frozen=True)
class StepBehaviour:
    """How a persona reacts to one script line."""

    replies: Weighted = Weighted((), ())
    again: Weighted = Weighted((), ())  # the same question asked again in the call
    silence: float = 0.0
    hangup: float = 0.0
    # Barge-in: what the callee says over this line (when it may be interrupted), and how far
    # into it; empty: they let the robot finish.
    interrupt: Weighted = Weighted((), ())
    interrupt_after_s: float = 2.0

    def react(self, rng: random.Random, asked_before: bool) -> Reply:
        draw = rng.random()
        if draw < self.hangup:
            return Reply("hangup")
        if draw < self.hangup + self.silence:
            return Reply("silence")
        table = self.again if asked_before and self.again else self.replies
        if not table:
            return Reply("silence")
        return Reply("speech", table.pick(rng))


@dataclass(frozen=True)
class Persona:
    name: str
    description: str
    reply_delay_s: tuple[float, float]
    hangup_on_answer: float
    steps: Mapping[str, StepBehaviour]

    def react(self, step: str, rng: random.Random, asked_before: bool) -> Reply:
        """The reply to a question; to any other line, a hang-up or nothing (silence).
        A question this persona has no replies for gets silence: the callee is lost."""
        behaviour = self.steps.get(step)
        if behaviour is None:
            return Reply("silence")
        if not step.startswith(QUESTION_PREFIX):
            return Reply("hangup") if rng.random() < behaviour.hangup else Reply("silence")
        return behaviour.react(rng, asked_before)


@dataclass(frozen=True)
class AnnouncementShare:
    share: float  # of phone numbers in the pack
    per_attempt: float = 1.0  # chance the recording plays on a given attempt to such a number


@dataclass(frozen=True)
class AudienceProfile:
    """One audience pack's callees."""

    name: str
    answer_by_hour: tuple[float, ...]  # 24 probabilities, local time
    weekend_factor: float
    ring_s: tuple[float, float]
    announcements: Mapping[str, AnnouncementShare]
    persona_mix: Weighted

    def answer_probability(self, local_time: datetime) -> float:
        probability = self.answer_by_hour[local_time.hour]
        if local_time.weekday() >= 5:
            probability *= self.weekend_factor
        return min(1.0, probability)

    def announcement_for(self, fraction: float) -> str | None:
        """The announcement a number with this `phone_fraction` reaches, if any. Statuses
        take consecutive slices of [0, 1) in a fixed order, so a number's status is
        stable as long as the shares are."""
        start = 0.0
        for status in CALL_STATUSES:
            share = self.announcements.get(status)
            if share is None:
                continue
            if start <= fraction < start + share.share:
                return status
            start += share.share
        return None


@dataclass(frozen=True)
class AsrNoise:
    """What ASR does to what people say: fillers, lost punctuation, homophone slips."""

    filler_probability: float = 0.0
    fillers: tuple[str, ...] = ()
    drop_punctuation: float = 0.0
    homophone_probability: float = 0.0
    homophones: Mapping[str, str] = field(default_factory=dict)

    def apply(self, text: str, rng: random.Random) -> str:
        if self.fillers and rng.random() < self.filler_probability:
            text = f"{rng.choice(self.fillers)} {text}"
        if rng.random() < self.drop_punctuation:
            text = re.sub(r"\s+", " ", _PUNCTUATION.sub(" ", text)).strip()
        if self.homophones and rng.random() < self.homophone_probability:
            present = [word for word in self.homophones if word in text]
            if present:
                word = rng.choice(present)
                text = text.replace(word, self.homophones[word], 1)
        return text


@dataclass(frozen=True)
class Timing:
    speech_chars_per_s: float = 4.5  # how fast the robot's TTS speaks
    callee_chars_per_s: float = 4.0  # how fast people speak
    endpointing_s: float = 0.7  # ASR waits this long after speech before the final text
    silence_timeout_s: float = 8.0  # no speech for this long → an empty speech event
    announcement_after_s: tuple[float, float] = (1.0, 4.0)  # early media starts
    patience_replies: int = 8  # after this many replies a callee hangs up on the next question


@dataclass(frozen=True)
class SimulatorConfig:
    path: Path
    timing: Timing
    asr_noise: AsrNoise
    announcements: Mapping[str, Weighted]  # status → transcripts
    personas: Mapping[str, Persona]
    packs: Mapping[str, AudienceProfile]

    def pack(self, name: str | None) -> AudienceProfile:
        """The profile for an audience pack (scene); `default` for unknown or none."""
        return self.packs.get(name or DEFAULT_PACK) or self.packs[DEFAULT_PACK]


# ---------------------------------------------------------------- loading and checks


def load_simulator_config(
    path: Path | str = DEFAULT_PERSONAS_PATH, known_steps: Iterable[str] = KNOWN_STEPS
) -> SimulatorConfig:
    path = Path(path)
    model = _personas_file_model(tuple(known_steps))
    return check(load_yaml(path), model, str(path)).config(path)


class AtLeastATenth(Number):
    ge = 0.1  # a rate or a timeout: zero would divide by zero or never wait


class Seconds(Number):
    ge = 0.0


class WeekendFactor(Number):
    ge, le = 0.0, 10.0


class AtLeastOne(WholeNumber):
    ge = 1


class SecondsSpan(tuple):
    """`[low, high]` seconds, read as (low, high)."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Any]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> tuple[float, float]:
        numbers = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        if not numbers or not 0 <= value[0] <= value[1]:
            raise ValueError(f"must be [low, high] seconds with 0 <= low <= high; got {plain(value)!r}")
        return (float(value[0]), float(value[1]))


class Weights(dict):
    """Text (or name) → weight, or a list of texts (weight 1 each)."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Any]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> dict[str, float]:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return {item: 1.0 for item in value}
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of text → weight (or a list of texts)")
        problems = Problems()
        weights: dict[str, float] = {}
        for text, weight in value.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                problems.add(f"weight of '{text}' must be a number >= 0; got {plain(weight)!r}", text)
            else:
                weights[str(text)] = float(weight)
        if value and not problems and sum(weights.values()) <= 0:
            problems.add("the weights add up to 0")
        problems.raise_any()
        return weights


class HourTable(tuple):
    """`answer_by_hour`: keys are hours (19) or inclusive ranges ("9-11"), values answer
    probabilities; every hour 0-23 exactly once. Read as 24 probabilities."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Any]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> tuple[float, ...]:
        if not isinstance(value, Mapping):
            raise ValueError('must map hours (e.g. 19 or "9-11") to probabilities')
        problems = Problems()
        by_hour: list[float | None] = [None] * 24
        for key, probability in value.items():
            match = _HOURS.fullmatch(str(key))
            first, last = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (-1, -1)
            if not match or not 0 <= first <= last <= 23:
                problems.add(f"'{key}' is not an hour 0-23 or a range like 9-11", key)
                continue
            if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
                problems.add(f"answer probability for {key} must be between 0 and 1; got {plain(probability)!r}", key)
                probability = 0.0
            for hour in range(first, last + 1):
                if by_hour[hour] is not None:
                    problems.add(f"hour {hour} is given twice", key)
                by_hour[hour] = float(probability)
        missing = [hour for hour, p in enumerate(by_hour) if p is None]
        if missing:
            problems.add(f"no value for hours {', '.join(map(str, missing))}; give every hour 0-23 once")
        problems.raise_any()
        return tuple(p or 0.0 for p in by_hour)


class ShareModel(YamlModel):
    share: Probability = Field(..., hint="the share of the pack's numbers that reach this recording")
    per_attempt: Probability = Probability(1.0)


class Share:
    """A share of the pack's numbers (0.05), or `{share: 0.05, per_attempt: 0.6}`; read as an
    AnnouncementShare."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Any]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> AnnouncementShare:
        if isinstance(value, Mapping):
            parsed = ShareModel.parse_obj(value)
            return AnnouncementShare(parsed.share, parsed.per_attempt)
        return AnnouncementShare(Probability.check(value))


class TimingModel(YamlModel):
    # Left out: Timing's default.
    speech_chars_per_s: Optional[AtLeastATenth] = None
    callee_chars_per_s: Optional[AtLeastATenth] = None
    endpointing_s: Optional[Seconds] = None
    silence_timeout_s: Optional[AtLeastATenth] = None
    announcement_after_s: Optional[SecondsSpan] = None
    patience_replies: Optional[AtLeastOne] = None

    def timing(self) -> Timing:
        return Timing(**self.dict(exclude_none=True))


class AsrNoiseModel(YamlModel):
    filler_probability: Probability = Probability(0.0)
    fillers: Optional[list[Text]] = None
    drop_punctuation: Probability = Probability(0.0)
    homophone_probability: Probability = Probability(0.0)
    homophones: Optional[dict[Text, Text]] = None  # a word → how ASR mishears it

    def noise(self) -> AsrNoise:
        homophones = {str(word): str(heard) for word, heard in (self.homophones or {}).items()}
        return AsrNoise(
            self.filler_probability,
            tuple(self.fillers or ()),
            self.drop_punctuation,
            self.homophone_probability,
            homophones,
        )


class StepModel(YamlModel):
    """How a persona reacts to one script line: to a question (utter_ask_…) `replies` (the
    first time), `again` (asked again), `silence` and `hangup`; to any other line `hangup`, or
    `interrupt` (what they say over it, `interrupt_after_s` into it: barge-in)."""

    replies: Optional[Weights] = None
    again: Optional[Weights] = None
    silence: Probability = Probability(0.0)
    hangup: Probability = Probability(0.0)
    interrupt: Optional[Weights] = None
    interrupt_after_s: float = 2.0

    @validator("interrupt_after_s")
    def _interrupt_after_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("seconds into the line when the callee starts talking; must be more than 0")
        return value

    @root_validator(skip_on_failure=True)
    def _silence_and_hangup_fit(cls, values: dict) -> dict:
        total = values["silence"] + values["hangup"]
        if total > 1.0 + 1e-9:
            raise At(f"silence + hangup must be at most 1; got {total:g}", "silence")
        return values

    def behaviour(self) -> StepBehaviour:
        return StepBehaviour(
            Weighted.of(self.replies or {}),
            Weighted.of(self.again or {}),
            self.silence,
            self.hangup,
            Weighted.of(self.interrupt or {}),
            self.interrupt_after_s,
        )


class PersonaModel(YamlModel):
    description: str = ""
    reply_delay_s: SecondsSpan = SecondsSpan((0.5, 1.5))
    hangup_on_answer: Probability = Probability(0.0)
    steps: dict[str, StepModel] = Field(..., hint="how this persona reacts to each script line (utter_…)")

    @validator("steps")
    def _lines_get_what_they_can_take(cls, steps: dict[str, StepModel]) -> dict[str, StepModel]:
        problems = Problems()
        for step, behaviour in steps.items():
            if not step.startswith(QUESTION_PREFIX):
                for key in sorted(behaviour.__fields_set__ - {"hangup", "interrupt", "interrupt_after_s"}):
                    problems.add(
                        f"'{key}' is for questions (utter_ask_…); callees only hang up on a line that asks nothing",
                        step,
                        key,
                    )
            elif not behaviour.replies and behaviour.silence + behaviour.hangup < 1.0 - 1e-9:
                problems.add("no replies, so silence + hangup must be 1", step)
        problems.raise_any()
        return steps

    def persona(self, name: str) -> Persona:
        return Persona(
            name,
            self.description,
            self.reply_delay_s,
            self.hangup_on_answer,
            {step: behaviour.behaviour() for step, behaviour in self.steps.items()},
        )


class PackModel(YamlModel):
    """One audience pack; what it leaves out comes from the `default` pack."""

    answer_by_hour: Optional[HourTable] = None
    weekend_factor: Optional[WeekendFactor] = None
    ring_s: Optional[SecondsSpan] = None
    announcements: Optional[dict[str, Share]] = None
    persona_mix: Optional[Weights] = None

    @validator("announcements")
    def _shares_of_known_statuses(cls, shares: dict[str, AnnouncementShare]) -> dict[str, AnnouncementShare]:
        problems = Problems()
        for status in shares:
            if status not in CALL_STATUSES:
                problems.add(f"unknown call status '{status}'; expected one of: {', '.join(CALL_STATUSES)}", status)
        total = sum(share.share for share in shares.values())
        if total > 1.0 + 1e-9:
            problems.add(f"announcement shares add up to {total:g}, more than 1")
        problems.raise_any()
        return shares

    def inherited(self, key: str, default: PackModel | None) -> tuple[PackModel, Any]:
        """(the pack the value comes from, the value): this pack's own, else the default pack's."""
        own = getattr(self, key)
        if own is not None or default is None:
            return self, own
        return default, getattr(default, key)


class PersonasFile(YamlModel):
    """personas.yml."""

    known_steps: ClassVar[tuple[str, ...]] = KNOWN_STEPS  # the script lines a persona may react to

    timing: Optional[TimingModel] = None  # left out or empty: the defaults
    asr_noise: Optional[AsrNoiseModel] = None
    announcements: dict[str, Weights] = Field(..., hint="call status → operator recordings as ASR transcribes them")
    personas: dict[str, PersonaModel] = Field(..., hint="persona type → how it reacts to each script line")
    audience_packs: dict[str, PackModel] = Field(..., hint="per audience pack (scene), and `default`")

    @validator("announcements")
    def _transcripts_heard_as_their_status(cls, table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        problems = Problems()
        if not table:
            problems.add("must not be empty")
        for status, weights in table.items():
            if status not in CALL_STATUSES:
                problems.add(f"unknown call status '{status}'; expected one of: {', '.join(CALL_STATUSES)}", status)
                continue
            for text in weights:
                found = detect_announcement(text)
                heard_as = found.status if found else None
                if heard_as != status:
                    problems.add(
                        f"transcript '{text}' is read by intents.announcements as "
                        f"{heard_as or 'a person (no announcement)'}, not {status}",
                        status,
                        text,
                    )
        problems.raise_any()
        return table

    @validator("personas")
    def _some_personas(cls, personas: dict[str, PersonaModel]) -> dict[str, PersonaModel]:
        if not personas:
            raise ValueError("must not be empty")
        return personas

    @validator("audience_packs")
    def _a_default_pack(cls, packs: dict[str, PackModel]) -> dict[str, PackModel]:
        if DEFAULT_PACK not in packs:
            raise ValueError(f"needs a '{DEFAULT_PACK}' pack (used for unknown packs)")
        return packs

    @root_validator
    def _names_refer_to_what_is_defined(cls, values: dict) -> dict:
        """Steps are script lines, every persona answers every question, packs name defined
        personas and statuses with transcripts. Checks the parts that are well-formed."""
        problems = Problems()
        personas: dict[str, PersonaModel] = values.get("personas") or {}
        for name, persona in personas.items():
            _check_steps(name, persona, cls.known_steps, problems)
        packs: dict[str, PackModel] = values.get("audience_packs") or {}
        for name, pack in packs.items():
            _check_pack_names(name, pack, packs.get(DEFAULT_PACK), personas, values.get("announcements"), problems)
        problems.raise_any()
        return values

    def config(self, path: Path) -> SimulatorConfig:
        default = self.audience_packs[DEFAULT_PACK]
        return SimulatorConfig(
            path,
            (self.timing or TimingModel()).timing(),
            (self.asr_noise or AsrNoiseModel()).noise(),
            {status: Weighted.of(weights) for status, weights in self.announcements.items()},
            {name: persona.persona(name) for name, persona in self.personas.items()},
            {name: _profile(name, pack, default) for name, pack in self.audience_packs.items()},
        )


def _check_steps(name: str, persona: PersonaModel, known_steps: tuple[str, ...], problems: Problems) -> None:
    for step in persona.steps:
        if step not in known_steps:
            problems.add(
                f"unknown script step '{step}'; expected one of: {', '.join(known_steps)}",
                "personas",
                name,
                "steps",
                step,
            )
    for question in QUESTION_STEPS:
        if question in known_steps and question not in persona.steps:
            problems.add(
                f"no replies for {question}; add it (a persona answers every question)", "personas", name, "steps"
            )


def _check_pack_names(
    name: str,
    pack: PackModel,
    default: PackModel | None,
    personas: Mapping[str, PersonaModel],
    transcripts: Mapping[str, Any] | None,
    problems: Problems,
) -> None:
    """The pack (with what it inherits) names defined personas and statuses with transcripts."""

    def holder_name(holder: PackModel) -> str:
        return name if holder is pack else DEFAULT_PACK

    holder, mix = pack.inherited("persona_mix", default)
    if mix is None:
        problems.add("missing `persona_mix` (persona → weight), and the default pack has none", "audience_packs", name)
    for persona in mix or {}:
        if personas and persona not in personas:
            problems.add(
                f"unknown persona '{persona}'; defined: {', '.join(personas)}",
                "audience_packs",
                holder_name(holder),
                "persona_mix",
                persona,
            )
    if pack.inherited("answer_by_hour", default)[1] is None:
        problems.add(
            "missing `answer_by_hour` (hour → answer probability), and the default pack has none",
            "audience_packs",
            name,
        )
    holder, shares = pack.inherited("announcements", default)
    for status in shares or {}:
        if transcripts is not None and status in CALL_STATUSES and status not in transcripts:
            problems.add(
                f"no transcripts for '{status}' under the top-level announcements",
                "audience_packs",
                holder_name(holder),
                "announcements",
                status,
            )


def _profile(name: str, pack: PackModel, default: PackModel) -> AudienceProfile:
    def value(key: str, fallback: Any) -> Any:
        found = pack.inherited(key, default)[1]
        return fallback if found is None else found

    return AudienceProfile(
        name,
        value("answer_by_hour", (0.0,) * 24),
        value("weekend_factor", 1.0),
        value("ring_s", (3.0, 15.0)),
        value("announcements", {}),
        Weighted.of(value("persona_mix", {})),
    )


def _personas_file_model(known_steps: tuple[str, ...]) -> type[PersonasFile]:
    """The file's model; a variant when a caller checks the steps against other script lines."""
    if known_steps == KNOWN_STEPS:
        return PersonasFile
    return type("PersonasFile", (PersonasFile,), {"known_steps": known_steps})
