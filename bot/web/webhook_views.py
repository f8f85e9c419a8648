"""集成 / Webhook: managers and admins see the CRM endpoints, recent deliveries and the dead
letters (死信), and send a dead one again (重新投递, CSRF-checked like every form).

Endpoints are added on the command line (`waihu webhooks add`), which shows the signing secret once."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.web.params import record_id
from bot.web.rendering import flash, render
from bot.web.security import MANAGER, Principal, require_role
from bot.webhooks.delivery import MAX_ATTEMPTS
from bot.webhooks.events import EVENT_TYPES
from bot.webhooks.service import list_deliveries, list_endpoints, replay

pages = APIRouter(include_in_schema=False)
managers_only = require_role(MANAGER)
PAGE = "/integrations/webhooks"

STATUS_LABELS = {"pending": "待投递", "delivered": "已投递", "dead": "死信"}
EVENT_LABELS = {
    "call.finished": "通话结束",
    "lead.graded": "线索定级",
    "wecom.added": "添加企微",
    "sop.step_sent": "SOP 步骤已发送",
    "conversion.matched": "成交匹配",
    "lead.routed": "线索分流",
}


@pages.get(PAGE)
def webhooks_page(request: Request, principal: Principal = Depends(managers_only)):
    with session_scope(request.app.state.engine) as session:
        endpoints = list_endpoints(session)
        recent = list_deliveries(session, limit=30)
        dead = list_deliveries(session, dead_only=True, limit=100)
    return render(
        request,
        "manager/webhooks.html",
        endpoints=endpoints,
        recent=recent,
        dead=dead,
        status_labels=STATUS_LABELS,
        event_labels=EVENT_LABELS,
        event_types=EVENT_TYPES,
        max_attempts=MAX_ATTEMPTS,
    )


@pages.post(PAGE + "/deliveries/{delivery_id}/replay")
def replay_form(
    request: Request, delivery_id: int = record_id("投递编号"), principal: Principal = Depends(managers_only)
):
    try:
        with session_scope(request.app.state.engine) as session:
            replay(session, delivery_id)
    except UserError:
        flash(request, f"投递 {delivery_id} 不存在或仍在投递中，无需重新投递", "error")
    else:
        flash(request, f"投递 {delivery_id} 已重新排队，下一轮投递（约 5 秒内）发送，投递编号不变")
    return RedirectResponse(PAGE + "#dead-letters", status_code=303)
