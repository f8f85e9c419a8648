"""Issue 16, managers (item 11): the call funnel counts calls and the WeCom funnel counts leads;
both say which, so "A/B" never means two different numbers without a unit."""
from __future__ import annotations

from rich.console import Console

from bot.cli.wecom_commands import funnel_table

STAGES = ("graded_ab", "invited", "sent", "added", "welcomed")


def counts(values: tuple[int, ...]) -> dict:
    row = dict(zip(STAGES, values))
    row["rates"] = {"added_of_graded_ab": values[3] / values[0]}
    return row


def test_the_wecom_funnel_table_says_it_counts_leads() -> None:
    data = {"campaign": "双十一", "stages": list(STAGES), "total": counts((439, 430, 420, 190, 188)),
            "by_audience": [{"name": "车主-华东", **counts((439, 430, 420, 190, 188))}], "by_grade": [],
            "by_arm": {}}
    console = Console(width=200, record=True)
    console.print(funnel_table(data))
    text = console.export_text()
    assert "企业微信加粉漏斗（单位：线索）" in text and "A/B线索" in text
    assert "每条线索只算一次" in text and "按通话计" in text


def test_campaign_status_says_its_grade_counts_are_calls() -> None:
    from bot.cli.campaign_commands import _status_table

    data = {"campaign": "双十一", "status": "running", "in_flight": 0, "lines": 10, "leads": 500, "attempts": 620,
            "outcomes": {"answered": 520, "no_answer": 100}, "grades": {"A": 250, "B": 240, "C": 20, "D": 10}}
    console = Console(width=200, record=True)
    console.print(_status_table(data))
    text = console.export_text()
    assert "grade A calls" in text and "grade B calls" in text and "connected calls" in text
