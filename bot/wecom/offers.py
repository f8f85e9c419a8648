"""Incentives (利益点) and welcome scripts (欢迎语) per audience pack: `dialogs/wecom/offers.yml`.

The incentive is what the robot promises on the phone (the `{incentive}` slot), so it is
chosen before the call is graded: per audience pack (pack name, then scene, then
`default`) and, when a pack has several, per lead by a deterministic hash
(bot.campaigns.assignment). The welcome script is chosen per audience pack × grade. Both
honour the arm the campaign's experiment assigned (CallAttempt.arms["incentive"/"welcome"])
when there is one. The dialer and the invitation call the same `incentive_for`, so the
promise made on the phone and the welcome message always name the same incentive.

Loading checks everything and reports every mistake as `file:line: problem` at once.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from bot.core.settings import get_settings
from bot.core.errors import UserError
from bot.campaigns.assignment import Arm, assign

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

TOP_KEYS = ("version", "invite_grades", "delivery", "advisor", "institution", "sms", "seeds", "audiences")
AUDIENCE_KEYS = ("incentives", "welcome", "advisor")
INCENTIVE_KEYS = ("name", "text", "weight")
WELCOME_KEYS = ("name", "text", "weight", "link", "miniprogram")
LINK_KEYS = ("title", "url", "desc", "picurl")
MINIPROGRAM_KEYS = ("title", "pic_media_id", "appid", "page")
ADVISOR_KEYS = ("userid", "name")


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
            attachments.append({"msgtype": "miniprogram",
                                "miniprogram": {k: _fill(v, slots) for k, v in self.miniprogram.items()}})
        return text, attachments


def incentive_for(offers: Offers, audience: Any, lead_id: int, arms: Mapping[str, str] | None = None, *,
                  campaign: Any = None) -> Incentive:
    """The incentive the robot promises this lead, and the welcome later repeats.

    In order: the lead's incentive arm from the campaign's experiment (arms["incentive"]),
    worded by this audience's offers if they name that arm, else by the campaign's arm text;
    the audience pack's own incentives (one, or an A/B pick by lead); the campaign's single
    incentive (`campaign create --incentive`) for packs without their own block; the
    default block's incentives."""
    block = offers.audience(audience)
    arm = (arms or {}).get("incentive")
    if arm:
        option = next((o for o in block.incentives if o.name == arm), None)
        if option is not None:
            return Incentive(option.name, option.text, block.key, "offers")
        text = _campaign_arm_text(campaign, "incentives", arm)
        if text:
            return Incentive(arm, text, block.key, "campaign_arm")
    if block.key == DEFAULT_AUDIENCE and campaign is not None and getattr(campaign, "incentive", None):
        return Incentive("campaign", campaign.incentive, block.key, "campaign")
    option = _pick(block.incentives, offers.seeds["incentive"], block.key, lead_id)
    return Incentive(option.name, option.text, block.key, "offers")


def welcome_for(offers: Offers, audience: Any, grade: str, lead_id: int, arms: Mapping[str, str] | None = None, *,
                campaign: Any = None) -> WelcomeScript:
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
    return {"callee_title": callee_title, "incentive": incentive.text,
            "advisor": offers.advisor_for(audience).name, "institution": offers.institution or ""}


def render_sms(offers: Offers, slots: Mapping[str, str], link: str) -> str:
    return _fill(offers.sms_text, {**slots, "link": link})


# ---- loading ------------------------------------------------------------------------------------

_cache: dict[str, tuple[float, Offers]] = {}


def load_offers(path: Path | str | None = None) -> Offers:
    """The offers file, checked; cached until the file changes. UserError lists every
    mistake as `file:line: problem`."""
    path = Path(path) if path else default_offers_path()
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise UserError(f"{path}: the WeCom offers file does not exist (copy dialogs/wecom/offers.yml, "
                        "or set WAIHU_WECOM_OFFERS to its path)") from None
    cached = _cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    offers = parse_offers(path.read_text(encoding="utf-8"), str(path))
    _cache[str(path)] = (mtime, offers)
    return offers


def parse_offers(text: str, path: str = "offers.yml") -> Offers:
    try:
        document = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise UserError(f"{path}:{line}: not valid YAML: {exc.problem}") from None
    reader = _Reader(path)
    offers = reader.read(document)
    if reader.errors:
        raise UserError(f"{path}: {len(reader.errors)} problem(s) in the WeCom offers", details=reader.errors)
    return offers


@dataclass
class _Reader:
    path: str
    errors: list[str] = field(default_factory=list)

    def error(self, node: Any, key: Any, message: str) -> None:
        self.errors.append(f"{self.path}:{_line(node, key)}: {message}")

    def read(self, doc: Any) -> Offers | None:
        if not isinstance(doc, CommentedMap):
            self.errors.append(f"{self.path}:1: expected a mapping with the keys {', '.join(TOP_KEYS)}")
            return None
        self.unknown(doc, TOP_KEYS, "top level")
        if doc.get("version", 1) != 1:
            self.error(doc, "version", "version must be 1")
        grades = self.invite_grades(doc)
        delivery = doc.get("delivery", "sms")
        if delivery not in DELIVERY_CHANNELS:
            self.error(doc, "delivery", f"delivery {delivery!r}: one of {', '.join(DELIVERY_CHANNELS)}")
        advisor = self.advisor(doc, "advisor", required=True)
        institution = doc.get("institution")
        if institution is not None and (not isinstance(institution, str) or not institution.strip()):
            self.error(doc, "institution", "institution must be a non-empty text")
            institution = None
        sms = self.template(doc, "sms", SMS_SLOTS, MAX_SMS_CHARS, required=delivery == "sms")
        if sms:
            if "{link}" not in sms:
                self.error(doc, "sms", "the SMS must contain {link} (the 联系我 link the customer opens)")
            if "退订" not in sms and "拒收" not in sms:
                self.error(doc, "sms", "the SMS must say how to opt out (e.g. “拒收请回复R” or “回T退订”)")
        seeds = self.seeds(doc)
        audiences = self.audiences(doc, grades)
        if audiences is None or advisor is None:
            return None
        uses_institution = any("{institution}" in (o.text or "") for block in audiences.values()
                               for opts in block.welcomes.values() for o in opts) or "{institution}" in (sms or "")
        if uses_institution and not institution:
            self.error(doc, None, "a text uses {institution} but `institution:` is not set")
        return Offers(self.path, grades, delivery, advisor, sms or "", institution, seeds, audiences)

    def unknown(self, node: CommentedMap, allowed: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in allowed:
                self.error(node, key, f"unknown key {key!r} in {where}; allowed: {', '.join(allowed)}")

    def invite_grades(self, doc: CommentedMap) -> tuple[str, ...]:
        grades = doc.get("invite_grades", ["A", "B"])
        if not isinstance(grades, list) or not grades or any(g not in GRADES for g in grades):
            self.error(doc, "invite_grades", "invite_grades: a list of A and/or B, e.g. [A, B] or [A]")
            return GRADES
        return tuple(dict.fromkeys(grades))

    def advisor(self, node: CommentedMap, key: str, required: bool) -> Advisor | None:
        value = node.get(key)
        if value is None:
            if required:
                self.error(node, None, "advisor: give the WeCom member (userid) and how the script names them (name)")
            return None
        if not isinstance(value, CommentedMap):
            self.error(node, key, "advisor must be a mapping with userid and name")
            return None
        self.unknown(value, ADVISOR_KEYS, "advisor")
        userid, name = value.get("userid"), value.get("name")
        ok = True
        if not isinstance(userid, str) or not userid.strip() or len(userid) > 64:
            self.error(value, "userid" if "userid" in value else None,
                       "advisor.userid: the WeCom member account (成员 userid), at most 64 characters")
            ok = False
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            self.error(value, "name" if "name" in value else None,
                       f"advisor.name: how the customer hears the advisor named, at most {MAX_NAME_CHARS} characters")
            ok = False
        return Advisor(userid.strip(), name.strip()) if ok else None

    def seeds(self, doc: CommentedMap) -> dict[str, str]:
        seeds = {"incentive": "wecom-incentive", "welcome": "wecom-welcome"}
        value = doc.get("seeds")
        if value is None:
            return seeds
        if not isinstance(value, CommentedMap):
            self.error(doc, "seeds", "seeds: a mapping with incentive and/or welcome")
            return seeds
        self.unknown(value, ("incentive", "welcome"), "seeds")
        for key in ("incentive", "welcome"):
            if key in value:
                if not isinstance(value[key], str) or not value[key].strip():
                    self.error(value, key, f"seeds.{key} must be a non-empty text")
                else:
                    seeds[key] = value[key]
        return seeds

    def audiences(self, doc: CommentedMap, grades: tuple[str, ...]) -> dict[str, AudienceOffers] | None:
        value = doc.get("audiences")
        if not isinstance(value, CommentedMap) or not value:
            self.error(doc, "audiences" if "audiences" in doc else None,
                       "audiences: one block per audience pack (name or scene), including `default`")
            return None
        blocks: dict[str, AudienceOffers] = {}
        for key, block in value.items():
            parsed = self.audience(value, str(key), block)
            if parsed is not None:
                blocks[str(key)] = parsed
        if DEFAULT_AUDIENCE not in value:
            self.error(value, None, "audiences needs a `default` block (used for packs without their own)")
            return None
        default = blocks.get(DEFAULT_AUDIENCE)
        if default is not None:
            if not default.incentives:
                self.error(value, DEFAULT_AUDIENCE, "audiences.default needs at least one incentive")
            for grade in grades:
                if grade not in default.welcomes and ANY_GRADE not in default.welcomes:
                    self.error(value, DEFAULT_AUDIENCE,
                               f"audiences.default needs a welcome for grade {grade} (or `any`): grade {grade} "
                               "calls get an invitation (invite_grades)")
        return blocks if default is not None and len(blocks) == len(value) else None

    def audience(self, parent: CommentedMap, key: str, block: Any) -> AudienceOffers | None:
        if not isinstance(block, CommentedMap):
            self.error(parent, key, f"audiences.{key}: a mapping with incentives and/or welcome")
            return None
        errors_before = len(self.errors)
        self.unknown(block, AUDIENCE_KEYS, f"audiences.{key}")
        incentives = self.options(block, "incentives", f"audiences.{key}.incentives", INCENTIVE_KEYS,
                                  is_welcome=False)
        welcomes: dict[str, tuple[Option, ...]] = {}
        value = block.get("welcome")
        if value is not None:
            if not isinstance(value, CommentedMap):
                self.error(block, "welcome", f"audiences.{key}.welcome: a mapping from grade (A, B or any) to scripts")
            else:
                for grade in value:
                    if grade not in (*GRADES, ANY_GRADE):
                        self.error(value, grade, f"audiences.{key}.welcome.{grade}: the grade must be A, B or any")
                        continue
                    welcomes[grade] = self.options(value, grade, f"audiences.{key}.welcome.{grade}", WELCOME_KEYS,
                                                   is_welcome=True)
        advisor = self.advisor(block, "advisor", required=False)
        if len(self.errors) > errors_before:
            return None
        return AudienceOffers(key, incentives, welcomes, advisor)

    def options(self, node: CommentedMap, key: str, where: str, allowed: tuple[str, ...], *,
                is_welcome: bool) -> tuple[Option, ...]:
        value = node.get(key)
        if value is None:
            return ()
        if not isinstance(value, CommentedSeq) or not value:
            self.error(node, key, f"{where}: a list of arms, each with name and text")
            return ()
        options: list[Option] = []
        names: set[str] = set()
        for index, item in enumerate(value):
            label = f"{where}[{index}]"
            if not isinstance(item, CommentedMap):
                self.error(value, index, f"{label}: a mapping with name and text")
                continue
            self.unknown(item, allowed, label)
            name = item.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
                self.error(item, "name" if "name" in item else None,
                           f"{label}.name: a short name for this arm (reports, tags), at most {MAX_NAME_CHARS} characters")
                continue
            if name in names:
                self.error(item, "name", f"{label}.name {name!r} is used twice in {where}; names must be unique")
            names.add(name)
            if is_welcome:
                text = self.template(item, "text", WELCOME_SLOTS, MAX_WELCOME_CHARS, required=True, label=label)
            else:
                text = self.plain_text(item, "text", MAX_INCENTIVE_CHARS, label)
            weight = item.get("weight", 1)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
                self.error(item, "weight", f"{label}.weight must be a number above 0")
                weight = 1
            link = self.attachment(item, "link", LINK_KEYS, ("title", "url"), label) if is_welcome else None
            miniprogram = (self.attachment(item, "miniprogram", MINIPROGRAM_KEYS, MINIPROGRAM_KEYS, label)
                           if is_welcome else None)
            options.append(Option(name.strip(), text or "", float(weight), link, miniprogram, _line(value, index)))
        return tuple(options)

    def plain_text(self, node: CommentedMap, key: str, limit: int, label: str) -> str | None:
        value = node.get(key)
        if not isinstance(value, str) or not value.strip():
            self.error(node, key if key in node else None, f"{label}.{key}: the text is missing")
            return None
        if "{" in value or "}" in value:
            self.error(node, key, f"{label}.{key}: an incentive is said as written; it cannot contain {{slots}}")
        if len(value) > limit:
            self.error(node, key, f"{label}.{key}: {len(value)} characters; at most {limit} (it is spoken in the call)")
        return value.strip()

    def template(self, node: CommentedMap, key: str, slots: frozenset[str], limit: int, *, required: bool,
                 label: str | None = None) -> str | None:
        label = label or key
        value = node.get(key)
        if value is None:
            if required:
                self.error(node, None, f"{label}: the text is missing")
            return None
        where = f"{label}.{key}" if label != key else key
        if not isinstance(value, str) or not value.strip():
            self.error(node, key, f"{where}: the text is missing")
            return None
        problem = _slot_problem(value, slots)
        if problem:
            self.error(node, key, f"{where}: {problem}")
        if len(value) > limit:
            self.error(node, key, f"{where}: {len(value)} characters; at most {limit}")
        return value

    def attachment(self, node: CommentedMap, key: str, allowed: tuple[str, ...], required: tuple[str, ...],
                   label: str) -> dict[str, str] | None:
        value = node.get(key)
        if value is None:
            return None
        where = f"{label}.{key}"
        if not isinstance(value, CommentedMap):
            self.error(node, key, f"{where}: a mapping with {', '.join(required)}")
            return None
        self.unknown(value, allowed, where)
        result: dict[str, str] = {}
        for field_name in allowed:
            text = value.get(field_name)
            if text is None:
                if field_name in required:
                    self.error(value, None, f"{where}.{field_name} is required")
                continue
            if not isinstance(text, str) or not text.strip():
                self.error(value, field_name, f"{where}.{field_name} must be a non-empty text")
                continue
            problem = _slot_problem(text, WELCOME_SLOTS)
            if problem:
                self.error(value, field_name, f"{where}.{field_name}: {problem}")
            if field_name in ("url", "picurl") and not text.startswith(("https://", "http://")):
                self.error(value, field_name, f"{where}.{field_name} must start with https:// (or http://)")
            limits = {"title": MAX_MINIPROGRAM_TITLE_CHARS if key == "miniprogram" else MAX_LINK_TITLE_CHARS,
                      "desc": MAX_LINK_DESC_CHARS}
            if field_name in limits and len(text) > limits[field_name]:
                self.error(value, field_name, f"{where}.{field_name}: {len(text)} characters; at most "
                                              f"{limits[field_name]}")
            result[field_name] = text
        return result


def _slot_problem(template: str, allowed: frozenset[str]) -> str | None:
    try:
        fields = [name for _, name, spec, conversion in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"broken braces ({exc}); write a literal brace as {{{{ or }}}}"
    unknown = sorted({f for f in fields if f not in allowed})
    if unknown:
        return f"unknown slot(s) {', '.join('{' + f + '}' for f in unknown)}; allowed: " \
               + ", ".join("{" + s + "}" for s in sorted(allowed))
    return None


def _fill(template: str, slots: Mapping[str, str]) -> str:
    return template.format_map({k: v for k, v in slots.items()})


def _line(node: Any, key: Any) -> int:
    try:
        if key is None:
            return node.lc.line + 1
        if isinstance(node, CommentedSeq):
            return node.lc.item(key)[0] + 1
        return node.lc.key(key)[0] + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return getattr(getattr(node, "lc", None), "line", -1) + 1


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
    return WelcomeScript(f"{block_key}/{grade_key}/{option.name}", option.name, option.text, option.link,
                         option.miniprogram)


def _campaign_arm_text(campaign: Any, key: str, arm: str) -> str | None:
    for item in ((getattr(campaign, "experiments", None) or {}).get(key) or ()):
        if item.get("name") == arm and item.get("text"):
            return item["text"]
    return None
