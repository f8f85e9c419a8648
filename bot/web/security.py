"""Who is asking, and may they: sessions, API tokens, roles, CSRF.

Pages use a signed session cookie (Starlette's SessionMiddleware, itsdangerous): it holds
the user id, a stamp of the password hash (a new password ends old sessions), the user's
session generation when the session began, the login time (absolute lifetime), the last
request time (idle timeout) and the CSRF token. The generation is checked against the
users table on every request: logout, a new password and a new role raise it, so every
earlier cookie of that user stops working, copies included.

Automation sends `Authorization: Bearer wh_…` to the JSON API (/api/v1) only; a request
carrying a bearer token is judged by the token alone, never by a cookie, so it needs no
CSRF token; the token must hold the scope of the API area (`TOKEN_SCOPE_BY_PATH`).

`AuthenticateFirst` (middleware) resolves the caller before any route reads a request
body: a state-changing request without a valid session or token is answered at once, so an
anonymous client cannot make the server parse a large multipart body.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.core.db.engine import session_scope
from bot.users.models import User
from bot.users.service import password_stamp
from bot.users.tokens import SCOPES, grant_for_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Called by WeCom's servers, not by a browser with our cookie: authenticated by WeCom's own
# msg_signature over the encrypted body (bot.wecom), so no CSRF token applies.
CSRF_EXEMPT_PREFIXES = ("/wecom/callback",)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
API_PREFIX = "/api/v1"

# Which scope an API token needs, by API area (path prefix, whole segments). An API path not
# listed here takes no token at all (e.g. the script editor's API: a writer's browser only).
TOKEN_SCOPE_BY_PATH: tuple[tuple[str, str | None], ...] = (
    (f"{API_PREFIX}/me", None),  # who am I: any live token
    (f"{API_PREFIX}/lead-packs", "leads:write"),
    (f"{API_PREFIX}/leads", "leads:write"),  # speed to lead: POST /api/v1/leads
    (f"{API_PREFIX}/conversions", "conversions:write"),  # POST /api/v1/conversions (policies, premium)
    (f"{API_PREFIX}/audiences", "leads:write"),
    (f"{API_PREFIX}/campaigns", "campaigns:write"),
    (f"{API_PREFIX}/calls", "reports:read"),
    (f"{API_PREFIX}/reports", "reports:read"),
    (f"{API_PREFIX}/wecom", "reports:read"),
)
assert all(scope is None or scope in SCOPES for _, scope in TOKEN_SCOPE_BY_PATH)
_NO_TOKEN = "no token"

# Which role owns which area; admin may do everything.
OPS, WRITER, MANAGER, ADMIN = "ops", "writer", "manager", "admin"
# Advisors (顾问) work their own WeCom add tasks (advisor_adds mode) and nothing else.
ADVISOR = "advisor"


@dataclass(frozen=True)
class Principal:
    user_id: int
    name: str
    role: str
    via: str  # "session" | "token"
    scopes: frozenset = frozenset()  # a token's scopes (sessions have none and need none)

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


@dataclass(frozen=True)
class SessionUser:
    """What a session is started from: the user id, password stamp and session generation."""

    id: int
    stamp: str
    generation: int

    @classmethod
    def of(cls, user: User) -> SessionUser:
        return cls(user.id, password_stamp(user), user.session_generation or 0)


def start_session(request: Request, user: SessionUser | User) -> None:
    """A fresh session for a user who just logged in (new CSRF token: no session fixation)."""
    if isinstance(user, User):
        user = SessionUser.of(user)
    request.session.clear()
    now = int(time.time())
    request.session.update(
        {
            "uid": user.id,
            "stamp": user.stamp,
            "gen": user.generation,
            "issued": now,
            "seen": now,
            "csrf": secrets.token_urlsafe(32),
        }
    )


def end_session(request: Request, reason: str | None = None) -> None:
    request.session.clear()
    if reason:
        request.session["flash"] = [("warning", reason)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def token_scope_for(path: str) -> str | None:
    """The scope an API token needs for `path` (None: any live token); `_NO_TOKEN` if tokens
    may not call it at all."""
    for prefix, scope in TOKEN_SCOPE_BY_PATH:
        if path == prefix or path.startswith(prefix + "/"):
            return scope
    return _NO_TOKEN


def _principal_from_token(request: Request, token: str) -> Principal:
    path = request.url.path
    if not path.startswith(API_PREFIX + "/"):
        # Not a session: a token cannot open pages, change a password or mint tokens.
        raise LoginRequired("API 令牌只能调用 /api/v1/ 下的接口；网页请用账号密码登录")
    with session_scope(request.app.state.engine) as session:
        grant = grant_for_token(session, token)
        if grant is None:
            raise LoginRequired("API 令牌无效或已吊销")
        principal = Principal(grant.user.id, grant.user.name, grant.user.role, "token", grant.scopes)
    needed = token_scope_for(path)
    if needed == _NO_TOKEN:
        raise Forbidden("此接口不接受 API 令牌，请在浏览器中登录后使用")
    if needed is not None and needed not in principal.scopes:
        held = "、".join(sorted(principal.scopes)) or "无"
        raise Forbidden(f"此 API 令牌没有“{needed}”权限（令牌权限：{held}）；请创建带该权限的令牌")
    return principal


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
        if request.session.get("gen") != (user.session_generation or 0):
            # Logged out (here or elsewhere), or the role changed: every older cookie ends.
            end_session(request, "会话已结束（已退出登录或账号权限已变更），请重新登录")
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


ROLE_NAMES = {OPS: "运营", WRITER: "话术师", MANAGER: "经理", ADMIN: "管理员", ADVISOR: "顾问"}


def require_role(*roles: str) -> Callable[..., Principal]:
    """A dependency: the caller, if their role is one of `roles` (or admin); else 403."""
    allowed = "、".join(ROLE_NAMES[r] for r in roles)

    def dependency(principal: Principal = Depends(require_login)) -> Principal:
        if not principal.may(*roles):
            raise Forbidden(
                f"此操作仅限{allowed}或管理员（您的角色：{ROLE_NAMES.get(principal.role, principal.role)}）"
            )
        return principal

    return dependency


async def verify_csrf(request: Request) -> None:
    """App-wide dependency: every state-changing request made with the session cookie must
    carry the session's CSRF token (header for fetch()/XHR, hidden field for forms) and,
    when the browser names an Origin, come from this site."""
    path = request.url.path
    if (
        request.method in SAFE_METHODS
        or path.startswith(CSRF_EXEMPT_PREFIXES)
        or (_bearer(request) and path.startswith(API_PREFIX + "/"))
    ):
        return
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("请求来源与本站不符，已拒绝（CSRF 防护）")
    expected = request.session.get("csrf")
    sent: UploadFile | str | None = request.headers.get(CSRF_HEADER)
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


# ---- authentication before the body is read ---------------------------------------------------

# State-changing requests that are answered without a logged-in caller.
ANONYMOUS_WRITES = ("/login", "/logout")


class AuthenticateFirst:
    """Pure ASGI middleware inside the session middleware: a POST/PUT/PATCH/DELETE is let
    through to its route (which parses the body: FastAPI reads forms and uploads before it
    runs the route's dependencies) only once the caller is known. Anonymous ones get 401
    (API, JSON) or the login page, and their body is never read. Roles are then checked by
    the route as before; a body whose route demands a role, e.g. uploads for ops, is
    refused here as well when the caller lacks it (`roles_by_path`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        exempt_prefixes: tuple[str, ...] = CSRF_EXEMPT_PREFIXES,
        roles_by_path: tuple[tuple[str, tuple[str, ...]], ...] = (),
    ) -> None:
        self.app = app
        self.exempt_prefixes = exempt_prefixes
        self.roles_by_path = roles_by_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)  # no receive: nothing here can read the body
        try:
            principal = await run_in_threadpool(optional_principal, request)
            if principal is None:
                raise LoginRequired()
            roles = next(
                (
                    r
                    for prefix, r in self.roles_by_path
                    if request.url.path == prefix or request.url.path.startswith(prefix + "/")
                ),
                None,
            )
            if roles and not principal.may(*roles):
                allowed = "、".join(ROLE_NAMES[r] for r in roles)
                raise Forbidden(
                    f"此操作仅限{allowed}或管理员（您的角色：{ROLE_NAMES.get(principal.role, principal.role)}）"
                )
        except HTTPException as exc:
            response = _early_answer(request, exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _exempt(self, path: str) -> bool:
        return path in ANONYMOUS_WRITES or path.startswith(self.exempt_prefixes)


def _early_answer(request: Request, exc: HTTPException):
    wants_json = request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")
    if wants_json or exc.status_code != 401:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers={"Connection": "close"})
    request.session.setdefault("flash", [("warning", exc.detail)])
    return RedirectResponse(login_url(request), status_code=303, headers={"Connection": "close"})
