"""Routing rules per audience pack (issue 17 item 2): `dialogs/routing.yml`.

Per audience pack (pack name, then scene, then `default`) an ordered list of rules; the
first whose `when` matches gives the lead's route: `human` (the advisors' queue, not
dialled by the robot), `advisor` (one-to-one, after a graded call) or `ai` (the planner
dials it). A rule's `when` may name `lead_age_days` ("0-7": days since 留资), `tier` (the
pack's tier) and `grade` (the call's grade; such rules act after a call only).

Two places apply the rules. Before the planner picks leads, `route_campaign_leads` routes
the campaign's new leads in bulk, one INSERT … SELECT per pre-call rule, and returns aged-out
human routes to `ai`. After a call, `route_after_call` (from bot.dialing.call_store) applies
the grade rules. Each new human/advisor route emits `lead.routed` in the same transaction.
The file is not a model input: editing it never retrains the Rasa model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Optional

from pydantic import Field, validator
from sqlalchemy import and_, bindparam, delete, exists, false, insert, literal, not_, or_, select, text, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.audiences.models import KNOWN_SCENES, TIERS, AudiencePack
from bot.campaigns.models import CampaignPack
from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.core.pii import PhoneKeyring
from bot.core.settings import get_settings
from bot.dialing.routing_models import AI, DONE, HELD_ROUTES, HUMAN, OPEN, ROUTES, LeadRoute, RouteReveal
from bot.dnc.service import dnc_state
from bot.leads.models import Lead, LeadPack
from bot.users.models import User
from bot.webhooks.events import LEAD_ROUTED, emit, iso, lead_fields
from bot.webhooks.models import WebhookEndpoint
from intents.yaml_source import Problems, Text, YamlModel, check, line_of, load_yaml, parse_yaml

DEFAULT_AUDIENCE = "default"
GRADES = ("A", "B", "C", "D")
RELEASE_EVERY = timedelta(minutes=5)
_last_release: dict[int, datetime] = {}  # campaign id → when its aged-out routes were last released
ANALYZE_AFTER = 1000  # routes inserted in one pass that refresh the table's statistics
ROUTED_TO_PEOPLE = "routed_to_people"  # the planner's skip reason
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
MAX_AGE_DAYS = 365


def default_routing_path() -> Path:
    return get_settings().dialogs_dir / "routing.yml"


@dataclass(frozen=True)
class Rule:
    route: str
    lead_age_days: tuple[int, int] | None  # inclusive, days since 留资
    tier: str | None
    grade: str | None
    advisor: str | None
    where: str  # "file:line" of the rule

    @property
    def after_call(self) -> bool:
        return self.grade is not None

    def describe(self) -> str:
        parts = []
        if self.lead_age_days is not None:
            parts.append(f"留资 {self.lead_age_days[0]}–{self.lead_age_days[1]} 天")
        if self.tier:
            parts.append(f"人群分层 {self.tier}")
        if self.grade:
            parts.append(f"通话评级 {self.grade}")
        return "，".join(parts) or "默认"


@dataclass(frozen=True)
class Routing:
    path: str
    audiences: Mapping[str, tuple[Rule, ...]]

    def rules_for(self, name: str | None, scene: str | None) -> tuple[Rule, ...]:
        for key in (name, scene):
            if key and key in self.audiences:
                return self.audiences[key]
        return self.audiences.get(DEFAULT_AUDIENCE, ())

    def unknown_packs(self, pack_names: set[str], scenes: set[str]) -> list[str]:
        """`file:line: problem` for every block naming neither a pack nor a scene."""
        return [
            f"{rules[0].where if rules else self.path}: unknown audience pack or scene {key!r}; "
            "use a pack name (waihu audiences list), a scene, or default"
            for key, rules in self.audiences.items()
            if key != DEFAULT_AUDIENCE and key not in pack_names and key not in scenes
        ]


# ---- the file's shape ---------------------------------------------------------------------------


class WhenModel(YamlModel):
    lead_age_days: Optional[str] = Field(None, hint='days since 留资, "0-7"')
    tier: Optional[str] = Field(None, hint=" / ".join(TIERS))
    grade: Optional[str] = Field(None, hint="A, B, C or D (after a call)")

    @validator("lead_age_days", pre=True)
    def _range(cls, value: Any) -> Any:
        if value is None:
            return value
        match = _RANGE.match(str(value))
        if not match or int(match.group(1)) > int(match.group(2)) or int(match.group(2)) > MAX_AGE_DAYS:
            raise ValueError(f'{value!r} is not a day range; write it like "0-7" (from ≤ to ≤ {MAX_AGE_DAYS})')
        return str(value)

    @validator("tier")
    def _tier(cls, value: Any) -> Any:
        if value is not None and value not in TIERS:
            raise ValueError(f"unknown tier {value!r}; use one of {', '.join(TIERS)}")
        return value

    @validator("grade")
    def _grade(cls, value: Any) -> Any:
        if value is not None and value not in GRADES:
            raise ValueError(f"unknown grade {value!r}; use one of {', '.join(GRADES)}")
        return value


class RuleModel(YamlModel):
    when: Optional[WhenModel] = Field(None, hint="lead_age_days / tier / grade; none: always")
    route: str = Field(..., hint="human, advisor or ai")
    advisor: Optional[Text] = Field(None, hint="the WeCom userid of the advisor the lead is assigned to")

    @validator("route")
    def _route(cls, value: Any) -> Any:
        if value not in ROUTES:
            raise ValueError(f"unknown route {value!r}; use one of {', '.join(ROUTES)}")
        return value


class RoutingFile(YamlModel):
    version: int = Field(..., hint="1")
    audiences: dict[str, list[RuleModel]] = Field(..., hint="pack name or scene (or default) → rules in order")

    @validator("audiences")
    def _default(cls, value: dict) -> dict:
        if DEFAULT_AUDIENCE not in value:
            problems = Problems()
            problems.add(f"add a `{DEFAULT_AUDIENCE}` block: the rules of packs without their own")
            raise problems
        return value

    def build(self, document: Any, path: str) -> Routing:
        audiences = {}
        for key, rules in self.audiences.items():
            built = []
            for index, rule in enumerate(rules):
                when = rule.when or WhenModel(lead_age_days=None, tier=None, grade=None)
                age = None
                if when.lead_age_days is not None:
                    low, high = _RANGE.match(when.lead_age_days).groups()  # type: ignore[union-attr]
                    age = (int(low), int(high))
                line = line_of(document, "audiences", key, index) or 0
                built.append(Rule(rule.route, age, when.tier, when.grade, rule.advisor, f"{path}:{line}"))
            audiences[key] = tuple(built)
        return Routing(path=path, audiences=audiences)


_cache: dict[str, tuple[float, Routing]] = {}


def load_routing(path: Path | str | None = None) -> Routing | None:
    """The routing file, checked (YamlError lists every mistake as file:line:col); None when
    the project has none (every lead is the robot's)."""
    path = Path(path) if path else default_routing_path()
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    cached = _cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    document = load_yaml(path)
    # Rules are named dialogs/routing.yml:LINE in routes and events (not the server's absolute path).
    routing = check(document, RoutingFile, str(path)).build(document, f"{path.parent.name}/{path.name}")
    _cache[str(path)] = (mtime, routing)
    return routing


def parse_routing(text: str, path: str = "routing.yml") -> Routing:
    document = parse_yaml(text, path)
    return check(document, RoutingFile, path).build(document, path)


def check_routing_packs(session: Session, routing: Routing) -> None:
    """A block naming no pack and no scene is one clear error (file:line)."""
    names = set(session.execute(select(AudiencePack.name)).scalars())
    scenes = set(s for s in session.execute(select(AudiencePack.scene)).scalars() if s)
    problems = routing.unknown_packs(names, scenes | set(KNOWN_SCENES))
    if problems:
        raise UserError("\n".join(problems))


# ---- applying -----------------------------------------------------------------------------------


def _age_condition(rule: Rule, now: datetime) -> ColumnElement[bool]:
    if rule.lead_age_days is None:
        return true()
    low, high = rule.lead_age_days
    # Age in whole days since 留资: low ≤ age ≤ high ⇔ now-(high+1)d < left_at ≤ now-low d.
    return and_(
        Lead.lead_left_at.isnot(None),
        Lead.lead_left_at > now - timedelta(days=high + 1),
        Lead.lead_left_at <= now - timedelta(days=low),
    )


def _pre_call_condition(rule: Rule, tier: str | None, now: datetime) -> ColumnElement[bool]:
    if rule.tier is not None and rule.tier != tier:
        return false()
    return _age_condition(rule, now)


def route_campaign_leads(session: Session, campaign_id: int, now: datetime, routing: Routing | None = None) -> int:
    """Route the campaign's not-yet-routed leads by the pre-call rules (age, tier), one
    INSERT … SELECT per rule and pack; return aged-out human routes to `ai`. The number routed."""
    routing = routing if routing is not None else load_routing()
    if routing is None:
        return 0
    packs = session.execute(
        select(LeadPack.id, AudiencePack.name, AudiencePack.scene, AudiencePack.tier)
        .join(CampaignPack, CampaignPack.pack_id == LeadPack.id)
        .outerjoin(AudiencePack, AudiencePack.id == LeadPack.audience_id)
        .where(CampaignPack.campaign_id == campaign_id)
    ).all()
    routed = 0
    # Windows are whole days: looking for leads that aged out once every few minutes is enough
    # (it reads every held lead of the campaign: 0.2 s a tick for 60,000 of them).
    last = _last_release.get(campaign_id)
    release = last is None or not timedelta(0) <= now - last < RELEASE_EVERY
    if release:
        _last_release[campaign_id] = now
    for pack_id, name, scene, tier in packs:
        rules = routing.rules_for(name, scene)
        earlier: list[ColumnElement[bool]] = []
        human: list[ColumnElement[bool]] = []
        for rule in rules:
            if rule.after_call:
                continue
            condition = _pre_call_condition(rule, tier, now)
            first_match = and_(condition, *[not_(e) for e in earlier])
            if rule.route in HELD_ROUTES:
                routed += _insert_routes(session, pack_id, rule, first_match, now)
                human.append(first_match)
            earlier.append(condition)
        if release:
            _release_unmatched(session, pack_id, or_(false(), *human), now)
    if routed >= ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
        # The planner's scans anti-join lead_routes at once, before autovacuum has seen the new
        # rows: with stale statistics (an "empty" table) PostgreSQL probes it by a sequential
        # scan per lead — 65 s instead of 0.6 s a tick for 60,000 fresh routes in 300,000 leads.
        session.execute(text("ANALYZE lead_routes"))
    return routed


def _insert_routes(session: Session, pack_id: int, rule: Rule, condition: ColumnElement[bool], now: datetime) -> int:
    """One INSERT … SELECT for the rule's not-yet-routed leads of the pack; with a subscriber
    to lead.routed the ids are read first (one event per lead, in this transaction)."""
    unrouted = ~exists().where(LeadRoute.lead_id == Lead.id)
    matching = select(Lead.id).where(Lead.pack_id == pack_id, unrouted, condition)
    values = {
        "route": rule.route,
        "rule": rule.where,
        "reason": rule.describe(),
        "routed_at": now,
        "advisor_userid": rule.advisor,
        "status": OPEN,
    }
    if not _anyone_subscribed(session):
        columns = [LeadRoute.lead_id, *(getattr(LeadRoute, name) for name in values)]
        constants = [
            bindparam(f"route_{name}", value, type_=getattr(LeadRoute, name).type) for name, value in values.items()
        ]
        result = session.execute(
            insert(LeadRoute).from_select(columns, matching.add_columns(*constants)),
            execution_options={"synchronize_session": False},
        )
        return max(result.rowcount or 0, 0)
    lead_ids = list(session.execute(matching.order_by(Lead.id)).scalars())
    if not lead_ids:
        return 0
    session.execute(insert(LeadRoute), [{"lead_id": lead_id, **values} for lead_id in lead_ids])
    for lead_id in lead_ids:
        _emit_routed(session, lead_id, rule.route, rule.where, rule.describe(), rule.advisor, now)
    return len(lead_ids)


def _release_unmatched(session: Session, pack_id: int, human: ColumnElement[bool], now: datetime) -> None:
    """Open human routes of leads no pre-call rule sends to people any more (the lead aged
    past its window, or the file changed) go back to the robot (`ai`)."""
    session.execute(
        update(LeadRoute)
        .where(
            LeadRoute.route == HUMAN,
            LeadRoute.status == OPEN,
            LeadRoute.lead_id.in_(select(Lead.id).where(Lead.pack_id == pack_id, not_(human))),
        )
        .values(route=AI, status=DONE, done_at=now, reason=literal("已过人工跟进期，转机器人"))
        .execution_options(synchronize_session=False)
    )


def route_after_call(session: Session, lead_id: int, grade: str | None, now: datetime) -> LeadRoute | None:
    """After a graded call: the first grade rule of the lead's pack that matches gives its
    route (e.g. A → advisor one-to-one); None when no grade rule matches or the routing file is absent."""
    if grade is None:
        return None
    routing = load_routing()
    if routing is None:
        return None
    row = session.execute(
        select(Lead.lead_left_at, AudiencePack.name, AudiencePack.scene, AudiencePack.tier)
        .select_from(Lead)
        .outerjoin(AudiencePack, AudiencePack.id == Lead.audience_id)
        .where(Lead.id == lead_id)
    ).first()
    if row is None:
        return None
    left_at, name, scene, tier = row
    for rule in routing.rules_for(name, scene):
        if not rule.after_call or rule.grade != grade or (rule.tier and rule.tier != tier):
            continue
        if rule.lead_age_days is not None:
            if left_at is None:
                continue
            age = (now - left_at).days
            if not rule.lead_age_days[0] <= age <= rule.lead_age_days[1]:
                continue
        if rule.route == AI:
            return None
        return set_route(session, lead_id, rule.route, rule.where, rule.describe(), now, advisor=rule.advisor)
    return None


def set_route(
    session: Session, lead_id: int, route: str, rule: str, reason: str, now: datetime, *, advisor: str | None = None
) -> LeadRoute:
    """Make `route` the lead's current (open) route, emitting lead.routed."""
    current = session.execute(select(LeadRoute).where(LeadRoute.lead_id == lead_id)).scalar_one_or_none()
    if current is None:
        current = LeadRoute(lead_id=lead_id)
        session.add(current)
    elif current.route == route and current.status == OPEN:
        return current
    current.route, current.rule, current.reason, current.routed_at = route, rule, reason, now
    current.advisor_userid, current.status, current.done_at = advisor, OPEN, None
    session.flush()
    _emit_routed(session, lead_id, route, rule, reason, advisor, now)
    return current


def _anyone_subscribed(session: Session) -> bool:
    return any(
        LEAD_ROUTED in (types or ())
        for types in session.execute(
            select(WebhookEndpoint.event_types).where(WebhookEndpoint.active.is_(True))
        ).scalars()
    )


def _emit_routed(
    session: Session, lead_id: int, route: str, where: str, reason: str, advisor: str | None, now: datetime
) -> None:
    emit(
        session,
        LEAD_ROUTED,
        {
            **lead_fields(session, lead_id),
            "route": route,
            "rule": where,
            "reason": reason,
            "advisor_userid": advisor,
            "routed_at": iso(now),
        },
        now=now,
    )


def release_route(session: Session, lead_id: int, now: datetime) -> bool:
    """An advisor is done with the lead: its route closes (the robot may dial it again)."""
    result = session.execute(
        update(LeadRoute)
        .where(LeadRoute.lead_id == lead_id, LeadRoute.status == OPEN)
        .values(status=DONE, done_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def held_by_people() -> ColumnElement[bool]:
    """For the planner's scans: the lead has an open human/advisor route (NOT this to dial it)."""
    return (
        select(LeadRoute.id)
        .where(LeadRoute.lead_id == Lead.id, LeadRoute.status == OPEN, LeadRoute.route.in_(HELD_ROUTES))
        .exists()
    )


def held_lead_ids(session: Session, lead_ids: Sequence[int]) -> set[int]:
    """Of `lead_ids`, those with an open human/advisor route."""
    if not lead_ids:
        return set()
    return set(
        session.execute(
            select(LeadRoute.lead_id).where(
                LeadRoute.lead_id.in_(list(lead_ids)), LeadRoute.status == OPEN, LeadRoute.route.in_(HELD_ROUTES)
            )
        ).scalars()
    )


def any_held(session: Session) -> bool:
    """Whether any lead is held by people now: without one the planner skips the NOT EXISTS."""
    return (
        session.execute(
            select(LeadRoute.id).where(LeadRoute.status == OPEN, LeadRoute.route.in_(HELD_ROUTES)).limit(1)
        ).first()
        is not None
    )


@dataclass(frozen=True)
class RoutedLead:
    lead_id: int
    phone_masked: str
    name: str | None
    route: str
    rule: str
    reason: str
    routed_at: datetime
    advisor_userid: str | None
    status: str


def list_routes(
    session: Session, route: str | None = None, status: str | None = OPEN, limit: int = 500
) -> list[RoutedLead]:
    query = (
        select(
            LeadRoute.lead_id,
            Lead.phone_masked,
            Lead.name,
            LeadRoute.route,
            LeadRoute.rule,
            LeadRoute.reason,
            LeadRoute.routed_at,
            LeadRoute.advisor_userid,
            LeadRoute.status,
        )
        .join(Lead, Lead.id == LeadRoute.lead_id)
        .order_by(LeadRoute.routed_at.desc(), LeadRoute.id.desc())
        .limit(limit)
    )
    if route is not None:
        if route not in ROUTES:
            raise UserError(f"unknown route {route!r}; use one of {', '.join(ROUTES)}")
        query = query.where(LeadRoute.route == route)
    if status is not None:
        query = query.where(LeadRoute.status == status)
    return [RoutedLead(*row) for row in session.execute(query)]


class NotYourLead(UserError):
    """The routed lead is assigned to another advisor."""


def _open_route_for(session: Session, lead_id: int, user: User) -> LeadRoute:
    route = session.execute(
        select(LeadRoute).where(LeadRoute.lead_id == lead_id).with_for_update()
    ).scalar_one_or_none()
    if route is None or route.status != OPEN or route.route not in HELD_ROUTES:
        raise UserError(f"lead #{lead_id} is not in the advisors' queue")
    if route.advisor_userid and route.advisor_userid != (user.wecom_userid or ""):
        raise NotYourLead(f"lead #{lead_id} is assigned to another advisor")
    return route


def reveal_route_number(
    session: Session,
    keyring: PhoneKeyring,
    lead_id: int,
    user: User,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> str:
    """A routed lead's clear number, for an advisor (its assigned one, when it has one); the
    audit row is written first. Nobody gets the number of someone who opted out."""
    now = now or utc_now()
    _open_route_for(session, lead_id, user)
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise UserError(f"lead #{lead_id} was erased")
    if dnc_state(session, lead.phone_hash, now).opt_out:
        raise UserError(f"lead #{lead_id}: the person opted out of all contact; the number is not shown")
    session.add(
        RouteReveal(
            lead_id=lead_id,
            user_id=user.id,
            user_name=user.name,
            revealed_at=now,
            ip=(ip or "")[:64] or None,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    session.flush()  # the audit row is written before the number leaves this function
    return keyring.decrypt_phone(lead.phone_ciphertext)


def mark_route_done(session: Session, lead_id: int, user: User, now: datetime | None = None) -> None:
    """The advisor finished with the lead: the route closes (the robot may dial it again)."""
    route = _open_route_for(session, lead_id, user)
    route.status, route.done_at = DONE, now or utc_now()


def route_reveals(session: Session, limit: int = 200) -> list[RouteReveal]:
    return list(session.execute(select(RouteReveal).order_by(RouteReveal.revealed_at.desc()).limit(limit)).scalars())


def erase_lead_routes(session: Session, lead_ids: Sequence[int]) -> int:
    """PIPL erasure: the person's routes and the audit of looks at their number go
    (explicitly, whatever the database cascades)."""
    if not lead_ids:
        return 0
    session.execute(
        delete(RouteReveal).where(RouteReveal.lead_id.in_(list(lead_ids))).execution_options(synchronize_session=False)
    )
    result = session.execute(
        delete(LeadRoute).where(LeadRoute.lead_id.in_(list(lead_ids))).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
