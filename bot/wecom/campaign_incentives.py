"""What a campaign's robot offers (利益点), per audience pack, for the pages that show it.

The planned offer comes from the same rules the dialer and the invitation use
(bot.wecom.offers.offered_incentives / incentive_for); beside it, what was actually said:
the calls per incentive arm, and the invitations sent per incentive text. A call's own
incentive is the invitation's text when it has one, else what incentive_for gives for the
call's arms (what the dialer put into the call).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.audiences.models import AudiencePack
from bot.campaigns.models import CallAttempt, Campaign, CampaignPack
from bot.core.errors import UserError
from bot.leads.models import Lead
from bot.wecom.models import WeComInvite
from bot.wecom.offers import Incentive, OfferedIncentive, incentive_for, load_offers, offered_incentives

SOURCE_LABELS = {
    "campaign_arm": "本任务的利益点 A/B",
    "offers": "人群包配置（dialogs/wecom/offers.yml）",
    "campaign": "本任务的统一利益点（用于没有自己利益点的人群包）",
}
NO_AUDIENCE = "（未指定人群包）"


@dataclass
class PackIncentives:
    audience: str  # the audience pack's name, or NO_AUDIENCE
    scene: str | None
    leads: int
    offered: list[OfferedIncentive]
    calls_by_arm: dict[str, int] = field(default_factory=dict)  # connected or not, by the call's incentive arm
    invites_by_text: dict[str, int] = field(default_factory=dict)  # WeCom invitations, by the incentive sent

    @property
    def sources(self) -> str:
        return "、".join(dict.fromkeys(SOURCE_LABELS.get(o.source, o.source) for o in self.offered))


def campaign_incentives(session: Session, campaign: Campaign) -> tuple[list[PackIncentives], str | None]:
    """(one row per audience pack among the campaign's leads, an error when the offers file
    cannot be read)."""
    try:
        offers = load_offers()
    except UserError as exc:
        return [], f"读取利益点配置失败：{exc}"
    packs = select(CampaignPack.pack_id).where(CampaignPack.campaign_id == campaign.id)
    rows = session.execute(
        select(AudiencePack, func.count(Lead.id))
        .select_from(Lead)
        .outerjoin(AudiencePack, AudiencePack.id == Lead.audience_id)
        .where(Lead.pack_id.in_(packs))
        .group_by(AudiencePack.id)
        .order_by(AudiencePack.name)
    ).all()
    calls: dict[str | None, Counter] = {}
    # Calls per incentive arm: only a campaign with incentive arms stores one on its calls.
    tested = bool((campaign.experiments or {}).get("incentives"))
    for audience, arms in (
        ()
        if not tested
        else session.execute(
            select(AudiencePack.name, CallAttempt.arms)
            .select_from(CallAttempt)
            .join(Lead, Lead.id == CallAttempt.lead_id)
            .outerjoin(AudiencePack, AudiencePack.id == Lead.audience_id)
            .where(CallAttempt.campaign_id == campaign.id, CallAttempt.dialed_at.is_not(None))
        )
    ):
        if (arms or {}).get("incentive"):
            calls.setdefault(audience, Counter())[arms["incentive"]] += 1
    invites: dict[str | None, Counter] = {}
    for audience, text, count in session.execute(
        select(WeComInvite.audience, WeComInvite.incentive, func.count())
        .where(WeComInvite.campaign_id == campaign.id)
        .group_by(WeComInvite.audience, WeComInvite.incentive)
    ):
        invites.setdefault(audience, Counter())[text or ""] += count
    result = []
    for audience, leads in rows:
        name = audience.name if audience else None
        result.append(
            PackIncentives(
                name or NO_AUDIENCE,
                audience.scene if audience else None,
                leads,
                offered_incentives(offers, audience, campaign),
                dict(calls.get(name, {})),
                dict(invites.get(name, {})),
            )
        )
    return result, None


def call_incentive(session: Session, attempt: CallAttempt) -> tuple[Incentive | None, str | None]:
    """(what this call offered, the WeCom invitation's text when one was made)."""
    invite = session.execute(select(WeComInvite).where(WeComInvite.attempt_id == attempt.id)).scalar_one_or_none()
    lead = session.get(Lead, attempt.lead_id)
    audience = session.get(AudiencePack, lead.audience_id) if lead is not None and lead.audience_id else None
    try:
        offers = load_offers()
    except UserError:
        return None, invite.incentive if invite else None
    incentive = incentive_for(
        offers, audience, attempt.lead_id, attempt.arms or {}, campaign=session.get(Campaign, attempt.campaign_id)
    )
    return incentive, invite.incentive if invite else None
