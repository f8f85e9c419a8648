"""API tokens for automation: created for a user (acting with that user's role) with the scopes
it needs, shown once, stored as a SHA-256 only, revocable; all of a user's tokens are revoked
when their password changes (bot.users.service.set_password).

A token reaches only the JSON API (/api/v1), and there only what its scopes name: the web
console maps each API area to a scope (bot.web.security.TOKEN_SCOPE_BY_PATH). The role still
applies: an ops user's token with `reports:read` is refused the managers' reports.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.users.models import ApiToken, User
from bot.users.service import get_user

TOKEN_PREFIX = "wh_"
MAX_LABEL_CHARS = 100

# Scope → (what it allows, the roles that can use it besides admin).
SCOPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "leads:write": ("上传线索名单、管理人群包（含读取名单与拒收行）", ("ops",)),
    "campaigns:write": ("创建、启动、暂停外呼任务（含读取任务与进度）", ("ops",)),
    "reports:read": ("读取通话记录、A/B 报告与企微漏斗", ("manager",)),
    "conversions:write": ("回传成交（保单、保费），匹配到线索与实验分组", ("ops", "manager")),
}


def scopes_for_role(role: str) -> list[str]:
    """The scopes a token of a user with this role can make use of."""
    return [scope for scope, (_, roles) in SCOPES.items() if role == "admin" or role in roles]


def check_scopes(scopes: Iterable[str], role: str) -> tuple[str, ...]:
    """The requested scopes, known and usable by the role, in a stable order; else UserError."""
    wanted = {s.strip() for s in scopes if s and s.strip()}
    if not wanted:
        usable = scopes_for_role(role)
        raise UserError(
            "choose at least one scope for the token"
            + (f" ({', '.join(usable)})" if usable else f"; the role {role!r} has no API scope")
        )
    unknown = sorted(wanted - SCOPES.keys())
    if unknown:
        raise UserError(f"unknown scope {unknown[0]!r}; scopes are: {', '.join(SCOPES)}")
    unusable = sorted(wanted - set(scopes_for_role(role)))
    if unusable:
        raise UserError(
            f"scope {unusable[0]!r} is not available to the role {role!r}"
            f" (it can use: {', '.join(scopes_for_role(role)) or 'none'})"
        )
    return tuple(scope for scope in SCOPES if scope in wanted)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    id: int
    token: str  # the only time the full token exists outside the caller
    label: str
    user: str
    scopes: tuple[str, ...] = ()


def create_token(session: Session, user_name: str, label: str, scopes: Iterable[str]) -> NewToken:
    user = get_user(session, user_name)
    chosen = check_scopes(scopes, user.role)
    label = label.strip()
    if not label:
        raise UserError("a token needs a label saying what uses it, e.g. 'nightly-upload'")
    if len(label) > MAX_LABEL_CHARS:
        raise UserError(f"the token label is longer than {MAX_LABEL_CHARS} characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, label=label, token_hash=_digest(token), prefix=token[:8], scopes=" ".join(chosen))
    session.add(row)
    session.flush()
    return NewToken(row.id, token, label, user.name, chosen)


@dataclass(frozen=True)
class TokenGrant:
    """What a live token may do: act as `user`, within `scopes`."""

    user: User
    token_id: int
    scopes: frozenset[str]


def grant_for_token(session: Session, token: str, now: datetime | None = None) -> TokenGrant | None:
    """The user and scopes of a live token (None if unknown or revoked); notes when it was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    # The lookup is by hash: timing reveals nothing about a valid token's value.
    row = session.execute(select(ApiToken).where(ApiToken.token_hash == _digest(token))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None:
        return None
    row.last_used_at = now or utc_now()
    return TokenGrant(user, row.id, frozenset((row.scopes or "").split()))


def user_for_token(session: Session, token: str, now: datetime | None = None) -> User | None:
    """The user a live token acts as (None if unknown or revoked)."""
    grant = grant_for_token(session, token, now)
    return grant.user if grant is not None else None


@dataclass(frozen=True)
class TokenRow:
    id: int
    user: str
    label: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    scopes: tuple[str, ...] = ()


def list_tokens(session: Session, user_name: str | None = None) -> list[TokenRow]:
    query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    if user_name:
        query = query.where(User.name == user_name)
    return [
        TokenRow(
            t.id,
            name,
            t.label,
            t.prefix,
            t.created_at,
            t.last_used_at,
            t.revoked_at is not None,
            tuple((t.scopes or "").split()),
        )
        for t, name in session.execute(query).all()
    ]


def revoke_token(session: Session, token_id: int, *, owner: str | None = None) -> ApiToken:
    """Revoke token `token_id` (only the owner's, when `owner` is given)."""
    row = session.get(ApiToken, token_id)
    if row is not None and owner is not None:
        user = session.get(User, row.user_id)
        row = row if user is not None and user.name == owner else None
    if row is None:
        raise UserError(f"no API token with id {token_id}; see `waihu users tokens`")
    row.revoked_at = row.revoked_at or utc_now()
    return row
