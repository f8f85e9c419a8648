"""`waihu conversions import / list / rejects` through the CLI, on SQLite and PostgreSQL: a GBK
file with Chinese headers, a bad row kept and named by row and field, a re-import that changes
nothing, masked output, and a file the command cannot read explained without a traceback."""

from __future__ import annotations

import json

from tests.cli.test_leads import cli  # noqa: F401
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401


def test_import_list_and_rejects(cli, tmp_path) -> None:  # noqa: F811
    assert cli("leads", "api-pack", "--audience", "车主").exit_code == 0
    added = cli(
        "leads",
        "add",
        "--phone",
        "13800001234",
        "--audience",
        "车主",
        "--lead-left-at",
        "2026-11-24 09:55",
        "--external-id",
        "crm-7",
    )
    assert added.exit_code == 0, added.output
    path = tmp_path / "保单.csv"
    path.write_bytes(
        "保单号,产品,保费,承保时间,外部ID,投保人手机号\n"
        'PL-1,百万医疗,"1,288.00",2026-11-30 10:00,crm-7,\n'
        "PL-2,重疾险,3000,2026-11-30 10:00,,13800001234\n"
        "PL-3,重疾险,免费,2026-11-30 10:00,,13800001234\n".encode("gbk")
    )
    first = cli("conversions", "import", str(path))
    assert first.exit_code == 0, first.output
    assert "accepted" in first.stdout and "row 4, premium" in first.stdout
    again = cli("conversions", "import", str(path), "--json")
    summary = json.loads(again.stdout)["summary"]
    assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == (0, 2, 1)

    listed = json.loads(cli("conversions", "list", "--json").stdout)
    assert sorted(row["policy_no"] for row in listed) == ["PL-1", "PL-2"]
    assert {row["phone_masked"] for row in listed} == {"138****1234"}
    table = cli("conversions", "list")
    assert "138****1234" in table.stdout and "13800001234" not in table.stdout
    rejects = json.loads(cli("conversions", "rejects", "--json").stdout)
    assert {(r["row"], r["field"]) for r in rejects} == {(4, "premium")}
    assert all("13800001234" not in r["raw"] for r in rejects)


def test_a_file_without_a_policy_column_exits_1_naming_it(cli, tmp_path) -> None:  # noqa: F811
    path = tmp_path / "x.csv"
    path.write_text("产品,保费,成交时间,手机号\na,1,2026-11-30,13800001234\n", encoding="utf-8")
    result = cli("conversions", "import", str(path))
    # the app's handler prints this one message (no traceback) and exits 1
    assert result.exit_code == 1 and type(result.exception).__name__ == "InputError"
    assert "x.csv: no policy_no column in the header" in str(result.exception)
    mapped = cli("conversions", "import", str(path), "--map", "policy_no=#1", "--json")  # a column named by number
    assert json.loads(mapped.stdout)["summary"]["rows"] == 1
