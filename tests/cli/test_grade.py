"""`waihu grade` and `waihu grade eval` as a user runs them, with the real NLU; and the
entity extractor wired into DialogueAgent.parse."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from bot.core.settings import PROJECT_ROOT
from intents.callback_times import SHANGHAI
from tests.conftest import run

WAIHU = [sys.executable, "-m", "bot.cli.app"]
GOLD = PROJECT_ROOT / "intents" / "eval" / "calls_gold.jsonl"


def waihu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(WAIHU + list(args), capture_output=True, text=True, timeout=600,
                          cwd=PROJECT_ROOT, env={**os.environ, "COLUMNS": "200"})


def _line(record: dict | str) -> str:
    return record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)


OPENING = "王先生您好，我是安心保险服务平台的AI客服，本通电话为人工智能合成语音，全程录音。来电是为您送一份保险福利，不需要请直接说“不要再打”。"
ASK_WECOM = "我让专属顾问用企业微信添加您，就用您现在这个手机号，您看可以吗？"
MIXED = [
    {"call_id": "agree", "status": "answered", "started_at": "2026-03-11T10:20:00+08:00", "hangup_by": "bot", "duration_s": 30,
     "turns": [{"speaker": "bot", "text": OPENING, "t": 0}, {"speaker": "callee", "text": "嗯你说", "t": 12},
               {"speaker": "bot", "text": ASK_WECOM, "t": 14}, {"speaker": "callee", "text": "好的可以", "t": 22}]},
    "{not json",
    {"call_id": "who", "status": "answered", "turns": [{"speaker": "agent", "text": "hi", "t": 0}]},
    {"call_id": "empty", "status": "answered", "turns": [], "hangup_by": "callee", "duration_s": 3},
    {"call_id": "off", "status": "answered", "turns": [{"speaker": "callee", "text": "您拨打的电话已关机", "t": 0.5}],
     "hangup_by": "callee", "duration_s": 6},
    {"call_id": "later", "status": "answered", "started_at": "2026-03-11T10:20:00+08:00", "hangup_by": "bot", "duration_s": 15,
     "turns": [{"speaker": "bot", "text": OPENING, "t": 0}, {"speaker": "callee", "text": "我在开会，明天下午三点再打吧", "t": 12}]},
    {"call_id": "never", "status": "no_answer", "turns": []},
]


@pytest.fixture(scope="module")
def mixed_result(model_path: Path, tmp_path_factory) -> subprocess.CompletedProcess:
    path = tmp_path_factory.mktemp("grade") / "calls.jsonl"
    path.write_text("\n".join(_line(r) for r in MIXED) + "\n", encoding="utf-8")
    return waihu("grade", str(path), "--json")


def test_grade_json_grades_the_good_lines(mixed_result: subprocess.CompletedProcess) -> None:
    data = json.loads(mixed_result.stdout)
    by_id = {c["call_id"]: c for c in data["calls"]}
    assert set(by_id) == {"agree", "empty", "off", "later", "never"}
    assert by_id["agree"]["grade"] == "A" and by_id["agree"]["reason"] == "A：第2轮同意添加企业微信"
    assert by_id["empty"]["grade"] == "D"
    assert by_id["off"]["grade"] is None and by_id["off"]["status"] == "powered_off"
    assert by_id["never"]["status"] == "no_answer" and by_id["never"]["followups"][0]["action"] == "retry"
    later = by_id["later"]
    assert later["grade"] == "D"
    (callback,) = later["followups"]
    assert callback["action"] == "callback" and callback["window_start"] == "2026-03-12T15:00:00+08:00"


def test_grade_reports_bad_lines_by_number(mixed_result: subprocess.CompletedProcess) -> None:
    assert mixed_result.returncode == 1
    assert "Traceback" not in mixed_result.stderr
    assert "line 2: not valid JSON" in mixed_result.stderr
    assert "line 3: call who: turn 1 has unknown speaker 'agent'" in mixed_result.stderr
    assert "error: 2 line(s) could not be graded" in mixed_result.stderr
    data = json.loads(mixed_result.stdout)
    assert [e["line"] for e in data["errors"]] == [2, 3]


def test_grade_eval_on_the_gold_set(model_path: Path) -> None:
    result = waihu("grade", "eval", str(GOLD), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert {"accuracy", "per_grade", "confusion"} <= set(data)
    assert data["n"] >= 150
    assert data["accuracy"] >= 0.9
    assert set("ABCD") <= set(data["per_grade"])
    assert sum(sum(row.values()) for row in data["confusion"].values()) == data["n"]


def test_grade_eval_human_output(model_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(GOLD.read_text(encoding="utf-8").splitlines()[:12]) + "\n", encoding="utf-8")
    result = waihu("grade", "eval", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy" in result.stdout and "confusion" in result.stdout


def test_bad_rules_file_is_one_error_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text((PROJECT_ROOT / "intents" / "grading_rules.yml").read_text(encoding="utf-8")
                     .replace("opt_outs: \">= 1\"", "opt_outz: \">= 1\""), encoding="utf-8")
    calls = tmp_path / "calls.jsonl"
    calls.write_text(_line(MIXED[0]) + "\n", encoding="utf-8")
    result = waihu("grade", str(calls), "--rules", str(rules))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error:" in result.stderr and "unknown counter or condition 'opt_outz'" in result.stderr
    assert f"{rules}:" in result.stderr


@pytest.mark.parametrize("args,needle", [
    (("grade", "no-such-file.jsonl"), "no such file"),
    (("grade", "eval"), "give the labelled file"),
])
def test_user_mistakes_are_one_error_line(args: tuple[str, ...], needle: str) -> None:
    result = waihu(*args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error:" in result.stderr and needle in result.stderr


def test_eval_needs_gold_labels(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text(_line(MIXED[6]) + "\n", encoding="utf-8")
    result = waihu("grade", "eval", str(path))
    assert result.returncode == 1 and "no call with a `gold_grade`" in result.stderr


# --- the extractor inside the runtime ------------------------------------------------------

def test_parse_merges_spacy_entities(dialogue_agent) -> None:
    now = datetime(2026, 3, 11, 10, 20, tzinfo=SHANGHAI)
    parse = run(dialogue_agent.parse("我在开会，明天下午三点再打吧", now=now))
    (entity,) = [e for e in parse.entities if e["entity"] == "callback_time"]
    assert entity["extractor"] == "waihu_spacy" and entity["start_at"] == "2026-03-12T15:00:00+08:00"
    assert parse.intent in ("busy", "callback_request")
