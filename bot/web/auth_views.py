"""Login, logout and the home page."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from bot.core.db.engine import session_scope
from bot.users.service import authenticate
from bot.web.rendering import navigation_for, render
from bot.web.security import Principal, end_session, optional_principal, require_login, safe_next, start_session

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["账号"])

# Password guessing: after this many failures for one name within the window, that name is
# refused until the window has passed (per server process; scrypt already makes each try slow).
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60


class LoginThrottle:
    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> deque[float]:
        failures = self._failures[name]
        while failures and now - failures[0] > FAILURE_WINDOW_S:
            failures.popleft()
        return failures

    def blocked_for(self, name: str) -> float:
        now = time.monotonic()
        with self._lock:
            failures = self._recent(name, now)
            return FAILURE_WINDOW_S - (now - failures[0]) if len(failures) >= MAX_FAILURES else 0.0

    def failed(self, name: str) -> None:
        with self._lock:
            self._recent(name, time.monotonic()).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)


def _throttle(request: Request) -> LoginThrottle:
    if not hasattr(request.app.state, "login_throttle"):
        request.app.state.login_throttle = LoginThrottle()
    return request.app.state.login_throttle


@pages.get("/login")
def login_page(request: Request, next: str = "/"):
    if optional_principal(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), name="")


@pages.post("/login")
def login(request: Request, name: str = Form(""), password: str = Form(""), next: str = Form("/")):
    throttle, key = _throttle(request), name.strip().lower()
    wait = throttle.blocked_for(key)
    if wait > 0:
        return render(request, "login.html", status_code=429, next=safe_next(next), name=name,
                      error=f"登录失败次数过多，请约 {max(1, round(wait / 60))} 分钟后再试，或联系管理员重置密码")
    with session_scope(request.app.state.engine) as session:
        user = authenticate(session, name, password)
        if user is not None:
            start_session(request, user)
    if user is None:
        throttle.failed(key)
        return render(request, "login.html", status_code=401, next=safe_next(next), name=name,
                      error="用户名或密码不正确")
    throttle.succeeded(key)
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
