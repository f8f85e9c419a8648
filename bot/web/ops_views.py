"""Ops (运营): lead packs (upload, summary, rejects), audience packs, campaigns and their live progress.

Every action goes through the same services as the CLI (`bot.leads.service`,
`bot.audiences.service`, `bot.campaigns.service`); this module only turns HTTP into calls.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from bot.audiences.models import KNOWN_SCENES, TIERS
from bot.audiences.service import create_audience, parse_attributes
from bot.campaigns.add_modes import ADD_MODE_LABELS, ADD_MODES
from bot.campaigns.caller_numbers import pool, pool_status
from bot.campaigns.experiment_design import (
    BANDIT_FACTORS,
    FACTOR_LABELS,
    GLOBAL_SCOPE,
    build_experiments,
    parse_slot,  # the CLI's format: 上午=09:30-12:00[*权重]
    parse_text_arm,
    scope_hint,
)
from bot.campaigns.models import Campaign, CampaignPack
from bot.campaigns.pack_removal import PackInUse, check_removable, delete_lead_pack, replace_guard
from bot.campaigns.problems import CampaignProblems, ProblemList
from bot.campaigns.service import TRANSITIONS, campaign_progress, change_status, create_campaign
from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.tabular_file import parse_column_overrides
from bot.leads.by_audience import list_audiences
from bot.leads.export import write_rejects_csv
from bot.leads.models import LeadPack
from bot.leads.service import PackNameTaken, ReplaceAmbiguous, UploadRequest, upload_lead_pack
from bot.web import labels
from bot.web.params import record_id
from bot.web.rendering import flash, render
from bot.web.security import OPS, Principal, require_role
from bot.wecom.campaign_incentives import campaign_incentives

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["运营"])
ops_only = require_role(OPS)

# What the lead-pack reader understands (it reads the format from the bytes; the suffix is a
# first, cheap check with a clear message for the files people pick by mistake).
ACCEPTED_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx")
_SAFE_NAME = re.compile(r"[^\w.\-\u4e00-\u9fff（）()]+")
COPY_BLOCK = 1 << 20


# ---- lead packs ---------------------------------------------------------------------------------


class UploadResult(BaseModel):
    pack_id: int
    pack: str
    file: str
    format: str
    rows: int
    accepted: int
    rejected: dict[str, int]
    rejected_labels: dict[str, str]
    rejected_total: int
    duplicates: int
    dnc: int
    landlines: int
    blank_rows: int
    already_uploaded: bool
    audiences_created: list[str]
    columns: dict[str, str]
    notes: list[str]
    replaced: Optional[str] = Field(None, description="本次替换掉的原名单（勾选“替换已有名单”时）")
    hints: list[str] = Field([], description="多数行因同一原因被拒收时：怎样修正（列映射、第一方线索、可识别的列名）")
    rejects_url: Optional[str] = Field(None, description="下载拒收行 CSV（有拒收行时）")


class PackRow(BaseModel):
    id: int
    name: str
    file_name: str
    file_format: str
    uploaded_by: str
    uploaded_at: str
    rows: int
    accepted: int
    rejected: int
    duplicates: int
    dnc_hits: int


def _pack_rows(session) -> list[PackRow]:
    packs = session.execute(select(LeadPack).order_by(LeadPack.uploaded_at.desc())).scalars().all()
    return [
        PackRow(
            id=p.id,
            name=p.name,
            file_name=p.file_name,
            file_format=p.file_format,
            uploaded_by=p.uploaded_by,
            uploaded_at=p.uploaded_at.isoformat(),
            rows=p.rows,
            accepted=p.accepted,
            rejected=p.rejected,
            duplicates=p.duplicates,
            dnc_hits=p.dnc_hits,
        )
        for p in packs
    ]


@pages.get("/ops/packs")
def packs_page(request: Request, principal: Principal = Depends(ops_only)):
    with session_scope(request.app.state.engine) as session:
        packs = _pack_rows(session)
        audiences = list_audiences(session)
    limit_mb = request.app.state.config.max_upload_bytes / (1024 * 1024)
    return render(
        request,
        "ops/packs.html",
        packs=packs,
        audiences=audiences,
        limit_mb=limit_mb,
        limit_bytes=request.app.state.config.max_upload_bytes,
        accepted=", ".join(ACCEPTED_SUFFIXES),
    )


@api.get("/lead-packs", response_model=list[PackRow], summary="已上传的线索名单")
def list_packs(request: Request, principal: Principal = Depends(ops_only)) -> list[PackRow]:
    with session_scope(request.app.state.engine) as session:
        return _pack_rows(session)


def _safe_file_name(name: str | None) -> str:
    base = Path(name or "").name.strip() or "upload.csv"
    return _SAFE_NAME.sub("_", base)[:200]


def _check_file_type(name: str, head: bytes) -> None:
    suffix = Path(name).suffix.lower()
    if suffix == ".xls":
        raise HTTPException(
            415, "这是旧版 Excel 97-2003（.xls）文件：请在 Excel 中另存为 .xlsx 或“CSV UTF-8”后再上传。"
        )
    if suffix not in ACCEPTED_SUFFIXES:
        raise HTTPException(
            415,
            f"不支持的文件类型“{suffix or '无扩展名'}”：请上传 CSV、TSV 或 XLSX 格式的名单"
            f"（{', '.join(ACCEPTED_SUFFIXES)}）。",
        )
    if suffix == ".xlsx" and not head.startswith(b"PK\x03\x04"):
        raise HTTPException(415, "文件扩展名是 .xlsx，但内容不是 Excel 工作簿：请重新导出后上传。")
    utf16 = head.startswith((b"\xff\xfe", b"\xfe\xff"))
    if suffix != ".xlsx" and not utf16 and b"\x00" in head:
        raise HTTPException(
            415, f"“{name}”的内容不是文本表格（像是图片、压缩包或其他二进制文件）：请上传 CSV、TSV 或 XLSX 格式的名单。"
        )


def _without_temp_path(exc: UserError, folder: Path) -> UserError:
    """Service messages name the file; show the name the user uploaded, not our temp folder."""
    prefix = str(folder) + "/"
    return UserError(str(exc).replace(prefix, ""), details=[d.replace(prefix, "") for d in exc.details])


@api.post(
    "/lead-packs",
    response_model=UploadResult,
    summary="上传线索名单（CSV/TSV/XLSX）",
    description="校验、规范化、去重、免打扰过滤；每一行要么成为线索，要么带原因进入拒收列表。"
    "超过上传上限（WAIHU_WEB_MAX_UPLOAD_MB）的文件返回 413。",
)
def upload_pack(
    request: Request,
    file: UploadFile = File(...),
    pack: str = Form(...),
    audience: Optional[str] = Form(None),
    column_map: Optional[str] = Form(None),
    first_party: bool = Form(False),
    consent_basis: Optional[str] = Form(None),
    sheet: Optional[str] = Form(None),
    replace: bool = Form(False, description="替换同一文件或同名的已有名单（仅限其线索尚未拨打）"),
    principal: Principal = Depends(ops_only),
) -> UploadResult:
    name = _safe_file_name(file.filename)
    head = file.file.read(8192)
    file.file.seek(0)
    if not head:
        raise HTTPException(400, f"“{name}”是空文件（0 字节），请重新导出名单。")
    _check_file_type(name, head)
    folder = Path(tempfile.mkdtemp(prefix="waihu-upload-"))
    try:
        path = folder / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, COPY_BLOCK)
        overrides = parse_column_overrides([column_map]) if column_map and column_map.strip() else {}
        upload = UploadRequest(
            path=path,
            pack_name=pack.strip(),
            audience=(audience or "").strip() or None,
            column_overrides=overrides,
            first_party=first_party,
            consent_basis=(consent_basis or "").strip() or None,
            sheet=(sheet or "").strip() or None,
            uploaded_by=principal.name,
            replace=replace,
        )
        services = request.app.state.services
        try:
            summary = upload_lead_pack(
                request.app.state.engine, services.keyring, upload, replace_guard=_replace_guard_zh
            )
        except PackNameTaken as exc:
            raise UserError(
                f"已有名为“{exc.pack}”的名单（来自另一个文件）：请换一个名单名称；如果要用这个文件替换它，"
                "请勾选“替换已有名单”（仅限原名单的线索尚未拨打）。"
            ) from None
        except ReplaceAmbiguous as exc:
            raise UserError(
                f"无法替换：这个文件之前以名单“{exc.file_pack}”上传过，而名单“{exc.named_pack}”是另一个名单。"
                f"请一次只替换一个：名单名称填“{exc.file_pack}”以替换这个文件的上次上传，或先删除名单“{exc.named_pack}”。"
            ) from None
        except UserError as exc:
            raise _without_temp_path(exc, folder) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    with session_scope(request.app.state.engine) as session:
        pack_id = session.execute(select(LeadPack.id).where(LeadPack.name == summary.pack)).scalar_one()
    data = summary.as_json()
    data["file"] = name
    data["hints"] = [labels.upload_hint(hint) for hint in data["hints"]]
    return UploadResult(
        pack_id=pack_id,
        **data,
        rejected_labels={code: labels.label(labels.REJECT_REASON, code) for code in data["rejected"]},
        rejects_url=f"/api/v1/lead-packs/{pack_id}/rejects.csv" if data["rejected_total"] else None,
    )


def _removal_refused_zh(exc: PackInUse, action: str) -> UserError:
    """check_removable's refusal, said in Chinese for the console."""
    use = exc.use
    campaigns = f"（外呼任务：{'、'.join(use.campaigns)}）" if use.campaigns else ""
    if use.dialled:
        why = (
            f"已有 {use.dialled} 条线索拨打过{campaigns}，通话、评级和企微邀请都挂在这些线索上；"
            "请用新的名单名称上传修正后的文件，已有号码会按重复跳过"
        )
    else:
        why = f"有 {use.queued} 条线索已排队待拨{campaigns}；请先停止相关外呼任务，再重试"
    return UserError(f"不能{action}名单“{exc.pack}”：{why}。")


def _replace_guard_zh(session, old: LeadPack):
    try:
        return replace_guard(session, old)
    except PackInUse as exc:
        raise _removal_refused_zh(exc, "替换") from None


class PackDeleted(BaseModel):
    pack: str
    leads_deleted: int
    rejects_deleted: int
    removed_from_campaigns: list[str]


def _delete_pack(request: Request, pack_id: int) -> PackDeleted:
    with session_scope(request.app.state.engine) as session:
        pack = session.get(LeadPack, pack_id)
        if pack is None:
            raise HTTPException(404, f"没有编号为 {pack_id} 的线索名单")
        name = pack.name
        try:
            deleted = delete_lead_pack(session, name)
        except PackInUse as exc:
            raise _removal_refused_zh(exc, "删除") from None
    return PackDeleted(**deleted.as_json())


@api.delete(
    "/lead-packs/{pack_id}",
    response_model=PackDeleted,
    summary="删除线索名单（连同其线索和拒收行；已有线索拨打过则拒绝）",
)
def delete_pack_api(
    request: Request, pack_id: int = record_id("线索名单编号"), principal: Principal = Depends(ops_only)
) -> PackDeleted:
    return _delete_pack(request, pack_id)


@pages.get("/ops/packs/{pack_id}/delete")
def delete_pack_confirm(
    request: Request, pack_id: int = record_id("线索名单编号"), principal: Principal = Depends(ops_only)
):
    with session_scope(request.app.state.engine) as session:
        pack = session.get(LeadPack, pack_id)
        if pack is None:
            raise HTTPException(404, f"没有编号为 {pack_id} 的线索名单")
        row = next(p for p in _pack_rows(session) if p.id == pack_id)
        refusal = None
        campaigns: tuple[str, ...] = ()
        try:
            campaigns = check_removable(session, pack, "delete").campaigns
        except PackInUse as exc:
            refusal = str(_removal_refused_zh(exc, "删除"))
    return render(request, "ops/pack_delete.html", pack=row, refusal=refusal, campaigns=campaigns)


@pages.post("/ops/packs/{pack_id}/delete")
def delete_pack_form(
    request: Request, pack_id: int = record_id("线索名单编号"), principal: Principal = Depends(ops_only)
):
    try:
        deleted = _delete_pack(request, pack_id)
    except UserError as exc:
        flash(request, str(exc), "error")
        return RedirectResponse(f"/ops/packs/{pack_id}/delete", status_code=303)
    campaigns = (
        f"，并已从外呼任务 {'、'.join(deleted.removed_from_campaigns)} 中移除" if deleted.removed_from_campaigns else ""
    )
    flash(
        request,
        f"已删除名单“{deleted.pack}”：{deleted.leads_deleted} 条线索、{deleted.rejects_deleted} 条拒收行{campaigns}",
    )
    return RedirectResponse("/ops/packs", status_code=303)


@api.get(
    "/lead-packs/{pack_id}/rejects.csv",
    summary="拒收行 CSV（手机号已打码，防公式注入）",
    response_class=StreamingResponse,
)
def rejects_csv(request: Request, pack_id: int = record_id("线索名单编号"), principal: Principal = Depends(ops_only)):
    # A temporary file, not memory: a pack can have a million rejected rows.
    spool = tempfile.TemporaryFile(mode="w+b")
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    with session_scope(request.app.state.engine) as session:
        pack = session.get(LeadPack, pack_id)
        if pack is None:
            raise HTTPException(404, f"没有编号为 {pack_id} 的线索名单")
        write_rejects_csv(session, pack, text)
        file_name = f"{pack.name}-rejects.csv"
    text.flush()
    text.detach()
    spool.seek(0)

    def chunks():
        try:
            while block := spool.read(COPY_BLOCK):
                yield block
        finally:
            spool.close()

    from urllib.parse import quote

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename=rejects.csv; filename*=UTF-8''{quote(file_name)}"},
    )


# ---- audience packs -----------------------------------------------------------------------------


class AudienceIn(BaseModel):
    name: str
    scene: Optional[str] = None
    tier: Optional[str] = None
    attributes: dict[str, str] = {}


class AudienceOut(BaseModel):
    name: str
    scene: Optional[str]
    tier: Optional[str]
    attributes: dict[str, str]
    leads: int


@pages.get("/ops/audiences")
def audiences_page(request: Request, principal: Principal = Depends(ops_only)):
    with session_scope(request.app.state.engine) as session:
        rows = list_audiences(session)
    return render(request, "ops/audiences.html", audiences=rows, scenes=KNOWN_SCENES, tiers=TIERS, form={})


@pages.post("/ops/audiences")
def audiences_create_form(
    request: Request,
    name: str = Form(""),
    scene: str = Form(""),
    tier: str = Form(""),
    attributes: str = Form(""),
    principal: Principal = Depends(ops_only),
):
    form = {"name": name, "scene": scene, "tier": tier, "attributes": attributes}
    try:
        with session_scope(request.app.state.engine) as session:
            pack = create_audience(
                session,
                name,
                scene=scene.strip() or None,
                tier=tier.strip() or None,
                attributes=parse_attributes([line for line in attributes.splitlines() if line.strip()]),
            )
            created = pack.name
    except UserError as exc:
        with session_scope(request.app.state.engine) as session:
            rows = list_audiences(session)
        return render(
            request,
            "ops/audiences.html",
            status_code=400,
            audiences=rows,
            scenes=KNOWN_SCENES,
            tiers=TIERS,
            form=form,
            error=f"人群包未创建：{exc}",
        )
    flash(request, f"已创建人群包“{created}”")
    return RedirectResponse("/ops/audiences", status_code=303)


@api.get("/audiences", response_model=list[AudienceOut], summary="人群包及其线索数")
def audiences_list(request: Request, principal: Principal = Depends(ops_only)) -> list[AudienceOut]:
    with session_scope(request.app.state.engine) as session:
        return [AudienceOut(**row.__dict__) for row in list_audiences(session)]


@api.post("/audiences", response_model=AudienceOut, status_code=201, summary="创建人群包")
def audiences_create(request: Request, body: AudienceIn, principal: Principal = Depends(ops_only)) -> AudienceOut:
    with session_scope(request.app.state.engine) as session:
        pack = create_audience(session, body.name, scene=body.scene, tier=body.tier, attributes=body.attributes)
        return AudienceOut(name=pack.name, scene=pack.scene, tier=pack.tier, attributes=pack.attributes or {}, leads=0)


# ---- campaigns ----------------------------------------------------------------------------------


class VariantIn(BaseModel):
    name: str
    weight: float = 1.0


class SlotIn(BaseModel):
    name: str
    windows: list[str]
    weight: float = 1.0


class TextArmIn(BaseModel):
    name: str
    text: str
    weight: float = 1.0
    # Incentive arms: the audience pack (name or scene) the arm is for, or "global" (every pack).
    audience: Optional[str] = Field(None, description="利益点：适用的人群包（名称或场景）或 global（所有人群包）")


MAX_LINES = 10_000
MAX_CPS = 1_000.0


class CampaignIn(BaseModel):
    name: str
    packs: list[str]
    lines: int = Field(10, ge=1, le=MAX_LINES, description="最大并发线路数")
    cps: float = Field(2.0, gt=0, le=MAX_CPS, description="每秒呼叫数")
    variants: list[VariantIn] = []
    time_slots: list[SlotIn] = []
    incentive: Optional[str] = None
    incentive_arms: list[TextArmIn] = Field([], description="利益点 A/B：每组一段机器人提供的福利文本")
    welcome_arms: list[TextArmIn] = Field([], description="欢迎语 A/B：加企微后发送的欢迎语")
    holdout: float = Field(0.0, description="留出对照（不拨打）的线索比例，如 0.05")
    bandit: Optional[str] = Field(
        None, description="按效果每天调整流量的因素：script / time_slot / incentive / welcome"
    )
    bandit_floor: Optional[float] = None
    compliance_profile: str = "CN_INSURANCE_DEFAULT"
    add_mode: str = Field("link", description="添加方式：link（短信链接，客户添加顾问）/ advisor_adds（顾问主动添加）")


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    status_label: str
    lines: int
    cps: float
    packs: list[str]
    variants: list[VariantIn]
    time_slots: list[SlotIn]
    incentive: Optional[str]
    incentive_arms: list[TextArmIn] = []
    welcome_arms: list[TextArmIn] = []
    holdout: float = 0.0
    bandit: Optional[str] = None
    add_mode: str = "link"
    add_mode_label: str = ""
    created_by: str
    created_at: str
    started_at: Optional[str]


class Progress(BaseModel):
    campaign: str
    status: str
    status_label: str
    lines: int
    leads: int
    attempts: int
    in_flight: int = Field(..., description="占用线路（待拨 + 通话中），与 `waihu campaign status` 相同")
    dialled: int
    connected: int
    grades: dict[str, int]
    outcomes: dict[str, int]
    outcome_labels: dict[str, str]
    by_status: dict[str, int]


def _campaign_out(session, campaign: Campaign) -> CampaignOut:
    experiments = campaign.experiments or {}
    packs = (
        session.execute(
            select(LeadPack.name)
            .join(CampaignPack, CampaignPack.pack_id == LeadPack.id)
            .where(CampaignPack.campaign_id == campaign.id)
            .order_by(LeadPack.name)
        )
        .scalars()
        .all()
    )
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        status_label=labels.label(labels.CAMPAIGN_STATUS, campaign.status),
        lines=campaign.lines,
        cps=campaign.cps,
        packs=list(packs),
        variants=[VariantIn(**v) for v in campaign.script_variants or []],
        time_slots=[SlotIn(**s) for s in campaign.time_slots or []],
        incentive=campaign.incentive,
        incentive_arms=[TextArmIn(**a) for a in experiments.get("incentives") or []],
        welcome_arms=[TextArmIn(**a) for a in experiments.get("welcomes") or []],
        holdout=float(experiments.get("holdout") or 0.0),
        bandit=(experiments.get("bandit") or {}).get("factor"),
        add_mode=campaign.add_mode or "link",
        add_mode_label=ADD_MODE_LABELS.get(campaign.add_mode or "link", campaign.add_mode or ""),
        created_by=campaign.created_by,
        created_at=campaign.created_at.isoformat(),
        started_at=campaign.started_at.isoformat() if campaign.started_at else None,
    )


def _get_campaign(session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise HTTPException(404, f"没有编号为 {campaign_id} 的外呼任务")
    return campaign


def progress_snapshot(session, campaign: Campaign) -> Progress:
    """What `waihu campaign status` shows, from the same `campaign_progress`."""
    progress = campaign_progress(session, campaign)
    outcomes = progress.by_outcome
    return Progress(
        campaign=campaign.name,
        status=campaign.status,
        status_label=labels.label(labels.CAMPAIGN_STATUS, campaign.status),
        lines=campaign.lines,
        leads=progress.leads,
        attempts=progress.attempts,
        in_flight=progress.by_status.get("scheduled", 0) + progress.by_status.get("dialing", 0),
        dialled=sum(outcomes.values()),
        connected=outcomes.get("answered", 0),
        grades={g: progress.by_grade.get(g, 0) for g in "ABCD"},
        outcomes=outcomes,
        outcome_labels={code: labels.label(labels.CALL_OUTCOME, code) for code in outcomes},
        by_status=progress.by_status,
    )


def script_variants(request: Request) -> list[str]:
    from bot.script.project import DialogsProject
    from bot.script.script_lines import load_script_domain

    return load_script_domain(DialogsProject(request.app.state.config.dialogs_dir)).variants()


def _create(
    request: Request, body: CampaignIn, principal: Principal, problems: ProblemList | None = None
) -> CampaignOut:
    """Create, or raise CampaignProblems with every problem (the caller's and the service's)."""
    problems = problems if problems is not None else ProblemList()
    known = script_variants(request)
    for variant in body.variants:
        if variant.name not in known:
            problems.add(
                "--variant",
                variant.name,
                f"unknown script variant; the script has: {', '.join(known)}",
                f"话术中没有这个版本；现有：{'、'.join(known)}",
            )
    incentives = []
    for arm in body.incentive_arms:
        if not (arm.audience or "").strip():
            problems.add(
                "--incentive-arm",
                f"{arm.name}={arm.text}",
                f"say whose leads this arm is for (audience): {scope_hint(arm.name, arm.text)}",
                f"请注明用于哪个人群包：{scope_hint(arm.name, arm.text, chinese=True)}",
            )
            continue
        scope = (arm.audience or "").strip()
        incentives.append(
            {"name": arm.name, "text": arm.text, "weight": arm.weight}
            | ({} if scope.lower() == GLOBAL_SCOPE else {"audience": scope})
        )
    experiments = problems.attempt(
        build_experiments,
        incentives=incentives,
        welcomes=[{"name": a.name, "text": a.text, "weight": a.weight} for a in body.welcome_arms],
        holdout=body.holdout,
        bandit_factor=body.bandit or None,
        bandit_floor=body.bandit_floor,
    )
    with session_scope(request.app.state.engine) as session:
        campaign = create_campaign(
            session,
            name=body.name.strip(),
            packs=body.packs,
            lines=body.lines,
            cps=body.cps,
            variants=[v.dict() for v in body.variants] or None,
            time_slots=[s.dict() for s in body.time_slots] or None,
            compliance_profile=body.compliance_profile,
            incentive=(body.incentive or "").strip() or None,
            experiments=experiments,
            created_by=principal.name,
            problems=problems,
            add_mode=body.add_mode,
        )
        return _campaign_out(session, campaign)


def _problems_in_chinese(exc: CampaignProblems) -> UserError:
    problems = exc.in_chinese()
    return UserError(f"外呼任务未创建：共 {len(problems)} 个问题，请全部修改后再提交", details=problems)


@api.get("/campaigns", response_model=list[CampaignOut], summary="外呼任务列表")
def campaigns_list(request: Request, principal: Principal = Depends(ops_only)) -> list[CampaignOut]:
    with session_scope(request.app.state.engine) as session:
        return [_campaign_out(session, c) for c in session.execute(select(Campaign).order_by(Campaign.id)).scalars()]


@api.post("/campaigns", response_model=CampaignOut, status_code=201, summary="创建外呼任务（草稿）")
def campaigns_create(request: Request, body: CampaignIn, principal: Principal = Depends(ops_only)) -> CampaignOut:
    try:
        return _create(request, body, principal)
    except CampaignProblems as exc:
        raise _problems_in_chinese(exc) from None


@api.get("/campaigns/{campaign_id}", response_model=CampaignOut, summary="外呼任务详情")
def campaign_detail(
    request: Request, campaign_id: int = record_id("外呼任务编号"), principal: Principal = Depends(ops_only)
) -> CampaignOut:
    with session_scope(request.app.state.engine) as session:
        return _campaign_out(session, _get_campaign(session, campaign_id))


@api.post(
    "/campaigns/{campaign_id}/{action}",
    response_model=CampaignOut,
    summary="启动 / 暂停 / 恢复 / 停止外呼任务",
    description="action: start | pause | resume | stop",
)
def campaign_action(
    request: Request,
    action: str,
    campaign_id: int = record_id("外呼任务编号"),
    principal: Principal = Depends(ops_only),
) -> CampaignOut:
    return _transition(request, campaign_id, action)


ACTION_LABELS = {"start": "启动", "pause": "暂停", "resume": "恢复", "stop": "停止"}


def _transition(request: Request, campaign_id: int, action: str) -> CampaignOut:
    if action not in TRANSITIONS:
        raise HTTPException(404, f"未知操作“{action}”；可用：start、pause、resume、stop")
    with session_scope(request.app.state.engine) as session:
        campaign = _get_campaign(session, campaign_id)
        allowed_from, _ = TRANSITIONS[action]
        if campaign.status not in allowed_from:
            raise HTTPException(
                409,
                f"外呼任务“{campaign.name}”当前状态为"
                f"{labels.label(labels.CAMPAIGN_STATUS, campaign.status)}，不能{ACTION_LABELS[action]}"
                f"（仅限{'、'.join(labels.label(labels.CAMPAIGN_STATUS, s) for s in sorted(allowed_from))}）",
            )
        change_status(session, campaign.name, action)
        return _campaign_out(session, campaign)


@api.get(
    "/campaigns/{campaign_id}/progress", response_model=Progress, summary="实时进度（拨打、接通、A/B/C/D、状态、线路）"
)
def campaign_progress_api(
    request: Request, campaign_id: int = record_id("外呼任务编号"), principal: Principal = Depends(ops_only)
) -> Progress:
    with session_scope(request.app.state.engine) as session:
        return progress_snapshot(session, _get_campaign(session, campaign_id))


@pages.get("/ops/campaigns")
def campaigns_page(request: Request, principal: Principal = Depends(ops_only)):
    return _campaigns_page(request)


def _campaigns_page(
    request: Request,
    status_code: int = 200,
    form: dict | None = None,
    error: str | None = None,
    problems: list[str] | None = None,
):
    with session_scope(request.app.state.engine) as session:
        campaigns = [
            _campaign_out(session, c) for c in session.execute(select(Campaign).order_by(Campaign.id.desc())).scalars()
        ]
        packs = session.execute(select(LeadPack.name, LeadPack.accepted).order_by(LeadPack.uploaded_at.desc())).all()
        from bot.web.script_workspace import published_variants

        published = published_variants(session)
    try:
        variants = script_variants(request)
    except UserError as exc:
        variants, error = [], error or f"读取话术版本失败：{exc}"
    return render(
        request,
        "ops/campaigns.html",
        status_code=status_code,
        campaigns=campaigns,
        packs=packs,
        variants=variants,
        published=published,
        form=form or {},
        error=error,
        problems=problems or [],
        bandit_factors=[(f, FACTOR_LABELS[f]) for f in BANDIT_FACTORS],
        add_modes=[(m, ADD_MODE_LABELS[m]) for m in ADD_MODES],
    )


def parse_slot_lines(text: str, problems: ProblemList) -> list[SlotIn]:
    """One slot per line, as the CLI's --slot; a line with a problem is noted and left out."""
    parsed = (problems.attempt(parse_slot, line.strip()) for line in text.splitlines() if line.strip())
    return [SlotIn(**slot) for slot in parsed if slot]


def parse_text_arm_lines(option: str, text: str, problems: ProblemList, *, scoped: bool = False) -> list[TextArmIn]:
    """One arm per line, as the CLI's --incentive-arm (人群包:名称=文本[*权重], or global:…) and
    --welcome-arm (名称=文本[*权重])."""
    arms = []
    for line in text.splitlines():
        arm = problems.attempt(parse_text_arm, option, line.strip(), scoped=scoped) if line.strip() else None
        if arm:
            arms.append(TextArmIn(**{**arm, "audience": arm.get("audience") or (GLOBAL_SCOPE if scoped else None)}))
    return arms


def _number(
    problems: ProblemList, option: str, raw: str, kind: type, zh: str, default: Any, shown: str | None = None
) -> Any:
    """kind(raw), or `default` with the problem noted (under `shown`, the value as typed)."""
    try:
        return kind(raw)
    except ValueError:
        problems.add(option, shown or raw, f"not a {'whole ' if kind is int else ''}number", zh)
        return default


@pages.post("/ops/campaigns")
async def campaigns_create_form(request: Request, principal: Principal = Depends(ops_only)):
    form = await request.form()
    # The fields as posted: text, or lists of text (packs, variants). Any: the form page sends only
    # text; a file posted under one of these names fails in int()/float()/validation below, as ever.
    values: dict[str, Any] = {
        "name": form.get("name", ""),
        "packs": form.getlist("packs"),
        "lines": form.get("lines", "10"),
        "cps": form.get("cps", "2"),
        "variants": form.getlist("variants"),
        "slots": form.get("slots", ""),
        "incentive": form.get("incentive", ""),
        "incentive_arms": form.get("incentive_arms", ""),
        "welcome_arms": form.get("welcome_arms", ""),
        "holdout": form.get("holdout", "0"),
        "bandit": form.get("bandit", ""),
        "add_mode": form.get("add_mode", "link"),
    }
    # Every problem of the form at once, each naming its field and what to do.
    problems = ProblemList()
    try:
        lines = _number(problems, "--lines", str(values["lines"]), int, "线路数需要整数", 1)
        cps = _number(problems, "--cps", str(values["cps"]), float, "每秒呼叫数需要数字", 1.0)
        if not 1 <= lines <= MAX_LINES:
            problems.add("--lines", lines, f"between 1 and {MAX_LINES}", f"线路数需在 1 到 {MAX_LINES} 之间")
        if not 0 < cps <= MAX_CPS:
            problems.add(
                "--cps", f"{cps:g}", f"above 0, at most {MAX_CPS:g}", f"每秒呼叫数需大于 0、不超过 {MAX_CPS:g}"
            )
        variants = []
        for name in values["variants"]:
            raw = str(form.get(f"weight_{name}") or "1")
            weight = _number(problems, "--variant", raw, float, "话术版本的权重需要数字", 1.0, f"{name}:{raw}")
            if not weight > 0:
                problems.add("--variant", f"{name}:{raw}", "a weight above 0", "话术版本的权重须大于 0")
            variants.append(VariantIn(name=name, weight=weight if weight > 0 else 1.0))
        holdout = (
            _number(
                problems, "--holdout", str(values["holdout"] or 0), float, "留出对照比例需要数字（百分比，例如 5）", 0.0
            )
            / 100
        )
        try:
            body = CampaignIn(
                name=values["name"],
                packs=values["packs"],
                lines=min(max(lines, 1), MAX_LINES),
                cps=min(cps, MAX_CPS) if cps > 0 else 1.0,
                variants=variants,
                time_slots=parse_slot_lines(values["slots"], problems),
                incentive=values["incentive"],
                incentive_arms=parse_text_arm_lines("--incentive-arm", values["incentive_arms"], problems, scoped=True),
                welcome_arms=parse_text_arm_lines("--welcome-arm", values["welcome_arms"], problems),
                holdout=holdout,
                bandit=values["bandit"] or None,
                add_mode=str(values["add_mode"] or "link"),
            )
        except ValidationError as exc:
            raise UserError(
                "；".join(f"{'.'.join(str(p) for p in e['loc'])}：{e['msg']}" for e in exc.errors())
            ) from None
        created = _create(request, body, principal, problems)
    except CampaignProblems as exc:
        error = _problems_in_chinese(exc)
        return _campaigns_page(request, 400, values, str(error), problems=error.details)
    except UserError as exc:
        return _campaigns_page(request, 400, values, f"外呼任务未创建：{exc}")
    flash(request, f"已创建外呼任务“{created.name}”（草稿），确认无误后点击“启动”")
    return RedirectResponse(f"/ops/campaigns/{created.id}", status_code=303)


@pages.get("/ops/campaigns/{campaign_id}")
def campaign_page(
    request: Request, campaign_id: int = record_id("外呼任务编号"), principal: Principal = Depends(ops_only)
):
    with session_scope(request.app.state.engine) as session:
        campaign = _get_campaign(session, campaign_id)
        out = _campaign_out(session, campaign)
        progress = progress_snapshot(session, campaign)
        incentives, incentives_error = campaign_incentives(session, campaign)
        # The caller-number pool (主叫号码池): each number's 归属地, today's dials, rested or not.
        caller_numbers = pool(session, campaign.id, utc_now())
        caller_pool = pool_status(session, campaign.id, utc_now())
    actions = [(a, ACTION_LABELS[a]) for a, (allowed, _) in TRANSITIONS.items() if out.status in allowed]
    return render(
        request,
        "ops/campaign.html",
        campaign=out,
        progress=progress,
        actions=actions,
        incentives=incentives,
        incentives_error=incentives_error,
        caller_numbers=caller_numbers,
        caller_pool=caller_pool,
    )


@pages.post("/ops/campaigns/{campaign_id}/{action}")
def campaign_action_form(
    request: Request,
    action: str,
    campaign_id: int = record_id("外呼任务编号"),
    principal: Principal = Depends(ops_only),
):
    try:
        out = _transition(request, campaign_id, action)
    except HTTPException as exc:
        if exc.status_code != 409:
            raise
        flash(request, str(exc.detail), "error")
        return RedirectResponse(f"/ops/campaigns/{campaign_id}", status_code=303)
    flash(request, f"外呼任务“{out.name}”已{ACTION_LABELS[action]}，当前状态：{out.status_label}")
    return RedirectResponse(f"/ops/campaigns/{campaign_id}", status_code=303)
