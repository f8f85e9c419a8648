"""`waihu campaign …` as ops run it, on a fresh SQLite data folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.core.settings import PROJECT_ROOT


def waihu(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli.app", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120,
                          env={**os.environ, "WAIHU_DATA_DIR": str(data), "COLUMNS": "200"})


def test_create_start_pause_and_status(tmp_path: Path) -> None:
    csv = tmp_path / "leads.csv"
    rows = ["手机号,姓名,同意时间"] + [f"1390000{i:04d},李{i},2026-11-01 10:00" for i in range(25)]
    csv.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    data = tmp_path / "data"
    assert waihu(data, "leads", "upload", str(csv), "--pack", "p1").returncode == 0

    created = waihu(data, "campaign", "create", "c1", "--pack", "p1", "--lines", "5",
                    "--variant", "standard", "--variant", "benefit_first:2", "--slot", "傍晚=18:00-20:00")
    assert created.returncode == 0, created.stderr
    assert "variants standard, benefit_first, slots 傍晚" in created.stdout

    for args, needle in [
        (("campaign", "create", "c2", "--pack", "p1", "--slot", "夜间=20:00-22:00"), "may only make"),
        (("campaign", "create", "c3", "--pack", "p1", "--variant", "no_such"), "unknown script variant"),
        (("campaign", "create", "c4", "--pack", "missing"), "--pack missing: no lead pack of that name"),
        (("campaign", "pause", "c1"), "is draft; it cannot pause"),
        (("campaign", "status", "nope"), "no campaign named 'nope'"),
    ]:
        result = waihu(data, *args)
        assert result.returncode == 1 and needle in result.stderr and "Traceback" not in result.stderr, result.stderr

    assert "now running" in waihu(data, "campaign", "start", "c1").stdout
    assert "now paused" in waihu(data, "campaign", "pause", "c1").stdout
    status = json.loads(waihu(data, "campaign", "status", "c1", "--json").stdout)
    assert status["status"] == "paused" and status["leads"] == 25 and status["attempts"] == 0
    assert status["lines"] == 5


def test_create_reports_every_problem_at_once(tmp_path: Path) -> None:
    """Issue 16 item 6: several bad slots (and other bad settings) are all reported by one
    run, each naming the option, the value given and what to do; nothing is created."""
    csv = tmp_path / "leads.csv"
    rows = ["手机号,姓名,同意时间"] + [f"1390000{i:04d},李{i},2026-11-01 10:00" for i in range(5)]
    csv.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    data = tmp_path / "data"
    assert waihu(data, "leads", "upload", str(csv), "--pack", "p1").returncode == 0

    result = waihu(data, "campaign", "create", "c1", "--pack", "p1", "--pack", "nope",
                   "--slot", "上午=09:30-12:00", "--slot", "夜间=20:00-22:00", "--slot", "清晨=07:00-09:00",
                   "--slot", "中午=12点-14点", "--slot", "傍晚", "--slot", "上午=14:00-16:00",
                   "--variant", "no_such", "--variant", "standard:abc", "--holdout", "2",
                   "--incentive-arm", "红包=十元红包", "--welcome-arm", "简短")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    err = " ".join(result.stderr.split())
    assert "11 problems in the campaign settings; nothing was created" in err, err
    for needle in [
        "--slot 夜间=20:00-22:00: outside the calling windows 09:30-12:00, 14:00-20:00",
        "--slot 清晨=07:00-09:00: outside the calling windows",
        "pick hours inside them",
        "--slot 中午=12点-14点: the window '12点-14点' is not HH:MM-HH:MM",
        "--slot 傍晚: expected NAME=HH:MM-HH:MM",
        "--slot 上午: this time slot is given twice",
        "--pack nope: no lead pack of that name; see `waihu leads packs`",
        "--variant no_such: unknown script variant; the script has:",
        "--variant standard:abc: expected NAME or NAME:WEIGHT",
        "--holdout 2.0: a share of leads between 0 and 1",
        "--incentive-arm 红包=十元红包: say whose leads this arm is for",
        "--welcome-arm 简短: expected NAME=TEXT",
    ]:
        assert needle in err, (needle, err)
    listed = waihu(data, "campaign", "list")
    assert "c1" not in listed.stdout


def test_incentive_arms_name_their_audience_pack(tmp_path: Path) -> None:
    """Issue 16 item 7: --incentive-arm PACK:NAME=TEXT (or global:NAME=TEXT); a bare NAME=TEXT
    would replace every pack's own incentive, so it is refused with the two spellings."""
    csv = tmp_path / "leads.csv"
    rows = ["手机号,姓名,同意时间"] + [f"1390000{i:04d},李{i},2026-11-01 10:00" for i in range(5)]
    csv.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    data = tmp_path / "data"
    assert waihu(data, "leads", "upload", str(csv), "--pack", "p1").returncode == 0

    bare = waihu(data, "campaign", "create", "c0", "--pack", "p1", "--incentive-arm", "驾乘险=一份免费的驾乘意外险")
    err = " ".join(bare.stderr.split())
    assert bare.returncode == 1 and "say whose leads this arm is for" in err, err
    assert "车主:驾乘险=一份免费的驾乘意外险" in err and "global:驾乘险=一份免费的驾乘意外险" in err
    unknown = waihu(data, "campaign", "create", "c0", "--pack", "p1", "--incentive-arm", "火星:红包=一个红包")
    assert unknown.returncode == 1 and "--incentive-arm 火星: no audience pack or scene of that name" in unknown.stderr

    created = waihu(data, "campaign", "create", "c1", "--pack", "p1", "--incentive-arm", "车主:驾乘险=一份免费的驾乘意外险",
                    "--incentive-arm", "车主:救援=一次免费道路救援*2", "--incentive-arm", "宝妈:儿童险=一份免费的儿童意外险",
                    "--incentive-arm", "global:红包=一个十元红包")
    assert created.returncode == 0, created.stderr
    assert "incentives 车主:驾乘险, 车主:救援, 宝妈:儿童险, global:红包" in created.stdout
