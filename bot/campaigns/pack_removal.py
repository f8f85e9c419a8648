"""Deleting or replacing a lead pack, allowed only while none of its leads was dialled.

A pack that failed validation (no consent column, the wrong phone column) is useless but
blocks the corrected upload: the same file is deduplicated by its hash, the name is taken.
Ops delete it (`waihu leads delete-pack`) or upload over it (`waihu leads upload --replace`).
Once a lead of it was dialled the calls, grades and invitations hang on its leads, so both
are refused with a message that says so. This sits above bot.leads because "dialled" is a
campaigns fact (call attempts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt, Campaign, CampaignPack
from bot.core.errors import UserError
from bot.leads.models import Lead, LeadPack
from bot.leads.service import delete_pack_records, get_pack

# Attempts that reached the carrier (or are on their way to it); a cancelled attempt never dialled does not count.
DIALLED_STATUSES = ("dialing", "completed", "failed")


@dataclass(frozen=True)
class PackUse:
    dialled: int  # leads of the pack with a call that was dialled
    queued: int  # leads with a call scheduled but not yet dialled
    campaigns: tuple[str, ...]  # campaigns the pack is in


class PackInUse(UserError):
    """A pack some of whose leads were dialled (or have a call scheduled): not deleted or replaced."""

    def __init__(self, message: str, *, pack: str, use: PackUse) -> None:
        super().__init__(message)
        self.pack, self.use = pack, use


@dataclass(frozen=True)
class DeletedPack:
    name: str
    leads: int
    rejects: int
    campaigns: tuple[str, ...]  # campaigns it was taken out of

    def as_json(self) -> dict:
        return {
            "pack": self.name,
            "leads_deleted": self.leads,
            "rejects_deleted": self.rejects,
            "removed_from_campaigns": list(self.campaigns),
        }


def pack_use(session: Session, pack: LeadPack) -> PackUse:
    of_pack = CallAttempt.lead_id.in_(select(Lead.id).where(Lead.pack_id == pack.id))
    dialled_call = or_(CallAttempt.dialed_at.isnot(None), CallAttempt.status.in_(DIALLED_STATUSES))
    dialled = session.execute(
        select(func.count(func.distinct(CallAttempt.lead_id))).where(of_pack, dialled_call)
    ).scalar_one()
    queued = session.execute(
        select(func.count(func.distinct(CallAttempt.lead_id))).where(
            of_pack, CallAttempt.status == "scheduled", CallAttempt.dialed_at.is_(None)
        )
    ).scalar_one()
    campaigns = (
        session.execute(
            select(Campaign.name)
            .join(CampaignPack, CampaignPack.campaign_id == Campaign.id)
            .where(CampaignPack.pack_id == pack.id)
            .order_by(Campaign.name)
        )
        .scalars()
        .all()
    )
    return PackUse(dialled, queued, tuple(campaigns))


def check_removable(session: Session, pack: LeadPack, action: str) -> PackUse:
    """Raise one UserError saying why `action` ("delete"/"replace") is refused, if it is."""
    use = pack_use(session, pack)
    where = f" (campaign {', '.join(repr(c) for c in use.campaigns)})" if use.campaigns else ""
    if use.dialled:
        raise PackInUse(
            f"cannot {action} lead pack {pack.name!r}: {use.dialled} of its leads were already dialled{where}; "
            "their calls, grades and WeCom invitations belong to those leads. Upload the corrected file as a "
            "new pack (another --pack name); numbers already stored are skipped as duplicates",
            pack=pack.name,
            use=use,
        )
    if use.queued:
        raise PackInUse(
            f"cannot {action} lead pack {pack.name!r}: {use.queued} of its leads have a call scheduled{where}; "
            "stop the campaign first (waihu campaign stop <campaign>) and try again",
            pack=pack.name,
            use=use,
        )
    return use


def delete_lead_pack(session: Session, name: str) -> DeletedPack:
    """Delete a pack, its leads and its kept rejects; refused once any lead of it was dialled."""
    pack = get_pack(session, name)
    pack = session.execute(select(LeadPack).where(LeadPack.id == pack.id).with_for_update()).scalar_one()
    use = check_removable(session, pack, "delete")
    pack_name = pack.name
    leads, rejects = delete_pack_records(session, pack)
    return DeletedPack(pack_name, leads, rejects, use.campaigns)


def replace_guard(session: Session, old: LeadPack) -> Callable[[Session, int], None]:
    """For `upload_lead_pack(…, replace_guard=…)`: refuse a pack that was dialled; the new pack takes
    the earlier one's place in its campaigns."""
    check_removable(session, old, "replace")
    campaign_ids = (
        session.execute(select(CampaignPack.campaign_id).where(CampaignPack.pack_id == old.id)).scalars().all()
    )

    def take_over(session: Session, new_pack_id: int) -> None:
        for campaign_id in campaign_ids:
            session.add(CampaignPack(campaign_id=campaign_id, pack_id=new_pack_id))

    return take_over
