"""advisor_adds mode: the advisor's task list, the audited number reveal, 已添加, and the add
callback closing the task.

Who may see the clear number: only the advisor the task is assigned to (a user whose
`wecom_userid` is the task's advisor), and every look writes a `reveal_audit` row in the
same transaction as the number is read — no row, no number. Everyone else, admins included,
gets `NotYourTask` (the console answers 403). Managers see every task and the audit, masked.

How WeCom's callback finds the task: an add the advisor initiated (search by phone) carries
the advisor's UserID and the customer's ExternalUserID but no `State`. We then ask WeCom for
the contact (externalcontact/get) and look at that advisor's follow_user entry: a task code
`WH<task id>` in the remark or description (the task page asks the advisor to put it there)
names the task. Without a code, the advisor's only revealed, not yet added task is taken
(they just looked the number up to add this person); with several such tasks and no code
the event stays unmatched (noted), and the advisor's 已添加 still counts the task done.

Call-back tasks (kind `callback`, a landline A/B callee; kind `handoff`, a hand-off nobody
took) are on the same list with the same audited reveal; the advisor marks them 已回电. They
are never matched to a WeCom add. A `handoff` task is the promise the robot made in the call
("我请顾问稍后给您回电"): it is made with the call log (`create_handoff_callback`), assigned to
the advisor of the lead's audience pack, due by the end of the call-back window (inside the
callback hours). The robot does not call the lead back for it (the call's history outcome is
`busy`: the robot keeps off the number for the policy's busy cool-down, 7 days by default).
A task not done by its due time stays open and shows 已超时 on the advisors' page, which
managers see for every advisor, and in `waihu wecom tasks`; nothing falls back to the robot.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.audiences.models import AudiencePack
from bot.campaigns.models import CallAttempt, Campaign
from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.core.pii import PhoneKeyring
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import active_hashes, dnc_state
from bot.leads.models import Lead
from bot.users.models import User
from bot.wecom.advisor_models import AdvisorTask, RevealAudit
from bot.wecom.models import WeComInvite
from bot.wecom.offers import Offers, load_offers

log = logging.getLogger(__name__)

# The invitation of an advisor_adds lead: channel and status while its task is open.
ADVISOR_ADDS_CHANNEL = "advisor_adds"
ASSIGNED = "assigned"
# An advisor should add an A/B lead while the call is fresh in the callee's mind.
TASK_DUE_AFTER = timedelta(hours=24)
OPEN_TASK_STATUSES = ("open", "done")
TASK_STATUS_LABELS = {"open": "待添加", "done": "已标记添加", "added": "已加好友", "cancelled": "已取消"}
# A landline A/B callee heard "顾问给您回电话" (add mode `callback`: WeCom cannot add a landline):
# the advisor's task is a call back, on the invitation of channel `callback`, never sent on WeCom.
CALLBACK_CHANNEL = "callback"
CALLBACK_STATUS_LABELS = {"open": "待回电", "done": "已回电", "cancelled": "已取消"}
# Task kinds (AdvisorTask.kind): what the advisor is to do.
ADD_TASK, CALLBACK_TASK, HANDOFF_TASK = "add", "callback", "handoff"
CALL_BACK_KINDS = (CALLBACK_TASK, HANDOFF_TASK)
TASK_KIND_LABELS = {ADD_TASK: "加好友", CALLBACK_TASK: "座机·回电", HANDOFF_TASK: "转人工·回电"}
TASK_CODE = re.compile(r"\bWH(\d{1,18})\b", re.IGNORECASE)


class NotYourTask(UserError):
    """Someone other than the assigned advisor asked for a task's number or to close it."""


class OptedOut(UserError):
    """The person asked not to be contacted again (hard opt-out) after the task was made."""


def task_code(task_id: int) -> str:
    """What the advisor puts in the contact's remark so the add callback finds the task."""
    return f"WH{task_id}"


def create_task(session: Session, invite: WeComInvite, *, now: datetime | None = None) -> AdvisorTask:
    """The task for an advisor_adds invitation (in the call log's transaction)."""
    now = now or utc_now()
    if invite.id is None:
        session.flush()
    task = AdvisorTask(
        invite_id=invite.id,
        attempt_id=invite.attempt_id,
        lead_id=invite.lead_id,
        campaign_id=invite.campaign_id,
        advisor_userid=invite.advisor_userid or "",
        advisor_name=invite.advisor_name,
        kind=CALLBACK_TASK if invite.channel == CALLBACK_CHANNEL else ADD_TASK,
        status="open",
        created_at=now,
        due_at=now + TASK_DUE_AFTER,
        reveals=0,
    )
    session.add(task)
    return task


def create_handoff_callback(
    session: Session,
    attempt: CallAttempt,
    window_start: datetime,
    window_end: datetime,
    *,
    now: datetime | None = None,
    offers: Offers | None = None,
) -> AdvisorTask:
    """The advisor's call back the robot promised when nobody took a hand-off (in the call
    log's transaction): assigned to the advisor of the lead's audience pack, to be made within
    `window_start` … `window_end`.

    One promise, one task: storing the call again returns its task; a landline call-back task
    of the same call, or a lead's call-back task still open from an earlier call, is brought
    forward to this window instead of making a second one."""
    now = now or utc_now()
    own = session.execute(
        select(AdvisorTask).where(AdvisorTask.attempt_id == attempt.id, AdvisorTask.kind == HANDOFF_TASK)
    ).scalar_one_or_none()
    if own is not None:
        return own
    pending = (
        session.execute(
            select(AdvisorTask)
            .where(
                AdvisorTask.lead_id == attempt.lead_id,
                AdvisorTask.kind.in_(CALL_BACK_KINDS),
                AdvisorTask.status == "open",
            )
            .order_by(AdvisorTask.id)
        )
        .scalars()
        .first()
    )
    if pending is not None:
        pending.call_from = window_start
        # This call's landline task: the sooner of the two; an earlier call's task: this newest promise.
        pending.due_at = min(pending.due_at, window_end) if pending.attempt_id == attempt.id else window_end
        log.info(
            "attempt %s: hand-off call-back joins the open call-back task %s of lead %s (due %s)",
            attempt.id,
            task_code(pending.id),
            attempt.lead_id,
            pending.due_at.isoformat(),
        )
        return pending
    userid, name = _advisor_of(session, attempt, offers)
    task = AdvisorTask(
        invite_id=None,
        attempt_id=attempt.id,
        lead_id=attempt.lead_id,
        campaign_id=attempt.campaign_id,
        advisor_userid=userid,
        advisor_name=name,
        kind=HANDOFF_TASK,
        status="open",
        created_at=now,
        call_from=window_start,
        due_at=window_end,
        reveals=0,
    )
    session.add(task)
    return task


def _advisor_of(session: Session, attempt: CallAttempt, offers: Offers | None) -> tuple[str, str | None]:
    """(WeCom userid, name) of the lead's audience-pack advisor; ("", None) when the offers
    file cannot be read: the task is still made (the promise stands) and managers see it
    unassigned."""
    lead = session.get(Lead, attempt.lead_id)
    audience = session.get(AudiencePack, lead.audience_id) if lead is not None and lead.audience_id else None
    try:
        advisor = (offers or load_offers()).advisor_for(audience)
    except UserError as exc:
        log.error("attempt %s: hand-off call-back task made without an advisor: %s", attempt.id, exc)
        return "", None
    return advisor.userid, advisor.name


@dataclass(frozen=True)
class TaskRow:
    task_id: int
    code: str
    campaign: str
    lead_id: int
    phone_masked: str
    callee: str
    grade: str
    audience: str | None
    incentive: str | None
    advisor_userid: str
    advisor_name: str | None
    status: str
    status_label: str
    created_at: datetime
    due_at: datetime
    overdue: bool
    reveals: int
    done_at: datetime | None
    added_at: datetime | None
    kind: str = ADD_TASK  # add (advisor_adds) | callback (a landline) | handoff (转人工 nobody took): see TASK_KINDS
    call_from: datetime | None = None  # a call-back's window start (not before)

    def as_json(self) -> dict:
        data = dict(self.__dict__)
        for key in ("created_at", "call_from", "due_at", "done_at", "added_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def list_tasks(
    session: Session,
    *,
    advisor_userid: str | None = None,
    campaign_id: int | None = None,
    include_closed: bool = False,
    now: datetime | None = None,
) -> list[TaskRow]:
    """Tasks, oldest first; numbers masked. `advisor_userid`: one advisor's tasks only."""
    now = now or utc_now()
    query = (
        select(
            AdvisorTask,
            WeComInvite,
            Lead.phone_masked,
            Lead.name,
            Lead.gender,
            Campaign.name,
            CallAttempt.grade,
            AudiencePack.name,
        )
        .outerjoin(WeComInvite, WeComInvite.id == AdvisorTask.invite_id)  # a hand-off call-back has none
        .join(Lead, Lead.id == AdvisorTask.lead_id)
        .join(Campaign, Campaign.id == AdvisorTask.campaign_id)
        .join(CallAttempt, CallAttempt.id == AdvisorTask.attempt_id)
        .outerjoin(AudiencePack, AudiencePack.id == Lead.audience_id)
    )
    if advisor_userid is not None:
        query = query.where(AdvisorTask.advisor_userid == advisor_userid)
    if campaign_id is not None:
        query = query.where(AdvisorTask.campaign_id == campaign_id)
    if not include_closed:
        query = query.where(AdvisorTask.status.in_(OPEN_TASK_STATUSES))
    rows = session.execute(query.order_by(AdvisorTask.due_at, AdvisorTask.id)).all()
    return [
        TaskRow(
            task_id=task.id,
            code=task_code(task.id),
            campaign=campaign,
            lead_id=task.lead_id,
            phone_masked=phone,
            callee=_callee_title(name, gender),
            grade=(invite.grade if invite is not None else grade) or "—",
            audience=invite.audience if invite is not None else audience,
            incentive=invite.incentive if invite is not None else None,
            advisor_userid=task.advisor_userid,
            advisor_name=task.advisor_name,
            status=task.status,
            status_label=_status_label(task.status, task.kind),
            created_at=task.created_at,
            due_at=task.due_at,
            overdue=task.status == "open" and task.due_at < now,
            reveals=task.reveals or 0,
            done_at=task.done_at,
            added_at=task.added_at,
            kind=task.kind or ADD_TASK,
            call_from=task.call_from,
        )
        for task, invite, phone, name, gender, campaign, grade, audience in rows
    ]


def _status_label(status: str, kind: str | None) -> str:
    labels = CALLBACK_STATUS_LABELS if kind in CALL_BACK_KINDS else TASK_STATUS_LABELS
    return labels.get(status, status)


def _callee_title(name: str | None, gender: str | None) -> str:
    surname = (name or "")[:1]
    if not surname:
        return "您"
    honorific = {"M": "先生", "F": "女士"}.get((gender or "").upper()[:1], "")
    return f"{surname}{honorific}" if honorific else f"{surname}先生/女士"


def _assigned_task(session: Session, task_id: int, user: User, *, lock: bool = False) -> AdvisorTask:
    task = session.get(AdvisorTask, task_id, with_for_update=lock)
    if task is None:
        raise UserError(f"no advisor task #{task_id}")
    if not user.wecom_userid or user.wecom_userid != task.advisor_userid:
        raise NotYourTask(f"task #{task_id} is assigned to another advisor; only they can see the number or close it")
    return task


def reveal_number(
    session: Session,
    keyring: PhoneKeyring,
    task_id: int,
    user: User,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> str:
    """The clear number of the task's lead, for its assigned advisor only; audited first."""
    now = now or utc_now()
    task = _assigned_task(session, task_id, user, lock=True)
    if task.status not in OPEN_TASK_STATUSES:
        raise UserError(
            f"task #{task_id} is {TASK_STATUS_LABELS.get(task.status, task.status)}; its number is no longer shown"
        )
    lead = session.get(Lead, task.lead_id)
    if lead is None:
        raise UserError(f"task #{task_id}: the lead was erased")
    if dnc_state(session, lead.phone_hash, now).opt_out:
        # Nothing is revealed to add someone who said 别再打了; cancel_opted_out closes the task.
        raise OptedOut(f"task {task_code(task_id)}: the person opted out of all contact; the task is cancelled")
    session.add(
        RevealAudit(
            task_id=task.id,
            lead_id=task.lead_id,
            user_id=user.id,
            user_name=user.name,
            revealed_at=now,
            ip=(ip or "")[:64] or None,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    task.reveals = (task.reveals or 0) + 1
    task.first_revealed_at = task.first_revealed_at or now
    session.flush()  # the audit row is written before the number leaves this function
    return keyring.decrypt_phone(lead.phone_ciphertext)


def mark_done(session: Session, task_id: int, user: User, *, now: datetime | None = None) -> AdvisorTask:
    """The advisor says they added the callee (已添加) or called back (已回电, a call-back task);
    for an add, WeCom's callback may already have said so."""
    task = _assigned_task(session, task_id, user, lock=True)
    if task.status == "cancelled":
        raise UserError(f"task #{task_id} was cancelled")
    if task.done_at is None:
        task.done_at, task.done_by = now or utc_now(), user.id
    if task.status == "open":
        task.status = "done"
    return task


def cancel_opted_out(session: Session, *, now: datetime | None = None) -> int:
    """Open tasks of people who have since opted out of all contact (permanent do-not-call)
    are cancelled: an advisor must not add them. Returns how many."""
    now = now or utc_now()
    rows = session.execute(
        select(AdvisorTask, Lead.phone_hash)
        .join(Lead, Lead.id == AdvisorTask.lead_id)
        .where(AdvisorTask.status.in_(OPEN_TASK_STATUSES))
    ).all()
    listed = active_hashes(session, [phone_hash for _, phone_hash in rows], now)  # one query, opt-out wins
    cancelled = 0
    for task, phone_hash in rows:
        entry = listed.get(phone_hash)
        if entry is not None and entry.scope == SCOPE_OPT_OUT:
            task.status = "cancelled"
            cancelled += 1
    return cancelled


@dataclass(frozen=True)
class AuditRow:
    task_id: int
    user_name: str
    phone_masked: str
    revealed_at: datetime
    ip: str | None
    user_agent: str | None


def reveal_audit(session: Session, *, limit: int = 200) -> list[AuditRow]:
    """The newest reveals, masked (for managers)."""
    rows = session.execute(
        select(RevealAudit, Lead.phone_masked)
        .join(Lead, Lead.id == RevealAudit.lead_id)
        .order_by(RevealAudit.revealed_at.desc(), RevealAudit.id.desc())
        .limit(limit)
    ).all()
    return [AuditRow(r.task_id, r.user_name, phone, r.revealed_at, r.ip, r.user_agent) for r, phone in rows]


def task_counts(session: Session, campaign_id: int) -> dict[int, dict]:
    """Per lead of the campaign: its invitation's task's stage flags (for the WeCom funnel;
    hand-off call-backs are not part of the add funnel)."""
    rows = session.execute(
        select(AdvisorTask).where(AdvisorTask.campaign_id == campaign_id, AdvisorTask.kind != HANDOFF_TASK)
    ).scalars()
    return {
        task.lead_id: {
            "task_created": True,
            "revealed": task.first_revealed_at is not None,
            "done": task.done_at is not None or task.status == "added",
            "added": task.added_at is not None,
        }
        for task in rows
    }


# ---- the add callback --------------------------------------------------------------------------


def open_tasks_of(session: Session, advisor_userid: str) -> list[AdvisorTask]:
    return list(
        session.execute(
            select(AdvisorTask)
            .where(AdvisorTask.advisor_userid == advisor_userid, AdvisorTask.status.in_(OPEN_TASK_STATUSES))
            .order_by(AdvisorTask.id)
        ).scalars()
    )


def match_advisor_add(session: Session, advisor_userid: str, remark_texts: list[str]) -> tuple[AdvisorTask | None, str]:
    """The open task an add without `state` belongs to, and how it was found (see the module doc)."""
    # A call-back task (a landline, a hand-off) is never a WeCom add.
    tasks = [task for task in open_tasks_of(session, advisor_userid) if task.kind == ADD_TASK]
    if not tasks:
        return None, f"advisor {advisor_userid!r} has no open add task"
    by_id = {task.id: task for task in tasks}
    for text in remark_texts:
        for found in TASK_CODE.finditer(text or ""):
            task = by_id.get(int(found.group(1)))
            if task is not None:
                return task, f"task code {task_code(task.id)} in the contact's remark"
    revealed = [task for task in tasks if task.first_revealed_at is not None and task.added_at is None]
    if len(revealed) == 1:
        return revealed[0], "the advisor's only revealed open task"
    return None, (
        f"advisor {advisor_userid!r} has {len(revealed)} revealed open tasks and the contact's remark names "
        "none (WH<task id>); the advisor's 已添加 closes the task"
    )


def close_task_added(
    session: Session, task: AdvisorTask, external_userid: str, how: str, *, now: datetime | None = None
) -> None:
    task.status = "added"
    task.added_at = task.added_at or now or utc_now()
    task.external_userid = external_userid[:64]
    task.matched_by = how[:200]


def count_open_tasks(session: Session, advisor_userid: str) -> int:
    """The advisor's open add tasks (what an add without `state` may belong to)."""
    return session.execute(
        select(func.count())
        .select_from(AdvisorTask)
        .where(
            AdvisorTask.advisor_userid == advisor_userid,
            AdvisorTask.status.in_(OPEN_TASK_STATUSES),
            AdvisorTask.kind == ADD_TASK,
        )
    ).scalar_one()


def erase_lead_tasks(session: Session, lead_ids: list[int]) -> int:
    """PIPL erasure: the person's reveal audit rows and tasks; returns how many tasks went."""
    if not lead_ids:
        return 0
    session.execute(
        delete(RevealAudit).where(RevealAudit.lead_id.in_(lead_ids)).execution_options(synchronize_session=False)
    )
    return (
        session.execute(
            delete(AdvisorTask).where(AdvisorTask.lead_id.in_(lead_ids)).execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
