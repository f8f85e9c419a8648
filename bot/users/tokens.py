"""API tokens for automation: created for a user (acting with that user's role), shown once,
stored as a SHA-256 only, revocable."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.users.models import User
from bot.users.service import get_user
from bot.users.models import ApiToken

TOKEN_PREFIX = "wh_"
MAX_LABEL_CHARS = 100


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    id: int
    token: str  # the only time the full token exists outside the caller
    label: str
    user: str


def create_token(session: Session, user_name: str, label: str) -> NewToken:
    user = get_user(session, user_name)
    label = label.strip()
    if not label:
        raise UserError("a token needs a label saying what uses it, e.g. 'nightly-upload'")
    if len(label) > MAX_LABEL_CHARS:
        raise UserError(f"the token label is longer than {MAX_LABEL_CHARS} characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, label=label, token_hash=_digest(token), prefix=token[:8])
    session.add(row)
    session.flush()
    return NewToken(row.id, token, label, user.name)


def user_for_token(session: Session, token: str, now: datetime | None = None) -> User | None:
    """The user a live token acts as (None if unknown or revoked); notes when it was last used."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    # The lookup is by hash: timing reveals nothing about a valid token's value.
    row = session.execute(select(ApiToken).where(ApiToken.token_hash == _digest(token))).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    row.last_used_at = now or utc_now()
    return session.get(User, row.user_id)


@dataclass(frozen=True)
class TokenRow:
    id: int
    user: str
    label: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def list_tokens(session: Session, user_name: str | None = None) -> list[TokenRow]:
    query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    if user_name:
        query = query.where(User.name == user_name)
    return [TokenRow(t.id, name, t.label, t.prefix, t.created_at, t.last_used_at, t.revoked_at is not None)
            for t, name in session.execute(query).all()]


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
