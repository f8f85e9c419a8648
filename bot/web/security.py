"""Who is asking, and may they: sessions, API tokens, roles, CSRF.

Pages use a signed session cookie (Starlette's SessionMiddleware, itsdangerous): it holds
the user id, a stamp of the password hash (a new password ends old sessions), the login
time (absolute lifetime), the last request time (idle timeout) and the CSRF token.
Automation sends `Authorization: Bearer wh_…`; a request carrying a bearer token is judged
by the token alone, never by a cookie, so it needs no CSRF token.
"""
from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request

from bot.core.db.engine import session_scope
from bot.users.models import User
from bot.users.service import password_stamp
from bot.users.tokens import user_for_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Called by WeCom's servers, not by a browser with our cookie: authenticated by WeCom's own
# msg_signature over the encrypted body (bot.wecom), so no CSRF token applies.
CSRF_EXEMPT_PREFIXES = ("/wecom/callback",)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

# Which role owns which area; admin may do everything.
OPS, WRITER, MANAGER, ADMIN = "ops", "writer", "manager", "admin"


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    role: str
    via: str  # "session" | "token"

    def may(self, *roles: str) -> bool:
        return self.role == ADMIN or self.role in roles


class LoginRequired(HTTPException):
    def __init__(self, message: str = "请先登录") -> None:
        super().__init__(status_code=401, detail=message)


class Forbidden(HTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(status_code=403, detail=message)


def csrf_token(request: Request) -> str:
    """This session's CSRF token (created on first use, also for the login form)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def start_session(request: Request, user: User) -> None:
    """A fresh session for a user who just logged in (new CSRF token: no session fixation)."""
    request.session.clear()
    now = int(time.time())
    request.session.update({"uid": user.id, "stamp": password_stamp(user), "issued": now, "seen": now,
                            "csrf": secrets.token_urlsafe(32)})


def end_session(request: Request, reason: str | None = None) -> None:
    request.session.clear()
    if reason:
        request.session["flash"] = [("warning", reason)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _principal_from_token(request: Request, token: str) -> Principal:
    with session_scope(request.app.state.engine) as session:
        user = user_for_token(session, token)
        if user is None:
            raise LoginRequired("API 令牌无效或已吊销")
        return Principal(user.id, user.name, user.role, "token")


def _principal_from_session(request: Request) -> Principal | None:
    uid = request.session.get("uid")
    if uid is None:
        return None
    config = request.app.state.config
    now = time.time()
    if now - float(request.session.get("issued", 0)) > config.session_lifetime_s:
        end_session(request, "登录已超过有效期，请重新登录")
        return None
    if now - float(request.session.get("seen", 0)) > config.idle_timeout_s:
        end_session(request, "长时间未操作，会话已过期，请重新登录")
        return None
    with session_scope(request.app.state.engine) as session:
        user = session.get(User, uid)
        if user is None or not hmac.compare_digest(password_stamp(user), str(request.session.get("stamp", ""))):
            end_session(request, "账号信息已变更，请重新登录")
            return None
        principal = Principal(user.id, user.name, user.role, "session")
    request.session["seen"] = int(now)
    return principal


def optional_principal(request: Request) -> Principal | None:
    """The caller, or None when not logged in (raises for a bad bearer token)."""
    cached = getattr(request.state, "principal", ...)
    if cached is not ...:
        return cached
    token = _bearer(request)
    principal = _principal_from_token(request, token) if token else _principal_from_session(request)
    request.state.principal = principal
    return principal


def require_login(request: Request) -> Principal:
    principal = optional_principal(request)
    if principal is None:
        raise LoginRequired()
    return principal


ROLE_NAMES = {OPS: "运营", WRITER: "话术师", MANAGER: "经理", ADMIN: "管理员"}


def require_role(*roles: str) -> Callable[..., Principal]:
    """A dependency: the caller, if their role is one of `roles` (or admin); else 403."""
    allowed = "、".join(ROLE_NAMES[r] for r in roles)

    def dependency(principal: Principal = Depends(require_login)) -> Principal:
        if not principal.may(*roles):
            raise Forbidden(f"此操作仅限{allowed}或管理员（您的角色：{ROLE_NAMES.get(principal.role, principal.role)}）")
        return principal

    return dependency


async def verify_csrf(request: Request) -> None:
    """App-wide dependency: every state-changing request made with the session cookie must
    carry the session's CSRF token (header for fetch()/XHR, hidden field for forms) and,
    when the browser names an Origin, come from this site."""
    if request.method in SAFE_METHODS or _bearer(request) or request.url.path.startswith(CSRF_EXEMPT_PREFIXES):
        return
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("请求来源与本站不符，已拒绝（CSRF 防护）")
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and _is_form(request):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise Forbidden("安全校验失败（CSRF 令牌缺失或不匹配），请刷新页面后重试")


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target)}"


def safe_next(target: str | None) -> str:
    """Only same-site paths after login (no open redirect to //evil.example)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
