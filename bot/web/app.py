"""The web console: FastAPI with server-rendered pages and the JSON API they use.

`create_app()` wires the pieces: the signed session cookie, the upload size limit, CSRF on
every state-changing request, security headers, static files (Chart.js vendored, no CDN),
and one router per area (ops, script writers, managers). `waihu serve` runs it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from bot.core.errors import UserError
from bot.core.pii import mask_digit_runs
from bot.web.config import WebConfig, web_config
from bot.web.limits import BodySizeLimit
from bot.web.login_guard import LoginGuard
from bot.web.security import OPS, AuthenticateFirst, login_url, verify_csrf
from bot.wecom import callback as wecom_callback
from bot.wecom import sop_links

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"
UPLOAD_PATHS = (f"{API_PREFIX}/lead-packs",)

_STATUS_TEXT = {
    400: "请求有误",
    401: "请先登录",
    403: "没有权限",
    404: "页面不存在",
    405: "不支持该操作",
    409: "内容冲突",
    413: "文件太大",
    415: "文件类型不支持",
    422: "输入有误",
    500: "服务器内部错误",
}


def create_app(config: WebConfig | None = None, engine: Engine | None = None) -> FastAPI:
    config = config or web_config()
    if engine is None:
        from bot.core.db.engine import open_database

        engine = open_database(config.settings.database_url)

    app = FastAPI(
        title="waihu 外呼控制台 API",
        version="1",
        description="外呼控制台背后的 JSON 接口。自动化调用请在请求头中带上 `Authorization: Bearer <API 令牌>`"
        "（令牌用 `waihu users token NAME --label … --scope …` 或在“我的账号”页面创建，角色与其用户相同；"
        "令牌只能调用 /api/v1 接口，且只能调用其权限范围内的接口：`leads:write` 线索名单与人群包，"
        "`campaigns:write` 外呼任务，`reports:read` 通话记录、报告与企微漏斗，`conversions:write` 回传成交；修改密码会吊销该用户的全部令牌）。",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(verify_csrf)],
    )
    app.state.config = config
    app.state.engine = engine

    from bot.web.runtime import ConsoleServices

    app.state.services = ConsoleServices(config, engine)
    app.state.login_guard = LoginGuard(config.login_limits)

    # Added last = outermost: the size limit runs before anything reads the body; inside the
    # session, the caller of a state-changing request is known before its body is parsed.
    app.add_middleware(AuthenticateFirst, roles_by_path=tuple((path, (OPS,)) for path in UPLOAD_PATHS))
    app.add_middleware(
        SessionMiddleware,
        secret_key=config.session_secret,
        session_cookie="waihu_session",
        max_age=int(config.session_lifetime_s),
        same_site="lax",
        https_only=config.secure_cookie,
    )
    app.add_middleware(BodySizeLimit, upload_limit=config.max_upload_bytes, upload_paths=UPLOAD_PATHS)

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # No inline scripts anywhere: pages pass data in <script type="application/json">.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    from bot.web import account_views, auth_views, lead_api_views, manager_views, metrics_views, ops_views, script_views

    for module in (auth_views, account_views, ops_views, script_views, manager_views):
        app.include_router(module.pages)
        app.include_router(module.api, prefix=API_PREFIX)
    app.include_router(lead_api_views.api, prefix=API_PREFIX)  # POST /api/v1/leads (speed to lead)
    from bot.web import conversion_api_views  # POST /api/v1/conversions (issue 17 item 4)

    app.include_router(conversion_api_views.api, prefix=API_PREFIX)
    from bot.web import review_views  # 待标注: writers label unsure caller turns (issue 16 item 17)

    app.include_router(review_views.pages)
    app.include_router(review_views.api, prefix=API_PREFIX)
    from bot.web import advisor_views  # 我的添加任务: advisor_adds tasks, audited reveal (issue 18 item 5)

    app.include_router(advisor_views.pages)

    # WeCom's callback (issue 6): WeCom's servers call it, it checks their signature itself.
    app.include_router(wecom_callback.router, prefix="/wecom/callback", include_in_schema=False)
    app.include_router(sop_links.router, prefix="/r")  # follow-up sequences' tracked links (no login)
    app.include_router(metrics_views.router)  # /metrics for Prometheus (bot/web/metrics_views.py)
    from bot.web import webhook_views  # 集成 / Webhook: CRM endpoints, deliveries, dead letters (issue 17)

    app.include_router(webhook_views.pages)
    from bot.web import sop_views  # 跟进序列: WeCom follow-up sequences per arm, a lead's timeline (issue 17)

    app.include_router(sop_views.pages)

    _install_error_handlers(app)

    @app.on_event("startup")
    def _preload() -> None:
        if config.warm_up_validation:
            app.state.services.warm_up_validation()
        if config.preload_agent:
            app.state.services.agent_host.load_in_background()

    @app.on_event("shutdown")
    def _shutdown() -> None:
        app.state.services.close()

    return app


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def _install_error_handlers(app: FastAPI) -> None:
    from bot.web.rendering import render

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> Response:
        # Messages from the services name the file/line/field; digits that look like phones are masked.
        message = mask_digit_runs(str(exc))
        details = [mask_digit_runs(d) for d in exc.details]
        if wants_json(request):
            return JSONResponse({"detail": message, "details": details}, status_code=400)
        return render(request, "error.html", status_code=400, title="操作未完成", message=message, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, (str, dict, list)) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = "没有找到这个页面或记录"
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = "不支持该请求方式"
        if wants_json(request):
            return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))
        if exc.status_code == 401:
            # Keep a more specific reason (session expired, password changed) if one was set.
            request.session.setdefault("flash", [("warning", detail if isinstance(detail, str) else "请先登录")])
            return RedirectResponse(login_url(request), status_code=303)
        return render(
            request,
            "error.html",
            status_code=exc.status_code,
            title=_STATUS_TEXT.get(exc.status_code, "出错了"),
            message=detail,
            details=[],
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}：{_field_message(e)}" for e in exc.errors()
        ]
        if wants_json(request):
            return JSONResponse({"detail": "输入有误：" + "；".join(problems), "errors": exc.errors()}, status_code=422)
        return render(
            request, "error.html", status_code=422, title="输入有误", message="请检查以下字段", details=problems
        )


def _field_message(error: dict) -> str:
    kind = str(error.get("type", ""))
    limit = (error.get("ctx") or {}).get("limit_value")
    if kind.endswith(("not_le", "not_lt")) and limit is not None:
        return f"不能大于 {limit}"
    if kind.endswith(("not_ge", "not_gt")) and limit is not None:
        return f"不能小于 {limit}"
    if "missing" in kind:
        return "必填"
    if "integer" in kind or "int" in kind:
        return "需要整数"
    if "float" in kind or "number" in kind:
        return "需要数字"
    return str(error.get("msg", "格式不对"))
