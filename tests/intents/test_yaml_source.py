"""The one YAML loader: positions, duplicate keys, and pydantic problems as file:line:col."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest
from pydantic import Field, validator

from intents.errors import InputError
from intents.yaml_source import (
    At,
    Number,
    Probability,
    Problems,
    Text,
    WholeNumber,
    YamlError,
    YamlModel,
    YamlSyntaxError,
    check,
    line_of,
    load_yaml,
    locate,
    parse_yaml,
    plain,
    validate,
    where,
)


class Weight(Number):
    gt = 0.0


class CallsPerDay(WholeNumber):
    ge = 1


class Arm(YamlModel):
    name: Text = Field(..., hint="a short name")
    weight: Weight = Weight(1.0)


class Plan(YamlModel):
    calls_per_day: CallsPerDay
    share: Probability = Probability(0.5)
    arms: list[Arm] = []
    hours: Optional[dict[str, Probability]] = None

    @validator("arms")
    def _names_unique(cls, arms: list[Arm]) -> list[Arm]:
        problems = Problems()
        seen: set[str] = set()
        for index, arm in enumerate(arms):
            if arm.name in seen:
                problems.add(f"name '{arm.name}' is used twice", index, "name")
            seen.add(arm.name)
        problems.raise_any()
        return arms


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_becomes_the_model(tmp_path: Path) -> None:
    path = write(tmp_path, "calls_per_day: 3\narms:\n  - {name: a, weight: 2}\n  - name: b\n")
    plan = validate(path, Plan)
    assert plan.calls_per_day == 3 and [(a.name, a.weight) for a in plan.arms] == [("a", 2.0), ("b", 1.0)]


def test_a_duplicate_key_is_refused_at_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "calls_per_day: 3\narms:\n  - name: a\n    weight: 1\n    name: b\n")
    with pytest.raises(YamlError) as caught:
        load_yaml(path)
    assert str(caught.value).startswith(f"{path}:5:5: duplicate key 'name'")
    assert isinstance(caught.value, InputError)  # the CLI shows it as one line


def test_a_wrong_type_is_reported_at_its_key_with_the_value_found(tmp_path: Path) -> None:
    path = write(tmp_path, "calls_per_day: 3\narms:\n  - name: a\n    weight: heavy\n")
    with pytest.raises(YamlError) as caught:
        validate(path, Plan)
    assert caught.value.problems == [f"{path}:4:5: arms[0].weight: must be a number above 0; got 'heavy'"]


def test_true_and_quoted_numbers_are_not_numbers() -> None:
    for text in ("calls_per_day: true\n", "calls_per_day: '3'\n", "calls_per_day: 2.5\n"):
        with pytest.raises(YamlError, match=r"^p.yml:1:1: calls_per_day: must be a whole number ≥ 1"):
            check(parse_yaml(text, "p.yml"), Plan, "p.yml")


def test_every_problem_of_a_file_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "share: 1.5\n"            # 1: out of range
        "arms:\n"
        "  - name: a\n"
        "  - name: a\n"           # 4: used twice
        "  - {weight: 2}\n"       # 5: no name
        "hours: {'9': 2}\n"       # 6: a mapping value out of range
        "colour: blue\n"          # 7: unknown key
    ))
    with pytest.raises(YamlError) as caught:
        validate(path, Plan)
    error = caught.value
    assert error.problems == [
        f"{path}:1:1: missing `calls_per_day`",
        f"{path}:1:1: share: must be a number between 0 and 1; got 1.5",
        f"{path}:5:5: missing `arms[2].name`: a short name",
        f"{path}:6:9: hours.9: must be a number between 0 and 1; got 2",
        f"{path}:7:1: unknown key 'colour'; allowed: calls_per_day, share, arms, hours",
    ]
    # the first is the message, the rest are details (what the CLI prints under it)
    assert str(error) == error.problems[0] and error.details == error.problems[1:]


def test_checks_across_items_report_at_the_item(tmp_path: Path) -> None:
    path = write(tmp_path, "calls_per_day: 1\narms:\n  - name: a\n  - name: b\n  - name: a\n")
    with pytest.raises(YamlError) as caught:
        validate(path, Plan)
    assert caught.value.problems == [f"{path}:5:5: arms[2].name: name 'a' is used twice"]


def test_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "calls_per_day: 3\narms: [\n  - name: a: b\n")
    with pytest.raises(YamlSyntaxError) as caught:
        validate(path, Plan)
    assert str(caught.value).startswith(f"{path}:3:")
    assert "not valid YAML" in str(caught.value) and caught.value.problem
    binary = tmp_path / "plan.xlsx"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00")
    with pytest.raises(YamlError, match="not UTF-8 text"):
        load_yaml(binary)


def test_a_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(YamlError, match="expected a mapping with the keys calls_per_day, share, arms, hours"):
        validate(write(tmp_path, "- just\n- a list\n"), Plan)
    with pytest.raises(YamlError, match="expected a mapping"):
        validate(write(tmp_path, ""), Plan)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(YamlError) as caught:
        validate(tmp_path / "nowhere.yml", Plan)
    assert str(caught.value) == f"{tmp_path / 'nowhere.yml'}: no such file"


def test_plain_data_is_checked_the_same_without_positions() -> None:
    with pytest.raises(YamlError) as caught:
        check({"calls_per_day": 0}, Plan, "campaign policy")
    assert str(caught.value) == "campaign policy: calls_per_day: must be a whole number ≥ 1; got 0"


def test_positions_of_keys_and_items() -> None:
    tree = parse_yaml("a:\n  b: [x, y]\n  c:\n    - k: 1\n", "t.yml")
    assert locate(tree, "a", "b", 1) == (2, 10)
    assert line_of(tree, "a", "c", 0, "k") == 4
    assert locate(tree, "a", "nope") is None and line_of({"a": 1}, "a") is None
    assert where("t.yml", tree, "a", "nope") == "t.yml:1:1"  # the nearest enclosing key


def test_a_validator_can_point_below_its_field() -> None:
    class Table(YamlModel):
        rows: dict[str, list[int]]

        @validator("rows")
        def _no_negatives(cls, rows: dict[str, list[int]]) -> dict[str, list[int]]:
            for key, values in rows.items():
                for index, value in enumerate(values):
                    if value < 0:
                        raise At("no negative counts", key, index)
            return rows

    with pytest.raises(YamlError) as caught:
        check(parse_yaml("rows:\n  x: [1, 2]\n  y: [3, -4]\n", "t.yml"), Table, "t.yml")
    assert str(caught.value) == "t.yml:3:10: rows.y[1]: no negative counts"


def test_plain_turns_the_tree_into_builtin_types() -> None:
    tree = parse_yaml("a: 1.5\nb: [x, {c: true}]\nd: |\n  text\n", "t.yml")
    data = plain(tree)
    assert data == {"a": 1.5, "b": ["x", {"c": True}], "d": "text\n"}
    assert type(data) is dict and type(data["a"]) is float and type(data["b"]) is list and type(data["d"]) is str
