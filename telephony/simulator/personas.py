"""Simulated callees: who answers when, which numbers are dead, and what people say.

`personas.yml` (ops edit it) holds, per audience pack (scene), the answer probability
by hour of day with a weekend factor, the share of numbers that reach each carrier
announcement, and the mix of persona types; per persona type, the replies to each
script question. Loading validates everything and reports `file:line: problem` for
each mistake at once, so an edited file is fixed in one pass.

Randomness is never global: every decision draws from `call_rng(seed, call_id,
purpose)`, a stream of its own per call and per purpose, so the same seed and call id
behave the same in any process and order, and what the robot says (which changes the
reply draws) never changes who answered or which persona picked up — an A/B test of
script variants compares like with like.
"""
from __future__ import annotations

import bisect
import hashlib
import math
import random
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from intents.announcements import detect_announcement
from intents.taxonomy import CALL_STATUSES

DEFAULT_PERSONAS_PATH = Path(__file__).with_name("personas.yml")
DEFAULT_PACK = "default"

QUESTION_PREFIX = "utter_ask_"
CLOSING_PREFIX = "utter_close_"
# The script's questions (dialogs/domain): the callee answers these.
QUESTION_STEPS: tuple[str, ...] = ("utter_ask_good_time", "utter_ask_wecom", "utter_ask_callback_time")
# The script's other lines: a callee may hang up while hearing them, never answers them.
LISTENING_STEPS: tuple[str, ...] = (
    "utter_opening", "utter_pitch", "utter_confirm_wecom", "utter_fallback", "utter_default",
    "utter_reprompt_silence", "utter_answer_identity", "utter_answer_number_source",
    "utter_answer_is_robot", "utter_answer_price", "utter_answer_detail", "utter_answer_already_insured",
)
KNOWN_STEPS: tuple[str, ...] = QUESTION_STEPS + LISTENING_STEPS

TOP_LEVEL_KEYS = ("timing", "asr_noise", "announcements", "personas", "audience_packs")
PACK_KEYS = ("answer_by_hour", "weekend_factor", "ring_s", "announcements", "persona_mix")
PERSONA_KEYS = ("description", "reply_delay_s", "hangup_on_answer", "steps")
QUESTION_STEP_KEYS = ("replies", "again", "silence", "hangup")
TIMING_KEYS = ("speech_chars_per_s", "callee_chars_per_s", "endpointing_s", "silence_timeout_s",
               "announcement_after_s", "patience_replies")
NOISE_KEYS = ("filler_probability", "fillers", "drop_punctuation", "homophone_probability", "homophones")
SHARE_KEYS = ("share", "per_attempt")

_PUNCTUATION = re.compile(r"[，。！？、,.!?；;：:]")


class PersonaConfigError(ValueError):
    """personas.yml is wrong; `errors` holds one `file:line: problem` per mistake."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


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


def load_simulator_config(path: Path | str = DEFAULT_PERSONAS_PATH,
                          known_steps: Iterable[str] = KNOWN_STEPS) -> SimulatorConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PersonaConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        document = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise PersonaConfigError([f"{path}:{line}: not valid YAML: {exc.problem}"]) from None
    reader = _Reader(path, tuple(known_steps))
    config = reader.read(document)
    if reader.errors:
        raise PersonaConfigError(reader.errors)
    assert config is not None
    return config


class _Reader:
    """Turns the YAML tree into a SimulatorConfig, collecting every error with its line."""

    def __init__(self, path: Path, known_steps: tuple[str, ...]) -> None:
        self.path = path
        self.known_steps = known_steps
        self.errors: list[str] = []

    def error(self, node: Any, key: Any, message: str) -> None:
        self.errors.append(f"{self.path}:{_line(node, key)}: {message}")

    # -- top level

    def read(self, document: Any) -> SimulatorConfig | None:
        if not isinstance(document, CommentedMap):
            self.errors.append(f"{self.path}:1: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
            return None
        self.unknown_keys(document, TOP_LEVEL_KEYS, "top-level key")
        timing = self.timing(document.get("timing"), document)
        noise = self.noise(document.get("asr_noise"), document)
        announcements = self.transcripts(self.section(document, "announcements"))
        personas = self.personas(self.section(document, "personas"))
        packs = self.packs(self.section(document, "audience_packs"), personas, announcements)
        return SimulatorConfig(self.path, timing, noise, announcements, personas, packs)

    def section(self, document: CommentedMap, key: str) -> CommentedMap:
        node = document.get(key)
        if not isinstance(node, CommentedMap) or not node:
            self.error(document, key if key in document else None, f"'{key}' must be a non-empty mapping")
            return CommentedMap()
        return node

    def unknown_keys(self, node: CommentedMap, allowed: tuple[str, ...], what: str) -> None:
        for key in node:
            if key not in allowed:
                self.error(node, key, f"unknown {what} '{key}'; expected one of: {', '.join(allowed)}")

    # -- scalars

    def number(self, node: CommentedMap, key: str, low: float = 0.0, high: float = math.inf,
               default: float | None = None) -> float:
        value = node.get(key, default)
        if value is None:
            self.error(node, None, f"'{key}' is missing")
            return low
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
            bounds = f"between {low:g} and {high:g}" if high != math.inf else f"at least {low:g}"
            self.error(node, key, f"'{key}' must be a number {bounds}; got {value!r}")
            return low
        return float(value)

    def probability(self, node: CommentedMap, key: str, default: float | None = None) -> float:
        return self.number(node, key, 0.0, 1.0, default)

    def span(self, node: CommentedMap, key: str, default: tuple[float, float] | None = None) -> tuple[float, float]:
        value = node.get(key, default)
        if value is None:
            self.error(node, None, f"'{key}' is missing")
            return (0.0, 0.0)
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
              and 0 <= value[0] <= value[1])
        if not ok:
            self.error(node, key, f"'{key}' must be [low, high] seconds with 0 <= low <= high; got {value!r}")
            return (0.0, 0.0)
        return (float(value[0]), float(value[1]))

    def weights(self, node: Any, owner: Any, key: Any, what: str) -> dict[str, float]:
        """A mapping text → weight, or a list of texts (weight 1 each)."""
        if isinstance(node, CommentedSeq):
            node = CommentedMap((str(item), 1) for item in node) if all(isinstance(i, str) for i in node) else node
        if not isinstance(node, Mapping):
            self.error(owner, key, f"{what} must be a mapping of text → weight (or a list of texts)")
            return {}
        result: dict[str, float] = {}
        for text, weight in node.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                self.error(node, text, f"{what}: weight of '{text}' must be a number >= 0; got {weight!r}")
                continue
            result[str(text)] = float(weight)
        if node and sum(result.values()) <= 0:
            self.error(owner, key, f"{what}: the weights add up to 0")
        return result

    # -- sections

    def timing(self, node: Any, document: CommentedMap) -> Timing:
        if node is None:
            return Timing()
        if not isinstance(node, CommentedMap):
            self.error(document, "timing", "'timing' must be a mapping")
            return Timing()
        self.unknown_keys(node, TIMING_KEYS, "timing key")
        d = Timing()
        patience = node.get("patience_replies", d.patience_replies)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            self.error(node, "patience_replies", f"'patience_replies' must be a whole number >= 1; got {patience!r}")
            patience = d.patience_replies
        return Timing(
            speech_chars_per_s=self.number(node, "speech_chars_per_s", 0.1, default=d.speech_chars_per_s),
            callee_chars_per_s=self.number(node, "callee_chars_per_s", 0.1, default=d.callee_chars_per_s),
            endpointing_s=self.number(node, "endpointing_s", default=d.endpointing_s),
            silence_timeout_s=self.number(node, "silence_timeout_s", 0.1, default=d.silence_timeout_s),
            announcement_after_s=self.span(node, "announcement_after_s", d.announcement_after_s),
            patience_replies=patience,
        )

    def noise(self, node: Any, document: CommentedMap) -> AsrNoise:
        if node is None:
            return AsrNoise()
        if not isinstance(node, CommentedMap):
            self.error(document, "asr_noise", "'asr_noise' must be a mapping")
            return AsrNoise()
        self.unknown_keys(node, NOISE_KEYS, "asr_noise key")
        fillers = node.get("fillers") or []
        if not isinstance(fillers, list) or not all(isinstance(f, str) and f for f in fillers):
            self.error(node, "fillers", "'fillers' must be a list of words")
            fillers = []
        homophones = node.get("homophones") or {}
        if not isinstance(homophones, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in homophones.items()):
            self.error(node, "homophones", "'homophones' must map a word to how ASR mishears it")
            homophones = {}
        return AsrNoise(
            filler_probability=self.probability(node, "filler_probability", 0.0),
            fillers=tuple(fillers),
            drop_punctuation=self.probability(node, "drop_punctuation", 0.0),
            homophone_probability=self.probability(node, "homophone_probability", 0.0),
            homophones=dict(homophones),
        )

    def transcripts(self, node: CommentedMap) -> dict[str, Weighted]:
        result: dict[str, Weighted] = {}
        for status, texts in node.items():
            if status not in CALL_STATUSES:
                self.error(node, status, f"unknown call status '{status}'; expected one of: {', '.join(CALL_STATUSES)}")
                continue
            weights = self.weights(texts, node, status, f"announcement '{status}'")
            table = texts if isinstance(texts, Mapping) else None
            for i, text in enumerate(weights):
                found = detect_announcement(text)
                heard_as = found.status if found else None
                if heard_as != status:
                    where = (table, text) if table is not None else (texts, i)
                    self.error(*where, f"transcript '{text}' is read by intents.announcements as "
                                       f"{heard_as or 'a person (no announcement)'}, not {status}")
            if weights:
                result[status] = Weighted.of(weights)
        return result

    def personas(self, node: CommentedMap) -> dict[str, Persona]:
        result: dict[str, Persona] = {}
        for name, spec in node.items():
            if not isinstance(spec, CommentedMap):
                self.error(node, name, f"persona '{name}' must be a mapping with: {', '.join(PERSONA_KEYS)}")
                continue
            self.unknown_keys(spec, PERSONA_KEYS, f"key in persona '{name}'")
            steps_node = spec.get("steps")
            if not isinstance(steps_node, CommentedMap):
                self.error(spec, "steps" if "steps" in spec else None, f"persona '{name}': 'steps' must be a mapping")
                steps_node = CommentedMap()
            steps = {step: behaviour for step, behaviour in
                     ((s, self.step(name, s, b, steps_node)) for s, b in steps_node.items()) if behaviour}
            for question in QUESTION_STEPS:
                if question in self.known_steps and question not in steps_node:
                    self.error(steps_node, None, f"persona '{name}' has no replies for {question}")
            result[str(name)] = Persona(
                name=str(name),
                description=str(spec.get("description") or ""),
                reply_delay_s=self.span(spec, "reply_delay_s", (0.5, 1.5)),
                hangup_on_answer=self.probability(spec, "hangup_on_answer", 0.0),
                steps=steps,
            )
        return result

    def step(self, persona: str, step: str, node: Any, steps: CommentedMap) -> StepBehaviour | None:
        where = f"persona '{persona}', step {step}"
        if step not in self.known_steps:
            self.error(steps, step, f"{where}: unknown script step; expected one of: {', '.join(self.known_steps)}")
            return None
        if not isinstance(node, CommentedMap):
            self.error(steps, step, f"{where}: must be a mapping with: {', '.join(QUESTION_STEP_KEYS)}")
            return None
        if not step.startswith(QUESTION_PREFIX):
            self.unknown_keys(node, ("hangup",), f"key for {where} (callees only hang up on a line that asks nothing)")
            return StepBehaviour(hangup=self.probability(node, "hangup", 0.0))
        self.unknown_keys(node, QUESTION_STEP_KEYS, f"key for {where}")
        silence = self.probability(node, "silence", 0.0)
        hangup = self.probability(node, "hangup", 0.0)
        if silence + hangup > 1.0 + 1e-9:
            self.error(node, "silence", f"{where}: silence + hangup must be at most 1; got {silence + hangup:g}")
        replies = self.weights(node["replies"], node, "replies", f"{where} replies") if "replies" in node else {}
        again = self.weights(node["again"], node, "again", f"{where} again") if "again" in node else {}
        if not replies and silence + hangup < 1.0 - 1e-9:
            self.error(node, None, f"{where}: no replies, so silence + hangup must be 1")
        return StepBehaviour(Weighted.of(replies), Weighted.of(again), silence, hangup)

    def packs(self, node: CommentedMap, personas: Mapping[str, Persona],
              transcripts: Mapping[str, Weighted]) -> dict[str, AudienceProfile]:
        if node and DEFAULT_PACK not in node:
            self.error(node, None, f"audience_packs needs a '{DEFAULT_PACK}' pack (used for unknown packs)")
        base = node.get(DEFAULT_PACK)
        result: dict[str, AudienceProfile] = {}
        for name, spec in node.items():
            if not isinstance(spec, CommentedMap):
                self.error(node, name, f"audience pack '{name}' must be a mapping with: {', '.join(PACK_KEYS)}")
                continue
            self.unknown_keys(spec, PACK_KEYS, f"key in audience pack '{name}'")

            def own(key: str) -> tuple[CommentedMap, Any]:
                # A pack inherits what it leaves out from the default pack.
                if key in spec or not isinstance(base, CommentedMap) or key not in base:
                    return spec, spec.get(key)
                return base, base.get(key)

            holder, _ = own("weekend_factor")
            weekend = self.number(holder, "weekend_factor", 0.0, 10.0, default=1.0)
            holder, _ = own("ring_s")
            ring = self.span(holder, "ring_s", (3.0, 15.0))
            holder, hours = own("answer_by_hour")
            by_hour = self.hours(hours, holder, f"audience pack '{name}'")
            holder, shares = own("announcements")
            announcements = self.shares(shares, holder, f"audience pack '{name}'", transcripts)
            holder, mix = own("persona_mix")
            weights = self.weights(mix, holder, "persona_mix", f"audience pack '{name}' persona_mix") if mix else {}
            if mix is None:
                self.error(spec, None, f"audience pack '{name}': 'persona_mix' is missing")
            for persona in weights:
                if persona not in personas and personas:
                    self.error(mix, persona, f"audience pack '{name}': unknown persona '{persona}'; "
                                             f"defined: {', '.join(personas)}")
            result[str(name)] = AudienceProfile(str(name), by_hour, weekend, ring, announcements, Weighted.of(weights))
        return result

    def hours(self, node: Any, owner: CommentedMap, where: str) -> tuple[float, ...]:
        """`answer_by_hour`: keys are hours (19) or inclusive ranges ("9-11"); every hour
        0-23 exactly once."""
        by_hour: list[float | None] = [None] * 24
        if not isinstance(node, CommentedMap):
            self.error(owner, "answer_by_hour" if "answer_by_hour" in owner else None,
                       f"{where}: 'answer_by_hour' must map hours (e.g. 19 or \"9-11\") to probabilities")
            return tuple([0.0] * 24)
        for key, value in node.items():
            match = re.fullmatch(r"\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?", str(key))
            first, last = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (-1, -1)
            if not match or not (0 <= first <= last <= 23):
                self.error(node, key, f"{where}: '{key}' is not an hour 0-23 or a range like 9-11")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                self.error(node, key, f"{where}: answer probability for {key} must be between 0 and 1; got {value!r}")
                value = 0.0
            for hour in range(first, last + 1):
                if by_hour[hour] is not None:
                    self.error(node, key, f"{where}: hour {hour} is given twice")
                by_hour[hour] = float(value)
        missing = [h for h, p in enumerate(by_hour) if p is None]
        if missing:
            self.error(owner, "answer_by_hour", f"{where}: answer_by_hour has no value for hours "
                                                f"{', '.join(map(str, missing))}")
        return tuple(p or 0.0 for p in by_hour)

    def shares(self, node: Any, owner: CommentedMap, where: str,
               transcripts: Mapping[str, Weighted]) -> dict[str, AnnouncementShare]:
        if node is None:
            return {}
        if not isinstance(node, CommentedMap):
            self.error(owner, "announcements", f"{where}: 'announcements' must map call statuses to shares")
            return {}
        result: dict[str, AnnouncementShare] = {}
        for status, value in node.items():
            if status not in CALL_STATUSES:
                self.error(node, status, f"{where}: unknown call status '{status}'; "
                                         f"expected one of: {', '.join(CALL_STATUSES)}")
                continue
            if status not in transcripts:
                self.error(node, status, f"{where}: no transcripts for '{status}' under the top-level announcements")
            if isinstance(value, CommentedMap):
                self.unknown_keys(value, SHARE_KEYS, f"key for {where} announcement '{status}'")
                result[status] = AnnouncementShare(self.probability(value, "share"),
                                                   self.probability(value, "per_attempt", 1.0))
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
                result[status] = AnnouncementShare(float(value))
            else:
                self.error(node, status, f"{where}: share of '{status}' must be between 0 and 1 "
                                         f"(or {{share, per_attempt}}); got {value!r}")
        total = sum(s.share for s in result.values())
        if total > 1.0 + 1e-9:
            self.error(owner, "announcements", f"{where}: announcement shares add up to {total:g}, more than 1")
        return result


def _line(node: Any, key: Any) -> int:
    """1-based line of `key` in a ruamel node (the node itself when key is None)."""
    try:
        if key is None:
            return node.lc.line + 1
        if isinstance(node, CommentedSeq):
            return node.lc.item(key)[0] + 1
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return getattr(getattr(node, "lc", None), "line", -1) + 1
