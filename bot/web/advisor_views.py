"""我的添加任务: advisors' WeCom add tasks (advisor_adds mode) and call-back tasks (a landline
A/B callee; a hand-off to a human nobody took: 转人工·回电, with its window), the audited number
reveal, 已添加 / 已回电. An open task past its due time shows 已超时 (managers see all advisors').

An advisor sees their own open tasks with masked numbers. 显示号码 (POST + CSRF) shows the
clear number once, on that response only (never stored in the session, `no-store`), and
only to the task's assigned advisor: bot.wecom.advisor_tasks writes the audit row first and
refuses everyone else, admins included (403). Managers and admins see every task and the
reveal audit, masked.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from bot.core.db.engine import session_scope
from bot.dialing.routing import NotYourLead, list_routes, mark_route_done, reveal_route_number, route_reveals
from bot.dialing.routing_models import HELD_ROUTES
from bot.users.models import User
from bot.web.exports import ExportFormat, Sheet, download
from bot.web.params import record_id
from bot.web.rendering import flash, render
from bot.web.security import ADVISOR, MANAGER, Forbidden, Principal, require_role
from bot.wecom.advisor_tasks import (
    CALL_BACK_KINDS,
    NotYourTask,
    OptedOut,
    cancel_opted_out,
    list_tasks,
    mark_done,
    reveal_audit,
    reveal_number,
    task_code,
)

pages = APIRouter(include_in_schema=False)
api = APIRouter()

advisors_and_managers = require_role(ADVISOR, MANAGER)
TASKS_PATH = "/advisor/tasks"
ROUTES_PATH = "/advisor/routes"
ROUTE_LABELS = {"human": "人工跟进", "advisor": "顾问一对一", "ai": "机器人"}


def _user(session, principal: Principal) -> User:
    user = session.get(User, principal.user_id)
    if user is None:
        raise Forbidden("账号不存在，请重新登录")
    return user


def _routed_leads(session, principal: Principal, user: User) -> list:
    """Leads dialogs/routing.yml sent to people (人工跟进线索): an advisor sees those assigned
    to them and the unassigned ones; managers see all."""
    routes = [r for r in list_routes(session) if r.route in HELD_ROUTES]
    if principal.role == ADVISOR:
        routes = [r for r in routes if not r.advisor_userid or r.advisor_userid == user.wecom_userid]
    return routes


def _tasks_page(
    request: Request,
    principal: Principal,
    *,
    revealed: dict[int, str] | None = None,
    revealed_leads: dict[int, str] | None = None,
):
    with session_scope(request.app.state.engine) as session:
        cancel_opted_out(session)  # people who opted out since their call are not to be added
        user = _user(session, principal)
        sees_all = principal.role != ADVISOR
        tasks = list_tasks(session, advisor_userid=None if sees_all else (user.wecom_userid or "\0"))
        audit = reveal_audit(session) if sees_all else []
        own_userid = user.wecom_userid
        routed = _routed_leads(session, principal, user)
        routed_audit = route_reveals(session) if sees_all else []
    response = render(
        request,
        "advisor/tasks.html",
        tasks=tasks,
        audit=audit,
        sees_all=sees_all,
        own_userid=own_userid,
        revealed=revealed or {},
        routed=routed,
        routed_audit=routed_audit,
        route_labels=ROUTE_LABELS,
        revealed_leads=revealed_leads or {},
    )
    response.headers["Cache-Control"] = "no-store"  # a revealed number must not stay in a cache
    return response


@pages.get(TASKS_PATH)
def tasks_page(request: Request, principal: Principal = Depends(advisors_and_managers)):
    return _tasks_page(request, principal)


@pages.post(TASKS_PATH + "/{task_id}/reveal")
def reveal(
    request: Request, task_id: int = record_id("任务编号"), principal: Principal = Depends(require_role(ADVISOR))
):
    with session_scope(request.app.state.engine) as session:
        try:
            phone = reveal_number(
                session,
                request.app.state.services.keyring,
                task_id,
                _user(session, principal),
                ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            )
        except NotYourTask:
            raise Forbidden(f"任务 {task_code(task_id)} 不是分配给您的，不能查看号码") from None
        except OptedOut:
            flash(request, f"任务 {task_code(task_id)} 的客户已要求不再联系，任务已取消，号码不予显示", "warning")
            return RedirectResponse(TASKS_PATH, status_code=303)  # the page cancels it
    return _tasks_page(request, principal, revealed={task_id: phone})


@pages.post(TASKS_PATH + "/{task_id}/done")
def done(request: Request, task_id: int = record_id("任务编号"), principal: Principal = Depends(require_role(ADVISOR))):
    with session_scope(request.app.state.engine) as session:
        try:
            kind = mark_done(session, task_id, _user(session, principal)).kind
        except NotYourTask:
            raise Forbidden(f"任务 {task_code(task_id)} 不是分配给您的，不能标记") from None
    if kind in CALL_BACK_KINDS:
        flash(request, f"任务 {task_code(task_id)} 已标记为已回电")
    else:
        flash(request, f"任务 {task_code(task_id)} 已标记为已添加；客户通过好友验证后会自动变为“已加好友”")
    return RedirectResponse(TASKS_PATH, status_code=303)


@pages.post(ROUTES_PATH + "/{lead_id}/reveal")
def reveal_routed(
    request: Request, lead_id: int = record_id("线索编号"), principal: Principal = Depends(require_role(ADVISOR))
):
    with session_scope(request.app.state.engine) as session:
        try:
            phone = reveal_route_number(
                session,
                request.app.state.services.keyring,
                lead_id,
                _user(session, principal),
                ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            )
        except NotYourLead:
            raise Forbidden(f"线索 {lead_id} 已分配给其他顾问，不能查看号码") from None
    return _tasks_page(request, principal, revealed_leads={lead_id: phone})


@pages.post(ROUTES_PATH + "/{lead_id}/done")
def routed_done(
    request: Request, lead_id: int = record_id("线索编号"), principal: Principal = Depends(require_role(ADVISOR))
):
    with session_scope(request.app.state.engine) as session:
        try:
            mark_route_done(session, lead_id, _user(session, principal))
        except NotYourLead:
            raise Forbidden(f"线索 {lead_id} 已分配给其他顾问，不能标记") from None
    flash(request, f"线索 {lead_id} 已标记为跟进完成")
    return RedirectResponse(TASKS_PATH, status_code=303)


@pages.get(ROUTES_PATH + ".{fmt}")
def export_routed(request: Request, fmt: ExportFormat, principal: Principal = Depends(require_role(MANAGER))):
    """The human queue as CSV/XLSX: masked numbers only."""
    with session_scope(request.app.state.engine) as session:
        routes = [r for r in list_routes(session, limit=100_000) if r.route in HELD_ROUTES]
    sheet = Sheet(
        "人工跟进线索",
        ("线索编号", "客户", "手机号", "分流", "规则", "原因", "分配顾问", "分流时间"),
        (
            [
                r.lead_id,
                r.name or "",
                r.phone_masked,
                ROUTE_LABELS.get(r.route, r.route),
                r.rule.rsplit("/", 1)[-1],
                r.reason,
                r.advisor_userid or "",
                r.routed_at,
            ]
            for r in routes
        ),
    )
    return download([sheet], fmt, "人工跟进线索")
