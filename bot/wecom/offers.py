"""Incentives (利益点) and welcome scripts (欢迎语) per audience pack: `dialogs/wecom/offers.yml`.

The incentive is what the robot promises on the phone (the `{incentive}` slot), so it is
chosen before the call is graded: per audience pack (pack name, then scene, then
`default`) and, when a pack has several, per lead by a deterministic hash
(bot.campaigns.assignment). The welcome script is chosen per audience pack × grade. Both
honour the arm the campaign's experiment assigned (CallAttempt.arms["incentive"/"welcome"])
when there is one. The dialer and the invitation call the same `incentive_for`, so the
promise made on the phone and the welcome message always name the same incentive.

Loading checks the file against the models below (intents.yaml_source) and reports every
mistake as `file:line:col: problem` at once.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from pydantic import Field, root_validator, validator

from bot.campaigns.assignment import Arm, assign
from bot.campaigns.experiment_design import arm_scope, incentive_arms_for, seed_for
from bot.core.errors import UserError
from bot.core.settings import get_settings
from intents.yaml_source import Number, Problems, Text, YamlModel, check, line_of, load_yaml, parse_yaml

DEFAULT_AUDIENCE = "default"
ANY_GRADE = "any"
GRADES = ("A", "B")
DELIVERY_CHANNELS = ("sms", "advisor")
WELCOME_SLOTS = frozenset({"callee_title", "incentive", "advisor", "institution"})
SMS_SLOTS = WELCOME_SLOTS | {"link"}
# Said in the call inside a sentence (为您准备了{incentive}): long texts make lines over 15 s.
MAX_INCENTIVE_CHARS = 30
MAX_WELCOME_CHARS = 1000  # WeCom allows 4000 bytes of text; a welcome is read on a phone
MAX_SMS_CHARS = 200
MAX_LINK_TITLE_CHARS = 40  # WeCom: link.title ≤ 128 bytes
MAX_LINK_DESC_CHARS = 170  # WeCom: link.desc ≤ 512 bytes
MAX_MINIPROGRAM_TITLE_CHARS = 20  # WeCom: miniprogram.title ≤ 64 bytes
MAX_NAME_CHARS = 20  # arm names appear in tags (≤ 30 chars with their prefix)


def default_offers_path() -> Path:
    settings = get_settings()
    return settings.wecom_offers or settings.dialogs_dir / "wecom" / "offers.yml"


@dataclass(frozen=True)
class Advisor:
    userid: str  # the WeCom member who owns the contact way
    name: str  # how the script and the welcome call them ({advisor})


@dataclass(frozen=True)
class Option:
    """One arm of an incentive or welcome choice."""

    name: str
    text: str
    weight: float = 1.0
    link: Mapping[str, str] | None = None
    miniprogram: Mapping[str, str] | None = None
    line: int = 0


@dataclass(frozen=True)
class AudienceOffers:
    key: str
    incentives: tuple[Option, ...]
    welcomes: Mapping[str, tuple[Option, ...]]  # grade (A/B/any) → arms
    advisor: Advisor | None = None


@dataclass(frozen=True)
class Offers:
    path: str
    invite_grades: tuple[str, ...]
    delivery: str
    advisor: Advisor
    sms_text: str
    institution: str | None
    seeds: Mapping[str, str]
    audiences: Mapping[str, AudienceOffers]

    def audience(self, audience: Any) -> AudienceOffers:
        """The block for an audience pack: by name, then scene, then `default`. `audience`
        is a pack name or scene (str), an object with .name/.scene, or None."""
        for key in _audience_keys(audience):
            if key in self.audiences:
                return self.audiences[key]
        return self.audiences[DEFAULT_AUDIENCE]

    def advisor_for(self, audience: Any) -> Advisor:
        return self.audience(audience).advisor or self.advisor


@dataclass(frozen=True)
class Incentive:
    name: str  # the arm: shown in reports and tags
    text: str  # what the robot says and the welcome repeats
    audience: str  # which offers block it came from (pack name, scene or default)
    source: str  # "offers" | "campaign_arm" (the campaign's experiment text) | "campaign" (campaign --incentive)

    @property
    def key(self) -> str:
        return f"{self.audience}/{self.name}"


@dataclass(frozen=True)
class WelcomeScript:
    key: str  # "<audience>/<grade>/<name>"
    name: str
    text: str  # template
    link: Mapping[str, str] | None = None
    miniprogram: Mapping[str, str] | None = None

    def render(self, slots: Mapping[str, str]) -> tuple[str, list[dict]]:
        """(text, attachments) in WeCom send_welcome_msg's JSON shape."""
        text = _fill(self.text, slots)
        attachments: list[dict] = []
        if self.link:
            attachments.append({"msgtype": "link", "link": {k: _fill(v, slots) for k, v in self.link.items()}})
        if self.miniprogram:
            attachments.append(
                {"msgtype": "miniprogram", "miniprogram": {k: _fill(v, slots) for k, v in self.miniprogram.items()}}
            )
        return text, attachments


def incentive_for(
    offers: Offers, audience: Any, lead_id: int, arms: Mapping[str, str] | None = None, *, campaign: Any = None
) -> Incentive:
    """The incentive the robot promises this lead, and the welcome later repeats.

    In order: the campaign's incentive arms for this audience pack (`--incentive-arm
    PACK:NAME=TEXT`, matched by pack name, then scene), else its global arms
    (`global:NAME=TEXT`): the lead's arm (arms["incentive"], as the planner assigned it;
    the same hash when there is none), said as the campaign wrote it. Without campaign arms
    for the pack: the pack's own incentives here (the lead's arm if it names one, else one,
    or an A/B pick by lead); the campaign's single incentive (`campaign create --incentive`)
    for packs without their own block; the default block's incentives."""
    block = offers.audience(audience)
    arm = (arms or {}).get("incentive")
    experiments = (getattr(campaign, "experiments", None) or {}) if campaign is not None else {}
    campaign_arms = incentive_arms_for(experiments, _audience_keys(audience))
    if campaign_arms:
        chosen = next((a for a in campaign_arms if a["name"] == arm), None)
        if chosen is None:
            seed = seed_for(getattr(campaign, "id", 0), experiments, "incentive")
            name = assign(seed, str(lead_id), [Arm(a["name"], float(a.get("weight", 1))) for a in campaign_arms])
            chosen = next(a for a in campaign_arms if a["name"] == name)
        return Incentive(chosen["name"], chosen["text"], arm_scope(chosen), "campaign_arm")
    if arm:
        option = next((o for o in block.incentives if o.name == arm), None)
        if option is not None:
            return Incentive(option.name, option.text, block.key, "offers")
    if block.key == DEFAULT_AUDIENCE and campaign is not None and getattr(campaign, "incentive", None):
        return Incentive("campaign", campaign.incentive, block.key, "campaign")
    option = _pick(block.incentives, offers.seeds["incentive"], block.key, lead_id)
    return Incentive(option.name, option.text, block.key, "offers")


@dataclass(frozen=True)
class OfferedIncentive:
    """One incentive a campaign offers the leads of one audience pack, for the pages."""

    name: str
    text: str
    share: float  # of the pack's leads, by the arms' weights
    source: str  # as Incentive.source
    scope: str  # the campaign arm's pack or `global`; the offers block's key otherwise


def offered_incentives(offers: Offers, audience: Any, campaign: Any) -> list[OfferedIncentive]:
    """What the robot says to the leads of this audience pack in this campaign: the same
    rules as incentive_for, listed with each arm's share."""
    experiments = getattr(campaign, "experiments", None) or {}
    campaign_arms = incentive_arms_for(experiments, _audience_keys(audience))
    if campaign_arms:
        total = sum(float(a.get("weight", 1)) for a in campaign_arms)
        return [
            OfferedIncentive(a["name"], a["text"], float(a.get("weight", 1)) / total, "campaign_arm", arm_scope(a))
            for a in campaign_arms
        ]
    block = offers.audience(audience)
    if block.key == DEFAULT_AUDIENCE and getattr(campaign, "incentive", None):
        return [OfferedIncentive("campaign", campaign.incentive, 1.0, "campaign", block.key)]
    total = sum(o.weight for o in block.incentives)
    return [OfferedIncentive(o.name, o.text, o.weight / total, "offers", block.key) for o in block.incentives]


def welcome_for(
    offers: Offers,
    audience: Any,
    grade: str,
    lead_id: int,
    arms: Mapping[str, str] | None = None,
    *,
    campaign: Any = None,
) -> WelcomeScript:
    """The welcome script for this lead's audience pack and grade (and welcome arm)."""
    options, block_key, grade_key = _welcome_options(offers, offers.audience(audience), grade)
    arm = (arms or {}).get("welcome")
    if arm:
        option = next((o for o in options if o.name == arm), None)
        if option is not None:
            return _script(block_key, grade_key, option)
        text = _campaign_arm_text(campaign, "welcomes", arm)
        if text:
            return WelcomeScript(f"campaign/{grade_key}/{arm}", arm, text)
    option = _pick(options, offers.seeds["welcome"], f"{block_key}-{grade_key}", lead_id)
    return _script(block_key, grade_key, option)


def welcome_slots(offers: Offers, audience: Any, incentive: Incentive, callee_title: str) -> dict[str, str]:
    return {
        "callee_title": callee_title,
        "incentive": incentive.text,
        "advisor": offers.advisor_for(audience).name,
        "institution": offers.institution or "",
    }


def render_sms(offers: Offers, slots: Mapping[str, str], link: str) -> str:
    return _fill(offers.sms_text, {**slots, "link": link})


# ---- loading ------------------------------------------------------------------------------------

_cache: dict[str, tuple[float, Offers]] = {}


def load_offers(path: Path | str | None = None) -> Offers:
    """The offers file, checked; cached until the file changes. YamlError (a UserError)
    lists every mistake as `file:line:col: problem`."""
    path = Path(path) if path else default_offers_path()
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise UserError(
            f"{path}: the WeCom offers file does not exist (copy dialogs/wecom/offers.yml, "
            "or set WAIHU_WECOM_OFFERS to its path)"
        ) from None
    cached = _cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    document = load_yaml(path)
    offers = check(document, OffersFile, str(path)).offers(document, str(path))
    _cache[str(path)] = (mtime, offers)
    return offers


def parse_offers(text: str, path: str = "offers.yml") -> Offers:
    document = parse_yaml(text, path)
    return check(document, OffersFile, path).offers(document, path)


# ---- the file's shape ---------------------------------------------------------------------------


class Template(str):
    """A text with {slots}: only the allowed slots, braces balanced, not too long."""

    slots: ClassVar[frozenset[str]] = WELCOME_SLOTS
    max_chars: ClassVar[int | None] = None
    is_url: ClassVar[bool] = False

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], str]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("the text is missing")
        problems = Problems()
        slot_problem = _slot_problem(value, cls.slots)
        if slot_problem:
            problems.add(slot_problem)
        if cls.is_url and not value.startswith(("https://", "http://")):
            problems.add("must start with https:// (or http://)")
        if cls.max_chars is not None and len(value) > cls.max_chars:
            problems.add(f"{len(value)} characters; at most {cls.max_chars}")
        cls.check_more(value, problems)
        problems.raise_any()
        return str(value)

    @classmethod
    def check_more(cls, value: str, problems: Problems) -> None:
        """What a kind of text needs besides its slots and length."""


class WelcomeText(Template):
    max_chars = MAX_WELCOME_CHARS


class LinkTitle(Template):
    max_chars = MAX_LINK_TITLE_CHARS


class LinkDescription(Template):
    max_chars = MAX_LINK_DESC_CHARS


class MiniprogramTitle(Template):
    max_chars = MAX_MINIPROGRAM_TITLE_CHARS


class Url(Template):
    is_url = True


class SmsText(Template):
    slots = SMS_SLOTS
    max_chars = MAX_SMS_CHARS

    @classmethod
    def check_more(cls, value: str, problems: Problems) -> None:
        if "{link}" not in value:
            problems.add("the SMS must contain {link} (the 联系我 link the customer opens)")
        if "退订" not in value and "拒收" not in value:
            problems.add("the SMS must say how to opt out (e.g. “拒收请回复R” or “回T退订”)")


class SpokenIncentive(str):
    """What the robot promises in the call: said as written, short enough to say."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], str]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("the text is missing")
        problems = Problems()
        if "{" in value or "}" in value:
            problems.add("an incentive is said as written; it cannot contain {slots}")
        if len(value) > MAX_INCENTIVE_CHARS:
            problems.add(f"{len(value)} characters; at most {MAX_INCENTIVE_CHARS} (it is spoken in the call)")
        problems.raise_any()
        return value.strip()


class ArmName(Text):
    max_chars = MAX_NAME_CHARS  # arm names appear in tags


class UserId(Text):
    max_chars = 64


class Weight(Number):
    gt = 0.0


class AdvisorModel(YamlModel):
    userid: UserId = Field(..., hint="the WeCom member account (成员 userid)")
    name: ArmName = Field(..., hint=f"how the customer hears the advisor named, at most {MAX_NAME_CHARS} characters")

    def advisor(self) -> Advisor:
        return Advisor(self.userid, self.name)


class LinkModel(YamlModel):
    title: LinkTitle = Field(..., hint="the link card's title")
    url: Url = Field(..., hint="where the link card opens")
    desc: Optional[LinkDescription] = None
    picurl: Optional[Url] = None


class MiniprogramModel(YamlModel):
    title: MiniprogramTitle
    pic_media_id: Template
    appid: Template
    page: Template


class IncentiveModel(YamlModel):
    name: ArmName = Field(..., hint="a short name for this arm (reports, tags)")
    text: SpokenIncentive = Field(..., hint="what the robot promises in the call")
    weight: Weight = Weight(1.0)

    def option(self, line: int) -> Option:
        return Option(self.name, self.text, self.weight, line=line)


class WelcomeModel(YamlModel):
    name: ArmName = Field(..., hint="a short name for this arm (reports, tags)")
    text: WelcomeText = Field(..., hint="the welcome message")
    weight: Weight = Weight(1.0)
    link: Optional[LinkModel] = None
    miniprogram: Optional[MiniprogramModel] = None

    def option(self, line: int) -> Option:
        link = self.link.dict(exclude_none=True) if self.link else None
        miniprogram = self.miniprogram.dict(exclude_none=True) if self.miniprogram else None
        return Option(self.name, self.text, self.weight, link, miniprogram, line)


class _Arms(tuple):
    """A list of arms, each a mapping with a unique `name`. Each arm is checked on its own so
    the problems of all arms, and a name used twice, are reported together."""

    arm: ClassVar[type[YamlModel]]

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], tuple]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> tuple:
        if not isinstance(value, list) or not value:
            raise ValueError("a list of arms, each with name and text")
        problems = Problems()
        arms, names = [], set()
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                problems.add("a mapping with name and text", index)
                continue
            arms.append(problems.attempt(cls.arm.parse_obj, item, index))
            name = item.get("name")
            if isinstance(name, str) and name.strip() in names:
                problems.add(f"name {name!r} is used twice in this list; names must be unique", index, "name")
            names.add(name.strip() if isinstance(name, str) else name)
        problems.raise_any()
        return tuple(arms)


class IncentiveArms(_Arms):
    arm = IncentiveModel


class WelcomeArms(_Arms):
    arm = WelcomeModel


class WelcomeByGrade(dict):
    """Grade (A, B or any) → welcome arms."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], dict]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValueError("a mapping from grade (A, B or any) to scripts")
        problems = Problems()
        by_grade = {}
        for grade, arms in value.items():
            if grade not in (*GRADES, ANY_GRADE):
                problems.add("the grade must be A, B or any", grade)
                continue
            by_grade[grade] = problems.attempt(WelcomeArms.check, arms, grade)
        problems.raise_any()
        return by_grade


class AudienceModel(YamlModel):
    incentives: Optional[IncentiveArms] = None
    welcome: Optional[WelcomeByGrade] = None
    advisor: Optional[AdvisorModel] = None

    def audience(self, key: str, document: Any) -> AudienceOffers:
        def line(*loc: Any) -> int:
            return line_of(document, "audiences", key, *loc) or 0

        incentives = tuple(arm.option(line("incentives", i)) for i, arm in enumerate(self.incentives or ()))
        welcomes = {
            grade: tuple(arm.option(line("welcome", grade, i)) for i, arm in enumerate(arms))
            for grade, arms in (self.welcome or {}).items()
        }
        return AudienceOffers(key, incentives, welcomes, self.advisor.advisor() if self.advisor else None)


class Audiences(dict):
    """Audience pack name or scene → its block; `default` is required. Each block is
    checked on its own so the problems of all blocks are reported together."""

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], dict]]:
        yield cls.check

    @classmethod
    def check(cls, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping) or not value:
            raise ValueError("one block per audience pack (name or scene), including `default`")
        problems = Problems()
        if DEFAULT_AUDIENCE not in value:
            problems.add("needs a `default` block (used for packs without their own)")
        blocks = {}
        for key, block in value.items():
            if not isinstance(block, Mapping):
                problems.add("a mapping with incentives and/or welcome", key)
                continue
            blocks[str(key)] = problems.attempt(AudienceModel.parse_obj, block, key)
        problems.raise_any()
        return blocks


class SeedsModel(YamlModel):
    incentive: Text = Text("wecom-incentive")
    welcome: Text = Text("wecom-welcome")


class OffersFile(YamlModel):
    """dialogs/wecom/offers.yml."""

    version: Any = 1
    invite_grades: Any = GRADES
    delivery: Any = "sms"
    advisor: AdvisorModel = Field(..., hint="the WeCom member (userid) and how the script names them (name)")
    institution: Optional[Text] = None
    sms: Optional[SmsText] = None
    seeds: SeedsModel = SeedsModel()
    audiences: Audiences = Field(..., hint="one block per audience pack (name or scene), including `default`")

    @validator("version")
    def _version_one(cls, version: Any) -> Any:
        if version != 1:
            raise ValueError("version must be 1")
        return version

    @validator("invite_grades")
    def _grades_a_or_b(cls, grades: Any) -> tuple[str, ...]:
        if not isinstance(grades, (list, tuple)) or not grades or any(g not in GRADES for g in grades):
            raise ValueError("a list of A and/or B, e.g. [A, B] or [A]")
        return tuple(dict.fromkeys(grades))

    @validator("delivery")
    def _known_channel(cls, delivery: Any) -> str:
        if delivery not in DELIVERY_CHANNELS:
            raise ValueError(f"{delivery!r} is not a delivery channel; use one of: {', '.join(DELIVERY_CHANNELS)}")
        return str(delivery)

    @root_validator
    def _parts_fit_together(cls, values: dict) -> dict:
        """An SMS when invitations go by SMS, an institution when a text names it, and a
        default block that covers every invited grade. Checks the parts that are well-formed."""
        problems = Problems()
        if values.get("delivery") == "sms" and "sms" in values and not values["sms"]:
            problems.add("missing `sms`: the invitation text (delivery is sms)")
        audiences: dict[str, AudienceModel] = values.get("audiences") or {}
        texts = [arm.text for block in audiences.values() for arms in (block.welcome or {}).values() for arm in arms]
        if (
            any("{institution}" in text for text in texts + [values.get("sms") or ""])
            and "institution" in values
            and not values["institution"]
        ):
            problems.add("a text uses {institution} but `institution:` is not set")
        default = audiences.get(DEFAULT_AUDIENCE)
        if default is not None:
            if not default.incentives:
                problems.add("needs at least one incentive", "audiences", DEFAULT_AUDIENCE)
            for grade in values.get("invite_grades") or ():
                if grade not in (default.welcome or {}) and ANY_GRADE not in (default.welcome or {}):
                    problems.add(
                        f"needs a welcome for grade {grade} (or `any`): grade {grade} calls get an "
                        "invitation (invite_grades)",
                        "audiences",
                        DEFAULT_AUDIENCE,
                    )
        problems.raise_any()
        return values

    def offers(self, document: Any, path: str) -> Offers:
        return Offers(
            path,
            self.invite_grades,
            self.delivery,
            self.advisor.advisor(),
            self.sms or "",
            self.institution,
            self.seeds.dict(),
            {key: block.audience(key, document) for key, block in self.audiences.items()},
        )


def _slot_problem(template: str, allowed: frozenset[str]) -> str | None:
    try:
        fields = [name for _, name, spec, conversion in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"broken braces ({exc}); write a literal brace as {{{{ or }}}}"
    unknown = sorted({f for f in fields if f not in allowed})
    if unknown:
        return f"unknown slot(s) {', '.join('{' + f + '}' for f in unknown)}; allowed: " + ", ".join(
            "{" + s + "}" for s in sorted(allowed)
        )
    return None


def _fill(template: str, slots: Mapping[str, str]) -> str:
    return template.format_map({k: v for k, v in slots.items()})


def _audience_keys(audience: Any) -> list[str]:
    if audience is None:
        return []
    if isinstance(audience, str):
        return [audience]
    return [k for k in (getattr(audience, "name", None), getattr(audience, "scene", None)) if k]


def _pick(options: tuple[Option, ...], seed: str, block_key: str, lead_id: int) -> Option:
    if len(options) == 1:
        return options[0]
    chosen = assign(f"{seed}-{block_key}", str(lead_id), [Arm(o.name, o.weight) for o in options])
    return next(o for o in options if o.name == chosen)


def _welcome_options(offers: Offers, block: AudienceOffers, grade: str) -> tuple[tuple[Option, ...], str, str]:
    """(arms, block key, grade key): the pack's own scripts for the grade, else for any
    grade, else the default block's."""
    for candidate in (block, offers.audiences[DEFAULT_AUDIENCE]):
        for key in (grade, ANY_GRADE):
            if candidate.welcomes.get(key):
                return candidate.welcomes[key], candidate.key, key
    raise UserError(f"{offers.path}: no welcome script for grade {grade} (add one under audiences.default.welcome)")


def _script(block_key: str, grade_key: str, option: Option) -> WelcomeScript:
    return WelcomeScript(
        f"{block_key}/{grade_key}/{option.name}", option.name, option.text, option.link, option.miniprogram
    )


def _campaign_arm_text(campaign: Any, key: str, arm: str) -> str | None:
    for item in (getattr(campaign, "experiments", None) or {}).get(key) or ():
        if item.get("name") == arm and item.get("text"):
            return item["text"]
    return None
