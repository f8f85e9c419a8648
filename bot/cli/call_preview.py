"""What `waihu shell` shows beside the conversation: the offer the dialer would make, and
the grade and follow-ups the call would get so far.

The offer is the one a real call makes (`bot.dialing.dialer` → `bot.wecom.offers`): the
incentive and advisor of the chosen audience pack's block in the offers file (by pack
name, then scene, then `default`). The grade and follow-ups come from the dialer's own
assessment of a finished call (`bot.dialing.call_runner.assess`: the grading rules in
`intents/`, the follow-up policy, the advisor callback after a failed hand-off), run on
the turns so far as if the call ended now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.conversation.session import CallSession, LeadContext
from bot.core.add_modes import LINK
from bot.core.errors import UserError
from bot.core.settings import get_settings
from bot.dialing.call_runner import CallResult, assess
from bot.dialing.call_store import history_outcome
from bot.wecom.offers import (
    DEFAULT_AUDIENCE,
    Advisor,
    Incentive,
    Offers,
    incentive_for,
    load_offers,
    welcome_for,
    welcome_slots,
)
from intents.assess import CallOutcome
from intents.callback_times import to_shanghai
from intents.followups import (
    ADVISOR_CALLBACK,
    CALLBACK,
    COOL_DOWN,
    DO_NOT_CALL,
    RETIRE_LEAD,
    SOFT_DECLINE,
    WECOM_INVITE,
    FollowUp,
)
from telephony.compliance.eligibility import Attempt, DncState, check_eligibility
from telephony.compliance.policy import load_profile

# The shell has no lead: the welcome arm is picked for this lead id, as for any lead.
SHELL_LEAD_ID = 0

ACTION_NAMES = {
    "do_not_call": "永久免打扰",
    "soft_decline": "软拒绝冷却",
    "cool_down": "忙碌冷却",
    "callback": "预约回访",
    "advisor_callback": "顾问回电任务",
    "retire_lead": "停用线索",
    "wecom_invite": "企业微信邀请",
    "retry": "按重拨策略重拨",
}


@dataclass(frozen=True)
class ShellOffer:
    """The offer a call to a lead of this audience pack makes."""

    offers: Offers
    audience: Any  # what the offers are looked up by: a pack (name + scene), a name, or None
    block: str  # the offers block used: pack name, scene or "default"
    incentive: Incentive
    advisor: Advisor
    arms: tuple[str, ...]  # the block's incentive arms (the A/B test), in file order

    @property
    def label(self) -> str:
        name = getattr(self.audience, "name", self.audience)
        return f"{name} (offers: {self.block})" if name and name != self.block else self.block


def shell_offer(audience: str | None = None, incentive_arm: str | None = None) -> ShellOffer:
    """The incentive and advisor from the offers file for `audience` (an audience pack's
    name in the database, or an offers block: pack name or scene); None: the default block.
    With several incentive arms, `incentive_arm` picks one (default: the first)."""
    offers = load_offers()
    target = _audience(offers, audience)
    block = offers.audience(target)
    arms = tuple(option.name for option in block.incentives)
    arm = incentive_arm or arms[0]
    if arm not in arms:
        raise UserError(
            f"no incentive arm {arm!r} for audience {block.key} in {offers.path}; it has: {', '.join(arms)}"
        )
    incentive = incentive_for(offers, target, SHELL_LEAD_ID, {"incentive": arm})
    return ShellOffer(offers, target, block.key, incentive, offers.advisor_for(target), arms)


def _audience(offers: Offers, name: str | None) -> Any:
    if name is None or not name.strip() or name.strip() == DEFAULT_AUDIENCE:
        return None
    name = name.strip()
    if name in offers.audiences:
        return name
    from bot.audiences.service import find_audience, guess_scene
    from bot.core.db.engine import open_database, session_scope

    with session_scope(open_database()) as session:
        pack = find_audience(session, name)
        if pack is not None:
            session.expunge(pack)
            return pack
    scene = guess_scene(name)
    if scene and scene in offers.audiences:
        return scene
    blocks = ", ".join(key for key in offers.audiences)
    raise UserError(
        f"unknown audience pack {name!r}: not an audience pack in the database nor a block of {offers.path}",
        details=[f"the offers have: {blocks}", "see `waihu audiences list`"],
    )


def lead_context(offer: ShellOffer, *, surname: str, gender: str, variant: str, add_mode: str = LINK) -> LeadContext:
    """The script's slots as the dialer fills them for a lead of this pack."""
    audience = offer.audience
    pack_label = (getattr(audience, "scene", None) or getattr(audience, "name", None)) if audience else None
    return LeadContext(
        surname=surname,
        gender=gender,
        audience_pack=pack_label or (audience if isinstance(audience, str) else None),
        script_variant=variant,
        incentive=offer.incentive.text,
        advisor=offer.advisor.name,
        add_mode=add_mode,
    )


def assess_so_far(session: CallSession, handoff: str | None = None) -> CallOutcome:
    """The dialer's assessment of this call if it ended now."""
    started = session.started_at or datetime.now(timezone.utc)
    result = CallResult(
        session.call_id,
        answered=True,
        hangup_by=session.hangup_by,
        dialed_at=started,
        answered_at=started,
        ended_at=session.ended_at or session.clock(),
        turns=list(session.turns),
        handoff=handoff,
    )
    return assess(result)


def describe_followup(followup: FollowUp) -> str:
    text = f"{followup.action}（{ACTION_NAMES.get(followup.action, followup.action)}：{followup.reason}"
    if followup.action in (CALLBACK, ADVISOR_CALLBACK) and followup.window_start and followup.window_end:
        text += f"，{_local(followup.window_start)}–{_local(followup.window_end, time_only=True)}"
    elif followup.action in (SOFT_DECLINE, COOL_DOWN) and followup.until:
        text += f"，至 {_local(followup.until)}"
    return text + "）"


def grade_line(outcome: CallOutcome) -> str:
    grade = outcome.grade
    head = f"{grade.grade} — {grade.reason}" if grade else outcome.label
    followups = "; ".join(describe_followup(f) for f in outcome.followups) or "无（不触发后续动作）"
    return f"{head}  follow-ups: {followups}"


def invite_preview(offer: ShellOffer, outcome: CallOutcome, callee_title: str) -> list[str]:
    """What the invitation of this call would carry: who adds the callee, the promised
    incentive, how the link goes out, and the welcome message once added."""
    if not any(f.action == WECOM_INVITE for f in outcome.followups) or outcome.grade is None:
        return []
    offers, grade = offer.offers, outcome.grade.grade
    if grade not in offers.invite_grades:
        return [f"no invitation: grade {grade} is not in invite_grades ({', '.join(offers.invite_grades)})"]
    slots = welcome_slots(offers, offer.audience, offer.incentive, callee_title)
    delivery = (
        "短信发送「联系我」链接" if offers.delivery == "sms" else "列入顾问任务清单（waihu wecom tasks），由顾问添加"
    )
    welcome = welcome_for(offers, offer.audience, grade, SHELL_LEAD_ID, {})
    text, attachments = welcome.render(slots)
    lines = [
        f"WeCom invite: {offer.advisor.name} ({offer.advisor.userid}) adds the callee; incentive "
        f"{offer.incentive.name}「{offer.incentive.text}」; {delivery}",
        f"welcome ({welcome.key}): {text}",
    ]
    for attachment in attachments:
        body = attachment.get(attachment["msgtype"], {})
        lines.append(f"  + {attachment['msgtype']}: {body.get('title', '')}")
    return lines


def next_dial(outcome: CallOutcome, dialed_at: datetime) -> str:
    """When the dialer could call this number again after this call: the attempt as the call
    store records it (its history outcome, callback, do-not-call entries) through the
    compliance check every dial passes (the installation's profile, WAIHU_COMPLIANCE_PROFILE)."""
    profile = get_settings().compliance_profile
    followups = outcome.followups
    retired = next((f for f in followups if f.action == RETIRE_LEAD), None)
    if retired is not None:
        return f"never: the lead is retired ({retired.reason})"
    attempt = Attempt(
        at=dialed_at,
        outcome=history_outcome(outcome.status, followups),
        callback_at=next((f.window_start for f in followups if f.action == CALLBACK), None),
    )
    dnc = DncState(
        opt_out=any(f.action == DO_NOT_CALL for f in followups),
        soft_until=next((f.until for f in followups if f.action == SOFT_DECLINE), None),
    )
    now = max(dialed_at, datetime.now(timezone.utc)) + timedelta(seconds=1)
    answer = check_eligibility(load_profile(profile), now=now, attempts=[attempt], dnc=dnc)
    if answer.earliest is None:
        return f"never ({answer.reason}, profile {profile})"
    return f"{_local(answer.earliest)} at the earliest ({answer.reason}, profile {profile})"


def _local(when: datetime, time_only: bool = False) -> str:
    local = to_shanghai(when)
    return local.strftime("%H:%M") if time_only else local.strftime("%Y-%m-%d %H:%M")
