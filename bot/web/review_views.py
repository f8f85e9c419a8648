"""Script writers' review queue (待标注): caller turns the model was unsure about, labelled as
NLU training examples for the next training (bot.campaigns.review, bot.script.nlu_examples).

The examples go to the project the console trains from (WAIHU_DIALOGS_DIR), under the same
edit lock as the editor's saves."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from bot.campaigns.review import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    AlreadyLabelled,
    LabelResult,
    UnknownTurn,
    added_since,
    label_turn,
    review_queue,
)
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.script.nlu_examples import DUPLICATE, IN_TEST_SET, TOOL_FILE, NoWords, UnknownIntent, fallback_threshold
from bot.script.nlu_examples import labellable_intents as domain_intents
from bot.web import labels
from bot.web.rendering import flash, render
from bot.web.runtime import newest_model
from bot.web.script_workspace import edit_lock
from bot.web.security import MANAGER, OPS, WRITER, Principal, require_role

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["话术"])
writers_only = require_role(WRITER)

OUTCOME = {
    "added": "已加入训练样例",
    "duplicate": "训练数据已有",
    "in_test_set": "测试集句子，未加入",
    "skipped": "已跳过",
}
REASON = {
    "fallback": "未理解",
    "unsure_agreement": "不确定的同意",
    "low_confidence": "置信度低",
    "grade_corrected": "等级经人工更正",
}


def _services(request: Request):
    return request.app.state.services


def last_training(request: Request) -> datetime | None:
    """When the newest model was written: examples labelled after it are not trained yet."""
    model = newest_model(_services(request).config.models_dir)
    return datetime.fromtimestamp(model.stat().st_mtime, timezone.utc) if model else None


def _label(request: Request, turn_id: int, intent: str | None, principal: Principal) -> LabelResult:
    """Label under the editor's lock, with every refusal as one Chinese message."""
    services = _services(request)
    try:
        with (
            edit_lock(services.lock_dir, services.project),
            session_scope(request.app.state.engine) as session,
        ):
            return label_turn(session, services.project, turn_id, intent, principal.name)
    except UnknownTurn:
        raise HTTPException(404, f"没有编号为 {turn_id} 的客户发言") from None
    except UnknownIntent as exc:
        raise UserError(f"意图“{exc.intent}”不在话术的意图列表中，请从下拉框中选择") from None
    except NoWords:
        raise UserError("这条发言没有文字（静音或只有标点），请点“跳过”") from None
    except AlreadyLabelled as exc:
        raise UserError(f"这条发言已由 {exc.by} 处理过（{OUTCOME.get(exc.outcome, exc.outcome)}）") from None


def result_message(result: LabelResult) -> str:
    intent = labels.label(labels.INTENT, result.intent) if result.intent else ""
    example = result.example
    if example is None:
        return "已跳过这条发言"
    if result.outcome == IN_TEST_SET:
        return (
            f"未加入：“{result.text}”与测试集 {example.place} 的句子相同——测试集的句子永远不用于训练"
            "（这条已移出待标注）"
        )
    if result.outcome == DUPLICATE:
        existing = labels.label(labels.INTENT, example.existing_intent)
        return f"训练数据中已有这句（{example.place}，意图：{existing}），未重复添加；这条已移出待标注"
    return f"已加入训练样例：“{result.text}” → {intent}（{example.place}），下次训练生效"


def intent_choices(request: Request) -> list[tuple[str, str]]:
    return [(name, labels.label(labels.INTENT, name)) for name in domain_intents(_services(request).project)]


# ---- JSON API -------------------------------------------------------------------------------------


class ReviewTurn(BaseModel):
    turn_id: int
    attempt_id: int
    seq: int
    text: str = Field(..., description="客户的话（号码、证件号已打码）")
    intent: Optional[str]
    confidence: Optional[float]
    robot_line: Optional[str] = Field(None, description="客户回答的那句机器人话术（已打码）")
    robot_response: Optional[str]
    campaign: str
    script_variant: Optional[str]
    called_at: Optional[str]
    reasons: list[str] = Field(..., description="fallback | unsure_agreement | low_confidence | grade_corrected")
    call_url: str


class ReviewQueueOut(BaseModel):
    total: int
    offset: int
    limit: int
    threshold: Optional[float] = Field(None, description="dialogs/config.yml 中 FallbackClassifier 的阈值")
    added_since_training: int = Field(..., description="上次训练后新加入的样例数")
    turns: list[ReviewTurn]


class LabelIn(BaseModel):
    intent: Optional[str] = Field(None, description="意图（如 hesitate、faq/claims）；跳过时不填")
    skip: bool = False


class LabelOut(BaseModel):
    turn_id: int
    intent: Optional[str]
    outcome: str = Field(..., description="added | duplicate | in_test_set | skipped")
    text: str
    place: Optional[str] = Field(None, description="写入的行、已有的样例或测试集中的行（文件:行号）")
    message: str


@api.get("/script/review", response_model=ReviewQueueOut, summary="待标注：模型没把握的客户发言（已打码）")
def queue_api(
    request: Request,
    offset: int = Query(0, ge=0),
    limit: int = Query(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
    principal: Principal = Depends(writers_only),
) -> ReviewQueueOut:
    threshold = fallback_threshold(_services(request).project)
    with session_scope(request.app.state.engine) as session:
        queue = review_queue(session, threshold, offset, limit)
        added = added_since(session, last_training(request))
    return ReviewQueueOut(
        total=queue.total,
        offset=queue.offset,
        limit=queue.limit,
        threshold=threshold,
        added_since_training=added,
        turns=[ReviewTurn(**item.as_json()) for item in queue.items],
    )


@api.post(
    "/script/review/{turn_id}",
    response_model=LabelOut,
    summary="标注一条客户发言（写入 dialogs/data/nlu/from_calls.yml，下次训练生效）或跳过",
)
def label_api(request: Request, turn_id: int, body: LabelIn, principal: Principal = Depends(writers_only)) -> LabelOut:
    if body.skip == bool(body.intent):
        raise UserError("请选择一个意图，或设置 skip=true 跳过（二者选一）")
    result = _label(request, turn_id, None if body.skip else body.intent, principal)
    place = result.example.place if result.example else None
    return LabelOut(
        turn_id=turn_id,
        intent=result.intent,
        outcome=result.outcome,
        text=result.text,
        place=str(place) if place else None,
        message=result_message(result),
    )


# ---- page -----------------------------------------------------------------------------------------


@pages.get("/script/review")
def review_page(request: Request, page: int = Query(1, ge=1), principal: Principal = Depends(writers_only)):
    threshold = fallback_threshold(_services(request).project)
    offset = (page - 1) * DEFAULT_PAGE_SIZE
    with session_scope(request.app.state.engine) as session:
        queue = review_queue(session, threshold, offset, DEFAULT_PAGE_SIZE)
        added = added_since(session, last_training(request))
    return render(
        request,
        "script/review.html",
        queue=queue,
        page_number=page,
        pages=max(1, -(-queue.total // DEFAULT_PAGE_SIZE)),
        threshold=threshold,
        added=added,
        intents=intent_choices(request),
        reasons=REASON,
        tool_file=f"{_services(request).project.root.name}/{TOOL_FILE}",
        # The call page belongs to managers and ops; writers see the call's number only.
        may_open_calls=principal.may(MANAGER, OPS),
    )


@pages.post("/script/review/{turn_id}")
def label_form(
    request: Request,
    turn_id: int,
    intent: str = Form(""),
    action: str = Form("label"),
    page: int = Form(1),
    principal: Principal = Depends(writers_only),
):
    skip = action == "skip"
    try:
        if not skip and not intent:
            raise UserError("请先在下拉框中选择意图，或点“跳过”")
        result = _label(request, turn_id, None if skip else intent, principal)
    except UserError as exc:
        flash(request, str(exc), "error")
    else:
        flash(request, result_message(result), "warning" if result.outcome == IN_TEST_SET else "success")
    return RedirectResponse(f"/script/review?page={max(1, page)}", status_code=303)
