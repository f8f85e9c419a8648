"""Managers (经理): the A/B comparison (bot.experiments.report), the call list with transcripts,
and the WeCom funnel (bot.wecom). Phone numbers appear only masked; free text (reasons,
transcripts) has phone-shaped digit runs masked too, since callees say numbers aloud."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Optional
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.audiences.models import AudiencePack
from bot.campaigns.grading import MAX_REASON, correct_grade, corrections_of, latest_corrections
from bot.campaigns.models import CallAttempt, Campaign, TurnRow
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.pii import mask_digit_runs
from bot.core.region import SOURCE_COLUMN, SOURCE_NUMBER, Region
from bot.dialing.recordings import DOWNLOAD, LISTEN, audit_access, recording_file, recording_for
from bot.experiments.report import build_report
from bot.leads.models import Lead
from bot.web import labels
from bot.web.exports import ExportFormat, call_sheet, download, funnel_sheet, funnel_sheet_of_report, report_sheets
from bot.web.params import MAX_DB_ID, MAX_OFFSET, offset_query, optional_id, parse_optional_id, record_id
from bot.web.rendering import DISPLAY_TZ, beijing_time, flash, render
from bot.web.security import MANAGER, OPS, Principal, require_role
from bot.web.sop_views import SEND_LABELS
from bot.wecom.campaign_incentives import SOURCE_LABELS, call_incentive, campaign_incentives
from bot.wecom.funnel import wecom_funnel
from bot.wecom.sop import timeline

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["经理"])
managers_only = require_role(MANAGER)
# A call's page and its grade correction (人工更正): managers and ops.
graders = require_role(MANAGER, OPS)
PAGE_SIZE = 50

NO_EXPERIMENT_DATA = "暂无实验数据"
NO_WECOM_DATA = "暂无企微数据"


# Where bot.wecom (issue 6) may define `wecom_funnel(session, campaign_id)`.
def _campaigns(session) -> list[tuple[int, str]]:
    return list(session.execute(select(Campaign.id, Campaign.name).order_by(Campaign.id.desc())).all())


def parse_day(value: str | None, field: str) -> date | None:
    """A date from a filter form (empty = no filter)."""
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{field}“{value}”不是日期，请写成 2026-11-24 的格式") from None


def _day_start(value: date | None) -> datetime | None:
    return datetime.combine(value, time.min, DISPLAY_TZ) if value else None


# ---- call list ----------------------------------------------------------------------------------


class CallRow(BaseModel):
    id: int
    campaign: str
    phone: str
    audience: Optional[str]
    attempt_no: int
    arms: dict
    status: str
    outcome: Optional[str]
    outcome_label: str
    handoff: Optional[str] = None  # handed_off / handoff_failed when the callee asked for a human
    handoff_label: Optional[str] = None
    grade: Optional[str] = Field(None, description="等级（人工更正过的为最后一次更正的等级）")
    grade_corrected: bool = Field(False, description="等级是否经人工更正")
    reason: Optional[str]
    talk_time_s: Optional[float]
    scheduled_at: str
    ended_at: Optional[str]


class CallPage(BaseModel):
    total: int
    offset: int
    limit: int
    calls: list[CallRow]


class TurnOut(BaseModel):
    seq: int
    speaker: str
    speaker_label: str
    text: str
    response: Optional[str]
    intent: Optional[str]
    intent_label: Optional[str]
    confidence: Optional[float]
    offset_ms: int


class GradeCorrectionOut(BaseModel):
    old_grade: Optional[str]
    new_grade: str
    reason: str
    corrected_by: str
    corrected_at: datetime


class GradeCorrectionIn(BaseModel):
    grade: Optional[str] = Field(None, description="更正后的等级：A、B、C 或 D")
    reason: Optional[str] = Field(None, description=f"更正原因（必填，最多 {MAX_REASON} 字）")


class CallDetail(CallRow):
    robot_grade: Optional[str] = Field(None, description="机器人评的原始等级（grade 为人工更正后的等级）")
    corrections: list[GradeCorrectionOut] = Field([], description="人工更正记录，从早到晚")
    turns: list[TurnOut]
    hangup_by: Optional[str]
    followups: list
    incentive: Optional[str] = Field(None, description="这通电话机器人提供的利益点（与企微邀请相同）")
    incentive_arm: Optional[str] = None
    incentive_source: Optional[str] = None
    invite_incentive: Optional[str] = Field(None, description="企微加好友邀请里的利益点（有邀请时）")
    callee_region: Optional[str] = Field(None, description="客户归属地（上传的城市列，或号码归属地）")
    callee_region_source: Optional[str] = Field(None, description="归属地来源：名单城市列 | 号码归属地")
    callee_timezone: Optional[str] = Field(None, description="客户所在时区（新疆为 Asia/Urumqi）")
    caller_number: Optional[str] = Field(None, description="这通电话显示的主叫号码（号码池；我方号码，完整显示）")
    caller_match: Optional[str] = Field(None, description="主叫号码与客户的地域关系：本市/本省/外地号码")
    lead_id: Optional[int] = None
    followup: list[dict] = Field([], description="加企微后的跟进序列（SOP）时间线：步骤与点击，从早到晚")


REGION_SOURCE_LABELS = {SOURCE_COLUMN: "名单城市列", SOURCE_NUMBER: "号码归属地"}


def _call_query(
    campaign_id: int | None, grade: str | None, outcome: str | None, since: date | None, until: date | None
):
    corrections = latest_corrections()  # a person's latest correction is the call's grade
    query = (
        select(CallAttempt, Campaign.name, Lead.phone_masked, AudiencePack.name, corrections.c.grade)
        .join(Campaign, Campaign.id == CallAttempt.campaign_id)
        .join(Lead, Lead.id == CallAttempt.lead_id)
        .outerjoin(AudiencePack, AudiencePack.id == Lead.audience_id)
        .outerjoin(corrections, corrections.c.attempt_id == CallAttempt.id)
    )
    if campaign_id:
        query = query.where(CallAttempt.campaign_id == campaign_id)
    if grade:
        query = query.where(func.coalesce(corrections.c.grade, CallAttempt.grade) == grade)
    if outcome:
        query = query.where(CallAttempt.outcome == outcome)
    if since:
        query = query.where(CallAttempt.scheduled_at >= _day_start(since))
    if until:
        query = query.where(CallAttempt.scheduled_at < _day_start(until + timedelta(days=1)))
    return query


def _call_row(
    attempt: CallAttempt, campaign: str, phone_masked: str, audience: str | None, corrected: str | None = None
) -> dict:
    return {
        "id": attempt.id,
        "campaign": campaign,
        "phone": phone_masked,
        "audience": audience,
        "attempt_no": attempt.attempt_no,
        "arms": attempt.arms or {},
        "status": attempt.status,
        "outcome": attempt.outcome,
        "outcome_label": labels.label(labels.CALL_OUTCOME, attempt.outcome),
        "handoff": attempt.handoff,
        "handoff_label": labels.label(labels.HANDOFF, attempt.handoff) if attempt.handoff else None,
        "grade": corrected or attempt.grade,
        "grade_corrected": corrected is not None,
        "reason": mask_digit_runs(attempt.grade_reason or "") or None,
        "talk_time_s": attempt.talk_time_s,
        "scheduled_at": attempt.scheduled_at.isoformat(),
        "ended_at": attempt.ended_at.isoformat() if attempt.ended_at else None,
    }


def _check_call_filters(grade: str | None) -> None:
    if grade and grade not in "ABCD":
        raise UserError(f"等级只能是 A、B、C、D（收到“{grade}”）")


def export_query(filters: dict) -> str:
    """The filters as the query string of an export link (empty ones left out)."""
    return urlencode({key: value for key, value in filters.items() if value not in (None, "")})


def list_calls(
    session,
    *,
    campaign_id: int | None = None,
    grade: str | None = None,
    outcome: str | None = None,
    since: date | None = None,
    until: date | None = None,
    offset: int = 0,
    limit: int = PAGE_SIZE,
) -> CallPage:
    _check_call_filters(grade)
    if not 0 <= offset <= MAX_OFFSET:
        raise UserError(f"offset 需在 0 到 {MAX_OFFSET} 之间（收到 {offset}）")
    query = _call_query(campaign_id, grade, outcome, since, until)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(CallAttempt.scheduled_at.desc(), CallAttempt.id.desc())
        .offset(max(0, offset))
        .limit(max(1, min(limit, 500)))
    ).all()
    return CallPage(total=total, offset=offset, limit=limit, calls=[CallRow(**_call_row(*row)) for row in rows])


def call_detail(session, attempt_id: int) -> CallDetail:
    row = session.execute(_call_query(None, None, None, None, None).where(CallAttempt.id == attempt_id)).first()
    if row is None:
        raise HTTPException(404, f"没有编号为 {attempt_id} 的通话")
    attempt = row[0]
    turns = (
        session.execute(select(TurnRow).where(TurnRow.attempt_id == attempt_id).order_by(TurnRow.seq)).scalars().all()
    )
    incentive, invite_incentive = call_incentive(session, attempt)
    corrections = corrections_of(session, attempt_id)
    lead = session.get(Lead, attempt.lead_id)
    region = Region(lead.province, lead.city) if lead is not None and lead.province else None
    return CallDetail(
        **_call_row(*row),
        callee_region=region.label if region else None,
        callee_region_source=REGION_SOURCE_LABELS.get(lead.region_source or "") if region else None,
        callee_timezone=lead.timezone if region else None,
        caller_number=attempt.caller_number,
        caller_match=labels.label(labels.CALLER_MATCH, attempt.caller_match) if attempt.caller_match else None,
        lead_id=attempt.lead_id,
        followup=[
            {**item, "note": mask_digit_runs(item.get("note") or ""), "status_label": SEND_LABELS.get(item["status"])}
            for item in timeline(session, attempt.lead_id)
        ],
        robot_grade=attempt.grade,
        corrections=[
            GradeCorrectionOut(
                old_grade=c.old_grade,
                new_grade=c.new_grade,
                reason=mask_digit_runs(c.reason),
                corrected_by=c.corrected_by,
                corrected_at=c.corrected_at,
            )
            for c in corrections
        ],
        incentive=incentive.text if incentive else None,
        incentive_arm=incentive.name if incentive else None,
        incentive_source=SOURCE_LABELS.get(incentive.source) if incentive else None,
        invite_incentive=invite_incentive,
        hangup_by=attempt.hangup_by,
        followups=[{**f, "reason": mask_digit_runs(str(f.get("reason", "")))} for f in attempt.followups or []],
        turns=[
            TurnOut(
                seq=t.seq,
                speaker=t.speaker,
                speaker_label=labels.label(labels.SPEAKER, t.speaker),
                text=mask_digit_runs(t.text),
                response=t.response,
                intent=t.intent,
                intent_label=labels.label(labels.INTENT, t.intent) if t.intent else None,
                confidence=t.confidence,
                offset_ms=t.offset_ms,
            )
            for t in turns
        ],
    )


@api.get("/calls", response_model=CallPage, summary="通话记录（号码已打码）")
def calls_api(
    request: Request,
    campaign_id: Optional[int] = optional_id("外呼任务编号"),
    grade: Optional[str] = None,
    outcome: Optional[str] = None,
    since: Optional[date] = None,
    until: Optional[date] = None,
    offset: int = offset_query(),
    limit: int = Query(PAGE_SIZE, ge=1, le=500, description="每页条数"),
    principal: Principal = Depends(managers_only),
) -> CallPage:
    with session_scope(request.app.state.engine) as session:
        return list_calls(
            session,
            campaign_id=campaign_id,
            grade=grade or None,
            outcome=outcome or None,
            since=since,
            until=until,
            offset=offset,
            limit=limit,
        )


@api.get("/calls/{attempt_id}", response_model=CallDetail, summary="一通电话：等级、原因与逐轮对话")
def call_api(
    request: Request, attempt_id: int = record_id("通话编号"), principal: Principal = Depends(managers_only)
) -> CallDetail:
    with session_scope(request.app.state.engine) as session:
        return call_detail(session, attempt_id)


@api.get("/reports/calls.{fmt}", summary="导出通话记录（CSV 或 Excel；号码已打码）", response_class=StreamingResponse)
def calls_export(
    request: Request,
    fmt: ExportFormat,
    campaign_id: Optional[int] = optional_id("外呼任务编号"),
    grade: Optional[str] = None,
    outcome: Optional[str] = None,
    since: Optional[date] = None,
    until: Optional[date] = None,
    principal: Principal = Depends(managers_only),
) -> StreamingResponse:
    _check_call_filters(grade or None)
    with session_scope(request.app.state.engine) as session:
        campaign = session.get(Campaign, campaign_id) if campaign_id else None
        query = _call_query(campaign_id, grade or None, outcome or None, since, until).order_by(
            CallAttempt.scheduled_at.desc(), CallAttempt.id.desc()
        )
        rows = (_call_row(*row) for row in session.execute(query.execution_options(yield_per=2000)))
        sheet = call_sheet(rows, _call_status_label, beijing_time)
        return download([sheet], fmt, f"{campaign.name if campaign else '全部任务'}-通话记录")


def _call_status_label(call: dict) -> str:
    return call["outcome_label"] if call["outcome"] else labels.label(labels.ATTEMPT_STATUS, call["status"])


@pages.get("/calls")
def calls_page(
    request: Request,
    campaign_id: Optional[str] = None,
    grade: Optional[str] = None,
    outcome: Optional[str] = None,
    since: Optional[str] = None,
    until: Optional[str] = None,
    offset: int = offset_query(),
    principal: Principal = Depends(managers_only),
):
    chosen = parse_optional_id(campaign_id, "外呼任务")
    since_day, until_day = parse_day(since, "开始日期"), parse_day(until, "结束日期")
    with session_scope(request.app.state.engine) as session:
        page = list_calls(
            session,
            campaign_id=chosen,
            grade=grade or None,
            outcome=outcome or None,
            since=since_day,
            until=until_day,
            offset=offset,
        )
        campaigns = _campaigns(session)
        outcomes = sorted(o for (o,) in session.execute(select(CallAttempt.outcome).distinct()) if o)
    filters = {
        "campaign_id": chosen,
        "grade": grade or "",
        "outcome": outcome or "",
        "since": since_day.isoformat() if since_day else "",
        "until": until_day.isoformat() if until_day else "",
    }
    return render(
        request,
        "manager/calls.html",
        page=page,
        campaigns=campaigns,
        outcomes=outcomes,
        filters=filters,
        export_query=export_query(filters),
    )


@pages.get("/calls/{attempt_id}")
def call_page(request: Request, attempt_id: int = record_id("通话编号"), principal: Principal = Depends(graders)):
    with session_scope(request.app.state.engine) as session:
        detail = call_detail(session, attempt_id)
        stored = recording_for(session, attempt_id)
        recording = {"duration_s": stored.duration_s, "retain_until": stored.retain_until} if stored else None
    return render(
        request,
        "manager/call.html",
        call=detail,
        max_reason=MAX_REASON,
        calls_list=principal.may(MANAGER),
        recording=recording,
    )


@pages.get("/calls/{attempt_id}/recording")
def call_recording(
    request: Request,
    attempt_id: int = record_id("通话编号"),
    download: bool = Query(False, description="作为附件下载（否则在页面里播放）"),
    principal: Principal = Depends(graders),
):
    """The call's recording (audio/wav, Range requests for seeking): managers, ops and admins.
    Each listen (the player's first request, from byte 0) and each download is audited."""
    with session_scope(request.app.state.engine) as session:
        stored = recording_for(session, attempt_id)
        if stored is None:
            raise HTTPException(404, f"通话 {attempt_id} 没有录音")
        path = recording_file(stored, request.app.state.config.settings.recordings_dir)
        if not path.exists():
            raise HTTPException(404, f"通话 {attempt_id} 的录音文件已不在（可能已过保存期限被清理）")
        starts_listening = request.headers.get("range", "bytes=0-").replace(" ", "").startswith("bytes=0-")
        if download or starts_listening:
            audit_access(
                session,
                attempt_id,
                user_id=principal.user_id,
                user_name=principal.name,
                action=DOWNLOAD if download else LISTEN,
                ip=request.client.host if request.client else None,
                now=datetime.now(DISPLAY_TZ),
            )
    filename = f"call-{attempt_id}.wav"  # by attempt id: never a phone number in a file name
    return FileResponse(
        path,
        media_type="audio/wav",
        filename=filename,
        content_disposition_type="attachment" if download else "inline",
    )


def _correct(request: Request, attempt_id: int, grade: str | None, reason: str | None, principal: Principal):
    with session_scope(request.app.state.engine) as session:
        try:
            return correct_grade(session, attempt_id, grade, reason, principal.name)
        except LookupError:
            raise HTTPException(404, f"没有编号为 {attempt_id} 的通话") from None


@pages.post("/calls/{attempt_id}/grade")
def correct_grade_form(
    request: Request,
    attempt_id: int = record_id("通话编号"),
    grade: str = Form(""),
    reason: str = Form(""),
    principal: Principal = Depends(graders),
):
    try:
        done = _correct(request, attempt_id, grade, reason, principal)
    except UserError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, f"已将等级由 {done.old_grade or '无'} 更正为 {done.new_grade}（原始等级已保留）")
    return RedirectResponse(f"/calls/{attempt_id}#grade-corrections", status_code=303)


@api.api_route(
    "/calls/{attempt_id}/grade",
    methods=["PUT", "POST"],
    response_model=CallDetail,
    summary="人工更正一通电话的等级（经理、运营；原始等级保留）",
)
def correct_grade_api(
    request: Request,
    body: GradeCorrectionIn,
    attempt_id: int = record_id("通话编号"),
    principal: Principal = Depends(graders),
) -> CallDetail:
    if principal.via == "token":
        raise HTTPException(403, "更正等级请在浏览器中登录后操作（API 令牌只能读取通话记录）")
    _correct(request, attempt_id, body.grade, body.reason, principal)
    with session_scope(request.app.state.engine) as session:
        return call_detail(session, attempt_id)


# ---- A/B comparison -----------------------------------------------------------------------------


def comparison(session, campaign_id: int | None, filters: dict) -> dict:
    """The experiments module's report for the campaign, or an empty state saying why there is none."""
    campaign = session.get(Campaign, campaign_id) if campaign_id else None
    if campaign is None:
        return {"available": False, "message": NO_EXPERIMENT_DATA, "hint": "请选择一个外呼任务"}
    try:
        report = build_report(session, campaign, **{k: v for k, v in filters.items() if v not in (None, "")})
    except UserError as exc:  # e.g. a factor this campaign does not test
        return {"available": False, "message": "无法按这些条件生成报告", "hint": str(exc)}
    return {"available": True, "report": report}


@api.get("/reports/comparison", summary="A/B 对比报告（各组转化率及置信区间、提升随时间、SRM、决策提示）")
def comparison_api(
    request: Request,
    campaign_id: Optional[int] = optional_id("外呼任务编号"),
    factor: Optional[str] = None,
    audience: Optional[str] = None,
    since: Optional[date] = None,
    until: Optional[date] = None,
    principal: Principal = Depends(managers_only),
):
    with session_scope(request.app.state.engine) as session:
        return comparison(
            session, campaign_id, {"factor": factor, "audience": audience, "since": since, "until": until}
        )


def _campaign_or_404(session: Session, campaign_id: int) -> Campaign:
    """The campaign an export is for; a 404 that names the number when there is none."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise HTTPException(404, f"没有编号为 {campaign_id} 的外呼任务")
    return campaign


@api.get(
    "/reports/comparison.{fmt}",
    summary="导出 A/B 对比报告（CSV：明细；Excel：明细 + 结论摘要）",
    response_class=StreamingResponse,
)
def comparison_export(
    request: Request,
    fmt: ExportFormat,
    campaign_id: int = Query(..., ge=1, le=MAX_DB_ID, description="外呼任务编号"),
    factor: Optional[str] = None,
    audience: Optional[str] = None,
    since: Optional[date] = None,
    until: Optional[date] = None,
    principal: Principal = Depends(managers_only),
) -> StreamingResponse:
    with session_scope(request.app.state.engine) as session:
        campaign = _campaign_or_404(session, campaign_id)
        report = build_report(
            session, campaign, factor=factor or None, audience=audience or None, since=since, until=until
        )
    return download(report_sheets(report), fmt, f"{campaign.name}-A-B对比")


@api.get(
    "/reports/conversion-funnel.{fmt}",
    summary="导出全流程漏斗（拨打 → 接通 → A/B → 邀请 → 添加 → 成交 → 保费，总体与各分组）",
    response_class=StreamingResponse,
)
def conversion_funnel_export(
    request: Request,
    fmt: ExportFormat,
    campaign_id: int = Query(..., ge=1, le=MAX_DB_ID, description="外呼任务编号"),
    principal: Principal = Depends(managers_only),
) -> StreamingResponse:
    with session_scope(request.app.state.engine) as session:
        campaign = _campaign_or_404(session, campaign_id)
        report = build_report(session, campaign)
    return download([funnel_sheet_of_report(report)], fmt, f"{campaign.name}-全流程漏斗")


@pages.get("/reports")
def reports_page(
    request: Request,
    campaign_id: Optional[str] = None,
    factor: Optional[str] = None,
    audience: Optional[str] = None,
    since: Optional[str] = None,
    until: Optional[str] = None,
    principal: Principal = Depends(managers_only),
):
    since_day, until_day = parse_day(since, "开始日期"), parse_day(until, "结束日期")
    with session_scope(request.app.state.engine) as session:
        campaigns = _campaigns(session)
        chosen = parse_optional_id(campaign_id, "外呼任务") or (campaigns[0][0] if campaigns else None)
        audiences = list(session.execute(select(AudiencePack.name).order_by(AudiencePack.name)).scalars())
        filters = {"factor": factor, "audience": audience, "since": since_day, "until": until_day}
        data = comparison(session, chosen, filters)
        campaign = session.get(Campaign, chosen) if chosen else None
        incentives, incentives_error = campaign_incentives(session, campaign) if campaign else ([], None)
    shown = {
        "campaign_id": chosen,
        "factor": factor or "",
        "audience": audience or "",
        "since": since_day.isoformat() if since_day else "",
        "until": until_day.isoformat() if until_day else "",
    }
    return render(
        request,
        "manager/reports.html",
        data=data,
        campaigns=campaigns,
        audiences=audiences,
        factors=labels.FACTOR,
        filters=shown,
        export_query=export_query(shown),
        incentives=incentives,
        incentives_error=incentives_error,
    )


# ---- WeCom funnel -------------------------------------------------------------------------------


def funnel(session, campaign_id: int | None) -> dict:
    if campaign_id is None:
        return {"available": False, "message": NO_WECOM_DATA, "hint": "请选择一个外呼任务"}
    return {"available": True, "funnel": wecom_funnel(session, campaign_id)}


@api.get("/wecom/funnel", summary="企业微信漏斗（A/B 线索 → 邀请 → 加好友 → 欢迎语）")
def funnel_api(
    request: Request,
    campaign_id: Optional[int] = optional_id("外呼任务编号"),
    principal: Principal = Depends(managers_only),
):
    with session_scope(request.app.state.engine) as session:
        return funnel(session, campaign_id)


@api.get(
    "/reports/wecom-funnel.{fmt}",
    summary="导出企业微信漏斗（CSV 或 Excel；按线索计）",
    response_class=StreamingResponse,
)
def funnel_export(
    request: Request,
    fmt: ExportFormat,
    campaign_id: int = Query(..., ge=1, le=MAX_DB_ID, description="外呼任务编号"),
    principal: Principal = Depends(managers_only),
) -> StreamingResponse:
    with session_scope(request.app.state.engine) as session:
        campaign = _campaign_or_404(session, campaign_id)
        data = wecom_funnel(session, campaign_id)
    return download([funnel_sheet(data)], fmt, f"{campaign.name}-企微漏斗")


@pages.get("/wecom")
def funnel_page(request: Request, campaign_id: Optional[str] = None, principal: Principal = Depends(managers_only)):
    with session_scope(request.app.state.engine) as session:
        campaigns = _campaigns(session)
        chosen = parse_optional_id(campaign_id, "外呼任务") or (campaigns[0][0] if campaigns else None)
        data = funnel(session, chosen)
    return render(request, "manager/wecom.html", data=data, campaigns=campaigns, chosen=chosen)
