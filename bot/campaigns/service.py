"""Campaigns: create, start/pause/resume/stop, arms per lead, the policy a lead is called under."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt, Campaign, CampaignPack
from bot.db.base import utc_now
from bot.errors import UserError
from bot.experiments.assignment import Arm, assign
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
    """How a campaign's leads are split: script variant and call-time slot, by lead id."""

    campaign_id: int
    variants: tuple[Arm, ...]
    slots: tuple[Arm, ...]

    def for_lead(self, lead_id: int) -> dict[str, str]:
        # Independent seeds per factor, so the script split does not follow the slot split.
        arms = {"script": assign(f"campaign-{self.campaign_id}-script", str(lead_id), self.variants)}
        arms["time_slot"] = assign(f"campaign-{self.campaign_id}-slot", str(lead_id), self.slots) \
            if self.slots else ANY_TIME
        return arms


def campaign_arms(campaign: Campaign) -> CampaignArms:
    variants = tuple(Arm(v["name"], float(v.get("weight", 1))) for v in (campaign.script_variants or DEFAULT_VARIANTS))
    slots = tuple(Arm(s["name"], float(s.get("weight", 1))) for s in (campaign.time_slots or ()))
    return CampaignArms(campaign.id, variants, slots)


def policy_for_slot(campaign: Campaign, slot_name: str | None) -> CompliancePolicy:
    slots = {s["name"]: tuple(s["windows"]) for s in (campaign.time_slots or ())}
    overrides = _freeze(campaign.compliance_overrides or {})
    return _policy(campaign.name, campaign.compliance_profile, overrides, slots.get(slot_name or ""))


@lru_cache(maxsize=256)
def _policy(campaign_name: str, profile: str, overrides: tuple, slot_windows: tuple[str, ...] | None) -> CompliancePolicy:
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


def create_campaign(session: Session, *, name: str, packs: list[str], lines: int = 10, cps: float = 2.0,
                    variants: list[dict] | None = None, time_slots: list[dict] | None = None,
                    compliance_profile: str = "CN_INSURANCE_DEFAULT", compliance_overrides: dict | None = None,
                    incentive: str | None = None, created_by: str = "") -> Campaign:
    if session.execute(select(Campaign.id).where(Campaign.name == name)).first():
        raise UserError(f"campaign '{name}' already exists; pick another name.")
    if lines < 1 or cps <= 0:
        raise UserError("--lines must be at least 1 and --cps above 0.")
    found = {p.name: p for p in session.execute(select(LeadPack).where(LeadPack.name.in_(packs))).scalars()}
    missing = [p for p in packs if p not in found]
    if missing or not packs:
        raise UserError(f"lead pack(s) not found: {', '.join(missing) or '(none given)'}; "
                        "see `waihu leads packs` for the uploaded ones.")
    campaign = Campaign(name=name, lines=lines, cps=cps, script_variants=variants or list(DEFAULT_VARIANTS),
                        time_slots=time_slots or [], compliance_profile=compliance_profile,
                        compliance_overrides=compliance_overrides or {}, incentive=incentive,
                        created_by=created_by, status="draft")
    session.add(campaign)
    session.flush()
    for pack in found.values():
        session.add(CampaignPack(campaign_id=campaign.id, pack_id=pack.id))
    # Refuse a looser policy or a slot outside the windows now, not at the first dial.
    for slot in [None] + [s["name"] for s in campaign.time_slots]:
        policy_for_slot(campaign, slot)
    return campaign


def get_campaign(session: Session, name: str) -> Campaign:
    campaign = session.execute(select(Campaign).where(Campaign.name == name)).scalar_one_or_none()
    if campaign is None:
        raise UserError(f"no campaign named '{name}'; see `waihu campaign list`.")
    return campaign


def change_status(session: Session, name: str, action: str, now: datetime | None = None) -> Campaign:
    campaign = get_campaign(session, name)
    allowed_from, target = TRANSITIONS[action]
    if campaign.status not in allowed_from:
        raise UserError(f"campaign '{name}' is {campaign.status}; it cannot {action} "
                        f"(only from {', '.join(sorted(allowed_from))}).")
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
    rows = session.execute(select(CallAttempt.status, CallAttempt.outcome, CallAttempt.grade, func.count())
                           .where(CallAttempt.campaign_id == campaign.id)
                           .group_by(CallAttempt.status, CallAttempt.outcome, CallAttempt.grade)).all()
    by_status, by_outcome, by_grade = Counter(), Counter(), Counter()
    for status, outcome, grade, count in rows:
        by_status[status] += count
        if outcome:
            by_outcome[outcome] += count
        if grade:
            by_grade[grade] += count
    return CampaignProgress(leads, sum(by_status.values()), dict(by_status), dict(by_outcome), dict(by_grade))
