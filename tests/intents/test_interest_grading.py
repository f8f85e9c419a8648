"""Issue 15 in grading and follow-ups: a hesitation or a product question (FAQ included) is
interest, B at least and never a soft decline; an agreement the robot confirmed counts, a
'no' to the confirmation is a refusal; busy-then-'回头再说' stays busy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from intents.followups import SOFT_DECLINE, WECOM_INVITE, decide_followups
from intents.grading import grade_call
from tests.intents.test_grading import ASK_WECOM, GOOD_TIME, OPENING, PITCH, START, bot, call, say

AGAIN = bot("utter_ask_wecom_again")
CONFIRM = bot("utter_ask_confirm_wecom")
CALLBACK_TIME = bot("utter_ask_callback_time")

CASES = [
    ("hesitated", "B", call(OPENING, GOOD_TIME, say("嗯", "affirm"), PITCH, ASK_WECOM, say("我考虑一下", "hesitate"))),
    (
        "hesitated_twice_then_refused",
        "B",
        call(OPENING, ASK_WECOM, say("我想想", "hesitate"), AGAIN, say("不用了", "refuse")),
    ),
    (
        "hesitated_then_agreed",
        "A",
        call(OPENING, ASK_WECOM, say("我想想", "hesitate"), AGAIN, say("那行", "affirm"), bot("utter_confirm_wecom")),
    ),
    (
        "faq_then_declined",
        "B",
        call(OPENING, ASK_WECOM, say("有没有等待期", "faq/waiting_period"), ASK_WECOM, say("算了", "refuse")),
    ),
    (
        "two_faq_questions",
        "A",
        call(
            OPENING,
            ASK_WECOM,
            say("保什么", "faq/coverage"),
            ASK_WECOM,
            say("怎么理赔", "faq/claims"),
            hangup_by="callee",
        ),
    ),
    ("one_faq_question", "B", call(OPENING, ASK_WECOM, say("保多久", "faq/term"), hangup_by="callee")),
    (
        "confirmed_agreement",
        "A",
        call(OPENING, ASK_WECOM, say("嗯那就", "uncertain_agreement"), CONFIRM, say("对", "affirm")),
    ),
    (
        "no_to_the_confirmation",
        "C",
        call(OPENING, ASK_WECOM, say("嗯好", "uncertain_agreement"), CONFIRM, say("不是", "deny")),
    ),
    ("negated_add_is_refusal", "C", call(OPENING, ASK_WECOM, say("我不加微信", "refuse"))),
    ("busy_then_later", "D", call(OPENING, say("在忙", "busy"), CALLBACK_TIME, say("回头再说吧", "hesitate"))),
    (
        "opt_out_beats_hesitation",
        "C",
        call(OPENING, ASK_WECOM, say("我想想", "hesitate"), say("别再打了", "stop_calling")),
    ),
]


@pytest.mark.parametrize("name, grade, finished", CASES, ids=[c[0] for c in CASES])
def test_interest_grades(name: str, grade: str, finished) -> None:
    assert grade_call(finished).grade == grade, grade_call(finished).reason


def test_a_hesitation_is_never_a_soft_decline() -> None:
    finished = call(OPENING, ASK_WECOM, say("我考虑一下", "hesitate"), AGAIN, say("再说吧", "hesitate"))
    actions = [f.action for f in decide_followups(finished, grade_call(finished), START + timedelta(minutes=1))]
    assert SOFT_DECLINE not in actions and actions == [WECOM_INVITE]
