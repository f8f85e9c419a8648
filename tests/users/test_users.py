"""Console users and API tokens: hashing, login checks, roles, and `waihu users …` (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli.app import app
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.users.models import User
from bot.users.service import (add_user, authenticate, hash_password, list_users, password_stamp, set_password,
                               set_role, verify_password)
from bot.users.models import ApiToken
from bot.users.tokens import create_token, list_tokens, revoke_token, user_for_token
from tests.db_fixtures import TEST_SECRET, db, database_url, keyring, migrated_engine  # noqa: F401


def test_hash_is_salted_scrypt_and_verifies():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$") and "correct horse" not in first
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsf", first)
    assert not verify_password("correct horse", "bcrypt$whatever")  # unknown scheme: never true
    assert not verify_password("correct horse", "garbage")


def test_password_rules_and_role_names(db):
    with session_scope(db) as session:
        with pytest.raises(UserError, match="at least 8"):
            add_user(session, "li.si", "short", "ops")
        with pytest.raises(UserError, match="unknown role"):
            add_user(session, "li.si", "long enough", "boss")
        with pytest.raises(UserError, match="spaces"):
            add_user(session, "li si", "long enough", "ops")


def test_authenticate_and_change_password_and_role(db):
    with session_scope(db) as session:
        add_user(session, "zhang.san", "first-password", "ops")
    with session_scope(db) as session:
        user = authenticate(session, "zhang.san", "first-password")
        assert user is not None and user.role == "ops"
        stamp = password_stamp(user)
        assert authenticate(session, "zhang.san", "wrong-password") is None
        assert authenticate(session, "nobody", "first-password") is None
        with pytest.raises(UserError, match="already exists"):
            add_user(session, "zhang.san", "another-one", "writer")
    with session_scope(db) as session:
        set_password(session, "zhang.san", "second-password")
        set_role(session, "zhang.san", "manager")
    with session_scope(db) as session:
        assert authenticate(session, "zhang.san", "first-password") is None
        user = authenticate(session, "zhang.san", "second-password")
        assert user.role == "manager" and password_stamp(user) != stamp
        assert [(row.name, row.role) for row in list_users(session)] == [("zhang.san", "manager")]


def test_tokens_are_stored_hashed_and_revocable(db):
    with session_scope(db) as session:
        add_user(session, "robot", "robot-password", "ops")
        created = create_token(session, "robot", "nightly-upload", ["leads:write"])
    assert created.token.startswith("wh_") and len(created.token) > 40
    with session_scope(db) as session:
        stored = session.execute(select(ApiToken)).scalar_one()
        assert created.token not in (stored.token_hash, stored.prefix) and stored.prefix == created.token[:8]
        assert user_for_token(session, created.token).name == "robot"
        assert user_for_token(session, created.token + "x") is None
        assert user_for_token(session, "not-a-token") is None
    with session_scope(db) as session:
        assert list_tokens(session, "robot")[0].last_used_at is not None
        with pytest.raises(UserError):
            revoke_token(session, created.id, owner="someone-else")
        revoke_token(session, created.id, owner="robot")
    with session_scope(db) as session:
        assert user_for_token(session, created.token) is None
        assert list_tokens(session)[0].revoked


@pytest.fixture()
def cli(db, database_url, tmp_path, monkeypatch):
    for key, value in {"WAIHU_DATABASE_URL": database_url, "WAIHU_SECRET_KEY": TEST_SECRET,
                       "WAIHU_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=True)

    return invoke


def test_cli_add_passwd_role_list_token(cli, db):
    result = cli("users", "add", "wang.wu", "--role", "writer", "--password-stdin", input="writer-password\n")
    assert result.exit_code == 0, result.output
    assert "added user wang.wu (writer)" in result.stdout
    with session_scope(db) as session:
        stored = session.execute(select(User.password_hash)).scalar_one()
    assert "writer-password" not in stored and verify_password("writer-password", stored)

    result = cli("users", "passwd", "wang.wu", "--password-stdin", input="another-password\n")
    assert result.exit_code == 0, result.output
    assert "API tokens revoked" in result.stdout
    result = cli("users", "role", "wang.wu", "manager")
    assert result.exit_code == 0 and "now manager" in result.stdout
    result = cli("users", "list", "--json")
    assert '"name": "wang.wu", "role": "manager"' in result.stdout
    with session_scope(db) as session:
        assert authenticate(session, "wang.wu", "another-password") is not None

    result = cli("users", "token", "wang.wu", "--label", "bi-export", "--scope", "reports:read")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    with session_scope(db) as session:
        assert user_for_token(session, token).name == "wang.wu"
    listing = cli("users", "tokens")
    assert "bi-export" in listing.stdout and "reports:read" in listing.stdout and token not in listing.stdout


def test_cli_refuses_bad_input_with_one_line(cli):
    result = cli("users", "add", "x.y", "--role", "boss", "--password-stdin", input="whatever-pass\n")
    assert result.exit_code != 0 and "unknown role 'boss'" in str(result.exception)
    result = cli("users", "add", "x.y", "--role", "ops", "--password-stdin", input="short\n")
    assert "at least 8" in str(result.exception)
    result = cli("users", "role", "ghost", "ops")
    assert "no user named 'ghost'" in str(result.exception)
