"""Server-rendered pages: one Jinja2 environment, the navigation per role, flash messages."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from bot.core.pii import mask_digit_runs
from bot.web import labels
from bot.web.security import ADVISOR, MANAGER, OPS, WRITER, Principal, csrf_token, optional_principal
from bot.web.worker_health import dial_worker_health

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
DISPLAY_TZ = ZoneInfo("Asia/Shanghai")  # the console shows Beijing time; the database keeps UTC

# (area, label, path, roles allowed)
NAVIGATION = (
    ("packs", "线索名单", "/ops/packs", (OPS,)),
    ("audiences", "人群包", "/ops/audiences", (OPS,)),
    ("campaigns", "外呼任务", "/ops/campaigns", (OPS,)),
    ("script", "话术编辑", "/script", (WRITER,)),
    ("lab", "训练与试聊", "/script/lab", (WRITER,)),
    ("publish", "发布", "/script/publish", (WRITER,)),
    ("review", "待标注", "/script/review", (WRITER,)),
    ("reports", "A/B 对比", "/reports", (MANAGER,)),
    ("calls", "通话记录", "/calls", (MANAGER,)),
    ("wecom", "企微漏斗", "/wecom", (MANAGER,)),
    ("sop", "跟进序列", "/sop", (MANAGER, OPS)),
    ("advisor", "我的添加任务", "/advisor/tasks", (ADVISOR, MANAGER)),
    ("webhooks", "集成", "/integrations/webhooks", (MANAGER,)),
    ("account", "我的账号", "/account", (OPS, WRITER, MANAGER, ADVISOR)),
)


def beijing_time(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):  # ISO text from an API model
        value = datetime.fromisoformat(value)
    return value.astimezone(DISPLAY_TZ).strftime(fmt)


def percent(part: float | int | None, whole: float | int | None, digits: int = 1) -> str:
    if not whole:
        return "—"
    return f"{100 * (part or 0) / whole:.{digits}f}%"


_JSON_SCRIPT_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def to_json(value) -> Markup:
    """For <script type="application/json"> blocks: < > & as JSON escapes (as Django's json_script),
    so no text can close the tag or open a comment; JSON.parse reads them back unchanged."""
    return Markup(json.dumps(value, ensure_ascii=False, default=str).translate(_JSON_SCRIPT_ESCAPES))


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters.update(bj=beijing_time, masked=mask_digit_runs, tojson_safe=to_json)
templates.env.globals.update(labels=labels, label=labels.label, percent=percent, dial_worker_health=dial_worker_health)


def navigation_for(principal: Principal | None) -> list[tuple[str, str, str]]:
    if principal is None:
        return []
    return [(area, text, path) for area, text, path, roles in NAVIGATION if principal.may(*roles)]


def flash(request: Request, message: str, kind: str = "success") -> None:
    request.session.setdefault("flash", [])
    request.session["flash"] = [*request.session["flash"], (kind, message)]


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    try:
        principal = optional_principal(request)
    except Exception:  # a bad bearer token on a page: show it as logged out
        principal = None
    messages = request.session.pop("flash", []) if "flash" in request.session else []
    nav = navigation_for(principal)
    path = request.url.path
    matching = [p for _, _, p in nav if path == p or path.startswith(p + "/")]
    context.update(
        request=request,
        principal=principal,
        csrf=csrf_token(request),
        nav=nav,
        messages=messages,
        active_nav=max(matching, key=len) if matching else None,
        role_name=labels.ROLE.get(principal.role, principal.role) if principal else "",
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)
