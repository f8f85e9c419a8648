"""Console users: add, change password or role, list, and check a login.

Passwords are stored as scrypt hashes (`hashlib.scrypt`, RFC 7914) with a random salt per
user; the stored string names its parameters, so they can be raised later without breaking
old hashes. Comparisons are constant-time, and a login for an unknown name costs the same
as one for a known name (no user enumeration by timing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.core.db.base import utc_now
from bot.core.errors import UserError
from bot.users.models import ROLES, ApiToken, User

SCHEME = "scrypt"
# OWASP's scrypt minimum (N=2^17, r=8, p=1) needs 128 MiB per hash; on the two-core
# console host 2^15 (32 MiB, ~60 ms) keeps logins quick while staying far off brute force.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024  # scrypt takes anything; bounds the work an attacker can ask for
MAX_NAME_CHARS = 100

ROLE_LABELS = {"ops": "运营", "writer": "话术师", "manager": "经理", "admin": "管理员", "advisor": "顾问"}


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=256 * n * r + (1 << 20)
    )


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$key` (salt and key base64): what the users table stores."""
    check_password_rules(password)
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        [
            SCHEME,
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode("ascii"),
            base64.b64encode(key).decode("ascii"),
        ]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password[:MAX_PASSWORD_CHARS], base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Verified against when the name is unknown, so both paths run one scrypt.
_DUMMY_HASH = "$".join(
    [
        SCHEME,
        str(SCRYPT_N),
        str(SCRYPT_R),
        str(SCRYPT_P),
        base64.b64encode(b"\0" * SALT_BYTES).decode(),
        base64.b64encode(b"\0" * KEY_BYTES).decode(),
    ]
)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"the password has {len(password)} characters; use at least {MIN_PASSWORD_CHARS}")
    if len(password) > MAX_PASSWORD_CHARS:
        raise UserError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles are: {', '.join(ROLES)} (admin can do everything)")
    return role


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise UserError("a user needs a name")
    if len(name) > MAX_NAME_CHARS:
        raise UserError(f"the user name has {len(name)} characters; keep it within {MAX_NAME_CHARS}")
    if any(ch.isspace() for ch in name):
        raise UserError(f"user name {name!r} contains spaces; use e.g. zhang.san")
    return name


def find_user(session: Session, name: str) -> User | None:
    return session.execute(select(User).where(User.name == name.strip())).scalar_one_or_none()


def get_user(session: Session, name: str) -> User:
    user = find_user(session, name)
    if user is None:
        raise UserError(f"no user named {name!r}; see `waihu users list`")
    return user


def add_user(session: Session, name: str, password: str, role: str) -> User:
    name, role = check_name(name), check_role(role)
    if find_user(session, name) is not None:
        raise UserError(f"user {name!r} already exists; change the password with `waihu users passwd {name}`")
    user = User(name=name, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, name: str, password: str) -> User:
    """New password: every console session of the user ends and every API token is revoked
    (whoever may have copied a cookie or a token with the old password loses it)."""
    user = get_user(session, name)
    user.password_hash = hash_password(password)
    user.session_generation = (user.session_generation or 0) + 1
    revoke_all_tokens(session, user.id)
    session.flush()
    return user


def set_role(session: Session, name: str, role: str) -> User:
    """New role: the user's console sessions end (they log in again with the new role)."""
    user = get_user(session, name)
    new_role = check_role(role)
    if new_role != user.role:
        user.role = new_role
        user.session_generation = (user.session_generation or 0) + 1
    session.flush()
    return user


def set_wecom_userid(session: Session, name: str, wecom_userid: str | None) -> User:
    """Binds an advisor to their WeCom member account (成员 UserID): whose add tasks are theirs."""
    user = get_user(session, name)
    value = (wecom_userid or "").strip() or None
    if value is not None:
        if len(value) > 64 or any(ch.isspace() for ch in value):
            raise UserError(
                f"WeCom userid {value!r}: at most 64 characters, no spaces (成员 UserID in the admin console)"
            )
        taken = session.execute(select(User).where(User.wecom_userid == value, User.id != user.id)).scalar_one_or_none()
        if taken is not None:
            raise UserError(f"WeCom userid {value!r} already belongs to user {taken.name!r}")
    user.wecom_userid = value
    session.flush()
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """Every console session of this user ends (logout): sessions carry the generation they
    started in, and a request whose generation is no longer the user's is refused."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
        .execution_options(synchronize_session="fetch")
    )


def revoke_all_tokens(session: Session, user_id: int) -> int:
    """Revokes every live API token of the user; returns how many."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utc_now())
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount or 0


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    created_at: datetime


def list_users(session: Session) -> list[UserRow]:
    users = session.execute(select(User).order_by(User.name)).scalars().all()
    return [UserRow(u.name, u.role, u.created_at) for u in users]


def count_users(session: Session) -> int:
    return session.execute(select(func.count()).select_from(User)).scalar_one()


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The user if name and password match, else None (same work either way)."""
    user = find_user(session, name) if name.strip() else None
    ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    return user if (ok and user is not None) else None


def password_stamp(user: User) -> str:
    """Changes whenever the password does: sessions carry it, so a new password logs out old sessions."""
    return hashlib.sha256(user.password_hash.encode("ascii")).hexdigest()[:16]
