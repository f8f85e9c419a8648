"""Script writers (话术师): edit dialogs/ with validation at the line, diff against the published
version, train, try the robot in a chat panel, publish a variant."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.pii import mask_digit_runs
from bot.script.training import current_model
from bot.web import labels
from bot.web.rendering import flash, render
from bot.web.script_workspace import (
    InvalidEdit,
    VersionConflict,
    check_edit_isolated,
    check_project_isolated,
    diff_against_published,
    editable_files,
    latest_publication,
    list_publications,
    publish_variant,
    read_file,
    save_file,
)
from bot.web.security import WRITER, Principal, require_role

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["话术"])
writers_only = require_role(WRITER)


def _services(request: Request):
    return request.app.state.services


def _variants(request: Request) -> list[str]:
    from bot.script.script_lines import load_script_domain

    return load_script_domain(_services(request).project).variants()


# ---- files ----------------------------------------------------------------------------------


class FileInfo(BaseModel):
    path: str
    group: str
    size: int


class FileText(BaseModel):
    path: str
    text: str
    version: str = Field(..., description="文件内容的 SHA-256；保存时作为 base_version 传回")


class SaveIn(BaseModel):
    path: str
    text: str
    base_version: str
    allow_errors: bool = Field(False, description="即使引入新的错误也保存（跨文件修改的中间状态）")


class CheckIn(BaseModel):
    path: str
    text: str


@api.get("/script/files", response_model=list[FileInfo], summary="可编辑的话术文件")
def files(request: Request, principal: Principal = Depends(writers_only)) -> list[FileInfo]:
    return [FileInfo(**f.__dict__) for f in editable_files(_services(request).project)]


@api.get("/script/file", response_model=FileText, summary="读取一个话术文件及其版本")
def file_text(request: Request, path: str, principal: Principal = Depends(writers_only)) -> FileText:
    text, version = read_file(_services(request).project, path)
    return FileText(path=path, text=text, version=version)


@api.post("/script/check", summary="校验一次修改（不保存）：YAML、话术规则检查与 Rasa 校验，错误带行号")
def check(request: Request, body: CheckIn, principal: Principal = Depends(writers_only)):
    return check_edit_isolated(
        _services(request).project, body.path, body.text, request.app.state.config.check_cpu_seconds
    ).as_json()


@api.put(
    "/script/file",
    summary="保存话术文件（乐观并发：base_version 不符时返回 409 和当前内容）",
    responses={
        409: {"description": "文件已被他人修改：返回当前内容与版本，您的文本未保存"},
        422: {"description": "这次修改会引入错误：返回错误及行号，文件未保存"},
    },
)
def save(request: Request, body: SaveIn, principal: Principal = Depends(writers_only)):
    services = _services(request)
    try:
        result = save_file(
            services.project,
            body.path,
            body.text,
            body.base_version,
            lock_dir=services.lock_dir,
            allow_errors=body.allow_errors,
            cpu_seconds=request.app.state.config.check_cpu_seconds,
        )
    except VersionConflict as conflict:
        return JSONResponse(
            status_code=409,
            content={
                "detail": f"保存失败：在您编辑期间，“{conflict.path}”已被其他人修改并保存。您的修改没有丢失，仍在编辑框中；"
                "请对照下方的最新内容合并后再保存。",
                "current_text": conflict.current_text,
                "current_version": conflict.current_version,
            },
        )
    except InvalidEdit as invalid:
        count = len(invalid.result.new_errors)
        return JSONResponse(
            status_code=422,
            content={
                "detail": f"未保存：这次修改会引入 {count} 个错误，请按行号修正（或勾选“仍然保存”）。",
                **invalid.result.as_json(),
            },
        )
    return {"path": result.path, "version": result.version, "saved": True, **result.check.as_json()}


@api.get("/script/diff", summary="与已发布版本的差异")
def diff(request: Request, path: str, principal: Principal = Depends(writers_only)):
    with session_scope(request.app.state.engine) as session:
        return diff_against_published(session, _services(request).project, path).as_json()


@pages.get("/script")
def editor_page(request: Request, path: Optional[str] = None, principal: Principal = Depends(writers_only)):
    project = _services(request).project
    all_files = editable_files(project)
    chosen = path or next((f.path for f in all_files if f.path == "domain/responses.yml"), all_files[0].path)
    text, version = read_file(project, chosen)
    with session_scope(request.app.state.engine) as session:
        publication = latest_publication(session)
        published = (publication.id, publication.variant, publication.published_at) if publication else None
    groups: dict[str, list] = {}
    for item in all_files:
        groups.setdefault(item.group, []).append(item)
    return render(
        request, "script/editor.html", groups=groups, path=chosen, text=text, version=version, published=published
    )


# ---- validation of the whole project --------------------------------------------------------------


@api.get("/script/validate", summary="整个话术项目的校验结果（与 waihu validate 相同的检查）")
def validate(request: Request, principal: Principal = Depends(writers_only)):
    project = _services(request).project
    problems = check_project_isolated(project, request.app.state.config.check_cpu_seconds)
    prefix = project.root.name + "/"
    return {
        "errors": sum(p.severity == "error" for p in problems),
        "problems": [
            {
                "file": p.file[len(prefix) :] if p.file.startswith(prefix) else "",
                "line": p.line,
                "message": p.message,
                "severity": p.severity,
            }
            for p in problems
        ],
    }


# ---- training -----------------------------------------------------------------------------------


class TrainIn(BaseModel):
    force: bool = False


@api.post("/script/train", status_code=202, summary="开始训练（后台进程；话术未变则直接复用已有模型）")
def train(request: Request, body: TrainIn = TrainIn(), principal: Principal = Depends(writers_only)):
    return _services(request).trainer.start(principal.name, force=body.force).as_json()


@api.get("/script/train", summary="训练状态")
def train_status(request: Request, principal: Principal = Depends(writers_only)):
    services = _services(request)
    status = services.trainer.status.as_json()
    model = current_model(services.project, services.config.models_dir)
    status["current_model"] = model.name if model else None
    return status


# ---- chat ---------------------------------------------------------------------------------------


class ChatStart(BaseModel):
    variant: str = "standard"
    surname: Optional[str] = "王"
    gender: Optional[str] = "M"
    incentive: Optional[str] = None


class ChatSay(BaseModel):
    text: str = ""


def _grade_so_far(call) -> dict:
    """The grade this call would get if it ended now: the dialer's own assessment."""
    from bot.dialing.call_runner import CallResult, assess

    now = datetime.now(timezone.utc)
    result = CallResult(
        call.call_id,
        answered=True,
        answered_at=call.started_at,
        ended_at=call.ended_at or now,
        hangup_by=call.hangup_by or "callee",
        turns=list(call.turns),
    )
    outcome = assess(result)
    data = outcome.as_json()
    grade = data.get("grade")
    return {
        "grade": grade,
        "label": labels.label(labels.GRADE, grade) if grade else data.get("label"),
        "reason": mask_digit_runs(data.get("reason") or ""),
        "rule": data.get("rule"),
    }


def _reply_json(chat, reply) -> dict:
    return {
        "chat_id": chat.id,
        "variant": chat.variant,
        "model": chat.model,
        "stale_model": chat.stale_model,
        "lines": [{"response": line.response, "text": mask_digit_runs(line.text)} for line in reply.lines],
        "intent": reply.intent,
        "intent_label": labels.label(labels.INTENT, reply.intent, "") if reply.intent else None,
        "confidence": round(reply.confidence, 3) if reply.confidence is not None else None,
        "end_call": reply.end_call,
        "ended": chat.call.ended,
        "grade": _grade_so_far(chat.call),
    }


@api.post("/script/chat", summary="开始一通试聊（使用进程内共享的对话模型）")
def chat_start(request: Request, body: ChatStart, principal: Principal = Depends(writers_only)):
    variants = _variants(request)
    if body.variant not in variants:
        raise UserError(f"话术中没有版本“{body.variant}”；现有版本：{'、'.join(variants)}")
    if body.gender not in (None, "", "M", "F"):
        raise UserError("性别请选择 M（先生）或 F（女士）")
    chat, reply = _services(request).chats.open(principal.name, body.variant, body.surname, body.gender, body.incentive)
    return _reply_json(chat, reply)


@api.post("/script/chat/{chat_id}", summary="以客户身份说一句话（空文本 = 沉默）")
def chat_say(request: Request, chat_id: str, body: ChatSay, principal: Principal = Depends(writers_only)):
    rooms = _services(request).chats
    chat = rooms.get(chat_id, principal.name)
    reply = rooms.say(chat, body.text[:500])
    return {**_reply_json(chat, reply), "heard": mask_digit_runs(body.text[:500])}


@api.post("/script/chat/{chat_id}/hangup", summary="客户挂断")
def chat_hangup(request: Request, chat_id: str, principal: Principal = Depends(writers_only)):
    rooms = _services(request).chats
    chat = rooms.get(chat_id, principal.name)
    rooms.hang_up(chat)
    return {"chat_id": chat.id, "ended": True, "grade": _grade_so_far(chat.call)}


@pages.get("/script/lab")
def lab_page(request: Request, principal: Principal = Depends(writers_only)):
    services = _services(request)
    model = current_model(services.project, services.config.models_dir)
    return render(
        request,
        "script/lab.html",
        variants=_variants(request),
        current_model=model.name if model else None,
        training=services.trainer.status.as_json(),
    )


# ---- publishing ---------------------------------------------------------------------------------


class PublishIn(BaseModel):
    variant: str
    note: str = ""


class PublicationOut(BaseModel):
    id: int
    variant: str
    fingerprint: str
    model_file: str
    files: int
    note: str
    published_by: str
    published_at: str


def _publication_out(p) -> PublicationOut:
    return PublicationOut(
        id=p.id,
        variant=p.variant,
        fingerprint=p.fingerprint,
        model_file=p.model_file,
        files=len(p.files or {}),
        note=p.note,
        published_by=p.published_by,
        published_at=p.published_at.isoformat(),
    )


@api.get("/script/publications", response_model=list[PublicationOut], summary="发布记录")
def publications(request: Request, principal: Principal = Depends(writers_only)) -> list[PublicationOut]:
    with session_scope(request.app.state.engine) as session:
        return [_publication_out(p) for p in list_publications(session)]


@api.post(
    "/script/publications",
    response_model=PublicationOut,
    status_code=201,
    summary="发布一个话术版本（需无错误且已训练）",
)
def publish(request: Request, body: PublishIn, principal: Principal = Depends(writers_only)) -> PublicationOut:
    services = _services(request)
    with session_scope(request.app.state.engine) as session:
        return _publication_out(
            publish_variant(
                session, services.project, services.config.models_dir, body.variant, body.note, principal.name
            )
        )


@pages.get("/script/publish")
def publish_page(request: Request, principal: Principal = Depends(writers_only)):
    services = _services(request)
    with session_scope(request.app.state.engine) as session:
        rows = list_publications(session)
    model = current_model(services.project, services.config.models_dir)
    return render(
        request,
        "script/publish.html",
        publications=rows,
        variants=_variants(request),
        current_model=model.name if model else None,
    )


@pages.post("/script/publish")
async def publish_form(request: Request, principal: Principal = Depends(writers_only)):
    form = await request.form()
    services = _services(request)
    try:
        with session_scope(request.app.state.engine) as session:
            publication = publish_variant(
                session,
                services.project,
                services.config.models_dir,
                str(form.get("variant", "")),
                str(form.get("note", "")),
                principal.name,
            )
            number, variant = publication.id, publication.variant
    except UserError as exc:
        with session_scope(request.app.state.engine) as session:
            rows = list_publications(session)
        model = current_model(services.project, services.config.models_dir)
        return render(
            request,
            "script/publish.html",
            status_code=400,
            publications=rows,
            variants=_variants(request),
            current_model=model.name if model else None,
            error=str(exc),
            error_details=exc.details,
        )
    flash(request, f"已发布话术版本“{variant}”（发布 #{number}）")
    return RedirectResponse("/script/publish", status_code=303)
