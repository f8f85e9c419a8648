"""The compliance policy: a versioned YAML profile, parsed once into a fast, frozen object.

Three layers, each only allowed to be stricter than the one below:
  HARD_LIMITS (the law, in code) ≤ profile (CN_INSURANCE_DEFAULT, or an admin-signed one)
  ≤ campaign overrides (`tighten`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from pydantic import Field, validator

from intents.errors import InputError
from intents.yaml_source import Problems, Text, WholeNumber, YamlModel, check, load_yaml, plain

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "CN_INSURANCE_DEFAULT"
DAY = 86400

# The legal floor. No profile, signed or not, and no campaign may cross it.
HARD_BAND = (9 * 3600, 21 * 3600)  # 人身保险电话销售业务管理办法 Art 25: nothing 21:00–09:00
HARD_MAX_ATTEMPTS_24H = 3
HARD_MIN_SOFT_DECLINE_DAYS = 180  # ≥ 6 months after a refusal
HARD_PERMANENT_OUTCOMES = ("opt_out",)

_CAP_SECONDS = {"rolling_24h": DAY, "rolling_7d": 7 * DAY, "rolling_30d": 30 * DAY}


@dataclass(frozen=True)
class CompliancePolicy:
    name: str
    version: int
    timezone: str
    windows: tuple[tuple[int, int], ...]  # seconds after local midnight, [start, end)
    holiday_windows: tuple[tuple[int, int], ...]
    callback_band: tuple[int, int]
    callback_grace_seconds: int
    callback_max_attempts_24h: int
    caps: tuple[tuple[str, int, int], ...]  # (name, window seconds, max attempts)
    no_answer_outcomes: frozenset[str]
    park_after_no_answers: int
    park_seconds: int
    cooldown_seconds: dict[str, int]
    permanent: dict[str, str]  # outcome → reason code
    opening_line: dict[str, Any]
    document: dict[str, Any]  # the parsed YAML, for tightening and display
    # WeCom follow-up messages (bot.wecom.sop): sent only inside this local window (a step due
    # outside it waits for the next opening), and at most this many per person per 7 days.
    message_window: tuple[int, int] = (9 * 3600, 21 * 3600)
    message_weekly_cap: int = 3

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def parse_span(text: str, where: str) -> tuple[int, int]:
    """ "09:30-12:00" → (34200, 43200)."""
    try:
        return _span(text)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def _span(text: Any) -> tuple[int, int]:
    try:
        start, end = (part.strip() for part in str(text).split("-"))
        span = (_seconds(start), _seconds(end))
    except ValueError:
        raise ValueError(f'{text!r} is not a time span; write it like "09:30-12:00"') from None
    if span[0] >= span[1]:
        raise ValueError(f"{text!r} ends before it starts (spans past midnight are not allowed)")
    return span


def _seconds(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(hhmm)
    return h * 3600 + m * 60


# ---- the profile's shape --------------------------------------------------------------------------


class TimeSpan(tuple):
    """ "09:30-12:00", read as seconds after local midnight (34200, 43200)."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], tuple[int, int]]]:
        yield _span


class TimeSpans(tuple):
    """A list of spans that do not overlap, read in time order."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], tuple[tuple[int, int], ...]]]:
        yield cls.check

    @classmethod
    def check(cls, values: Any) -> tuple[tuple[int, int], ...]:
        if not isinstance(values, list):
            raise ValueError('expected a list of spans like ["09:30-12:00", "14:00-20:00"]')
        problems = Problems()
        spans = [problems.attempt(_span, value, index) for index, value in enumerate(values)]
        problems.raise_any()
        ordered = sorted(span for span in spans if span is not None)
        for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
            if start < end:
                raise ValueError("spans overlap; list each stretch of time once")
        return tuple(ordered)


class ZoneName(str):
    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], str]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
        return str(value)


class Count(WholeNumber):
    ge = 0


class AtLeastOne(WholeNumber):
    ge = 1


class CallbacksModel(YamlModel):
    band: TimeSpan = TimeSpan(_span("09:00-21:00"))
    grace_minutes: Count = Field(..., hint="minutes after the named time before a callback lapses")
    max_attempts_24h: Count = Field(..., hint="attempts a callback may use in 24 hours")


class NoAnswerModel(YamlModel):
    outcomes: Optional[list[Text]] = None
    park_after: AtLeastOne = Field(..., hint="consecutive unanswered attempts before a number is parked")
    park_days: Count = Field(..., hint="days a parked number rests")


class MessagesModel(YamlModel):
    window: TimeSpan = Field(
        TimeSpan(_span("09:00-21:00")), hint='local time follow-up messages may go out, "09:00-21:00"'
    )
    weekly_cap: Count = Field(3, hint="follow-up messages per person per 7 days")


class ApprovalModel(YamlModel):
    approved_by: Text
    signature: Text


class ProfileModel(YamlModel):
    """A compliance profile (telephony/compliance/profiles/*.yml)."""

    profile: Text = Field(..., hint="the profile's name")
    version: AtLeastOne = Field(..., hint="a number ≥ 1")
    effective_from: Any = None
    timezone: ZoneName = ZoneName("Asia/Shanghai")
    windows: TimeSpans = Field(..., hint='calling windows, local time, e.g. ["09:30-12:00", "14:00-20:00"]')
    holiday_windows: Optional[TimeSpans] = None
    callbacks: CallbacksModel = Field(..., hint="band, grace_minutes and max_attempts_24h")
    caps: Optional[dict[str, Count]] = Field(..., hint=f"attempts per number: {', '.join(_CAP_SECONDS)}")
    no_answer: NoAnswerModel = Field(..., hint="outcomes, park_after and park_days")
    cooldown_days: Optional[dict[str, Count]] = Field(..., hint="outcome → days before the number is called again")
    permanent: Optional[dict[str, str]] = Field(..., hint="an outcome → a reason code, e.g. opt_out: opted_out_on_call")
    opening_line: Optional[dict[str, Any]] = None
    messages: Optional[MessagesModel] = None
    sources: Optional[list[str]] = None
    approval: Optional[ApprovalModel] = None

    @validator("caps")
    def _known_caps(cls, caps: dict[str, int] | None) -> dict[str, int]:
        problems = Problems()
        for name in caps or {}:
            if name not in _CAP_SECONDS:
                problems.add(f"unknown cap; caps are {', '.join(_CAP_SECONDS)}", name)
        problems.raise_any()
        return caps or {}

    def policy(self, document: dict) -> CompliancePolicy:
        caps = sorted(
            ((name, _CAP_SECONDS[name], cap) for name, cap in (self.caps or {}).items()), key=lambda cap: cap[1]
        )
        return CompliancePolicy(
            name=self.profile,
            version=self.version,
            timezone=self.timezone,
            windows=self.windows,
            holiday_windows=self.holiday_windows or (),
            callback_band=self.callbacks.band,
            callback_grace_seconds=self.callbacks.grace_minutes * 60,
            callback_max_attempts_24h=self.callbacks.max_attempts_24h,
            caps=tuple(caps),
            no_answer_outcomes=frozenset(self.no_answer.outcomes or ()),
            park_after_no_answers=self.no_answer.park_after,
            park_seconds=self.no_answer.park_days * DAY,
            cooldown_seconds={outcome: days * DAY for outcome, days in (self.cooldown_days or {}).items()},
            permanent=dict(self.permanent or {}),
            opening_line=dict(self.opening_line or {}),
            document=document,
            message_window=self.messages.window if self.messages is not None else (9 * 3600, 21 * 3600),
            message_weekly_cap=self.messages.weekly_cap if self.messages is not None else 3,
        )


def parse_policy(document: dict, source: str, *, positions: Any = None) -> CompliancePolicy:
    """A policy from a profile document (plain data); problems name the source and the field,
    and the line and column when `positions` is the YAML tree the document was read from."""
    return check(document, ProfileModel, source, positions=positions).policy(document)


def hard_limit_violations(policy: CompliancePolicy) -> list[str]:
    """Where a policy crosses the law. Nobody can sign these away."""
    problems = []
    band_start, band_end = HARD_BAND
    for field, spans in (
        ("windows", policy.windows),
        ("holiday_windows", policy.holiday_windows),
        ("callbacks.band", (policy.callback_band,)),
        ("messages.window", (policy.message_window,)),
    ):
        for start, end in spans:
            if start < band_start or end > band_end:
                problems.append(f"{field}: {_hhmm(start)}-{_hhmm(end)} reaches into the 21:00-09:00 hard block")
    cap_24h = dict((name, cap) for name, _, cap in policy.caps).get("rolling_24h")
    if cap_24h is None or cap_24h > HARD_MAX_ATTEMPTS_24H:
        problems.append(f"caps.rolling_24h: must be set and at most {HARD_MAX_ATTEMPTS_24H}")
    if policy.callback_max_attempts_24h > HARD_MAX_ATTEMPTS_24H:
        problems.append(f"callbacks.max_attempts_24h: at most {HARD_MAX_ATTEMPTS_24H}")
    if policy.cooldown_seconds.get("soft_decline", 0) < HARD_MIN_SOFT_DECLINE_DAYS * DAY:
        problems.append(f"cooldown_days.soft_decline: at least {HARD_MIN_SOFT_DECLINE_DAYS} days after a refusal")
    for outcome in HARD_PERMANENT_OUTCOMES:
        if outcome not in policy.permanent:
            problems.append(f"permanent: {outcome} must stay permanent")
    return problems


def looser_fields(base: CompliancePolicy, other: CompliancePolicy) -> list[str]:
    """Every field where `other` allows more calling than `base` (empty: equal or stricter)."""
    looser = []
    if not _within(other.windows, base.windows):
        looser.append(f"windows: {_spans_text(other.windows)} is not inside {_spans_text(base.windows)}")
    if not _within(other.holiday_windows, base.holiday_windows):
        looser.append(
            f"holiday_windows: {_spans_text(other.holiday_windows)} is not inside "
            f"{_spans_text(base.holiday_windows) or 'no calls on holidays'}"
        )
    if not _within((other.callback_band,), (base.callback_band,)):
        looser.append(
            f"callbacks.band: {_spans_text((other.callback_band,))} is not inside {_spans_text((base.callback_band,))}"
        )
    if other.callback_grace_seconds > base.callback_grace_seconds:
        looser.append(
            f"callbacks.grace_minutes: {other.callback_grace_seconds // 60} > {base.callback_grace_seconds // 60}"
        )
    if other.callback_max_attempts_24h > base.callback_max_attempts_24h:
        looser.append(
            f"callbacks.max_attempts_24h: {other.callback_max_attempts_24h} > {base.callback_max_attempts_24h}"
        )
    other_caps = {name: cap for name, _, cap in other.caps}
    for name, _, cap in base.caps:
        if name not in other_caps:
            looser.append(f"caps.{name}: removed (base allows {cap})")
        elif other_caps[name] > cap:
            looser.append(f"caps.{name}: {other_caps[name]} > {cap}")
    if not base.no_answer_outcomes <= other.no_answer_outcomes:
        looser.append(
            f"no_answer.outcomes: drops {', '.join(sorted(base.no_answer_outcomes - other.no_answer_outcomes))}"
        )
    if other.park_after_no_answers > base.park_after_no_answers:
        looser.append(f"no_answer.park_after: {other.park_after_no_answers} > {base.park_after_no_answers}")
    if other.park_seconds < base.park_seconds:
        looser.append(f"no_answer.park_days: {other.park_seconds // DAY} < {base.park_seconds // DAY}")
    for outcome, seconds in base.cooldown_seconds.items():
        if other.cooldown_seconds.get(outcome, 0) < seconds:
            looser.append(
                f"cooldown_days.{outcome}: {other.cooldown_seconds.get(outcome, 0) // DAY} < {seconds // DAY}"
            )
    for outcome in base.permanent:
        if outcome not in other.permanent:
            looser.append(f"permanent.{outcome}: no longer permanent")
    if not _within((other.message_window,), (base.message_window,)):
        looser.append(
            f"messages.window: {_spans_text((other.message_window,))} is not inside "
            f"{_spans_text((base.message_window,))}"
        )
    if other.message_weekly_cap > base.message_weekly_cap:
        looser.append(f"messages.weekly_cap: {other.message_weekly_cap} > {base.message_weekly_cap}")
    return looser


def _within(inner: tuple[tuple[int, int], ...], outer: tuple[tuple[int, int], ...]) -> bool:
    return all(any(o_start <= start and end <= o_end for o_start, o_end in outer) for start, end in inner)


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _spans_text(spans: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in spans)


def _merge(base: dict, overrides: dict, prefix: str = "") -> dict:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if key in ("profile", "version", "timezone", "effective_from", "sources", "approval"):
            raise InputError(f"campaign policy: {prefix}{key} cannot be overridden by a campaign")
        if key not in merged:
            raise InputError(f"campaign policy: unknown field {prefix}{key}")
        if isinstance(value, dict) and isinstance(merged[key], dict) and key != "permanent":
            merged[key] = _merge(merged[key], value, f"{prefix}{key}.")
        elif key == "permanent" and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def tighten(policy: CompliancePolicy, overrides: dict | None, *, campaign: str = "campaign") -> CompliancePolicy:
    """The policy a campaign runs under: its overrides merged in, refused if any is looser."""
    if not overrides:
        return policy
    if not isinstance(overrides, dict):
        raise InputError(f"{campaign} policy overrides must be a mapping of fields, e.g. {{caps: {{rolling_7d: 2}}}}")
    document = _merge(policy.document, overrides)
    tightened = parse_policy(document, f"{campaign} policy")
    looser = looser_fields(policy, tightened)
    if looser:
        raise InputError(
            f"{campaign} policy: {looser[0]} — a campaign may only make {policy.label} stricter", details=looser[1:]
        )
    return tightened


# ---- profiles on disk, and admin signatures for looser ones ---------------------------------------


def _canonical(document: dict) -> bytes:
    body = {k: v for k, v in document.items() if k != "approval"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")


def sign_profile(document: dict, signing_key: bytes, approved_by: str) -> dict:
    """The document with an `approval` block an admin's key vouches for."""
    signature = hmac.new(signing_key, _canonical(document), hashlib.sha256).hexdigest()
    return {
        **{k: v for k, v in document.items() if k != "approval"},
        "approval": {"approved_by": approved_by, "signature": signature},
    }


def _signature_ok(document: dict, signing_key: bytes | None) -> bool:
    approval = document.get("approval") or {}
    if not signing_key or not isinstance(approval, dict) or not approval.get("signature"):
        return False
    expected = hmac.new(signing_key, _canonical(document), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, str(approval["signature"]))


def profile_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yml", ".yaml") or candidate.exists():
        return candidate
    return PROFILES_DIR / f"{name_or_path}.yml"


def read_document(path: Path) -> dict:
    """The profile as plain data (for signing, merging and display)."""
    return _read(path)[0]


def _read(path: Path) -> tuple[Any, Any]:
    """(the profile as plain data, the YAML tree that knows where each key is written)."""
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yml")))
        raise InputError(f"no compliance profile {path}", details=[f"built-in profiles: {known}"])
    tree = load_yaml(path)
    document = plain(tree)
    if isinstance(document, dict) and isinstance(document.get("effective_from"), date):
        document["effective_from"] = document["effective_from"].isoformat()
    return document, tree


def load_profile(name_or_path: str = DEFAULT_PROFILE, *, signing_key: bytes | None = None) -> CompliancePolicy:
    """A profile by name or path. A profile looser than the default must carry a valid admin signature."""
    path = profile_path(name_or_path)
    document, tree = _read(path)
    policy = parse_policy(document, str(path), positions=tree)
    crossings = hard_limit_violations(policy)
    if crossings:
        raise InputError(f"{path}: {crossings[0]} (a legal hard limit; no approval can lift it)", details=crossings[1:])
    if policy.name != DEFAULT_PROFILE:
        looser = looser_fields(default_policy(), policy)
        if looser and not _signature_ok(document, signing_key):
            raise InputError(
                f"{path}: loosens {DEFAULT_PROFILE} ({looser[0]}) without a valid admin signature",
                details=looser[1:] + ["an admin signs it with `waihu policy sign FILE --by NAME`"],
            )
    return policy


@lru_cache(maxsize=1)
def default_policy() -> CompliancePolicy:
    path = PROFILES_DIR / f"{DEFAULT_PROFILE}.yml"
    document, tree = _read(path)
    return parse_policy(document, str(path), positions=tree)
