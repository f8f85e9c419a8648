"""Issue 13, items 4 and 8 on a live console (SQLite and PostgreSQL): logout, a new password and
a new role end every session of the user (a copied cookie stops working); API tokens reach
only /api/v1 and there only their scopes, are revoked by a password change, and get their
scopes at creation (CLI and account page)."""
from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.users.models import ApiToken
from bot.users.service import set_password, set_role
from bot.users.tokens import create_token, grant_for_token, list_tokens
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import USERS, clients, console, seed_graded_calls, write_lead_csv  # noqa: F401


def copied(client, base_url: str) -> httpx.Client:
    """Another client holding a copy of this client's session cookie."""
    return httpx.Client(base_url=base_url, cookies=dict(client.http.cookies), follow_redirects=False, timeout=60)


def token_for(db, role: str, *scopes: str) -> str:
    with session_scope(db) as session:
        return create_token(session, USERS[role], f"{role}-{'-'.join(scopes)}", scopes).token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


# ---- item 4: sessions end -------------------------------------------------------------------------

def test_web_logout_ends_a_copied_cookie(console, clients):
    ops = clients("ops")
    thief = copied(ops, console.url)
    assert thief.get("/ops/packs").status_code == 200
    assert ops.http.post("/logout", data={"csrf_token": ops.csrf}).status_code == 303
    after = thief.get("/ops/packs")
    assert after.status_code == 303 and after.headers["location"].startswith("/login")
    assert thief.get("/api/v1/lead-packs", headers={"Accept": "application/json"}).status_code == 401
    # Logging in again works, with a new session.
    assert clients("ops").get("/ops/packs").status_code == 200


def test_web_logout_ends_the_users_other_sessions_too(console, clients):
    first, second = clients("manager"), clients("manager")
    assert first.http.post("/logout", data={"csrf_token": first.csrf}).status_code == 303
    assert second.get("/calls").status_code == 303
    assert clients("ops").get("/ops/packs").status_code == 200  # other users are not affected


def test_web_role_change_ends_sessions(console, clients, db):
    ops = clients("ops")
    with session_scope(db) as session:
        set_role(session, USERS["ops"], "manager")
    gone = ops.get("/ops/packs")
    assert gone.status_code == 303
    assert "会话已结束" in ops.get(gone.headers["location"]).text
    again = clients("ops")  # logs in with the new role
    assert again.get("/calls").status_code == 200 and again.get("/ops/packs").status_code == 403


def test_web_password_change_on_the_account_page_ends_other_sessions_and_revokes_tokens(console, clients, db):
    ops, other = clients("ops"), clients("ops")
    token = token_for(db, "ops", "campaigns:write")
    assert httpx.get(f"{console.url}/api/v1/campaigns", headers=bearer(token)).status_code == 200
    changed = ops.http.post("/account/password", data={"current": "ops-password-1", "new": "ops-password-2",
                                                       "again": "ops-password-2", "csrf_token": ops.csrf})
    assert changed.status_code == 303
    assert "API 令牌已全部吊销" in ops.get("/account").text
    assert ops.get("/ops/packs").status_code == 200       # this session continues
    assert other.get("/ops/packs").status_code == 303     # the other one ended
    assert httpx.get(f"{console.url}/api/v1/campaigns", headers=bearer(token)).status_code == 401
    with session_scope(db) as session:
        assert all(row.revoked for row in list_tokens(session, USERS["ops"]))


def test_web_set_password_revokes_every_token_of_the_user_only(db):
    from bot.users.service import add_user

    with session_scope(db) as session:
        add_user(session, "a.user", "password-aaaa", "ops")
        add_user(session, "b.user", "password-bbbb", "ops")
        a1 = create_token(session, "a.user", "one", ["leads:write"]).token
        a2 = create_token(session, "a.user", "two", ["campaigns:write"]).token
        b1 = create_token(session, "b.user", "one", ["leads:write"]).token
    with session_scope(db) as session:
        set_password(session, "a.user", "password-cccc")
    with session_scope(db) as session:
        assert grant_for_token(session, a1) is None and grant_for_token(session, a2) is None
        assert grant_for_token(session, b1) is not None


# ---- item 8: tokens -------------------------------------------------------------------------------

def test_web_a_token_is_no_session_on_page_routes(console, db):
    token = token_for(db, "ops", "leads:write", "campaigns:write")
    http = httpx.Client(base_url=console.url, follow_redirects=False, timeout=60)
    page = http.get("/ops/packs", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    account = http.get("/account", headers={"Authorization": f"Bearer {token}"})
    assert account.status_code == 303
    # Minting a token, revoking one or changing the password with a token (no CSRF token) is refused.
    minted = http.post("/account/tokens", data={"label": "stolen", "scopes": "leads:write"},
                       headers={"Authorization": f"Bearer {token}"})
    revoked = http.post("/account/tokens/1/revoke", headers={"Authorization": f"Bearer {token}"})
    password = http.post("/account/password", data={"current": "ops-password-1", "new": "x" * 12, "again": "x" * 12},
                         headers={"Authorization": f"Bearer {token}"})
    assert {minted.status_code, revoked.status_code, password.status_code} <= {303, 401, 403}
    with session_scope(db) as session:
        rows = list_tokens(session)
    assert [r.label for r in rows] == ["ops-leads:write-campaigns:write"] and not rows[0].revoked
    assert http.get("/api/v1/me", headers=bearer(token)).json()["via"] == "token"


def test_web_token_scopes_are_enforced_on_the_api(console, db, tmp_path):
    campaigns_only = token_for(db, "ops", "campaigns:write")
    leads_only = token_for(db, "ops", "leads:write")
    reports = token_for(db, "manager", "reports:read")
    http = httpx.Client(base_url=console.url, timeout=60)
    csv = write_lead_csv(tmp_path / "l.csv", 3).read_bytes()

    refused = http.post("/api/v1/lead-packs", headers=bearer(campaigns_only), data={"pack": "p1"},
                        files={"file": ("l.csv", csv, "text/csv")})
    assert refused.status_code == 403 and "leads:write" in refused.json()["detail"]
    uploaded = http.post("/api/v1/lead-packs", headers=bearer(leads_only), data={"pack": "p1"},
                         files={"file": ("l.csv", csv, "text/csv")})
    assert uploaded.status_code == 200, uploaded.text
    assert http.get("/api/v1/campaigns", headers=bearer(leads_only)).status_code == 403
    created = http.post("/api/v1/campaigns", headers=bearer(campaigns_only), json={"name": "t", "packs": ["p1"]})
    assert created.status_code == 201, created.text
    assert http.get("/api/v1/calls", headers=bearer(reports)).status_code == 200
    assert http.get("/api/v1/calls", headers=bearer(campaigns_only)).status_code == 403
    # The role still applies, and the script editor's API takes no token at all.
    assert http.get("/api/v1/campaigns", headers=bearer(reports)).status_code == 403
    assert http.get("/api/v1/script/files", headers=bearer(campaigns_only)).status_code == 403
    assert http.get("/api/v1/me", headers=bearer(reports)).status_code == 200


def test_web_token_scopes_are_chosen_at_creation(db):
    from bot.core.errors import UserError
    from bot.users.service import add_user

    with session_scope(db) as session:
        add_user(session, "robot", "robot-password", "ops")
        with pytest.raises(UserError, match="at least one scope"):
            create_token(session, "robot", "none", [])
        with pytest.raises(UserError, match="unknown scope 'admin:all'"):
            create_token(session, "robot", "bad", ["admin:all"])
        with pytest.raises(UserError, match="not available to the role 'ops'"):
            create_token(session, "robot", "reports", ["reports:read"])
        made = create_token(session, "robot", "ok", ["campaigns:write", "leads:write"])
        assert made.scopes == ("leads:write", "campaigns:write")
        stored = session.execute(select(ApiToken.scopes)).scalar_one()
    assert stored == "leads:write campaigns:write"


def test_web_account_page_creates_a_token_with_the_chosen_scopes(console, clients, db):
    ops = clients("ops")
    page = ops.get("/account").text
    assert 'value="leads:write"' in page and 'value="campaigns:write"' in page and 'value="reports:read"' not in page
    missing = ops.http.post("/account/tokens", data={"label": "nightly", "csrf_token": ops.csrf})
    assert missing.status_code == 400 and "请至少选择一项令牌权限" in missing.text
    made = ops.http.post("/account/tokens", data={"label": "nightly", "scopes": ["leads:write"],
                                                  "csrf_token": ops.csrf})
    assert made.status_code == 200
    token = re.search(r'<pre class="token" id="new-token">([^<]+)</pre>', made.text).group(1)
    with session_scope(db) as session:
        grant = grant_for_token(session, token)
    assert grant.scopes == {"leads:write"}


def test_web_cli_token_takes_scopes(db, database_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli.app import app
    from bot.users.service import add_user
    from tests.db_fixtures import TEST_SECRET

    for key, value in {"WAIHU_DATABASE_URL": database_url, "WAIHU_SECRET_KEY": TEST_SECRET,
                       "WAIHU_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(key, value)
    with session_scope(db) as session:
        add_user(session, "bi.robot", "robot-password", "manager")
    runner = CliRunner()
    none = runner.invoke(app, ["users", "token", "bi.robot", "--label", "bi"])
    assert none.exit_code != 0 and "at least one scope" in str(none.exception)
    made = runner.invoke(app, ["users", "token", "bi.robot", "--label", "bi", "--scope", "reports:read"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    with session_scope(db) as session:
        assert grant_for_token(session, token).scopes == {"reports:read"}
    listing = runner.invoke(app, ["users", "tokens"])
    assert "reports:read" in listing.stdout
