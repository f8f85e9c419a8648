"""Hand-off to a human (转人工) in grading and follow-ups: B at least unless hostile, and the
advisor's call-back (a person, not the robot) booked when nobody was free."""
from __future__ import annotations

from datetime import datetime

import pytest

from intents.callback_times import SHANGHAI
from intents.followups import ADVISOR_CALLBACK, ADVISOR_CALLBACK_REASON, advisor_callback
from intents.grading import grade_call
from tests.intents.test_grading import ASK_WECOM, GOOD_TIME, OPENING, PITCH, bot, call, say

HUMAN = say("转人工", "request_human")
HANDOFF = bot("utter_handoff")
FAILED = bot("utter_handoff_failed")


@pytest.mark.parametrize("name, turns, grade", [
    ("handed_off", (OPENING, GOOD_TIME, HUMAN, HANDOFF), "B"),
    ("nobody_free", (OPENING, GOOD_TIME, HUMAN, HANDOFF, FAILED), "B"),
    ("refused_then_asked_for_a_human", (OPENING, GOOD_TIME, say("不需要", "refuse"), PITCH, HUMAN, HANDOFF), "B"),
    ("busy_then_asked_for_a_human", (OPENING, GOOD_TIME, say("在忙", "busy"), HUMAN, HANDOFF), "B"),
    ("agreed_then_asked_for_a_human", (OPENING, ASK_WECOM, say("可以加", "agree_add_wecom"), HUMAN, HANDOFF), "A"),
    ("hostile", (OPENING, GOOD_TIME, say("烦死了骗子", "hostile"), HUMAN, HANDOFF), "C"),
])
def test_asking_for_a_human_is_b_at_least_unless_hostile(name: str, turns: tuple, grade: str) -> None:
    graded = grade_call(call(*turns))
    assert graded.grade == grade, graded.reason
    if grade == "B":
        assert graded.rule == "asked_for_human" and graded.reason == "B：要求转人工"


def test_advisor_callback_half_an_hour_later_inside_calling_hours() -> None:
    soon = advisor_callback(datetime(2026, 3, 11, 10, 20, tzinfo=SHANGHAI))
    assert soon.action == ADVISOR_CALLBACK and soon.reason == ADVISOR_CALLBACK_REASON  # a person calls, not the robot
    assert (soon.window_start, soon.window_end) == (datetime(2026, 3, 11, 10, 50, tzinfo=SHANGHAI),
                                                    datetime(2026, 3, 11, 12, 50, tzinfo=SHANGHAI))
    late = advisor_callback(datetime(2026, 3, 11, 20, 45, tzinfo=SHANGHAI))
    assert late.window_start == datetime(2026, 3, 12, 9, 0, tzinfo=SHANGHAI)
    assert late.reason.startswith(ADVISOR_CALLBACK_REASON)
