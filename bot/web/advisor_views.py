"""我的添加任务: advisors' WeCom add tasks (advisor_adds mode), the audited number reveal, 已添加.

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
from bot.users.models import User
from bot.web.params import record_id
from bot.web.rendering import flash, render
from bot.web.security import ADVISOR, MANAGER, Forbidden, Principal, require_role
from bot.wecom.advisor_tasks import (
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


def _user(session, principal: Principal) -> User:
    user = session.get(User, principal.user_id)
    if user is None:
        raise Forbidden("账号不存在，请重新登录")
    return user


def _tasks_page(request: Request, principal: Principal, *, revealed: dict[int, str] | None = None):
    with session_scope(request.app.state.engine) as session:
        cancel_opted_out(session)  # people who opted out since their call are not to be added
        user = _user(session, principal)
        sees_all = principal.role != ADVISOR
        tasks = list_tasks(session, advisor_userid=None if sees_all else (user.wecom_userid or "\0"))
        audit = reveal_audit(session) if sees_all else []
        own_userid = user.wecom_userid
    response = render(
        request,
        "advisor/tasks.html",
        tasks=tasks,
        audit=audit,
        sees_all=sees_all,
        own_userid=own_userid,
        revealed=revealed or {},
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
            mark_done(session, task_id, _user(session, principal))
        except NotYourTask:
            raise Forbidden(f"任务 {task_code(task_id)} 不是分配给您的，不能标记") from None
    flash(request, f"任务 {task_code(task_id)} 已标记为已添加；客户通过好友验证后会自动变为“已加好友”")
    return RedirectResponse(TASKS_PATH, status_code=303)
