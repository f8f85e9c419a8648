"""Login, logout and the home page."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from bot.core.db.engine import session_scope
from bot.users.service import MAX_NAME_CHARS, MAX_PASSWORD_CHARS, authenticate, end_sessions, password_stamp
from bot.web.login_guard import LoginGuard, LoginRefused
from bot.web.rendering import navigation_for, render
from bot.web.security import (
    Principal,
    SessionUser,
    end_session,
    optional_principal,
    require_login,
    safe_next,
    start_session,
)

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["账号"])


def login_guard(request: Request) -> LoginGuard:
    """The app's guard (bot.web.login_guard), made by create_app with the web config's limits."""
    return request.app.state.login_guard


def client_address(request: Request) -> str:
    # The peer as uvicorn reports it (behind a proxy: run uvicorn with --proxy-headers and
    # --forwarded-allow-ips so this is the real client, not the proxy).
    return request.client.host if request.client else "?"


def _check_password(engine, name: str, password: str) -> SessionUser | None:
    with session_scope(engine) as session:
        user = authenticate(session, name, password)
        return SessionUser(user.id, password_stamp(user), user.session_generation) if user is not None else None


@pages.get("/login")
def login_page(request: Request, next: str = "/"):
    if optional_principal(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), name="")


@pages.post("/login")
async def login(request: Request, name: str = Form(""), password: str = Form(""), next: str = Form("/")):
    next = safe_next(next)
    key = name.strip().lower()
    if len(key) > MAX_NAME_CHARS or len(password) > MAX_PASSWORD_CHARS:
        # Before any work: no reservation, no hash, the name is not echoed back.
        return render(
            request,
            "login.html",
            status_code=400,
            next=next,
            name="",
            error=f"用户名最多 {MAX_NAME_CHARS} 个字符、密码最多 {MAX_PASSWORD_CHARS} 个字符",
        )
    guard = login_guard(request)
    try:
        attempt = guard.reserve(key, client_address(request))
    except LoginRefused as refused:
        return _refused(request, refused, next, name)
    try:
        user = await guard.hash_bounded(_check_password, request.app.state.engine, name, password)
    except LoginRefused as refused:
        attempt.released()
        return _refused(request, refused, next, name)
    except BaseException:
        attempt.failed()
        raise
    if user is None:
        attempt.failed()
        return render(request, "login.html", status_code=401, next=next, name=name, error="用户名或密码不正确")
    attempt.succeeded()
    start_session(request, user)
    return RedirectResponse(next, status_code=303)


def _refused(request: Request, refused: LoginRefused, next: str, name: str):
    response = render(request, "login.html", status_code=refused.status, next=next, name=name, error=refused.message)
    response.headers["Retry-After"] = str(refused.retry_after_s)
    return response


@pages.post("/logout")
def logout(request: Request):
    """Ends this session and every other session of the same user (a copied cookie stops working)."""
    principal = optional_principal(request) if request.session.get("uid") is not None else None
    if principal is not None and principal.via == "session":
        with session_scope(request.app.state.engine) as session:
            end_sessions(session, principal.user_id)
    end_session(request, "已退出登录")
    return RedirectResponse("/login", status_code=303)


@pages.get("/")
def home(request: Request, principal: Principal = Depends(require_login)):
    return render(request, "home.html", areas=navigation_for(principal))


class Me(BaseModel):
    name: str
    role: str
    via: str


@api.get("/me", response_model=Me, summary="当前调用者（会话或 API 令牌）")
def me(principal: Principal = Depends(require_login)) -> Me:
    return Me(name=principal.name, role=principal.role, via=principal.via)
