"""A user's own account: change the password, create API tokens with scopes, revoke them.

These are pages (session cookie + CSRF token): an API token cannot reach them, so a leaked
token can neither mint more tokens nor change the password."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse

from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.users.service import MAX_PASSWORD_CHARS, authenticate, get_user, set_password
from bot.users.tokens import SCOPES, create_token, list_tokens, revoke_token, scopes_for_role
from bot.web.params import MAX_DB_ID
from bot.web.rendering import flash, render
from bot.web.security import Principal, require_login, start_session

pages = APIRouter(include_in_schema=False)
api = APIRouter()


def _account_page(request: Request, principal: Principal, status_code: int = 200, **extra):
    with session_scope(request.app.state.engine) as session:
        tokens = list_tokens(session, principal.name)
    scopes = [(scope, SCOPES[scope][0]) for scope in scopes_for_role(principal.role)]
    return render(request, "account.html", status_code=status_code, tokens=tokens, scopes=scopes, **extra)


@pages.get("/account")
def account(request: Request, principal: Principal = Depends(require_login)):
    return _account_page(request, principal)


@pages.post("/account/password")
def change_password(
    request: Request,
    current: str = Form(""),
    new: str = Form(""),
    again: str = Form(""),
    principal: Principal = Depends(require_login),
):
    if new != again:
        return _account_page(request, principal, 400, password_error="两次输入的新密码不一致，密码未修改")
    if len(current) > MAX_PASSWORD_CHARS or len(new) > MAX_PASSWORD_CHARS:
        return _account_page(
            request, principal, 400, password_error=f"密码最多 {MAX_PASSWORD_CHARS} 个字符，密码未修改"
        )
    with session_scope(request.app.state.engine) as session:
        if authenticate(session, principal.name, current) is None:
            return _account_page(request, principal, 400, password_error="当前密码不正确，密码未修改")
        try:
            set_password(session, principal.name, new)
        except UserError:
            return _account_page(request, principal, 400, password_error="新密码至少需要 8 个字符")
        user = get_user(session, principal.name)
        # Other sessions of this user end (stamp and generation changed) and the user's API
        # tokens are revoked (set_password); this session continues.
        start_session(request, user)
    flash(request, "密码已修改：其他已登录的会话已退出，您的 API 令牌已全部吊销")
    return RedirectResponse("/account", status_code=303)


@pages.post("/account/tokens")
def new_token(
    request: Request, label: str = Form(""), scopes: list[str] = Form([]), principal: Principal = Depends(require_login)
):
    if not label.strip() or len(label.strip()) > 100:
        return _account_page(
            request, principal, 400, token_error="请填写令牌用途（例如 nightly-upload），不超过 100 字"
        )
    if not scopes:
        return _account_page(request, principal, 400, token_error="请至少选择一项令牌权限")
    try:
        with session_scope(request.app.state.engine) as session:
            created = create_token(session, principal.name, label, scopes)
    except UserError as exc:
        return _account_page(request, principal, 400, token_error=f"令牌未创建：{exc}")
    # Shown once, on this response only; never stored in the session or the database.
    return _account_page(request, principal, new_token=created)


@pages.post("/account/tokens/{token_id}/revoke")
def revoke(
    request: Request, token_id: int = Path(..., ge=1, le=MAX_DB_ID), principal: Principal = Depends(require_login)
):
    with session_scope(request.app.state.engine) as session:
        revoke_token(session, token_id, owner=principal.name)
    flash(request, f"令牌 #{token_id} 已吊销")
    return RedirectResponse("/account", status_code=303)
