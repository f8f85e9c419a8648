"""跟进序列: managers and ops see the WeCom follow-up sequences (SOP) per sequence and A/B arm —
enrolled contacts, steps sent, steps skipped by the weekly cap, click and conversion rates with
95% intervals (bot.experiments.sop_report), stops by reason — the
most recent enrolments (masked numbers), and one lead's timeline (/sop/leads/{id})."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.experiments.sop_report import sequence_arms
from bot.leads.models import Lead
from bot.web.params import record_id
from bot.web.rendering import render
from bot.web.security import MANAGER, OPS, Principal, require_role
from bot.wecom.sop import timeline
from bot.wecom.sop_models import SopEnrolment

pages = APIRouter(include_in_schema=False)
allowed = require_role(MANAGER, OPS)
PAGE = "/sop"

STATE_LABELS = {"active": "进行中", "switched": "已切换", "stopped": "已停止", "completed": "已完成"}
STOP_LABELS = {"deleted": "删除好友", "opt_out": "退订", "purchase": "已成交", "branch": "分支停止", "ops": "运营停止"}
SEND_LABELS = {
    "pending": "待发送",
    "sending": "发送中",
    "sent": "已发送（待顾问确认）",
    "skipped_cap": "超每周上限跳过",
    "skipped_quiet": "免打扰跳过",
    "failed": "发送失败",
    "cancelled": "已取消",
    "clicked": "点击链接",
}
TYPE_LABELS = {"text": "文字", "link": "链接", "miniprogram": "小程序"}


@pages.get(PAGE)
def sequences_page(request: Request, principal: Principal = Depends(allowed)):
    with session_scope(request.app.state.engine) as session:
        figures = sequence_arms(session)
        recent = session.execute(
            select(SopEnrolment, Lead.phone_masked)
            .join(Lead, Lead.id == SopEnrolment.lead_id)
            .order_by(SopEnrolment.id.desc())
            .limit(50)
        ).all()
        enrolments = [
            {
                "id": e.id,
                "lead_id": e.lead_id,
                "phone": phone,
                "audience": e.audience,
                "grade": e.grade,
                "arm": e.arm,
                "sequence": e.sequence,
                "state": e.state,
                "stop_reason": e.stop_reason,
                "enrolled_at": e.enrolled_at,
            }
            for e, phone in recent
        ]
    return render(
        request,
        "manager/sop.html",
        figures=figures,
        enrolments=enrolments,
        state_labels=STATE_LABELS,
        stop_labels=STOP_LABELS,
    )


@pages.get(PAGE + "/leads/{lead_id}")
def lead_timeline_page(request: Request, lead_id: int = record_id("线索编号"), principal: Principal = Depends(allowed)):
    with session_scope(request.app.state.engine) as session:
        lead = session.get(Lead, lead_id)
        items = timeline(session, lead_id) if lead is not None else []
        phone = lead.phone_masked if lead is not None else None
    return render(
        request,
        "manager/sop_lead.html",
        lead_id=lead_id,
        phone=phone,
        items=items,
        send_labels=SEND_LABELS,
        type_labels=TYPE_LABELS,
    )
