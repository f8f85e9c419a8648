"""Login, logout and the home page."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from bot.db.engine import session_scope
from bot.users.service import authenticate
from bot.web.rendering import navigation_for, render
from bot.web.security import Principal, end_session, optional_principal, require_login, safe_next, start_session

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["账号"])


@pages.get("/login")
def login_page(request: Request, next: str = "/"):
    if optional_principal(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), name="")


@pages.post("/login")
def login(request: Request, name: str = Form(""), password: str = Form(""), next: str = Form("/")):
    with session_scope(request.app.state.engine) as session:
        user = authenticate(session, name, password)
        if user is not None:
            start_session(request, user)
    if user is None:
        return render(request, "login.html", status_code=401, next=safe_next(next), name=name,
                      error="用户名或密码不正确")
    return RedirectResponse(safe_next(next), status_code=303)


@pages.post("/logout")
def logout(request: Request):
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
