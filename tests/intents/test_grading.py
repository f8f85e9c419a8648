"""Grading rules and follow-ups on hand-labelled calls (no NLU: intents are given), and
the rules file's error messages."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from intents.finished_call import FinishedCall, Turn
from intents.callback_times import SHANGHAI
from intents.followups import (CALLBACK, COOL_DOWN, DO_NOT_CALL, RETIRE_LEAD, RETRY, SOFT_DECLINE,
                               WECOM_INVITE, clip_to_calling_hours, decide_followups)
from intents.grading import grade_call
from intents.rules_loader import DEFAULT_RULES_PATH, GradingRulesError, load_rules, parse_rules
from intents.script_steps import ScriptLines

START = datetime(2026, 3, 11, 10, 20, tzinfo=SHANGHAI)


def bot(step: str) -> Turn:
    return Turn("bot", step, response=step)


def say(text: str, intent: str, confidence: float = 0.95, entities: tuple = ()) -> Turn:
    return Turn("callee", text, intent=intent, confidence=confidence, entities=entities)


def call(*turns: Turn, **kwargs) -> FinishedCall:
    return FinishedCall("c", tuple(turns), hangup_by=kwargs.pop("hangup_by", "bot"), duration_s=40.0,
                        started_at=START, **kwargs)


OPENING = bot("utter_opening")
GOOD_TIME = bot("utter_ask_good_time")
PITCH = bot("utter_pitch")
ASK_WECOM = bot("utter_ask_wecom")

GRADED = [
    ("agree_wecom", "A", "A：第3轮同意添加企业微信",
     call(OPENING, say("喂", "greet"), GOOD_TIME, say("你说", "affirm"), PITCH, ASK_WECOM, say("好的", "affirm"),
          bot("utter_confirm_wecom"))),
    ("explicit_agree_intent", "A", "A：第1轮同意添加企业微信", call(OPENING, say("加我微信吧", "agree_add_wecom"))),
    ("robot_confirmed", "A", "A：第2轮同意添加企业微信",
     call(OPENING, say("嗯", "affirm"), ASK_WECOM, say("那个嗯", "nlu_fallback", 0.4), bot("utter_close_success"))),
    ("questions_no_refusal", "A", "A：第1、2轮主动询问2个问题，无拒绝",
     call(OPENING, say("多少钱", "ask_price"), say("保什么", "ask_detail"), ASK_WECOM, hangup_by="callee")),
    ("agreed_then_retracted", "C", "C：第2、3轮明确拒绝",
     call(OPENING, ASK_WECOM, say("可以", "affirm"), bot("utter_confirm_wecom"), say("算了", "refuse"),
          say("不要了", "refuse"))),
    ("refuse", "C", "C：第1轮明确拒绝", call(OPENING, say("不需要", "refuse"))),
    ("deny_to_wecom_question", "C", "C：第2轮明确拒绝", call(OPENING, say("嗯", "affirm"), ASK_WECOM, say("没有", "deny"))),
    ("already_insured", "C", "C：第1轮明确拒绝", call(OPENING, say("买过了", "already_insured"))),
    ("opt_out_beats_agreement", "C", "C：第2轮要求不再来电",
     call(OPENING, say("加吧", "agree_add_wecom"), say("算了别打了", "stop_calling"))),
    ("hostile", "C", "C：第1轮要求不再来电", call(OPENING, say("滚", "hostile"))),
    ("hesitation_is_not_refusal", "B", "B：第2轮有兴趣但表示要考虑",
     call(OPENING, say("嗯", "affirm"), ASK_WECOM, say("我考虑一下", "refuse"))),
    ("identity_question_only", "B", "B：第1轮有提问，未拒绝也未同意", call(OPENING, say("你是哪里", "ask_identity"))),
    ("listened", "B", "B：第1、2轮听完介绍并多次肯定回应，未明确同意",
     call(OPENING, say("嗯", "affirm"), PITCH, say("嗯嗯", "affirm"), ASK_WECOM, hangup_by="callee")),
    ("busy", "D", "D：第1轮表示在忙或约回访", call(OPENING, say("在开车", "busy"))),
    ("wrong_person", "D", "D：第1轮接听人不是本人", call(OPENING, say("打错了", "wrong_person"))),
    ("silence", "D", "D：未明确表态", call(OPENING, Turn("callee", ""), bot("utter_close_silence"))),
    ("no_turns", "D", "D：未明确表态", call()),
    # Below the fallback threshold a "refusal" or an "agreement" is not understood.
    ("low_confidence_refusal", "D", "D：未明确表态", call(OPENING, say("嗯那个不", "refuse", 0.35))),
    ("low_confidence_agreement", "D", "D：未明确表态", call(OPENING, ASK_WECOM, say("呃可", "agree_add_wecom", 0.2))),
]


@pytest.mark.parametrize("name,grade,reason,finished", GRADED, ids=[g[0] for g in GRADED])
def test_grade_and_reason(name: str, grade: str, reason: str, finished: FinishedCall) -> None:
    result = grade_call(finished)
    assert (result.grade, result.reason) == (grade, reason)


def test_the_same_call_always_gets_the_same_grade() -> None:
    finished = GRADED[0][3]
    assert len({grade_call(finished) for _ in range(20)}) == 1


def test_reason_rounds_point_at_transcript_turns() -> None:
    result = grade_call(GRADED[0][3])
    assert result.rounds == (3,) and result.turn_indices == (7,)


def test_live_call_flag_decides_agreement() -> None:
    finished = call(OPENING, say("嗯", "affirm"), agreed_wecom=True)
    assert grade_call(finished).grade == "A"


def test_script_lines_infer_the_step_from_rendered_text() -> None:
    lines = ScriptLines.from_templates({
        "utter_pitch": ["平台为您免费准备了{incentive}，不收任何费用。"],
        "utter_ask_wecom": ["我让{advisor}用企业微信添加您，您看可以吗？"],
    })
    spoken = "平台为您免费准备了一份意外险，不收任何费用。我让专属顾问用企业微信添加您，您看可以吗？"
    assert lines.step_of(spoken) == "utter_ask_wecom"
    assert lines.step_of("平台为您免费准备了一份意外险，不收任何费用") == "utter_pitch"
    assert lines.step_of("完全无关的话") is None


# --- follow-ups ---------------------------------------------------------------------------

def _time(start: str, end: str) -> dict:
    return {"entity": "callback_time", "value": "x", "start_at": start, "end_at": end}


def followups(finished: FinishedCall):
    return decide_followups(finished, grade_call(finished), START + timedelta(minutes=1))


def test_opt_out_is_permanent_and_alone() -> None:
    (only,) = followups(call(OPENING, say("加吧", "agree_add_wecom"), say("别打了", "stop_calling")))
    assert only.action == DO_NOT_CALL and only.until is None and only.round == 2


def test_refusal_is_a_180_day_soft_decline() -> None:
    (only,) = followups(call(OPENING, say("不需要", "refuse")))
    assert only.action == SOFT_DECLINE and only.until == START + timedelta(minutes=1, days=180)


def test_busy_without_time_cools_down_seven_days() -> None:
    (only,) = followups(call(OPENING, say("在开车", "busy")))
    assert only.action == COOL_DOWN and only.until == START + timedelta(minutes=1, days=7)


def test_callback_with_time_is_booked() -> None:
    entity = _time("2026-03-12T15:00:00+08:00", "2026-03-12T15:30:00+08:00")
    (only,) = followups(call(OPENING, say("明天下午三点再打", "callback_request", entities=(entity,))))
    assert only.action == CALLBACK
    assert only.window_start.isoformat() == "2026-03-12T15:00:00+08:00"


def test_time_given_to_the_callback_question_counts_whatever_the_intent() -> None:
    entity = _time("2026-03-12T09:00:00+08:00", "2026-03-12T12:00:00+08:00")
    finished = call(OPENING, say("在忙", "busy"), bot("utter_ask_callback_time"), say("明天上午吧", "affirm", entities=(entity,)))
    assert [f.action for f in followups(finished)] == [CALLBACK]


def test_unknown_callback_time_falls_back_to_cool_down() -> None:
    entity = {"entity": "callback_time", "value": "改天", "start_at": None, "end_at": None}
    (only,) = followups(call(OPENING, say("改天吧", "callback_request", entities=(entity,))))
    assert only.action == COOL_DOWN


def test_evening_callback_is_clipped_into_calling_hours() -> None:
    start, end, moved = clip_to_calling_hours(datetime(2026, 3, 11, 20, 0, tzinfo=SHANGHAI),
                                              datetime(2026, 3, 11, 22, 0, tzinfo=SHANGHAI))
    assert (start.hour, end.hour, moved) == (20, 21, False)


def test_night_callback_moves_to_the_next_opening() -> None:
    start, end, moved = clip_to_calling_hours(datetime(2026, 3, 11, 22, 0, tzinfo=SHANGHAI),
                                              datetime(2026, 3, 11, 23, 0, tzinfo=SHANGHAI))
    assert moved and start == datetime(2026, 3, 12, 9, 0, tzinfo=SHANGHAI)


def test_wrong_person_retires_the_lead() -> None:
    (only,) = followups(call(OPENING, say("打错了", "wrong_person")))
    assert only.action == RETIRE_LEAD


def test_a_and_b_get_the_wecom_invitation() -> None:
    assert [f.action for f in followups(GRADED[0][3])] == [WECOM_INVITE]


@pytest.mark.parametrize("status,action", [("vacant_number", RETIRE_LEAD), ("powered_off", RETRY), ("line_busy", RETRY)])
def test_unconnected_calls(status: str, action: str) -> None:
    (only,) = decide_followups(FinishedCall("c", (), status=status), None, START)
    assert only.action == action and only.status == status


# --- the rules file --------------------------------------------------------------------------

def test_shipped_rules_load() -> None:
    rules = load_rules(DEFAULT_RULES_PATH)
    assert rules.min_confidence == 0.4 and rules.rules and rules.default_grade == "D"


GOOD = DEFAULT_RULES_PATH.read_text(encoding="utf-8")


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old,new,message", [
    ("      opt_outs: \">= 1\"", "      opt_outz: \">= 1\"", "unknown counter or condition 'opt_outz'"),
    ("    intents: [stop_calling, hostile]", "    intents: [stop_calling, hostil]", "unknown intent 'hostil'"),
    ("    grade: C\n    when:\n      opt_outs", "    grade: E\n    when:\n      opt_outs", "grade must be one of A/B/C/D"),
    ("      busy: \">= 1\"", "      busy: \"lots\"", "must be a number or a comparison"),
    ("    reason: 主动询问{questions}个问题，无拒绝", "    reason: 主动询问{questionz}个问题", "unknown placeholder {questionz}"),
    ("      reached_step: [utter_pitch, utter_ask_wecom]", "      reached_step: [pitch]", "is not a script step"),
])
def test_rules_errors_name_file_line_and_problem(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    broken = GOOD.replace(old, new, 1)
    path = tmp_path / "rules.yml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(GradingRulesError) as caught:
        load_rules(path)
    problem = next(p for p in caught.value.problems if message in p)
    line = _line_of(broken, new.splitlines()[-1].strip() if "grade: E" not in new else "grade: E")
    assert problem.startswith(f"{path}:{line}:"), (problem, line)


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(GradingRulesError) as caught:
        parse_rules("rules:\n  - name: x\n    when: [unclosed\n", "r.yml")
    assert caught.value.problems[0].startswith("r.yml:") and "not valid YAML" in caught.value.problems[0]


def test_missing_default_and_rules_are_reported_together() -> None:
    with pytest.raises(GradingRulesError) as caught:
        parse_rules("version: 1\n", "r.yml")
    text = "\n".join(caught.value.problems)
    assert "missing `rules`" in text and "missing `default`" in text
