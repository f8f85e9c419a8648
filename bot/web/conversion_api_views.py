"""POST /api/v1/conversions — policies and premium from the insurer's system (issue 17, item 4).

Token auth (`conversions:write`; ops or manager). One conversion or a batch of up to 500;
each item's result says accepted / duplicate / unmatched / rejected, the last two with
where (conversions[i].field) and what. 201 when a policy was accepted, 200 when every item
was already stored (a retry), 422 when none was taken. Rows not taken are kept
(`waihu conversions rejects`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional, Union

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bot.core.db.engine import session_scope
from bot.core.settings import get_settings
from bot.experiments.conversion_models import SOURCE_API
from bot.experiments.conversions import ACCEPTED, DUPLICATE, MAX_BATCH, ConversionIn, record_conversions
from bot.web.security import MANAGER, OPS, Principal, require_role

api = APIRouter(tags=["成交"])
ops_or_managers = require_role(OPS, MANAGER)


class ApiConversion(BaseModel):
    policy_no: str = Field(..., description="保单号（唯一：重复提交返回 duplicate，不做任何修改）")
    product: str = Field(..., description="产品名称")
    premium: Union[float, str] = Field(..., description="保费（元），如 1288.00")
    converted_at: Union[datetime, str] = Field(..., description="成交时间：ISO 8601；不带时区按北京时间")
    external_id: Optional[str] = Field(None, description="线索的外部ID（提交线索时的 external_id）；优先用它匹配")
    phone: Optional[str] = Field(None, description="投保人手机号（没有外部ID时用它匹配；只用于匹配，不保存明文）")


class ConversionsIn(BaseModel):
    conversions: list[ApiConversion] = Field(..., description=f"成交（1–{MAX_BATCH} 条）")


@api.post(
    "/conversions",
    summary="回传成交（保单、保费）",
    description="一条或一批（最多 500 条）成交，按外部ID（否则按手机号）匹配到线索，并归因到该线索成交前最近一次接通的通话"
    "（默认 30 天内）及其实验分组，计入 A/B 报告的成交率和保费。同一保单号重复提交返回 duplicate（200）。",
    responses={
        201: {"description": "有新成交"},
        200: {"description": "全部已存在（重试）"},
        422: {"description": "全部未被接收（未匹配或字段错误）"},
    },
)
def add_conversions_api(
    request: Request, body: ConversionsIn, principal: Principal = Depends(ops_or_managers)
) -> JSONResponse:
    if not body.conversions:
        raise HTTPException(422, "conversions：至少提交一条成交")
    if len(body.conversions) > MAX_BATCH:
        raise HTTPException(
            422, f"conversions：一次提交了 {len(body.conversions)} 条，最多 {MAX_BATCH} 条；请分批提交或用文件导入"
        )
    items = [
        ConversionIn(
            policy_no=item.policy_no,
            product=item.product,
            premium=item.premium,
            converted_at=item.converted_at.isoformat()
            if isinstance(item.converted_at, datetime)
            else item.converted_at,
            external_id=item.external_id,
            phone=item.phone,
            row_number=index,
        )
        for index, item in enumerate(body.conversions)
    ]
    with session_scope(request.app.state.engine) as session:
        results = record_conversions(
            session,
            request.app.state.services.keyring,
            items,
            source=SOURCE_API,
            batch=f"api:{principal.name}"[:200],
            window_days=get_settings().conversion_window_days,
        )
    out = []
    for result in results:
        item = result.as_json()
        item["index"] = item.pop("row")
        for error in item["errors"]:
            error["where"] = f"conversions[{result.row_number}].{error['field']}"
        out.append(item)
    accepted = sum(r.status == ACCEPTED for r in results)
    duplicates = sum(r.status == DUPLICATE for r in results)
    status = 201 if accepted else 200 if duplicates else 422
    return JSONResponse(
        {
            "accepted": accepted,
            "attributed": sum(r.status == ACCEPTED and r.attributed for r in results),
            "duplicates": duplicates,
            "not_taken": len(results) - accepted - duplicates,
            "results": out,
        },
        status_code=status,
    )
