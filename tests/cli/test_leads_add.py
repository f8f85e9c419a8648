"""`waihu leads add` and `waihu leads api-pack` (speed to lead) through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from tests.cli.test_leads import cli  # noqa: F401
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401


def test_add_a_lead_once_masked(cli) -> None:  # noqa: F811
    assert cli("leads", "api-pack", "--audience", "车主").exit_code == 0
    args = ("leads", "add", "--phone", "13800001234", "--name", "张三", "--audience", "车主")
    added = cli(*args, "--lead-left-at", "2026-11-24 09:55", "--external-id", "crm-7")
    assert added.exit_code == 0, added.output
    assert "138****1234" in added.stdout and "API·车主" in added.stdout and "13800001234" not in added.stdout
    again = cli(*args, "--lead-left-at", "2026-11-24 09:55", "--external-id", "crm-7", "--json")
    assert again.exit_code == 0
    data = json.loads(again.stdout)
    assert (data["status"], data["phone"], data["external_id"]) == ("duplicate", "138****1234", "crm-7")


def test_a_lead_that_is_not_taken_says_which_field_and_exits_1(cli) -> None:  # noqa: F811
    result = cli("leads", "add", "--phone", "12345", "--audience", "车主", "--lead-left-at", "2026-11-24 09:55")
    assert result.exit_code == 1
    assert "not added" in result.output and "phone" in result.output and "Traceback" not in result.output
    late = cli("leads", "add", "--phone", "13800001234", "--audience", "车主", "--lead-left-at", "明天")
    assert late.exit_code == 1 and "lead_left_at" in late.output
