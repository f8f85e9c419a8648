"""The add-friend funnel of a campaign: graded A/B → invited → sent → added → welcomed.

The stages follow the campaign's add mode (campaigns.add_mode): `link` counts invited → SMS
sent → added; `advisor_adds` counts advisor task created → number revealed → marked done by
the advisor → added (bot.wecom.advisor_tasks).

Counted per lead (a lead is graded A/B once however often it was called, and has at most
one invitation per campaign), in total and per audience pack, per grade, and per arm of
each experiment factor (script variant, call-time slot, incentive, welcome script).
A/B leads on a landline are never invited (their invitation is recorded as skipped): they
are counted apart, as `landline` (座机，无法加企业微信), not as invited.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.audiences.models import AudiencePack
from bot.campaigns.add_modes import ADD_MODE_LABELS
from bot.campaigns.models import CallAttempt, Campaign
from bot.core.phone import LANDLINE
from bot.leads.models import Lead
from bot.wecom.advisor_tasks import task_counts
from bot.wecom.models import WeComInvite

STAGES = ("graded_ab", "invited", "sent", "added", "welcomed")
# The stages shown for each add mode (STAGES is the link mode's).
MODE_STAGES = {
    "link": STAGES,
    "advisor_adds": ("graded_ab", "task_created", "revealed", "done", "added", "welcomed"),
}
TASK_STAGES = ("task_created", "revealed", "done")
STAGE_LABELS = {
    "graded_ab": "A/B 线索",
    "invited": "已生成邀请",
    "sent": "已发送链接",
    "added": "已加好友",
    "welcomed": "已发欢迎语",
    "task_created": "已建添加任务",
    "revealed": "顾问已查看号码",
    "done": "顾问已标记添加",
    "failed": "邀请失败",
    "deleted": "已删除好友",
    "landline": "座机，无法加企业微信",
}
# Counted beside the stages: A/B leads that are never invited because the number is a landline.
EXTRA_COUNTS = ("failed", "deleted", "landline")
FACTORS = ("script", "time_slot", "incentive", "welcome")
NO_ARM = "（无）"
NO_AUDIENCE = "（未分组）"


def wecom_funnel(session: Session, campaign_id: int) -> dict:
    campaign = session.get(Campaign, campaign_id)
    add_mode = (campaign.add_mode if campaign else None) or "link"
    stages = MODE_STAGES.get(add_mode, STAGES)
    tasks = task_counts(session, campaign_id)
    graded = session.execute(
        select(CallAttempt.lead_id, CallAttempt.grade, CallAttempt.arms, AudiencePack.name, Lead.line_type)
        .join(Lead, Lead.id == CallAttempt.lead_id)
        .outerjoin(AudiencePack, AudiencePack.id == Lead.audience_id)
        .where(CallAttempt.campaign_id == campaign_id, CallAttempt.grade.in_(("A", "B")))
        .order_by(CallAttempt.id)
    ).all()
    invites = {
        row.lead_id: row
        for row in session.execute(select(WeComInvite).where(WeComInvite.campaign_id == campaign_id)).scalars()
    }
    leads: dict[int, dict[str, Any]] = {}
    for lead_id, grade, arms, audience, line_type in graded:
        if lead_id not in leads:  # the first A/B call of the lead
            leads[lead_id] = {"grade": grade, "arms": dict(arms or {}), "audience": audience, "line_type": line_type}
    for lead_id, invite in invites.items():
        entry = leads.setdefault(lead_id, {"grade": invite.grade, "arms": {}, "audience": invite.audience})
        entry["arms"] = {**entry["arms"], **(invite.arms or {})}
        entry["audience"] = invite.audience or entry["audience"]
        entry["invite"] = invite
    rows = [_stages(entry, tasks.get(lead_id)) for lead_id, entry in leads.items()]

    def grouped(key) -> list[dict]:
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            groups[key(row)].append(row)
        return [{"name": name, **_counts(members, stages)} for name, members in sorted(groups.items())]

    latencies = [(i.welcomed_at - i.added_at).total_seconds() for i in invites.values() if i.welcomed_at and i.added_at]
    return {
        "campaign_id": campaign_id,
        "campaign": campaign.name if campaign else None,
        "add_mode": add_mode,
        "add_mode_label": ADD_MODE_LABELS.get(add_mode, add_mode),
        "stages": list(stages),
        "labels": STAGE_LABELS,
        "total": _counts(rows, stages),
        "by_audience": grouped(lambda r: r["audience"] or NO_AUDIENCE),
        "by_grade": grouped(lambda r: r["grade"]),
        "by_arm": {
            factor: grouped(lambda r, f=factor: str(r["arms"].get(f) or NO_ARM))
            for factor in FACTORS
            if any(r["arms"].get(factor) for r in rows)
        },
        "welcome_after_add_s": (
            {"median": statistics.median(latencies), "max": max(latencies), "n": len(latencies)} if latencies else None
        ),
    }


def _stages(entry: dict, task: dict | None = None) -> dict:
    invite = entry.get("invite")
    task = task or {}
    skipped = bool(invite and invite.status == "skipped")
    return {
        "grade": entry["grade"],
        "arms": entry["arms"],
        "audience": entry["audience"],
        "graded_ab": entry["grade"] in ("A", "B"),
        "invited": invite is not None and not skipped,
        "sent": bool(invite and invite.sent_at),
        "added": bool(invite and invite.added_at),
        "welcomed": bool(invite and invite.welcomed_at),
        "failed": bool(invite and invite.status == "failed"),
        "deleted": bool(invite and invite.deleted_at),
        "landline": entry.get("line_type") == LANDLINE or skipped,  # skipped: only landlines are
        **{stage: bool(task.get(stage)) for stage in TASK_STAGES},
    }


def _counts(rows: Iterable[dict], stages: tuple[str, ...] = STAGES) -> dict:
    rows = list(rows)
    counts: dict[str, Any] = {
        stage: sum(1 for r in rows if r[stage]) for stage in dict.fromkeys((*STAGES, *TASK_STAGES, *EXTRA_COUNTS))
    }
    # Each stage as a share of the one before it in this mode's funnel.
    counts["rates"] = {stage: _rate(counts[stage], counts[before]) for before, stage in zip(stages, stages[1:])}
    counts["rates"]["added_of_graded_ab"] = _rate(counts["added"], counts["graded_ab"])
    return counts


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
