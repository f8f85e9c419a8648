"""The `wecom.added` webhook event: a customer added the advisor through our invitation (the
callback's `State` matched it). Emitted in the transaction that records the add."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bot.campaigns.models import Campaign
from bot.webhooks.events import WECOM_ADDED, emit, iso, lead_fields
from bot.wecom.models import WeComInvite


def emit_wecom_added(session: Session, invite: WeComInvite) -> int | None:
    campaign = session.get(Campaign, invite.campaign_id)
    return emit(
        session,
        WECOM_ADDED,
        {
            "invite_id": invite.id,
            "attempt_id": invite.attempt_id,
            "campaign_id": invite.campaign_id,
            "campaign": campaign.name if campaign is not None else None,
            **lead_fields(session, invite.lead_id),
            "grade": invite.grade,
            "audience": invite.audience,
            "arms": dict(invite.arms or {}),
            "incentive": invite.incentive,
            "advisor_userid": invite.advisor_userid,
            "external_userid": invite.external_userid,
            "added_at": iso(invite.added_at),
        },
        now=invite.added_at,
    )
