"""Speed to lead: POST /api/v1/leads — one lead or a small batch from the caller's system.

Token auth (`leads:write`, role ops) like the other lead APIs; the work is
`bot.leads.api_leads.add_leads`, the same path as `waihu leads add`. Answers: 201 when a lead
was added, 200 when every lead was already there (a retry: same external id, same lead), 422
when none was taken — each lead's result says accepted / duplicate / rejected, a rejected one
with where (leads[i].field) and what.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional, Union

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bot.leads.api_leads import ACCEPTED, DUPLICATE, MAX_BATCH, LeadIn, add_leads
from bot.web import labels
from bot.web.security import OPS, Principal, require_role

api = APIRouter(tags=["运营"])
ops_only = require_role(OPS)


class ApiLead(BaseModel):
    phone: str = Field(..., description="手机号或座机号（存储时加密，返回时脱敏）")
    lead_left_at: Optional[Union[datetime, str]] = Field(
        None, description="留资时间（必填）：ISO 8601；不带时区按北京时间。同时作为第一方授权时间"
    )
    external_id: Optional[str] = Field(
        None, max_length=100, description="调用方的线索编号：同一名单内重复提交返回同一条线索（幂等）；不填则按号码"
    )
    name: Optional[str] = None
    gender: Optional[str] = Field(None, description="男/女")
    consent_source: Optional[str] = Field(None, description="授权来源（默认 first_party）")
    consent_scope: Optional[str] = None
    province: Optional[str] = Field(None, max_length=50, description="省份（可选；不填按号码归属地）")
    city: Optional[str] = Field(None, max_length=50, description="城市（可选；决定当地时区与本地主叫号码）")
    fields: dict[str, str] = Field({}, description="其他字段（如 产品、渠道），与上传名单的自定义列相同")


class AddLeadsIn(BaseModel):
    audience: str = Field(..., min_length=1, max_length=100, description="人群包名称（不存在则创建）")
    pack: Optional[str] = Field(None, max_length=200, description="线索名单名称；默认“API·人群包名称”")
    leads: list[ApiLead] = Field(..., description=f"线索（1–{MAX_BATCH} 条）")


@api.post(
    "/leads",
    summary="提交线索（速联：留资后几分钟内外呼）",
    description="一条或一小批（最多 500 条）线索进入该人群包的接口名单，经过与上传名单相同的校验、去重和免打扰过滤；"
    "包含该名单的外呼任务在拨打时段内优先拨打（通常 5 分钟内）。同一名单内相同 external_id 重复提交返回同一条线索（200）。",
    responses={
        201: {"description": "有新线索"},
        200: {"description": "全部已存在（重试）"},
        422: {"description": "全部被拒收"},
    },
)
def add_leads_api(request: Request, body: AddLeadsIn, principal: Principal = Depends(ops_only)) -> JSONResponse:
    if not body.leads:
        raise HTTPException(422, "leads：至少提交一条线索")
    if len(body.leads) > MAX_BATCH:
        raise HTTPException(
            422, f"leads：一次提交了 {len(body.leads)} 条，最多 {MAX_BATCH} 条；更多线索请分批提交或上传名单文件"
        )
    leads = [
        LeadIn(
            phone=lead.phone,
            lead_left_at=lead.lead_left_at,
            name=lead.name,
            gender=lead.gender,
            external_id=lead.external_id,
            consent_source=lead.consent_source,
            consent_scope=lead.consent_scope,
            province=lead.province,
            city=lead.city,
            fields=dict(lead.fields),
        )
        for lead in body.leads
    ]
    outcome = add_leads(
        request.app.state.engine,
        request.app.state.services.keyring,
        leads,
        audience=body.audience,
        pack=body.pack,
        added_by=principal.name,
    )
    results = []
    for result in outcome.results:
        item = result.as_json()
        for error in item["errors"]:
            error["label"] = labels.label(labels.REJECT_REASON, error["reason"])
        results.append(item)
    accepted, duplicates = outcome.count(ACCEPTED), outcome.count(DUPLICATE)
    status = 201 if accepted else 200 if duplicates else 422
    return JSONResponse(
        {
            "pack": outcome.pack,
            "pack_id": outcome.pack_id,
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": len(results) - accepted - duplicates,
            "results": results,
        },
        status_code=status,
    )
