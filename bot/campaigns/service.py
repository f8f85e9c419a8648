"""Campaigns: create, start/pause/resume/stop, arms per lead, the policy a lead is called under."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.audiences.models import KNOWN_SCENES, AudiencePack
from bot.campaigns.add_modes import ADD_MODES, DEFAULT_ADD_MODE, check_add_mode
from bot.campaigns.assignment import Arm, assign, bucket
from bot.campaigns.experiment_design import (
    FACTORS,
    GLOBAL_SCOPE,
    HOLDOUT,
    arm_scope,
    check_arm_lists,
    check_bandit_arms,
    current_bandit_weights,
    default_seed,
    incentive_arms_for,
    incentive_scopes,
    seed_for,
)
from bot.campaigns.models import CallAttempt, Campaign, CampaignPack
from bot.campaigns.problems import ProblemList, problem
from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.leads.models import Lead, LeadPack
from telephony.compliance.policy import CompliancePolicy, load_profile, tighten

DEFAULT_VARIANTS = ({"name": "standard", "weight": 1},)
# Without a time-slot plan a lead may be called in any window the policy allows.
ANY_TIME = "any"

TRANSITIONS = {
    "start": ({"draft", "paused"}, "running"),
    "pause": ({"running"}, "paused"),
    "resume": ({"paused"}, "running"),
    "stop": ({"draft", "running", "paused"}, "stopped"),
}


@dataclass(frozen=True)
class CampaignArms:
    """How a campaign's leads are split, by lead id: script variant, call-time slot and,
    when the campaign tests them, incentive and welcome script, plus the holdout.

    Reproducible anywhere: each factor is GrowthBook's hash v2 of (its seed, lead id)
    over the arms' weights (bot.campaigns.assignment), seeds independent per factor so
    one split never follows another. Incentive arms are per audience pack: a lead of a pack
    (name or scene) with arms of its own is split among those, any other lead among the
    global arms (none: it is offered its pack's incentive from dialogs/wecom/offers.yml)."""

    campaign_id: int
    variants: tuple[Arm, ...]
    slots: tuple[Arm, ...]
    incentives: tuple[Arm, ...] = ()  # the global incentive arms
    welcomes: tuple[Arm, ...] = ()
    holdout: float = 0.0  # share of leads never dialled
    seeds: Mapping[str, str] = field(default_factory=dict)  # factor → seed, where not the default
    # A bandit has moved the weights since leads were first dialled: a tried lead keeps the
    # arms of its first attempt (the hash under today's weights may differ).
    sticky: bool = False
    # audience pack name or scene → that pack's incentive arms
    scoped_incentives: Mapping[str, tuple[Arm, ...]] = field(default_factory=dict)

    def seed(self, factor: str) -> str:
        return self.seeds.get(factor) or default_seed(self.campaign_id, factor)

    def incentive_arms(self, audience_keys: Sequence[str] = ()) -> tuple[Arm, ...]:
        """The incentive arms for a lead of this audience pack ((name, scene), in that order)."""
        for key in audience_keys:
            if key and key in self.scoped_incentives:
                return self.scoped_incentives[key]
        return self.incentives

    def for_lead(self, lead_id: int, audience_keys: Sequence[str] = ()) -> dict[str, str]:
        unit = str(lead_id)
        arms = {
            "script": assign(self.seed("script"), unit, self.variants),
            "time_slot": assign(self.seed("time_slot"), unit, self.slots) if self.slots else ANY_TIME,
        }
        incentives = self.incentive_arms(audience_keys)
        if incentives:
            arms["incentive"] = assign(self.seed("incentive"), unit, incentives)
        if self.welcomes:
            arms["welcome"] = assign(self.seed("welcome"), unit, self.welcomes)
        if self.in_holdout(lead_id):
            arms[HOLDOUT] = HOLDOUT
        return arms

    def in_holdout(self, lead_id: int) -> bool:
        return self.holdout > 0 and bucket(self.seed(HOLDOUT), str(lead_id)) < self.holdout


def campaign_arms(campaign: Campaign) -> CampaignArms:
    experiments = campaign.experiments or {}
    arms: dict[str, Sequence[Mapping[str, Any]]] = {
        "script": campaign.script_variants or DEFAULT_VARIANTS,
        "time_slot": campaign.time_slots or (),
        "incentive": experiments.get("incentives") or (),
        "welcome": experiments.get("welcomes") or (),
    }
    moved = current_bandit_weights(experiments)
    if moved:
        factor, weights = moved
        arms[factor] = [{**arm, "weight": weights.get(arm["name"], arm.get("weight", 1))} for arm in arms[factor]]

    def weighted(items: Sequence[Mapping[str, Any]]) -> tuple[Arm, ...]:
        return tuple(Arm(a["name"], float(a.get("weight", 1))) for a in items)

    scoped: dict[str, list[Mapping[str, Any]]] = {}
    for arm in arms["incentive"]:
        if arm_scope(arm) != GLOBAL_SCOPE:
            scoped.setdefault(arm_scope(arm), []).append(arm)
    seeds = {factor: seed_for(campaign.id, experiments, factor) for factor in (*FACTORS, HOLDOUT)}
    return CampaignArms(
        campaign.id,
        weighted(arms["script"]),
        weighted(arms["time_slot"]),
        weighted([a for a in arms["incentive"] if arm_scope(a) == GLOBAL_SCOPE]),
        weighted(arms["welcome"]),
        float(experiments.get("holdout") or 0.0),
        seeds,
        sticky=bool(moved),
        scoped_incentives={scope: weighted(items) for scope, items in scoped.items()},
    )


def incentive_text_for(campaign: Campaign, arms: Mapping[str, str], audience_keys: Sequence[str] = ()) -> str | None:
    """What the robot offers this lead (利益点) when the WeCom offers cannot be read: its
    incentive arm's text (among the arms for its audience pack), else the campaign's one
    incentive."""
    return (
        _arm_text(incentive_arms_for(campaign.experiments, audience_keys), arms.get("incentive")) or campaign.incentive
    )


def welcome_text_for(campaign: Campaign, arms: Mapping[str, str]) -> str | None:
    """The WeCom welcome script (欢迎语) of the lead's welcome arm, if the campaign tests them."""
    return _arm_text((campaign.experiments or {}).get("welcomes"), arms.get("welcome"))


def _arm_text(arms: list[dict] | None, name: str | None) -> str | None:
    for arm in arms or ():
        if arm["name"] == name:
            return arm["text"]
    return None


def policy_for_slot(campaign: Campaign, slot_name: str | None) -> CompliancePolicy:
    slots = {s["name"]: tuple(s["windows"]) for s in (campaign.time_slots or ())}
    overrides = _freeze(campaign.compliance_overrides or {})
    return _policy(campaign.name, campaign.compliance_profile, overrides, slots.get(slot_name or ""))


@lru_cache(maxsize=256)
def _policy(
    campaign_name: str, profile: str, overrides: tuple, slot_windows: tuple[str, ...] | None
) -> CompliancePolicy:
    """The profile, tightened by the campaign, then by the lead's time slot (cached: the
    planner asks for it once per lead)."""
    document = _thaw(overrides)
    if slot_windows:
        document = {**document, "windows": list(slot_windows)}
    return tighten(load_profile(profile), document or None, campaign=f"campaign {campaign_name}")


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("__list__",) + tuple(_freeze(v) for v in value)
    return value


def _thaw(value):
    if isinstance(value, tuple):
        if value and value[0] == "__list__":
            return [_thaw(v) for v in value[1:]]
        return {k: _thaw(v) for k, v in value}
    return value


def create_campaign(
    session: Session,
    *,
    name: str,
    packs: list[str],
    lines: int = 10,
    cps: float = 2.0,
    variants: list[dict] | None = None,
    time_slots: list[dict] | None = None,
    compliance_profile: str = "CN_INSURANCE_DEFAULT",
    compliance_overrides: dict | None = None,
    incentive: str | None = None,
    experiments: dict | None = None,
    created_by: str = "",
    problems: ProblemList | None = None,
    add_mode: str = DEFAULT_ADD_MODE,
) -> Campaign:
    """A draft campaign. `experiments`: the design beyond script and slot arms, as
    bot.campaigns.experiment_design.build_experiments makes it. `problems`: those the
    caller found parsing what was typed; every problem, theirs and these, is raised together
    (CampaignProblems) before anything is written."""
    problems = problems if problems is not None else ProblemList()
    experiments = experiments or {}
    variants = variants or list(DEFAULT_VARIANTS)
    time_slots = time_slots or []
    if not name.strip():
        problems.add("NAME", "", "the campaign needs a name", "请填写任务名称")
    elif session.execute(select(Campaign.id).where(Campaign.name == name)).first():
        problems.add(
            "NAME", name, "a campaign of that name already exists; pick another name", "已有同名任务；请换一个名称"
        )
    if lines < 1:
        problems.add("--lines", lines, "at least 1 (concurrent calls)", "至少为 1（同时进行的通话数）")
    if not cps > 0:
        problems.add("--cps", f"{cps:g}", "above 0 (new calls per second), e.g. 2", "须大于 0（每秒新呼叫数），例如 2")
    if incentive and experiments.get("incentives"):
        problems.add(
            "--incentive",
            incentive,
            "give either --incentive (one text for packs without their own incentives) or --incentive-arm "
            "(texts to test), not both",
            "单一利益点与利益点 A/B 只能二选一",
        )
    if add_mode not in ADD_MODES:
        problems.add(
            "--add-mode",
            add_mode,
            "use link (SMS with the 联系我 link, the callee adds the advisor) or advisor_adds (the advisor adds "
            "the callee by phone from an audited task)",
            "添加方式只能是：短信链接（客户添加顾问）或 顾问主动添加",
        )
    problems.attempt(check_arm_lists, variants, time_slots)
    problems.attempt(
        check_bandit_arms,
        experiments,
        {
            "script": variants,
            "time_slot": time_slots,
            "incentive": experiments.get("incentives") or [],
            "welcome": experiments.get("welcomes") or [],
        },
    )
    _check_incentive_scopes(session, experiments, problems)
    found = {p.name: p for p in session.execute(select(LeadPack).where(LeadPack.name.in_(packs))).scalars()}
    missing = [p for p in packs if p not in found]
    if not packs:
        problems.add("--pack", "", "give at least one lead pack; see `waihu leads packs`", "请至少选择一个线索名单")
    for pack_name in missing:
        problems.add(
            "--pack",
            pack_name,
            "no lead pack of that name; see `waihu leads packs` for the uploaded ones",
            "没有这个线索名单；请先上传，或选择已上传的名单",
        )
    # Refuse a looser policy or a slot outside the windows now, not at the first dial.
    overrides = _freeze(compliance_overrides or {})
    base = problems.attempt(_base_policy, name, compliance_profile, overrides)
    if base is not None:
        for slot in time_slots:
            problems.attempt(_check_slot, name, compliance_profile, overrides, base, slot)
    problems.raise_any()
    campaign = Campaign(
        name=name,
        lines=lines,
        cps=cps,
        script_variants=variants,
        time_slots=time_slots,
        compliance_profile=compliance_profile,
        compliance_overrides=compliance_overrides or {},
        incentive=incentive,
        experiments=experiments,
        created_by=created_by,
        status="draft",
        add_mode=add_mode,
    )
    session.add(campaign)
    session.flush()
    for pack in found.values():
        session.add(CampaignPack(campaign_id=campaign.id, pack_id=pack.id))
    return campaign


def _base_policy(name: str, profile: str, overrides: tuple) -> CompliancePolicy:
    try:
        return _policy(name, profile, overrides, None)
    except UserError as exc:
        raise problem(
            "--profile",
            profile,
            f"{exc} {' '.join(exc.details)}".strip(),
            f"合规配置无法使用：{exc}",
        ) from None


def _check_slot(name: str, profile: str, overrides: tuple, base: CompliancePolicy, slot: Mapping[str, Any]) -> None:
    typed = f"{slot['name']}={','.join(slot['windows'])}"
    allowed = ", ".join(
        f"{s // 3600:02d}:{s % 3600 // 60:02d}-{e // 3600:02d}:{e % 3600 // 60:02d}" for s, e in base.windows
    )
    try:
        _policy(name, profile, overrides, tuple(slot["windows"]))
    except UserError as exc:
        looser = "not inside" in str(exc)
        raise problem(
            "--slot",
            typed,
            (
                f"outside the calling windows {allowed} of {profile}; a campaign may only make them stricter: "
                "pick hours inside them"
                if looser
                else f"{exc}"
            ),
            (
                f"超出合规拨打窗口 {allowed}（{profile}）；时段只能收窄、不能放宽，请改在窗口内"
                if looser
                else f"时段无法使用：{exc}"
            ),
        ) from None


def _check_incentive_scopes(session: Session, experiments: Mapping[str, Any], problems: ProblemList) -> None:
    """Each pack an incentive arm is scoped to is an audience pack (name) or a scene."""
    scopes = [s for s in incentive_scopes(experiments) if s != GLOBAL_SCOPE]
    if not scopes:
        return
    known = set(KNOWN_SCENES)
    for pack_name, scene in session.execute(select(AudiencePack.name, AudiencePack.scene)):
        known.update(k for k in (pack_name, scene) if k)
    for scope in scopes:
        if scope not in known:
            problems.add(
                "--incentive-arm",
                scope,
                f"no audience pack or scene of that name (known: {', '.join(sorted(known))}); "
                "see `waihu audiences list`, or use global: for every pack",
                f"没有这个人群包或场景（已有：{'、'.join(sorted(known))}）；所有人群包请写 global:",
            )


def get_campaign(session: Session, name: str) -> Campaign:
    campaign = session.execute(select(Campaign).where(Campaign.name == name)).scalar_one_or_none()
    if campaign is None:
        raise UserError(f"no campaign named '{name}'; see `waihu campaign list`.")
    return campaign


def set_add_mode(session: Session, name: str, add_mode: str) -> Campaign:
    """Switch how A/B callees get onto WeCom; leads graded before keep the invitation they got."""
    campaign = get_campaign(session, name)
    campaign.add_mode = check_add_mode(add_mode)
    return campaign


def change_status(session: Session, name: str, action: str, now: datetime | None = None) -> Campaign:
    campaign = get_campaign(session, name)
    allowed_from, target = TRANSITIONS[action]
    if campaign.status not in allowed_from:
        raise UserError(
            f"campaign '{name}' is {campaign.status}; it cannot {action} (only from {', '.join(sorted(allowed_from))})."
        )
    campaign.status = target
    now = now or utc_now()
    if action == "start":
        campaign.started_at = campaign.started_at or now
    if action == "stop":
        campaign.stopped_at = now
    return campaign


@dataclass(frozen=True)
class CampaignProgress:
    leads: int
    attempts: int
    by_status: dict[str, int]
    by_outcome: dict[str, int]
    by_grade: dict[str, int]


def campaign_progress(session: Session, campaign: Campaign) -> CampaignProgress:
    packs = select(CampaignPack.pack_id).where(CampaignPack.campaign_id == campaign.id)
    leads = session.execute(select(func.count()).select_from(Lead).where(Lead.pack_id.in_(packs))).scalar_one()
    rows = session.execute(
        select(CallAttempt.status, CallAttempt.outcome, CallAttempt.grade, func.count())
        .where(CallAttempt.campaign_id == campaign.id)
        .group_by(CallAttempt.status, CallAttempt.outcome, CallAttempt.grade)
    ).all()
    by_status: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    by_grade: Counter[str] = Counter()
    for status, outcome, grade, count in rows:
        by_status[status] += count
        if outcome:
            by_outcome[outcome] += count
        if grade:
            by_grade[grade] += count
    return CampaignProgress(leads, sum(by_status.values()), dict(by_status), dict(by_outcome), dict(by_grade))
