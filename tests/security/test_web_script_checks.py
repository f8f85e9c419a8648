"""Issue 13, items 5 and 13: a YAML alias bomb in a script file is refused at its line before
anything (lint, Rasa) reads it, even with "save anyway"; the save check runs in a child
process with a CPU limit; writer regexes that backtrack catastrophically are reported at
file:line."""
from __future__ import annotations

import pytest

from bot.script.project import DialogsProject
from bot.script.regex_safety import WriterRegex, adversarial_inputs, check_project_regexes, find_problems
from bot.web.script_workspace import CheckTooExpensive, run_cpu_limited, yaml_structure_problem
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import clients, console  # noqa: F401

# Nine levels of nine: 9**9 (387 million) strings once expanded, in ten short lines.
ALIAS_BOMB = "version: '3.1'\n" + "a0: &a0 [\"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\", \"x\"]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))


def _spin() -> None:
    while True:
        pass


def test_web_alias_bomb_is_refused_at_its_line_and_never_saved(console, clients, dialogs_copy):
    writer = clients("writer")
    path = "domain/core.yml"
    before = (dialogs_copy.root / path).read_bytes()
    opened = writer.get(f"/api/v1/script/file?path={path}", headers={"Accept": "application/json"}).json()
    checked = writer.post("/api/v1/script/check", json={"path": path, "text": ALIAS_BOMB})
    assert checked.status_code == 200
    problem = checked.json()["problems"][0]
    assert problem["line"] == 2 and "锚点" in problem["message"] and checked.json()["new_errors"] == 1
    for allow in (False, True):
        saved = writer.put("/api/v1/script/file", json={"path": path, "text": ALIAS_BOMB,
                                                        "base_version": opened["version"], "allow_errors": allow})
        assert saved.status_code == 422 and "锚点" in saved.json()["problems"][0]["message"]
    assert (dialogs_copy.root / path).read_bytes() == before


def test_web_aliases_anchors_and_huge_node_counts_are_found_without_building_anything():
    assert yaml_structure_problem("x.yml", "a: 1\nb: [2, 3]\n") is None
    alias = yaml_structure_problem("x.yml", "a: &k 1\nb: *k\n")
    assert alias is not None and alias.line == 1 and alias.blocking
    many = "\n".join(f"k{i}: v" for i in range(200_001))
    assert "YAML 节点" in yaml_structure_problem("x.yml", many).message


def test_web_the_save_check_runs_under_a_cpu_limit(console, clients, dialogs_copy):
    with pytest.raises(CheckTooExpensive, match="1 秒 CPU"):
        run_cpu_limited(_spin, (), 1)
    # Through the console: a check that needs more CPU than allowed is refused, nothing saved.
    console.app.state.config = console.app.state.config.with_changes(check_cpu_seconds=1)
    try:
        writer = clients("writer")
        path = "domain/core.yml"
        opened = writer.get(f"/api/v1/script/file?path={path}", headers={"Accept": "application/json"}).json()
        text = opened["text"] + "\n# a comment\n"
        saved = writer.put("/api/v1/script/file", json={"path": path, "text": text, "base_version": opened["version"],
                                                        "allow_errors": True})
        assert saved.status_code == 422 and "校验被中止" in saved.json()["problems"][0]["message"]
        assert (dialogs_copy.root / path).read_text(encoding="utf-8") == opened["text"]
    finally:
        console.app.state.config = console.app.state.config.with_changes(check_cpu_seconds=60)


# ---- item 13: writer regexes ----------------------------------------------------------------------

def test_regex_safety_reports_catastrophic_backtracking_at_file_and_line(dialogs_copy: DialogsProject):
    assert check_project_regexes(dialogs_copy) == []  # the shipped script is fine
    features = dialogs_copy.data_dir / "nlu" / "regex_features.yml"
    text = features.read_text(encoding="utf-8")
    text = text.replace("      - 多少钱\n", "      - 多少钱\n      - ([0-9]+)+x\n      - (钱|钱)*吗\n      - [未闭合\n")
    features.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    problems = check_project_regexes(dialogs_copy)
    found = {(p.file, p.line): p.message for p in problems}
    nested = lines.index("      - ([0-9]+)+x") + 1
    overlapping = lines.index("      - (钱|钱)*吗") + 1
    invalid = lines.index("      - [未闭合") + 1
    assert set(found) == {(features, nested), (features, overlapping), (features, invalid)}
    assert "catastrophic backtracking" in found[(features, nested)] and "price_cue" in found[(features, nested)]
    assert "not a valid regular expression" in found[(features, invalid)]


def test_regex_safety_inputs_pump_the_repeated_part():
    inputs = adversarial_inputs(r"编号(\d+)+号")
    assert any(text.startswith("编号" + "1" * 30) for text in inputs)
    assert all(len(text) <= 500 for text in inputs)


def test_regex_safety_classic_cases(tmp_path):
    patterns = {r"^(a+)+$": True, r"(a|aa)+c": True, r"(\d+)*$": True, r"\d*\d*\d*\d*x": True,
                r"机器[人仁]": False, r"(别|不要|不许|甭)再?(给我)?打": False, r"\d{11}": False}
    regexes = [WriterRegex(tmp_path / "x.yml", line, "cue", pattern) for line, pattern in enumerate(patterns, 1)]
    flagged = {p.line for p in find_problems(regexes)}
    assert flagged == {line for line, (pattern, slow) in enumerate(patterns.items(), 1) if slow}
