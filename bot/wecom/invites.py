"""Invitations after grading: created with the call log, delivered by a pass every minute.

`create_invite` runs inside `record_call`'s transaction for a call whose follow-ups say
`wecom_invite` (grades A and B; `invite_grades` in the offers narrows it): it picks the
incentive (the same `incentive_for` the dialer uses, so it is what the robot promised),
the welcome script for the audience pack × grade, and signs the `state`. It never makes
the call log fail: a broken offers file gives a `failed` invite that says why.

In an `advisor_adds` campaign an A/B mobile lead gets no SMS: its invite (channel
`advisor_adds`, status `assigned`) comes with an advisor task (bot.wecom.advisor_tasks), and
delivery passes leave it alone.

`deliver_pending_invites` makes the contact way (联系我 QR code with the state), sends the
link by SMS or puts it on the advisors' task list, retries what WeCom or the SMS gateway
could not take, and matches callbacks that arrived before their invite could be found.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.audiences.models import AudiencePack
from bot.campaigns.models import CallAttempt, Campaign
from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.phone import LANDLINE
from bot.core.pii import PhoneKeyring, mask_phone
from bot.leads.models import Lead
from bot.wecom.advisor_tasks import ADVISOR_ADDS_CHANNEL, ASSIGNED, CALLBACK_CHANNEL, create_task
from bot.wecom.client import WeComClient, WeComError
from bot.wecom.models import WeComInvite
from bot.wecom.offers import Offers, incentive_for, load_offers, render_sms, welcome_for, welcome_slots
from bot.wecom.sms import SmsError, SmsProvider
from bot.wecom.state import encode_state, state_key_from_settings

log = logging.getLogger(__name__)

MAX_DELIVERY_TRIES = 5
RETRY_AFTER = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))
# A pass that claimed an invite and died: after this the invite is taken up again.
DELIVERY_LEASE = timedelta(minutes=10)
OPEN_STATUSES = ("pending", "delivering", "sent")
# A landline cannot be added on WeCom (its add-friend search and 联系我 links need a mobile number, and
# the SMS with the link cannot reach it): the invitation is recorded as skipped, with this reason.
SKIPPED = "skipped"
LANDLINE_REASON = (
    "座机，无法加企业微信：未发送邀请，已派顾问回电任务 (landline: cannot be added on WeCom; the advisor calls back)"
)


def callee_title(name: str | None, gender: str | None) -> str:
    """王先生 / 李女士 / 您: as the call addressed them (bot.conversation.session.LeadContext
    .callee_title; repeated here so the WeCom side does not load the dialogue stack)."""
    surname = (name or "")[:1]
    if not surname:
        return "您"
    honorific = {"M": "先生", "F": "女士"}.get((gender or "").upper()[:1], "")
    return f"{surname}{honorific}" if honorific else f"{surname}先生/女士"


def create_invite(
    session: Session,
    attempt: CallAttempt,
    *,
    now: datetime | None = None,
    offers: Offers | None = None,
    key: bytes | None = None,
) -> WeComInvite | None:
    """The invitation for a graded A/B call, in the caller's transaction (None: not invited,
    and the log says why)."""
    now = now or utc_now()
    grade = attempt.grade
    existing = session.execute(
        select(WeComInvite.id, WeComInvite.attempt_id, WeComInvite.status, WeComInvite.campaign_id).where(
            WeComInvite.lead_id == attempt.lead_id
        )
    ).all()
    if any(row.attempt_id == attempt.id for row in existing):
        return None
    if any(row.campaign_id == attempt.campaign_id for row in existing):
        log.info(
            "attempt %s: lead %s already has an invitation in campaign %s; no second one",
            attempt.id,
            attempt.lead_id,
            attempt.campaign_id,
        )
        return None
    if any(row.status in ("added", "welcomed", "welcoming") for row in existing):
        log.info("attempt %s: lead %s is already a WeCom friend; no invitation", attempt.id, attempt.lead_id)
        return None
    key = key or state_key_from_settings()
    try:
        offers = offers or load_offers()
        if grade not in offers.invite_grades:
            log.info(
                "attempt %s: grade %s is not invited (invite_grades %s)",
                attempt.id,
                grade,
                ",".join(offers.invite_grades),
            )
            return None
        lead = session.get(Lead, attempt.lead_id)
        if lead is not None and lead.line_type == LANDLINE:
            log.info(
                "attempt %s: lead %s is a landline (%s); no WeCom invitation, the advisor calls back",
                attempt.id,
                lead.id,
                lead.phone_masked,
            )
            invite = _skipped_invite(attempt, key, now, LANDLINE_REASON, audience=_audience_name(session, lead))
            # The robot promised this callee the advisor's call back (add mode `callback`): the
            # advisor of the lead's pack gets that task, with the audited reveal of the number.
            audience = session.get(AudiencePack, lead.audience_id) if lead.audience_id else None
            advisor = offers.advisor_for(audience)
            invite.channel = CALLBACK_CHANNEL
            invite.advisor_userid, invite.advisor_name = advisor.userid, advisor.name
            session.add(invite)
            create_task(session, invite, now=now)
            return invite
        invite = _build_invite(session, attempt, offers, key, now)
        if invite.channel == ADVISOR_ADDS_CHANNEL:
            # advisor_adds: no SMS, no contact way; the assigned advisor adds the callee from a task.
            session.add(invite)
            create_task(session, invite, now=now)
            return invite
    except Exception as exc:  # noqa: BLE001  (the call log must be written whatever the offers say)
        message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        log.error("attempt %s: WeCom invitation not prepared: %s", attempt.id, message)
        invite = WeComInvite(
            attempt_id=attempt.id,
            lead_id=attempt.lead_id,
            campaign_id=attempt.campaign_id,
            grade=grade or "?",
            arms=dict(attempt.arms or {}),
            welcome_attachments=[],
            tags=[],
            state=encode_state(key, attempt.id, attempt.arms or {}),
            status="failed",
            channel="sms",
            created_at=now,
            last_error=f"邀请未生成：{message}"[:2000],
        )
    session.add(invite)
    return invite


def _audience_name(session: Session, lead: Lead) -> str | None:
    audience = session.get(AudiencePack, lead.audience_id) if lead.audience_id else None
    return audience.name if audience else None


def _skipped_invite(
    attempt: CallAttempt, key: bytes, now: datetime, reason: str, *, audience: str | None
) -> WeComInvite:
    """The record that this A/B lead was not invited, and why (never delivered: status skipped)."""
    return WeComInvite(
        attempt_id=attempt.id,
        lead_id=attempt.lead_id,
        campaign_id=attempt.campaign_id,
        grade=attempt.grade or "?",
        audience=audience,
        arms=dict(attempt.arms or {}),
        welcome_attachments=[],
        tags=[],
        state=encode_state(key, attempt.id, attempt.arms or {}),
        status=SKIPPED,
        channel="sms",
        tries=0,
        created_at=now,
        last_error=reason,
    )


def _build_invite(session: Session, attempt: CallAttempt, offers: Offers, key: bytes, now: datetime) -> WeComInvite:
    lead = session.get(Lead, attempt.lead_id)
    audience = session.get(AudiencePack, lead.audience_id) if lead and lead.audience_id else None
    campaign = session.get(Campaign, attempt.campaign_id)
    arms = dict(attempt.arms or {})
    incentive = incentive_for(offers, audience, attempt.lead_id, arms, campaign=campaign)
    welcome = welcome_for(offers, audience, attempt.grade, attempt.lead_id, arms, campaign=campaign)
    invite_arms = {**arms, "incentive": incentive.name, "welcome": welcome.name}
    slots = welcome_slots(
        offers, audience, incentive, callee_title(lead.name if lead else None, lead.gender if lead else None)
    )
    text, attachments = welcome.render(slots)
    advisor = offers.advisor_for(audience)
    advisor_adds = campaign is not None and campaign.add_mode == "advisor_adds"
    return WeComInvite(
        attempt_id=attempt.id,
        lead_id=attempt.lead_id,
        campaign_id=attempt.campaign_id,
        grade=attempt.grade,
        audience=audience.name if audience else None,
        arms=invite_arms,
        incentive=incentive.text,
        incentive_key=incentive.key,
        welcome_key=welcome.key,
        welcome_text=text,
        welcome_attachments=attachments,
        advisor_userid=advisor.userid,
        advisor_name=advisor.name,
        channel=ADVISOR_ADDS_CHANNEL if advisor_adds else offers.delivery,
        state=encode_state(key, attempt.id, invite_arms),
        status=ASSIGNED if advisor_adds else "pending",
        tries=0,
        created_at=now,
        tags=[],
    )


# ---- delivery -----------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    delivered: int = 0
    retry_later: int = 0
    failed: int = 0
    events_matched: int = 0

    def as_json(self) -> dict:
        return dict(self.__dict__)


async def deliver_pending_invites(
    engine: Engine,
    client: WeComClient,
    sms: SmsProvider | None,
    *,
    keyring: PhoneKeyring | None = None,
    offers: Offers | None = None,
    processor: Any = None,
    now: datetime | None = None,
    limit: int = 200,
    concurrency: int = 4,
) -> DeliveryReport:
    """One delivery pass (idempotent: run it every minute, or twice at once)."""
    now = now or utc_now()
    offers = offers or load_offers()
    if keyring is None:
        from bot.core.pii import keyring_from_settings

        keyring = keyring_from_settings()
    report = DeliveryReport()
    due = await run_in_threadpool(_claim_due, engine, now, limit)
    gate = asyncio.Semaphore(concurrency)

    async def deliver(invite_id: int) -> None:
        async with gate:
            outcome = await _deliver_one(engine, client, sms, keyring, offers, invite_id, now)
            setattr(report, outcome, getattr(report, outcome) + 1)

    await asyncio.gather(*(deliver(i) for i in due))
    if processor is not None:
        report.events_matched = await processor.process_pending()
    if due:
        log.info("wecom delivery: %s", report.as_json())
    return report


def _claim_due(engine: Engine, now: datetime, limit: int) -> list[int]:
    """Invites due for delivery, claimed with a lease (a compare-and-set per row), so two
    passes at once never deliver the same invite."""
    with session_scope(engine) as session:
        candidates = (
            session.execute(
                select(WeComInvite.id)
                .where(
                    or_(WeComInvite.status == "pending", WeComInvite.status == "delivering"),
                    or_(WeComInvite.next_try_at.is_(None), WeComInvite.next_try_at <= now),
                )
                .order_by(WeComInvite.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        claimed = []
        for invite_id in candidates:
            won = session.execute(
                update(WeComInvite)
                .where(
                    WeComInvite.id == invite_id,
                    WeComInvite.status.in_(("pending", "delivering")),
                    or_(WeComInvite.next_try_at.is_(None), WeComInvite.next_try_at <= now),
                )
                .values(status="delivering", tries=WeComInvite.tries + 1, next_try_at=now + DELIVERY_LEASE)
            ).rowcount
            if won:
                claimed.append(invite_id)
        return claimed


async def _deliver_one(
    engine: Engine,
    client: WeComClient,
    sms: SmsProvider | None,
    keyring: PhoneKeyring,
    offers: Offers,
    invite_id: int,
    now: datetime,
) -> str:
    invite, lead = await run_in_threadpool(_load, engine, invite_id)
    try:
        if not invite.contact_way_id:
            way = await client.add_contact_way(
                user=invite.advisor_userid, state=invite.state, remark=f"外呼{invite.campaign_id}-{invite.grade}"
            )
            # Saved before the link goes anywhere: a callback can then always find its invite.
            await run_in_threadpool(_save_contact_way, engine, invite_id, way.config_id, way.qr_code)
            invite.contact_way_id, invite.link = way.config_id, way.qr_code
        if invite.channel == "sms":
            if sms is None:
                raise SmsError("no SMS provider configured for delivery: sms", retryable=False)
            phone = keyring.decrypt_phone(lead.phone_ciphertext)
            slots = {
                "callee_title": callee_title(lead.name, lead.gender),
                "incentive": invite.incentive or "",
                "advisor": invite.advisor_name or "",
                "institution": offers.institution or "",
            }
            receipt = await sms.send(phone, render_sms(offers, slots, invite.link or ""), invite_id=invite_id)
            log.info(
                "invite %s: link sent by SMS to %s (%s %s)",
                invite_id,
                mask_phone(phone),
                receipt.provider,
                receipt.message_id,
            )
        else:
            log.info("invite %s: link on the advisor task list (%s)", invite_id, invite.advisor_userid)
    except (WeComError, SmsError) as exc:
        return await run_in_threadpool(_delivery_failed, engine, invite_id, str(exc), exc.retryable, now)
    await run_in_threadpool(_mark_sent, engine, invite_id, now)
    return "delivered"


def _load(engine: Engine, invite_id: int) -> tuple[WeComInvite, Lead]:
    with session_scope(engine) as session:
        invite = session.get(WeComInvite, invite_id)
        return invite, session.get(Lead, invite.lead_id)


def _save_contact_way(engine: Engine, invite_id: int, config_id: str, qr_code: str) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(WeComInvite).where(WeComInvite.id == invite_id).values(contact_way_id=config_id, link=qr_code)
        )


def _mark_sent(engine: Engine, invite_id: int, now: datetime) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(WeComInvite)
            .where(WeComInvite.id == invite_id)
            .values(sent_at=now, next_try_at=None, last_error=None)
        )
        # A customer quick enough to add before this commit is already "added": keep that.
        session.execute(
            update(WeComInvite)
            .where(WeComInvite.id == invite_id, WeComInvite.status == "delivering")
            .values(status="sent")
        )


def _delivery_failed(engine: Engine, invite_id: int, message: str, retryable: bool, now: datetime) -> str:
    with session_scope(engine) as session:
        invite = session.get(WeComInvite, invite_id)
        give_up = not retryable or invite.tries >= MAX_DELIVERY_TRIES
        invite.last_error = message[:2000]
        if invite.status == "delivering":
            invite.status = "failed" if give_up else "pending"
        invite.next_try_at = None if give_up else now + RETRY_AFTER[min(invite.tries, len(RETRY_AFTER)) - 1]
    log.warning("invite %s: delivery %s: %s", invite_id, "failed for good" if give_up else "will be retried", message)
    return "failed" if give_up else "retry_later"


# ---- advisor tasks ------------------------------------------------------------------------------


def advisor_tasks(session: Session, *, campaign_id: int | None = None, include_done: bool = False) -> list[dict]:
    """Invitations an advisor can act on by hand: the link to send, who to, what was promised.
    Phones are masked; open ones first (sent, not yet added)."""
    query = (
        select(WeComInvite, Lead.phone_masked, Lead.name, Lead.gender, Campaign.name.label("campaign"))
        .join(Lead, Lead.id == WeComInvite.lead_id)
        .join(Campaign, Campaign.id == WeComInvite.campaign_id)
    )
    if campaign_id is not None:
        query = query.where(WeComInvite.campaign_id == campaign_id)
    if not include_done:
        query = query.where(WeComInvite.status.in_(OPEN_STATUSES + ("failed",)))
    rows = session.execute(query.order_by(WeComInvite.created_at, WeComInvite.id)).all()
    return [
        {
            "invite_id": invite.id,
            "campaign": campaign,
            "lead_id": invite.lead_id,
            "phone": phone,
            "callee": callee_title(name, gender) if name else "",
            "grade": invite.grade,
            "audience": invite.audience,
            "incentive": invite.incentive,
            "channel": invite.channel,
            "advisor": invite.advisor_userid,
            "link": invite.link,
            "status": invite.status,
            "created_at": invite.created_at.isoformat(),
            "sent_at": invite.sent_at.isoformat() if invite.sent_at else None,
            "last_error": invite.last_error,
        }
        for invite, phone, name, gender, campaign in rows
    ]
