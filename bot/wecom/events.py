"""What happens when WeCom says a customer added (or removed) an advisor.

`store_callback` records an accepted callback in one transaction with its nonce: a nonce
seen before inside the time window is a replay (rejected); the same decrypted message
again is WeCom redelivering (accepted, nothing done twice). `EventProcessor.process`
then acts on it: the `State` names the invite (bot.wecom.state); the invite becomes
`added`; the welcome goes out while the WelcomeCode is younger than 20 s (else it is
skipped, and the log says so); the customer is tagged with grade, audience pack and arms.

An add without State is an advisor's own add (advisor_adds mode): it is matched to the
advisor's open task (bot.wecom.advisor_tasks explains how), which closes the task.

An add whose invite cannot be found yet (its transaction has not committed) waits a few
seconds for it, then stays `unmatched` — and the next delivery pass
(`process_pending`) matches it once the invite is there. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.wecom.advisor_tasks import close_task_added, count_open_tasks, match_advisor_add, task_code
from bot.wecom.client import WELCOME_ALREADY_SENT, WeComClient, WeComError, mask_id
from bot.wecom.models import WeComCallbackNonce, WeComEvent, WeComInvite
from bot.wecom.sequences import Sequences
from bot.wecom.sop import default_sop_config, enrol, stop_for_contact
from bot.wecom.state import arms_fingerprint, decode_state
from bot.wecom.webhook_events import emit_wecom_added

log = logging.getLogger(__name__)

ADD_EVENTS = frozenset({"add_external_contact", "add_half_external_contact"})
DELETE_EVENTS = frozenset({"del_external_contact", "del_follow_user"})
WELCOME_TTL_S = 20.0  # WeCom: send_welcome_msg only within 20 s of the event, once
# Tags, one group per dimension, so advisors can filter their customers by each.
TAG_GROUPS = {
    "grade": "外呼意向等级",
    "audience": "外呼人群包",
    "script": "外呼话术",
    "time_slot": "外呼时段",
    "incentive": "外呼利益点",
    "welcome": "外呼欢迎语",
}
GRADE_TAG = {"A": "A级-明确意向", "B": "B级-可能意向"}
_PRUNE_EVERY_S = 60.0


@dataclass(frozen=True)
class ContactEvent:
    """A decrypted change_external_contact event."""

    change_type: str
    user_id: str
    external_userid: str
    state: str | None
    welcome_code: str | None
    create_time: datetime | None
    message_sha256: str


def parse_event(message: str) -> ContactEvent | None:
    """The contact event in a decrypted callback, or None for other events and messages."""
    try:
        root = ET.fromstring(message)
    except ET.ParseError:
        return None

    def text(tag: str) -> str | None:
        node = root.find(tag)
        return node.text.strip() if node is not None and node.text and node.text.strip() else None

    # internal apps say <Event>, third-party apps <InfoType>
    if (text("Event") or text("InfoType")) != "change_external_contact":
        return None
    stamp = text("CreateTime") or text("TimeStamp")
    created = datetime.fromtimestamp(int(stamp), timezone.utc) if stamp and stamp.isdigit() else None
    return ContactEvent(
        text("ChangeType") or "",
        text("UserID") or "",
        text("ExternalUserID") or "",
        text("State"),
        text("WelcomeCode"),
        created,
        hashlib.sha256(message.encode("utf-8")).hexdigest(),
    )


@dataclass(frozen=True)
class Stored:
    kind: str  # "new" | "duplicate" | "replay"
    event_id: int | None


_last_prune = 0.0


def store_callback(
    engine: Engine, event: ContactEvent, *, nonce: str, timestamp: int, now: datetime, max_skew_s: float
) -> Stored:
    """Record the nonce and the event together (one transaction)."""
    global _last_prune
    for _ in range(2):  # a concurrent twin may win the insert race: look again
        try:
            with session_scope(engine) as session:
                if session.get(WeComCallbackNonce, nonce) is not None:
                    return Stored("replay", None)
                session.add(WeComCallbackNonce(nonce=nonce, timestamp=timestamp, seen_at=now))
                known = session.execute(
                    select(WeComEvent.id).where(WeComEvent.message_sha256 == event.message_sha256)
                ).scalar_one_or_none()
                if known is not None:
                    return Stored("duplicate", known)
                row = WeComEvent(
                    message_sha256=event.message_sha256,
                    change_type=event.change_type[:40],
                    state=(event.state or "")[:64] or None,
                    user_id=event.user_id[:64],
                    external_userid=event.external_userid[:64],
                    welcome_code=event.welcome_code,
                    event_time=event.create_time,
                    received_at=now,
                    status="received",
                )
                session.add(row)
                session.flush()
                if time.monotonic() - _last_prune > _PRUNE_EVERY_S:
                    _last_prune = time.monotonic()
                    session.execute(
                        delete(WeComCallbackNonce).where(
                            WeComCallbackNonce.seen_at < now - timedelta(seconds=2 * max_skew_s)
                        )
                    )
                return Stored("new", row.id)
        except IntegrityError:
            continue
    return Stored("replay", None)


@dataclass
class EventProcessor:
    engine: Engine
    client: WeComClient
    state_key: bytes
    clock: Callable[[], datetime] = utc_now
    welcome_ttl_s: float = WELCOME_TTL_S
    # How long an add waits for its invite to become visible (a transaction not yet committed).
    match_wait_s: float = 10.0
    poll_s: float = 0.2
    # The follow-up sequences (bot.wecom.sop) and the compliance profile they are sent under.
    sop_config: Callable[[], tuple[Sequences, Any]] = default_sop_config

    async def process(self, event_id: int) -> str:
        """Act on one stored event; returns what happened (also kept in the event's note)."""
        started = time.monotonic()
        event = await run_in_threadpool(self._event, event_id)
        if event is None or event.status not in ("received", "unmatched"):
            return "already handled"
        if event.change_type in ADD_EVENTS:
            outcome = await self._added(event, started)
        elif event.change_type in DELETE_EVENTS:
            outcome = await run_in_threadpool(self._deleted, event)
        else:
            outcome = await run_in_threadpool(self._finish, event.id, "ignored", f"{event.change_type}: not acted on")
        return outcome

    async def process_pending(self, limit: int = 200) -> int:
        """Events still waiting for their invite, and events whose processing never finished
        (a crash after storing): returns how many were matched to an invite now."""
        ids = await run_in_threadpool(self._pending_ids, limit)
        matched = 0
        for event_id in ids:
            if (await self.process(event_id)).startswith(("added", "welcomed", "re-added")):
                matched += 1
        return matched

    # ---- add ------------------------------------------------------------------------------------

    async def _added(self, event: WeComEvent, started: float) -> str:
        decoded = decode_state(self.state_key, event.state)
        if decoded is None and not event.state and event.user_id:
            # No State: the advisor added the customer (advisor_adds mode); find their task.
            return await self._advisor_added(event, started)
        if decoded is None:
            # other channels of the corp (its own QR codes, other tools) send adds too
            return await run_in_threadpool(
                self._finish, event.id, "ignored", f"state {event.state!r} is not one of ours"
            )
        deadline = started + (self.match_wait_s if event.status == "received" else 0.0)
        invite = await run_in_threadpool(self._invite_by_state, event.state)
        while invite is None and time.monotonic() < deadline:
            await asyncio.sleep(self.poll_s)
            invite = await run_in_threadpool(self._invite_by_state, event.state)
        if invite is None:
            note = f"no invitation with state {event.state!r} yet (attempt {decoded.attempt_id}); matched later"
            log.warning("wecom add of %r: %s", mask_id(event.external_userid), note)
            return await run_in_threadpool(self._finish, event.id, "unmatched", note)
        if invite.attempt_id != decoded.attempt_id or arms_fingerprint(invite.arms or {}) != decoded.arms_fingerprint:
            return await run_in_threadpool(
                self._finish, event.id, "ignored", "state does not match its invitation's call or arms"
            )
        return await self._added_to(invite, event, started)

    async def _added_to(self, invite: WeComInvite, event: WeComEvent, started: float, how: str = "") -> str:
        """The add matched `invite`: record it, welcome, tag (`how`: how an advisor's add was matched)."""
        recorded = await run_in_threadpool(self._record_add, invite.id, event)
        notes = [f"{recorded} — {how}" if how else recorded]
        if event.welcome_code:
            notes.append(await self._welcome(invite, event))
        else:
            notes.append("no WelcomeCode (a welcome is set in the admin console, or they already chatted)")
        notes.append(await self._tag(invite, event))
        notes.append(await run_in_threadpool(self._enrol, invite.id))
        note = "; ".join(notes)
        log.info(
            "wecom add of %r for invite %s: %s (%.0f ms)",
            mask_id(event.external_userid),
            invite.id,
            note,
            (time.monotonic() - started) * 1000,
        )
        await run_in_threadpool(self._finish, event.id, "processed", note, invite.id)
        return note

    async def _advisor_added(self, event: WeComEvent, started: float) -> str:
        """An add without State (bot.wecom.advisor_tasks says how it is matched): the advisor's
        remark of the customer (externalcontact/get) may name the task (WH<id>); else the
        advisor's only revealed open task."""
        if not await run_in_threadpool(self._has_open_tasks, event.user_id):
            return await run_in_threadpool(
                self._finish, event.id, "ignored", "no State, and the member has no open add task: not one of ours"
            )
        remarks: list[str] = []
        try:
            contact = await self.client.get_external_contact(event.external_userid)
            for follow in contact["follow_user"]:
                if follow.get("userid") == event.user_id:
                    remarks += [str(follow.get("remark") or ""), str(follow.get("description") or "")]
        except WeComError as exc:  # the only-revealed-task rule still applies
            log.warning("wecom add of %r: contact details not read: %s", mask_id(event.external_userid), exc)
        invite, how = await run_in_threadpool(self._match_advisor_task, event, remarks)
        if invite is None:
            log.warning("wecom add of %r by %s: %s", mask_id(event.external_userid), event.user_id, how)
            return await run_in_threadpool(self._finish, event.id, "unmatched", how)
        return await self._added_to(invite, event, started, how)

    def _has_open_tasks(self, advisor_userid: str) -> bool:
        with session_scope(self.engine) as session:
            return count_open_tasks(session, advisor_userid) > 0

    def _match_advisor_task(self, event: WeComEvent, remarks: list[str]) -> tuple[WeComInvite | None, str]:
        with session_scope(self.engine) as session:
            task, how = match_advisor_add(session, event.user_id, remarks)
            if task is None:
                return None, how
            close_task_added(session, task, event.external_userid, how, now=event.event_time or self.clock())
            return session.get(WeComInvite, task.invite_id), f"advisor task {task_code(task.id)} by {how}"

    async def _welcome(self, invite: WeComInvite, event: WeComEvent) -> str:
        age_s = (self.clock() - event.event_time).total_seconds() if event.event_time else 0.0
        if age_s > self.welcome_ttl_s:
            reason = (
                f"welcome not sent: the WelcomeCode is {age_s:.0f} s old (WeCom accepts it for "
                f"{self.welcome_ttl_s:.0f} s)"
            )
            log.warning("wecom invite %s (%r): %s", invite.id, mask_id(event.external_userid), reason)
            await run_in_threadpool(self._note_error, invite.id, reason)
            return reason
        claimed = await run_in_threadpool(self._claim_welcome, invite.id)
        if not claimed:
            return "welcome already sent"
        deadline = time.monotonic() + (self.welcome_ttl_s - age_s)
        try:
            await self.client.send_welcome_msg(
                event.welcome_code,
                invite.welcome_text or "",
                invite.welcome_attachments or [],
                deadline=deadline,
                log_as={"invite": str(invite.id), "external_userid": mask_id(event.external_userid)},
            )
        except WeComError as exc:
            await run_in_threadpool(self._welcome_failed, invite.id, str(exc))
            if exc.errcode == WELCOME_ALREADY_SENT:
                return "welcome not sent: WeCom says the customer already got one (41051)"
            return f"welcome failed: {exc}"
        sent_at = self.clock()
        await run_in_threadpool(self._welcomed, invite.id, event.id, sent_at)
        return (
            f"welcomed {(sent_at - event.event_time).total_seconds():.1f} s after the add"
            if event.event_time
            else "welcomed"
        )

    async def _tag(self, invite: WeComInvite, event: WeComEvent) -> str:
        arms = invite.arms or {}
        wanted: dict[str, list[str]] = {TAG_GROUPS["grade"]: [GRADE_TAG.get(invite.grade, f"{invite.grade}级")]}
        if invite.audience:
            wanted[TAG_GROUPS["audience"]] = [invite.audience]
        for factor in ("script", "time_slot", "incentive", "welcome"):
            if arms.get(factor):
                wanted[TAG_GROUPS[factor]] = [str(arms[factor])]
        try:
            ids: list[str] = []
            names: list[str] = []
            for group, tag_names in wanted.items():
                found = await self.client.ensure_tags(group, tag_names)
                ids += found.values()
                names += [f"{group}:{name}" for name in found]
            await self.client.mark_tag(event.user_id or invite.advisor_userid, event.external_userid, ids)
        except WeComError as exc:
            await run_in_threadpool(self._note_error, invite.id, f"tags not set: {exc}")
            return f"tags not set: {exc}"
        await run_in_threadpool(self._tagged, invite.id, names)
        return f"tagged {len(ids)}"

    # ---- delete ---------------------------------------------------------------------------------

    def _deleted(self, event: WeComEvent) -> str:
        with session_scope(self.engine) as session:
            invite = (
                session.execute(
                    select(WeComInvite)
                    .where(
                        WeComInvite.external_userid == event.external_userid,
                        or_(WeComInvite.advisor_userid == event.user_id, WeComInvite.advisor_userid.is_(None)),
                    )
                    .order_by(WeComInvite.id.desc())
                )
                .scalars()
                .first()
            )
            if invite is None:
                return self._finish_in(session, event.id, "ignored", "not a customer we invited")
            invite.deleted_at = event.event_time or self.clock()
            invite.status = "deleted"
            # Follow-up sequences stop with the friendship (bot.wecom.sop), in the same transaction.
            stopped = stop_for_contact(session, event.external_userid, event.user_id, invite.deleted_at)
            who = (
                "the customer removed the advisor"
                if event.change_type == "del_follow_user"
                else "the advisor removed the customer"
            )
            sop = f"; {stopped} follow-up sequence(s) stopped" if stopped else ""
            return self._finish_in(session, event.id, "processed", f"deleted: {who}{sop}", invite.id)

    # ---- database steps (blocking; run in the thread pool) ---------------------------------------

    def _event(self, event_id: int) -> WeComEvent | None:
        with session_scope(self.engine) as session:
            return session.get(WeComEvent, event_id)

    def _invite_by_state(self, state: str) -> WeComInvite | None:
        with session_scope(self.engine) as session:
            return session.execute(select(WeComInvite).where(WeComInvite.state == state)).scalar_one_or_none()

    def _record_add(self, invite_id: int, event: WeComEvent) -> str:
        added_at = event.event_time or self.clock()
        with session_scope(self.engine) as session:
            invite = session.get(WeComInvite, invite_id, with_for_update=True)
            if invite.status in ("added", "welcoming", "welcomed") and invite.external_userid == event.external_userid:
                return "already added"
            again = invite.status == "deleted"
            invite.status, invite.added_at, invite.deleted_at = "added", added_at, None
            invite.external_userid = event.external_userid
            invite.advisor_userid = event.user_id or invite.advisor_userid
            if again:
                invite.welcomed_at = None
            # Webhooks: `wecom.added` goes into the outbox with the add (bot.wecom.webhook_events).
            emit_wecom_added(session, invite)
            return "re-added" if again else f"added ({event.change_type})"

    def _enrol(self, invite_id: int) -> str:
        """Enrol the new contact in its follow-up sequence; a broken sequences file is logged
        (file:line) and does not undo the add."""
        try:
            sequences, policy = self.sop_config()
        except UserError as exc:
            log.error("follow-up sequences not started for invite %s: %s", invite_id, exc)
            return f"no follow-up: {exc}"
        with session_scope(self.engine) as session:
            invite = session.get(WeComInvite, invite_id)
            enrolment = enrol(session, invite, sequences=sequences, policy=policy, now=self.clock())
            return f"follow-up {enrolment.sequence}" if enrolment is not None else "no follow-up sequence"

    def _claim_welcome(self, invite_id: int) -> bool:
        with session_scope(self.engine) as session:
            return bool(
                session.execute(
                    update(WeComInvite)
                    .where(
                        WeComInvite.id == invite_id, WeComInvite.status == "added", WeComInvite.welcomed_at.is_(None)
                    )
                    .values(status="welcoming")
                ).rowcount
            )

    def _welcomed(self, invite_id: int, event_id: int, sent_at: datetime) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(WeComInvite).where(WeComInvite.id == invite_id).values(status="welcomed", welcomed_at=sent_at)
            )
            session.execute(update(WeComEvent).where(WeComEvent.id == event_id).values(welcome_sent_at=sent_at))

    def _welcome_failed(self, invite_id: int, message: str) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(WeComInvite)
                .where(WeComInvite.id == invite_id, WeComInvite.status == "welcoming")
                .values(status="added", last_error=f"welcome: {message}"[:2000])
            )

    def _note_error(self, invite_id: int, message: str) -> None:
        with session_scope(self.engine) as session:
            session.execute(update(WeComInvite).where(WeComInvite.id == invite_id).values(last_error=message[:2000]))

    def _tagged(self, invite_id: int, names: list[str]) -> None:
        with session_scope(self.engine) as session:
            invite = session.get(WeComInvite, invite_id)
            invite.tags = sorted(set(invite.tags or []) | set(names))

    def _finish(self, event_id: int, status: str, note: str, invite_id: int | None = None) -> str:
        with session_scope(self.engine) as session:
            return self._finish_in(session, event_id, status, note, invite_id)

    def _finish_in(self, session, event_id: int, status: str, note: str, invite_id: int | None = None) -> str:
        values = {"status": status, "note": note[:2000], "processed_at": self.clock()}
        if invite_id is not None:
            values["invite_id"] = invite_id
        session.execute(update(WeComEvent).where(WeComEvent.id == event_id).values(**values))
        return note

    def _pending_ids(self, limit: int) -> list[int]:
        stuck_before = self.clock() - timedelta(seconds=60)
        with session_scope(self.engine) as session:
            unmatched = (
                session.execute(
                    select(WeComEvent.id)
                    .join(WeComInvite, WeComInvite.state == WeComEvent.state)
                    .where(WeComEvent.status == "unmatched")
                    .order_by(WeComEvent.id)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            stuck = (
                session.execute(
                    select(WeComEvent.id)
                    .where(WeComEvent.status == "received", WeComEvent.received_at < stuck_before)
                    .order_by(WeComEvent.id)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            return list(dict.fromkeys([*unmatched, *stuck]))
