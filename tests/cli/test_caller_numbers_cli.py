"""`waihu campaign numbers add/list/rest/unrest/cap` and the pool in `campaign status`, as
ops run them on a fresh SQLite data folder; the upload reports a city it cannot place."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_campaign import waihu


def test_caller_number_pool_commands(tmp_path: Path) -> None:
    csv = tmp_path / "leads.csv"
    rows = ["手机号,姓名,同意时间,城市"] + [f"1390000{i:04d},李{i},2026-11-01 10:00,广东深圳" for i in range(4)]
    rows.append("13900000099,王五,2026-11-01 10:00,火星市")
    csv.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    data = tmp_path / "data"
    uploaded = waihu(data, "leads", "upload", str(csv), "--pack", "p1", "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    summary = json.loads(uploaded.stdout)
    assert summary["accepted"] == 5 and summary["region_unrecognised_rows"] == [6]
    assert any("names no place the number geocoder knows" in note for note in summary["notes"])
    assert waihu(data, "campaign", "create", "c1", "--pack", "p1").returncode == 0

    added = waihu(data, "campaign", "numbers", "add", "c1", "075512345678", "021-6123 4567", "--cap", "3")
    assert added.returncode == 0, added.stderr
    assert "added 075512345678 (广东 深圳市), 3 dials a day, to c1" in added.stdout
    assert "added 02161234567 (上海市)" in added.stdout
    for args, needle in [
        (("campaign", "numbers", "add", "c1", "12345"), "caller number '12345'"),
        (("campaign", "numbers", "add", "c1", "075512345678"), "already in this campaign's pool"),
        (("campaign", "numbers", "add", "c1", "02161234568", "--cap", "0"), "a daily cap is at least 1"),
        (("campaign", "numbers", "rest", "c1", "02099999999"), "not in this campaign's pool"),
        (("campaign", "numbers", "list", "nope"), "no campaign named 'nope'"),
    ]:
        result = waihu(data, *args)
        assert result.returncode == 1 and needle in result.stderr and "Traceback" not in result.stderr, result.stderr

    rested = waihu(data, "campaign", "numbers", "rest", "c1", "02161234567", "--reason", "被标记为骚扰")
    assert "02161234567: rested (被标记为骚扰)" in rested.stdout
    listed = json.loads(waihu(data, "campaign", "numbers", "list", "c1", "--json").stdout)
    assert [(n["number"], n["province"], n["daily_cap"], n["rested"]) for n in listed] == [
        ("075512345678", "广东", 3, False),
        ("02161234567", "上海", 3, True),
    ]
    table = waihu(data, "campaign", "numbers", "list", "c1").stdout
    assert "rested: 被标记为骚扰" in table and "0/3" in table
    status = json.loads(waihu(data, "campaign", "status", "c1", "--json").stdout)
    assert status["caller_numbers"]["numbers"] == 2 and status["caller_numbers"]["with_room"] == 1
    assert status["caller_numbers"]["rested"] == [{"number": "02161234567", "reason": "被标记为骚扰"}]
    assert "caller numbers with room today" in waihu(data, "campaign", "status", "c1").stdout
    assert "back in use" in waihu(data, "campaign", "numbers", "unrest", "c1", "02161234567").stdout
    assert "5 dials a day" in waihu(data, "campaign", "numbers", "cap", "c1", "02161234567", "5").stdout
