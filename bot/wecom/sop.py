"""Follow-up sequences after the add (SOP): enrol, plan, send, and react to events.

- `enrol` (on the add callback, bot.wecom.events): the sequence for the contact's audience
  pack × grade (an A/B arm when the block lists several), every step planned as a
  `SopStepSend` at day N, time of day, local time of the compliance profile; a time outside
  the profile's message window moves to the next opening (never dropped).
- `run_due` (Celery beat every minute, `waihu sop run-due`): due steps are claimed one by one
  with a conditional UPDATE (pending → sending), so two senders never send the same step;
  the weekly cap per person (profile `messages.weekly_cap`) skips a step and records it;
  the message goes to WeCom's add_msg_template (the advisor confirms it in their client);
  the send and its `sop.step_sent` webhook event are written in one transaction.
- Events: a tracked link click (`record_click`, GET /r/{token}), a purchase (`on_purchase`,
  for the conversions code), a reply (`on_reply`: WeCom does not push a contact's replies to
  apps without 会话存档, so the advisor marks it, or an archive integration calls this) switch
  the sequence or stop it as the file's branches say. A deleted friend stops everything; an
  opt-out (a reply containing 退订, or ops) stops everything and adds the number to DNC.

A step whose claim is never finished (a crash mid-send) is not sent again: WeCom may already
hold the task, and a second message is worse than a missing one. `recover_stuck` marks it
failed after STUCK_AFTER so the report shows it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.audiences.models import AudiencePack
from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import add_entry
from bot.leads.models import Lead
from bot.webhooks.events import emit_sop_step_sent, lead_fields
from bot.wecom.client import WeComClient, WeComError, mask_id
from bot.wecom.models import WeComInvite
from bot.wecom.sequences import OPT_OUT_WORD, STOP, Sequence, Sequences, Step, load_sequences
from bot.wecom.sop_models import SopClick, SopContactTag, SopEnrolment, SopLink, SopStepSend
from telephony.compliance.policy import CompliancePolicy, default_policy

log = logging.getLogger(__name__)

TAG_GROUP = "跟进序列"
STUCK_AFTER = timedelta(minutes=15)
OPEN_STATES = ("active", "switched")
_DAY = 86400


def default_sop_config() -> tuple[Sequences, CompliancePolicy]:
    """dialogs/wecom/sequences.yml and the default compliance profile (its message window and
    weekly cap). A UserError names the file and line when the sequences file is wrong."""
    return load_sequences(), default_policy()


# ---- time: day N at HH:MM local, inside the message window ---------------------------------------


def _zone(policy: CompliancePolicy) -> ZoneInfo:
    return ZoneInfo(policy.timezone)


def next_allowed(at: datetime, policy: CompliancePolicy) -> datetime:
    """`at` when it is inside the profile's message window (local time), else the window's
    next opening."""
    zone = _zone(policy)
    local = at.astimezone(zone)
    start, end = policy.message_window
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    if start <= seconds < end:
        return at
    day = local.date() if seconds < start else local.date() + timedelta(days=1)
    return _local(day, start, zone)


def _local(day: date, seconds: int, zone: ZoneInfo) -> datetime:
    moment = datetime.combine(day, time(seconds // 3600, seconds % 3600 // 60), tzinfo=zone)
    return moment.astimezone(timezone.utc)


def planned_at(started_at: datetime, step: Step, policy: CompliancePolicy) -> datetime:
    """Day `step.day` after the sequence started (local calendar days), at `step.at` local."""
    zone = _zone(policy)
    day = started_at.astimezone(zone).date() + timedelta(days=step.day)
    return _local(day, step.at_minutes * 60, zone)


# ---- enrolment and planning -----------------------------------------------------------------------


def enrol(
    session: Session, invite: WeComInvite, *, sequences: Sequences, policy: CompliancePolicy, now: datetime
) -> SopEnrolment | None:
    """Enrol the contact of an added invite (once per invite): None when its pack × grade has
    no sequence, the add has no contact id, or it is already enrolled."""
    if not invite.external_userid or invite.grade not in ("A", "B"):
        return None
    existing = session.execute(select(SopEnrolment).where(SopEnrolment.invite_id == invite.id)).scalar_one_or_none()
    if existing is not None:
        return None
    arm = (invite.arms or {}).get("sequence")
    audience = _Audience(invite.audience, _scene_of(session, invite))
    name = sequences.sequence_for(audience, invite.grade, invite.lead_id, arm)
    if name is None:
        return None
    enrolment = SopEnrolment(
        lead_id=invite.lead_id,
        invite_id=invite.id,
        campaign_id=invite.campaign_id,
        external_userid=invite.external_userid,
        advisor_userid=invite.advisor_userid or "",
        audience=invite.audience,
        grade=invite.grade,
        arm=name,
        sequence=name,
        state="active",
        enrolled_at=now,
        sequence_started_at=now,
    )
    session.add(enrolment)
    session.flush()
    _plan(session, enrolment, sequences.sequences[name], now, policy)
    return enrolment


@dataclass(frozen=True)
class _Audience:
    name: str | None
    scene: str | None


def _scene_of(session: Session, invite: WeComInvite) -> str | None:
    lead = session.get(Lead, invite.lead_id)
    pack = session.get(AudiencePack, lead.audience_id) if lead is not None and lead.audience_id else None
    return pack.scene if pack is not None else None


def _plan(
    session: Session, enrolment: SopEnrolment, sequence: Sequence, started_at: datetime, policy: CompliancePolicy
) -> None:
    for step in sequence.steps:
        planned = planned_at(started_at, step, policy)
        if planned < started_at:  # day 0 at a time already past: as soon as allowed
            planned = started_at
        due = next_allowed(planned, policy)
        session.add(
            SopStepSend(
                enrolment_id=enrolment.id,
                lead_id=enrolment.lead_id,
                sequence=sequence.name,
                step_index=step.index,
                step_type=step.type,
                due_at=due,
                moved_from=planned if due != planned else None,
                status="pending",
            )
        )
    session.flush()


def _cancel_pending(session: Session, enrolment: SopEnrolment, note: str) -> None:
    session.execute(
        update(SopStepSend)
        .where(SopStepSend.enrolment_id == enrolment.id, SopStepSend.status == "pending")
        .values(status="cancelled", note=note[:500])
    )


def stop(session: Session, enrolment: SopEnrolment, reason: str, now: datetime) -> bool:
    """Stop every pending step; False when it had already ended."""
    if enrolment.state not in OPEN_STATES:
        return False
    _cancel_pending(session, enrolment, f"stopped: {reason}")
    enrolment.state, enrolment.stop_reason, enrolment.ended_at = "stopped", reason, now
    return True


def switch(
    session: Session,
    enrolment: SopEnrolment,
    to: str,
    *,
    sequences: Sequences,
    policy: CompliancePolicy,
    now: datetime,
    reason: str,
) -> str:
    """Follow the branch: another sequence from today (its steps planned from now), or stop."""
    if enrolment.state not in OPEN_STATES:
        return f"enrolment {enrolment.id} already {enrolment.state}"
    if to == STOP:
        stop(session, enrolment, reason, now)
        return f"stopped ({reason})"
    if to == enrolment.sequence:
        return f"already following {to}"
    _cancel_pending(session, enrolment, f"switched to {to} ({reason})")
    enrolment.sequence, enrolment.state, enrolment.sequence_started_at = to, "switched", now
    session.flush()
    _plan(session, enrolment, sequences.sequences[to], now, policy)
    return f"switched to {to} ({reason})"


def on_event(
    session: Session,
    enrolment: SopEnrolment,
    event: str,
    *,
    sequences: Sequences,
    policy: CompliancePolicy,
    now: datetime,
) -> str:
    """A click, purchase or reply: the current sequence's branch for it, if any. A purchase
    without a branch still stops the follow-up (selling again to a buyer is the wrong SOP)."""
    current = sequences.sequences.get(enrolment.sequence)
    target = current.branches.get(event) if current is not None else None
    if target is None:
        if event == "purchase":
            return switch(session, enrolment, STOP, sequences=sequences, policy=policy, now=now, reason="purchase")
        return f"no {event} branch in {enrolment.sequence}"
    reason = "purchase" if (event == "purchase" and target == STOP) else "branch"
    return switch(session, enrolment, target, sequences=sequences, policy=policy, now=now, reason=reason)


def on_purchase(
    session: Session, lead_id: int, at: datetime, *, sequences: Sequences, policy: CompliancePolicy
) -> list[str]:
    """The hook for conversions: a policy bought by this lead fires the purchase branch of each
    of their open enrolments (in the caller's transaction)."""
    return [
        on_event(session, enrolment, "purchase", sequences=sequences, policy=policy, now=at)
        for enrolment in _open_enrolments(session, SopEnrolment.lead_id == lead_id)
    ]


def purchase_hook(session: Session, lead_id: int, at: datetime) -> list[str]:
    """`on_purchase` with the configured sequences and profile, for the conversions code: a
    broken or missing sequences file is logged (file:line) and never fails the conversion."""
    try:
        sequences, policy = default_sop_config()
    except UserError as exc:
        log.error("purchase of lead %s: follow-up sequences not updated: %s", lead_id, exc)
        return []
    return on_purchase(session, lead_id, at, sequences=sequences, policy=policy)


def on_reply(
    session: Session,
    enrolment: SopEnrolment,
    text: str,
    *,
    sequences: Sequences,
    policy: CompliancePolicy,
    now: datetime,
) -> str:
    """The contact replied (marked by the advisor, or from a 会话存档 integration): 退订 is an
    opt-out; anything else fires the reply branch."""
    if OPT_OUT_WORD in text or text.strip().upper() in ("TD", "T"):
        return opt_out(session, enrolment, now=now, source="wecom_reply")
    return on_event(session, enrolment, "reply", sequences=sequences, policy=policy, now=now)


def opt_out(session: Session, enrolment: SopEnrolment, *, now: datetime, source: str = "ops") -> str:
    """Stop everything for this person (every open enrolment of the lead) and put the number
    on the permanent do-not-call list."""
    stopped = [
        e
        for e in _open_enrolments(session, SopEnrolment.lead_id == enrolment.lead_id)
        if stop(session, e, "opt_out", now)
    ]
    lead = session.get(Lead, enrolment.lead_id)
    if lead is not None:
        add_entry(session, lead.phone_hash, scope=SCOPE_OPT_OUT, reason="wecom_opt_out", source=source, now=now)
    return f"opted out: {len(stopped)} sequence(s) stopped, {lead.phone_masked if lead else '?'} on the DNC list"


def stop_for_contact(session: Session, external_userid: str, advisor_userid: str | None, now: datetime) -> int:
    """The friendship ended (either side deleted it): stop every open enrolment of the contact."""
    condition = SopEnrolment.external_userid == external_userid
    if advisor_userid:
        condition = condition & (SopEnrolment.advisor_userid == advisor_userid)
    return sum(stop(session, e, "deleted", now) for e in _open_enrolments(session, condition))


def _open_enrolments(session: Session, condition: Any) -> list[SopEnrolment]:
    return list(
        session.execute(select(SopEnrolment).where(condition, SopEnrolment.state.in_(OPEN_STATES))).scalars().all()
    )


# ---- clicks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Click:
    url: str
    enrolment_id: int
    external_userid: str
    advisor_userid: str
    tag: str | None
    outcome: str


def record_click(
    session: Session,
    token: str,
    *,
    user_agent: str | None,
    sequences: Sequences,
    policy: CompliancePolicy,
    now: datetime,
) -> Click | None:
    """A click on a tracked link: recorded, the tag noted, the click branch followed (the first
    click only switches; later ones are just counted). None for an unknown token."""
    link = session.execute(select(SopLink).where(SopLink.token == token)).scalar_one_or_none()
    if link is None:
        return None
    enrolment = session.get(SopEnrolment, link.enrolment_id, with_for_update=True)
    first = not session.execute(
        select(func.count()).select_from(SopClick).where(SopClick.enrolment_id == enrolment.id)
    ).scalar_one()
    session.add(
        SopClick(link_id=link.id, enrolment_id=enrolment.id, clicked_at=now, user_agent=(user_agent or "")[:300])
    )
    if (
        link.tag
        and not session.execute(
            select(SopContactTag.id).where(SopContactTag.enrolment_id == enrolment.id, SopContactTag.tag == link.tag)
        ).first()
    ):
        session.add(SopContactTag(enrolment_id=enrolment.id, tag=link.tag, marked_in_wecom=0, created_at=now))
    outcome = (
        on_event(session, enrolment, "click", sequences=sequences, policy=policy, now=now) if first else "click counted"
    )
    session.flush()
    return Click(link.url, enrolment.id, enrolment.external_userid, enrolment.advisor_userid, link.tag, outcome)


async def tag_click(engine: Engine, client: WeComClient, click: Click) -> str:
    """Mark the click's tag on the contact in WeCom (group 跟进序列)."""
    if not click.tag:
        return "no tag"
    try:
        ids = await client.ensure_tags(TAG_GROUP, [click.tag])
        await client.mark_tag(click.advisor_userid, click.external_userid, list(ids.values()))
    except WeComError as exc:
        log.warning("sop click of %s: tag %s not marked: %s", mask_id(click.external_userid), click.tag, exc)
        return f"tag not marked: {exc}"

    def marked() -> None:
        with session_scope(engine) as session:
            session.execute(
                update(SopContactTag)
                .where(SopContactTag.enrolment_id == click.enrolment_id, SopContactTag.tag == click.tag)
                .values(marked_in_wecom=1)
            )

    await run_in_threadpool(marked)
    return f"tagged {click.tag}"


# ---- sending ------------------------------------------------------------------------------------


@dataclass
class RunReport:
    sent: int = 0
    skipped_cap: int = 0
    moved_quiet: int = 0
    failed: int = 0
    cancelled: int = 0
    lost_claims: int = 0  # another sender had it
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "skipped_cap": self.skipped_cap,
            "moved_quiet": self.moved_quiet,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "lost_claims": self.lost_claims,
        }


@dataclass(frozen=True)
class _Outgoing:
    send_id: int
    sender: str
    external_userid: str
    text: str
    attachments: list[dict]


async def run_due(
    engine: Engine,
    client: WeComClient,
    *,
    sequences: Sequences,
    policy: CompliancePolicy,
    now: datetime | None = None,
    limit: int = 500,
) -> RunReport:
    """Send every step due by `now` (one pass, at most `limit`)."""
    now = now or utc_now()
    report = RunReport()
    await run_in_threadpool(recover_stuck, engine, now)
    ids = await run_in_threadpool(_due_ids, engine, now, limit)
    for send_id in ids:
        outgoing = await run_in_threadpool(_prepare, engine, send_id, sequences, policy, now, report)
        if outgoing is None:
            continue
        try:
            msgid = await client.add_msg_template(
                sender=outgoing.sender,
                external_userids=[outgoing.external_userid],
                text=outgoing.text,
                attachments=outgoing.attachments,
                log_as={"sop_send": str(send_id)},
            )
        except WeComError as exc:
            report.failed += 1
            await run_in_threadpool(_finish_send, engine, send_id, "failed", None, now, str(exc))
            continue
        report.sent += 1
        await run_in_threadpool(_finish_send, engine, send_id, "sent", msgid, now, None)
    return report


def _due_ids(engine: Engine, now: datetime, limit: int) -> list[int]:
    with session_scope(engine) as session:
        return list(
            session.execute(
                select(SopStepSend.id)
                .where(SopStepSend.status == "pending", SopStepSend.due_at <= now)
                .order_by(SopStepSend.due_at, SopStepSend.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )


def claim(session: Session, send_id: int, now: datetime) -> bool:
    """pending → sending in one conditional UPDATE: exactly one sender wins, on any database."""
    return bool(
        session.execute(
            update(SopStepSend)
            .where(SopStepSend.id == send_id, SopStepSend.status == "pending", SopStepSend.due_at <= now)
            .values(status="sending", claimed_at=now)
        ).rowcount
    )


def _prepare(
    engine: Engine, send_id: int, sequences: Sequences, policy: CompliancePolicy, now: datetime, report: RunReport
) -> _Outgoing | None:
    """Claim the step, then check it may go now; the message to send, or None (done here)."""
    with session_scope(engine) as session:
        if not claim(session, send_id, now):
            report.lost_claims += 1
            return None
    with session_scope(engine) as session:
        send = session.get(SopStepSend, send_id)
        enrolment = session.get(SopEnrolment, send.enrolment_id)
        sequence = sequences.sequences.get(send.sequence)
        step = next((s for s in sequence.steps if s.index == send.step_index), None) if sequence else None
        if enrolment.state not in OPEN_STATES or enrolment.sequence != send.sequence or step is None:
            send.status, send.note = "cancelled", "the enrolment ended or moved on, or the step left the file"
            report.cancelled += 1
            return None
        allowed = next_allowed(now, policy)
        if allowed != now:  # quiet hours: wait for the next opening (never dropped)
            send.moved_from = send.moved_from or send.due_at
            send.status, send.due_at, send.claimed_at = "pending", allowed, None
            report.moved_quiet += 1
            return None
        cap = policy.message_weekly_cap
        sent_this_week = session.execute(
            select(func.count())
            .select_from(SopStepSend)
            .where(
                SopStepSend.lead_id == send.lead_id,
                SopStepSend.status == "sent",
                SopStepSend.sent_at > now - timedelta(days=7),
            )
        ).scalar_one()
        if sent_this_week >= cap:
            send.status, send.note = "skipped_cap", f"{sent_this_week} message(s) in 7 days; the cap is {cap}"
            report.skipped_cap += 1
            _complete_if_done(session, enrolment, now)
            return None
        attachments = _attachments(session, sequences, enrolment, send, step, now)
        return _Outgoing(send.id, enrolment.advisor_userid, enrolment.external_userid, step.text, attachments)


def _attachments(
    session: Session, sequences: Sequences, enrolment: SopEnrolment, send: SopStepSend, step: Step, now: datetime
) -> list[dict]:
    if step.type == "link" and step.link:
        token = secrets.token_urlsafe(18)  # 144 random bits: not guessable, not enumerable
        session.add(
            SopLink(
                token=token,
                enrolment_id=enrolment.id,
                send_id=send.id,
                url=step.link["url"],
                tag=step.tag_on_click,
                created_at=now,
            )
        )
        link = {k: v for k, v in step.link.items() if k != "url"}
        return [{"msgtype": "link", "link": {**link, "url": f"{sequences.redirect_base}/{token}"}}]
    if step.type == "miniprogram" and step.miniprogram:
        return [{"msgtype": "miniprogram", "miniprogram": dict(step.miniprogram)}]
    return []


def _finish_send(
    engine: Engine, send_id: int, status: str, msgid: str | None, now: datetime, error: str | None
) -> None:
    with session_scope(engine) as session:
        send = session.get(SopStepSend, send_id)
        send.status, send.msgid, send.note = status, msgid, (error or "")[:2000] or None
        enrolment = session.get(SopEnrolment, send.enrolment_id)
        if status == "sent":
            send.sent_at = now
            invite = session.get(WeComInvite, enrolment.invite_id)
            # Webhooks: `sop.step_sent` goes into the outbox with the send (bot.webhooks).
            emit_sop_step_sent(
                session,
                sequence=send.sequence,
                step=f"{send.step_index}",
                channel="wecom_msg_template",
                lead=lead_fields(session, send.lead_id),
                campaign_id=enrolment.campaign_id,
                arms={**dict((invite.arms if invite is not None else None) or {}), "sequence": enrolment.arm},
                sent_at=now,
            )
        _complete_if_done(session, enrolment, now)


def _complete_if_done(session: Session, enrolment: SopEnrolment, now: datetime) -> None:
    session.flush()
    left = session.execute(
        select(func.count())
        .select_from(SopStepSend)
        .where(SopStepSend.enrolment_id == enrolment.id, SopStepSend.status.in_(("pending", "sending")))
    ).scalar_one()
    if not left and enrolment.state in OPEN_STATES:
        enrolment.state, enrolment.ended_at = "completed", now


def recover_stuck(engine: Engine, now: datetime) -> int:
    """Claims older than STUCK_AFTER (a sender died mid-send) become failed, never re-sent."""
    with session_scope(engine) as session:
        return session.execute(
            update(SopStepSend)
            .where(SopStepSend.status == "sending", SopStepSend.claimed_at < now - STUCK_AFTER)
            .values(status="failed", note="the sender stopped mid-send; not sent again (WeCom may hold it)")
        ).rowcount


# ---- figures --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmFigures:
    arm: str
    enrolled: int
    sent: int
    skipped_cap: int
    clicked: int  # enrolments with at least one click
    stopped: Mapping[str, int]
    completed: int

    @property
    def click_rate(self) -> float:
        return self.clicked / self.enrolled if self.enrolled else 0.0


def sequence_figures(session: Session, campaign_id: int | None = None) -> list[ArmFigures]:
    """Per A/B arm (the sequence first assigned): enrolled, steps sent, clicks, stops by reason."""
    where = [SopEnrolment.campaign_id == campaign_id] if campaign_id is not None else []
    rows = session.execute(
        select(SopEnrolment.arm, SopEnrolment.state, SopEnrolment.stop_reason, func.count())
        .where(*where)
        .group_by(SopEnrolment.arm, SopEnrolment.state, SopEnrolment.stop_reason)
    ).all()
    sends = dict(
        session.execute(
            select(SopEnrolment.arm, func.count())
            .join(SopStepSend, SopStepSend.enrolment_id == SopEnrolment.id)
            .where(SopStepSend.status == "sent", *where)
            .group_by(SopEnrolment.arm)
        ).all()
    )
    capped = dict(
        session.execute(
            select(SopEnrolment.arm, func.count())
            .join(SopStepSend, SopStepSend.enrolment_id == SopEnrolment.id)
            .where(SopStepSend.status == "skipped_cap", *where)
            .group_by(SopEnrolment.arm)
        ).all()
    )
    clicked = dict(
        session.execute(
            select(SopEnrolment.arm, func.count(func.distinct(SopClick.enrolment_id)))
            .join(SopClick, SopClick.enrolment_id == SopEnrolment.id)
            .where(*where)
            .group_by(SopEnrolment.arm)
        ).all()
    )
    by_arm: dict[str, dict[str, Any]] = {}
    for arm, state, reason, count in rows:
        entry = by_arm.setdefault(arm, {"enrolled": 0, "stopped": {}, "completed": 0})
        entry["enrolled"] += count
        if state == "stopped":
            entry["stopped"][reason or "?"] = entry["stopped"].get(reason or "?", 0) + count
        if state == "completed":
            entry["completed"] += count
    return [
        ArmFigures(
            arm=arm,
            enrolled=entry["enrolled"],
            sent=int(sends.get(arm, 0)),
            skipped_cap=int(capped.get(arm, 0)),
            clicked=int(clicked.get(arm, 0)),
            stopped=entry["stopped"],
            completed=entry["completed"],
        )
        for arm, entry in sorted(by_arm.items())
    ]


def timeline(session: Session, lead_id: int) -> list[dict[str, Any]]:
    """The lead's follow-up, oldest first: every planned step with its status, and clicks."""
    items: list[dict[str, Any]] = []
    for send in session.execute(
        select(SopStepSend).where(SopStepSend.lead_id == lead_id).order_by(SopStepSend.due_at, SopStepSend.id)
    ).scalars():
        items.append(
            {
                "at": send.sent_at or send.due_at,
                "kind": "step",
                "sequence": send.sequence,
                "step": send.step_index,
                "type": send.step_type,
                "status": send.status,
                "note": send.note,
            }
        )
    for click, enrolment in session.execute(
        select(SopClick, SopEnrolment)
        .join(SopEnrolment, SopEnrolment.id == SopClick.enrolment_id)
        .where(SopEnrolment.lead_id == lead_id)
    ).all():
        items.append({"at": click.clicked_at, "kind": "click", "sequence": enrolment.sequence, "status": "clicked"})
    return sorted(items, key=lambda item: item["at"])


def erase_lead_sop(session: Session, lead_ids: list[int]) -> int:
    """PIPL erasure: the person's follow-up (enrolments with their WeCom id, every step, link,
    click and tag), explicitly rather than trusting each database's cascade; returns how many
    enrolments went."""
    if not lead_ids:
        return 0
    enrolments = select(SopEnrolment.id).where(SopEnrolment.lead_id.in_(lead_ids))
    for model in (SopClick, SopContactTag, SopLink):
        session.execute(
            delete(model).where(model.enrolment_id.in_(enrolments)).execution_options(synchronize_session=False)
        )
    session.execute(
        delete(SopStepSend).where(SopStepSend.lead_id.in_(lead_ids)).execution_options(synchronize_session=False)
    )
    return (
        session.execute(
            delete(SopEnrolment).where(SopEnrolment.lead_id.in_(lead_ids)).execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
