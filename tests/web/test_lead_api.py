"""POST /api/v1/leads on a live console (SQLite and PostgreSQL): an ops API token with leads:write
adds leads (201), a retry returns the same lead (200), a lead nobody may take is a 422 naming
where and what, a batch over the limit is refused clearly, and a token without the scope is 403."""

from __future__ import annotations

import httpx

from bot.core.db.engine import session_scope
from bot.users.tokens import create_token
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import USERS, clients, console  # noqa: F401


def token_client(console, db, scopes: list[str]) -> httpx.Client:
    with session_scope(db) as session:
        token = create_token(session, USERS["ops"], "landing-page", scopes).token
    return httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_leads_are_added_once_and_problems_name_the_field(console, db) -> None:
    client = token_client(console, db, ["leads:write"])
    lead = {"phone": "13800001234", "lead_left_at": "2026-11-24 09:55", "external_id": "form-1", "name": "李女士"}
    first = client.post("/api/v1/leads", json={"audience": "车主", "leads": [lead]})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["pack"] == "API·车主" and body["accepted"] == 1
    assert body["results"][0]["phone"] == "138****1234" and "13800001234" not in first.text
    again = client.post("/api/v1/leads", json={"audience": "车主", "leads": [lead]})
    assert again.status_code == 200
    assert again.json()["results"][0] == {**body["results"][0], "status": "duplicate"}

    bad = client.post(
        "/api/v1/leads", json={"audience": "车主", "leads": [{"phone": "13800005678", "external_id": "form-2"}]}
    )
    assert bad.status_code == 422
    (error,) = bad.json()["results"][0]["errors"]
    assert error["where"] == "leads[0].lead_left_at" and error["reason"] == "consent_missing"
    assert "留资时间" in error["message"] and error["label"]


def test_a_batch_over_the_limit_and_a_token_without_the_scope_are_refused(console, db) -> None:
    client = token_client(console, db, ["leads:write"])
    many = [{"phone": f"1380000{i:04d}", "lead_left_at": "2026-11-24 09:00"} for i in range(501)]
    refused = client.post("/api/v1/leads", json={"audience": "车主", "leads": many})
    assert refused.status_code == 422 and "最多 500 条" in refused.json()["detail"]
    campaigns_only = token_client(console, db, ["campaigns:write"])
    denied = campaigns_only.post(
        "/api/v1/leads", json={"audience": "车主", "leads": [{"phone": "13800001234", "lead_left_at": "2026-11-24"}]}
    )
    assert denied.status_code == 403
