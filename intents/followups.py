"""What happens to a lead after a call: opt-out, cool-down, callback, advisor call-back, retire, invite.

Decided from the grade (or the call status of an unconnected call) and the callee's
understood intents, for the dialer, the DNC list and WeCom to act on. The periods
are DESIGN.md's compliance defaults (a stricter policy may be passed in).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from intents.announcements import VACANT_NUMBER
from intents.callback_times import to_shanghai
from intents.entities import CALLBACK_TIME
from intents.finished_call import ANSWERED, FinishedCall
from intents.grading import Grade, Reply, callee_replies
from intents.taxonomy import OPT_OUT_INTENTS

DO_NOT_CALL = "do_not_call"  # permanent, whole tenant, before the next dial
SOFT_DECLINE = "soft_decline"  # no marketing calls for soft_decline_days
COOL_DOWN = "cool_down"  # busy without a time
CALLBACK = "callback"  # book a call at the time the callee named
# A hand-off nobody took: a human advisor calls back (an advisor task, bot.wecom.advisor_tasks),
# never the robot — the robot told the callee 顾问稍后给您回电.
ADVISOR_CALLBACK = "advisor_callback"
RETIRE_LEAD = "retire_lead"  # wrong person or a number that does not exist
WECOM_INVITE = "wecom_invite"  # A and B leads get the add-friend invitation
RETRY = "retry"  # unconnected: the retry policy decides when, by status

# Hand-off to a human (转人工), as the call attempt stores it.
HANDED_OFF = "handed_off"  # an advisor took the call
HANDOFF_FAILED = "handoff_failed"  # nobody was free in time: an advisor call-back task is made
HANDOFF_OUTCOMES = (HANDED_OFF, HANDOFF_FAILED)
ADVISOR_CALLBACK_REASON = "转人工失败，已预约顾问回电"

REFUSAL_INTENTS = frozenset({"refuse", "already_insured"})
HESITATE_INTENT = "hesitate"
BUSY_INTENTS = frozenset({"busy", "callback_request"})
# A time given in answer to "什么时间方便？" is a callback time whatever its intent.
CALLBACK_QUESTION = "utter_ask_callback_time"


@dataclass(frozen=True)
class FollowUpPolicy:
    soft_decline_days: int = 180
    busy_cool_down_days: int = 7
    # A callback the callee asked for may use their time if it is inside these hours.
    callback_opens: time = time(9, 0)
    callback_closes: time = time(21, 0)
    callback_slot: timedelta = timedelta(minutes=30)
    # A hand-off nobody took: the advisor calls back this long after the call, within the slot.
    advisor_callback_after: timedelta = timedelta(minutes=30)
    advisor_callback_slot: timedelta = timedelta(hours=2)


@dataclass(frozen=True)
class FollowUp:
    action: str
    reason: str  # in Chinese, for the manager reading the call
    round: int | None = None  # the callee reply that caused it
    until: datetime | None = None  # end of a soft decline or cool-down
    window_start: datetime | None = None  # callback window (Asia/Shanghai)
    window_end: datetime | None = None
    status: str | None = None  # RETRY / RETIRE_LEAD for an unconnected call

    def as_json(self) -> dict:
        data: dict = {"action": self.action, "reason": self.reason}
        for key in ("round", "status"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        for key in ("until", "window_start", "window_end"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key).isoformat()
        return data


def decide_followups(
    call: FinishedCall,
    grade: Grade | None,
    now: datetime,
    min_confidence: float = 0.4,
    policy: FollowUpPolicy = FollowUpPolicy(),
) -> tuple[FollowUp, ...]:
    """Follow-ups for one finished call; `now` is when the call ended (cool-downs start then)."""
    if call.status != ANSWERED or grade is None:
        return (_unconnected(call.status),)
    replies = callee_replies(call, min_confidence)
    opt_out = _first(replies, OPT_OUT_INTENTS)
    if opt_out is not None:
        # Hard opt-out overrides everything said before it: no invite, no callback.
        return (FollowUp(DO_NOT_CALL, f"第{opt_out.round}轮要求不再来电，永久免打扰", opt_out.round),)
    wrong_person = _first(replies, {"wrong_person"})
    if wrong_person is not None and grade.grade not in ("A", "B"):
        return (FollowUp(RETIRE_LEAD, f"第{wrong_person.round}轮表示不是本人", wrong_person.round),)
    followups: list[FollowUp] = []
    if grade.grade in ("A", "B"):
        followups.append(
            FollowUp(WECOM_INVITE, f"{grade.grade}级，发送企业微信邀请", grade.rounds[0] if grade.rounds else None)
        )
    if grade.grade == "C":
        refusal = _first(replies, REFUSAL_INTENTS)
        if refusal is None and _first(replies, {HESITATE_INTENT}) is not None:
            # A hesitation (考虑一下) is never a soft decline, whatever grade a rules file gives it.
            return tuple(followups)
        round_ = refusal.round if refusal else None
        followups.append(
            FollowUp(
                SOFT_DECLINE,
                f"明确拒绝，{policy.soft_decline_days}天内不再营销来电",
                round_,
                until=now + timedelta(days=policy.soft_decline_days),
            )
        )
        return tuple(followups)
    callback = _callback(replies, call, policy)
    if callback is not None:
        followups.append(callback)
    elif grade.grade == "D":
        busy = _first(replies, BUSY_INTENTS)
        if busy is not None:
            followups.append(
                FollowUp(
                    COOL_DOWN,
                    f"第{busy.round}轮表示在忙且未约时间，冷却{policy.busy_cool_down_days}天",
                    busy.round,
                    until=now + timedelta(days=policy.busy_cool_down_days),
                )
            )
    return tuple(followups)


def advisor_callback(
    ended_at: datetime, policy: FollowUpPolicy = FollowUpPolicy(), round_: int | None = None
) -> FollowUp:
    """The advisor's call back when the callee asked for a human and nobody was free: within
    the window (inside the callback hours), by a person — never a robot callback."""
    start = ended_at + policy.advisor_callback_after
    start, end, moved = clip_to_calling_hours(start, start + policy.advisor_callback_slot, policy)
    note = "（下一个可外呼时段）" if moved else ""
    return FollowUp(ADVISOR_CALLBACK, f"{ADVISOR_CALLBACK_REASON}{note}", round_, window_start=start, window_end=end)


def clip_to_calling_hours(
    start: datetime, end: datetime, policy: FollowUpPolicy = FollowUpPolicy()
) -> tuple[datetime, datetime, bool]:
    """(start, end, moved): the part of the window inside the callback hours of its first
    day; when none of it is, the next opening after `start` (moved=True)."""
    start, end = to_shanghai(start), to_shanghai(end)
    day = start.date()
    while day <= end.date():
        opens = datetime.combine(day, policy.callback_opens, start.tzinfo)
        closes = datetime.combine(day, policy.callback_closes, start.tzinfo)
        clipped_start, clipped_end = max(start, opens), min(end, closes)
        if clipped_start < clipped_end:
            return clipped_start, clipped_end, False
        day += timedelta(days=1)
    opening = datetime.combine(start.date(), policy.callback_opens, start.tzinfo)
    if opening <= start:
        opening += timedelta(days=1)
    return opening, opening + policy.callback_slot, True


def _callback(replies: Iterable[Reply], call: FinishedCall, policy: FollowUpPolicy) -> FollowUp | None:
    """A booking at the last time the callee named in a busy/callback reply, if resolved."""
    turns = call.turns
    chosen: tuple[Reply, dict] | None = None
    for reply in replies:
        if reply.intent not in BUSY_INTENTS and reply.answering != CALLBACK_QUESTION:
            continue
        for entity in turns[reply.index - 1].entities:
            if entity.get("entity") == CALLBACK_TIME and entity.get("start_at"):
                chosen = (reply, dict(entity))
    if chosen is None:
        return None
    reply, entity = chosen
    start, end, moved = clip_to_calling_hours(
        datetime.fromisoformat(entity["start_at"]), datetime.fromisoformat(entity["end_at"]), policy
    )
    note = "（所说时间不在可外呼时段，改为最近的可外呼时间）" if moved else ""
    return FollowUp(
        CALLBACK, f"第{reply.round}轮约定回访：{entity['value']}{note}", reply.round, window_start=start, window_end=end
    )


def _unconnected(status: str) -> FollowUp:
    if status == VACANT_NUMBER:
        return FollowUp(RETIRE_LEAD, "空号，停止拨打该号码", status=status)
    return FollowUp(RETRY, f"未接通（{status}），按重拨策略处理", status=status)


def _first(replies: Iterable[Reply], intents: Iterable[str]) -> Reply | None:
    wanted = set(intents)
    return next((r for r in replies if r.intent in wanted), None)
