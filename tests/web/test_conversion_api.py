"""POST /api/v1/conversions on a live console (SQLite and PostgreSQL): a token with
conversions:write posts policies (201), a retry is a duplicate (200), an unmatched or invalid
item is a 422 naming where and what, a batch over the limit is refused, and tokens without
the scope (or no token) are refused."""

from __future__ import annotations

import httpx

from bot.core.db.engine import session_scope
from bot.users.tokens import create_token
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import USERS, clients, console  # noqa: F401


def token_client(console, db, scopes: list[str], user: str = "ops") -> httpx.Client:
    with session_scope(db) as session:
        token = create_token(session, USERS[user], "crm", scopes).token
    return httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_conversions_are_matched_once_and_problems_name_the_field(console, db) -> None:
    leads = token_client(console, db, ["leads:write"])
    added = leads.post(
        "/api/v1/leads",
        json={
            "audience": "车主",
            "leads": [
                {"phone": "13800001234", "lead_left_at": "2026-11-24 09:55", "external_id": "crm-1"},
                {"phone": "13800005678", "lead_left_at": "2026-11-24 09:55"},
            ],
        },
    )
    assert added.status_code == 201, added.text
    client = token_client(console, db, ["conversions:write"])
    policies = [
        {
            "policy_no": "PL-1",
            "product": "百万医疗",
            "premium": 1288,
            "converted_at": "2026-11-30 10:00",
            "external_id": "crm-1",
        },
        {
            "policy_no": "PL-2",
            "product": "重疾险",
            "premium": "3000.50",
            "converted_at": "2026-11-30T10:00:00+08:00",
            "phone": "13800005678",
        },
    ]
    first = client.post("/api/v1/conversions", json={"conversions": policies})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["accepted"] == 2 and body["attributed"] == 0  # never called: matched, unattributed
    assert body["results"][1]["phone_masked"] == "138****5678" and "13800005678" not in first.text
    again = client.post("/api/v1/conversions", json={"conversions": policies})
    assert again.status_code == 200 and [r["status"] for r in again.json()["results"]] == ["duplicate"] * 2

    bad = client.post(
        "/api/v1/conversions",
        json={
            "conversions": [
                {
                    "policy_no": "PL-3",
                    "product": "x",
                    "premium": "abc",
                    "converted_at": "2026-11-30",
                    "phone": "13800005678",
                },
                {
                    "policy_no": "PL-4",
                    "product": "x",
                    "premium": 10,
                    "converted_at": "2026-11-30",
                    "phone": "13900009999",
                },
            ]
        },
    )
    assert bad.status_code == 422
    first_error, second_error = (r["errors"][0] for r in bad.json()["results"])
    assert first_error["where"] == "conversions[0].premium" and "保费" in first_error["message"]
    assert second_error["where"] == "conversions[1].phone" and second_error["reason"] == "unmatched"
    assert "13900009999" not in bad.text

    shapeless = client.post("/api/v1/conversions", json={"conversions": [{"policy_no": "PL-5"}]})
    assert shapeless.status_code == 422 and "product" in shapeless.text


def test_limits_scopes_and_roles(console, db) -> None:
    client = token_client(console, db, ["conversions:write"])
    many = [
        {"policy_no": f"P{i}", "product": "x", "premium": 1, "converted_at": "2026-11-30", "phone": "13800001234"}
        for i in range(501)
    ]
    refused = client.post("/api/v1/conversions", json={"conversions": many})
    assert refused.status_code == 422 and "最多 500 条" in refused.json()["detail"]
    leads_only = token_client(console, db, ["leads:write"])
    assert leads_only.post("/api/v1/conversions", json={"conversions": many[:1]}).status_code == 403
    anonymous = httpx.Client(base_url=console.url, timeout=60)
    assert anonymous.post("/api/v1/conversions", json={"conversions": many[:1]}).status_code in (401, 403)
    manager = token_client(console, db, ["conversions:write"], user="manager")
    assert manager.post("/api/v1/conversions", json={"conversions": many[:1]}).status_code == 422  # no such lead
