"""Carrier announcements → call statuses, including ASR-garbled recordings, and never
a person's reply."""
from __future__ import annotations

import pytest

from intents.assess import screen_carrier
from intents.finished_call import FinishedCall, Turn
from intents.announcements import FORWARDED, detect_announcement, detect_in_turns

ANNOUNCEMENTS = [
    ("您拨打的电话已关机", "powered_off"),
    ("Sorry, the number you dialed is power off", "powered_off"),
    ("宁拨打的电话已观机", "powered_off"),
    ("您拨打的号码是空号，请查证后再拨", "vacant_number"),
    ("您拨打的号码不存在", "vacant_number"),
    ("您波打的号码是孔号", "vacant_number"),
    ("您拨打的电话已停机", "suspended"),
    ("您拨打的用户已欠费停机", "suspended"),
    ("您拨打的电话已挺机", "suspended"),
    ("您拨打的电话暂时无法接通，请稍后再拨", "unreachable"),
    ("您拨打的用户不在服务区", "unreachable"),
    ("您呼叫的用户暂时无法接同", "unreachable"),
    ("您拨打的用户已开通来电提醒服务，我们将以短信方式通知机主", "unreachable"),
    ("您拨打的电话正在通话中，请稍后再拨", "line_busy"),
    ("您拨打的用户正忙，请稍后再拨", "line_busy"),
    ("您拨打的电话正在痛话中", "line_busy"),
    ("您拨打的电话暂时无人接听，请稍后再拨", "no_answer"),
    ("您拨打的电话暂时无人接丁", "no_answer"),
    ("您拨打的用户暂时无法接听，请在提示音后留言", "voicemail"),
    ("欢迎使用语音信箱，请留言", "voicemail"),
    ("您好，我是机主的智能助理，机主现在不方便接听", "voicemail"),
    ("您拨打的电话已被限制呼入", "call_restricted"),
    ("您拨打的用户已设置了免打扰，暂时不接受来电", "call_restricted"),
    ("您拨打的电话已设置呼叫转移，请不要挂机", FORWARDED),
]

PEOPLE = [
    "我手机快关机了，长话短说",
    "我在开会，现在正忙",
    "不需要，别打了",
    "喂，你好",
    "我在通话呢，你等下",
    "好的好的，你说",
    "听不清，信号不好",
    "你们是哪个平台的",
]


@pytest.mark.parametrize("text,kind", ANNOUNCEMENTS, ids=[a[0] for a in ANNOUNCEMENTS])
def test_announcement_is_detected(text: str, kind: str) -> None:
    found = detect_announcement(text)
    assert found is not None and found.kind == kind


@pytest.mark.parametrize("text", PEOPLE)
def test_people_are_not_recordings(text: str) -> None:
    assert detect_announcement(text) is None


def test_recording_split_over_two_asr_turns() -> None:
    turns = (Turn("callee", "您拨打的电话", 0.5), Turn("callee", "已关机", 2.0))
    found, used = detect_in_turns(turns)
    assert found is not None and found.status == "powered_off" and used == 2


def test_only_the_start_of_the_call_is_screened() -> None:
    # A person spoke first; a later sentence that sounds like a recording is theirs.
    turns = (Turn("callee", "喂你好", 1.0), Turn("bot", "请问您现在方便吗", 2.0),
             Turn("callee", "好的", 4.0), Turn("callee", "您拨打的电话已关机", 6.0))
    assert detect_in_turns(turns) == (None, 0)


def test_screening_sets_the_status_and_drops_the_recording() -> None:
    call = FinishedCall("c1", (Turn("bot", "王先生您好", 0.0), Turn("callee", "您拨打的电话已停机", 1.0)))
    screened, found = screen_carrier(call)
    assert screened.status == "suspended" and found is not None
    assert [t.text for t in screened.turns] == ["王先生您好"]


def test_forwarding_keeps_the_call_answered_for_the_person_after_it() -> None:
    call = FinishedCall("c2", (Turn("callee", "您拨打的电话正在呼叫转移中，请勿挂机", 0.0),
                               Turn("bot", "您好", 3.0), Turn("callee", "喂你好", 5.0)))
    screened, found = screen_carrier(call)
    assert found is not None and found.kind == FORWARDED and found.status is None
    assert screened.status == "answered"
    assert [t.text for t in screened.turns] == ["您好", "喂你好"]


def test_an_already_unconnected_call_is_left_alone() -> None:
    call = FinishedCall("c3", (), status="no_answer")
    assert screen_carrier(call) == (call, None)
