"""Callback-time extraction: Chinese time expressions → windows, with a fixed "now".

Now is Wednesday 2026-03-11 10:20 in Asia/Shanghai. UNKNOWN means the phrase is a
time expression that must not be turned into a (wrong) concrete time.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from intents.callback_times import SHANGHAI, find_callback_times
from intents.entities import extract_entities

NOW = datetime(2026, 3, 11, 10, 20, tzinfo=SHANGHAI)
UNKNOWN = "unknown"
NONE = "no time"

CASES = [
    # (reply, expected "MM-DD HH:MM/MM-DD HH:MM", UNKNOWN, or NONE)
    ("明天下午三点再打吧", "03-12 15:00/03-12 15:30"),
    ("下周一上午", "03-16 09:00/03-16 12:00"),
    ("半小时后再打", "03-11 10:50/03-11 11:05"),
    ("晚上八点以后吧", "03-11 20:00/03-11 22:00"),
    ("过两天吧", "03-13 00:00/03-14 00:00"),
    ("周末吧，周末有空", "03-14 00:00/03-16 00:00"),
    ("下午四点左右", "03-11 15:45/03-11 16:15"),
    ("一个小时以后再打给我", "03-11 11:20/03-11 11:50"),
    ("一个半小时以后", "03-11 11:50/03-11 12:20"),
    ("十分钟后", "03-11 10:30/03-11 10:45"),
    ("过二十分钟再打", "03-11 10:40/03-11 10:55"),
    ("两个小时之后", "03-11 12:20/03-11 12:50"),
    ("今晚七点半", "03-11 19:30/03-11 20:00"),
    ("明早", "03-12 07:00/03-12 10:00"),
    ("明天上午再打过来", "03-12 09:00/03-12 12:00"),
    ("后天上午", "03-13 09:00/03-13 12:00"),
    ("大后天", "03-14 00:00/03-15 00:00"),
    ("明天这个时候吧", "03-12 10:20/03-12 10:50"),
    ("三点", "03-11 15:00/03-11 15:30"),
    ("三点半", "03-11 15:30/03-11 16:00"),
    ("两点一刻", "03-11 14:15/03-11 14:45"),
    ("15:30打给我", "03-11 15:30/03-11 16:00"),
    ("两三点吧", "03-11 14:00/03-11 15:00"),
    ("下午三点到五点都行", "03-11 15:00/03-11 17:00"),
    ("八点以后", "03-11 20:00/03-12 00:00"),
    ("十点十五", "03-12 10:15/03-12 10:45"),
    ("今天下午", "03-11 14:00/03-11 18:00"),
    ("中午一点", "03-11 13:00/03-11 13:30"),
    ("明天吧，下午三点左右", "03-12 14:45/03-12 15:15"),
    ("周五下午", "03-13 14:00/03-13 18:00"),
    ("星期六上午十点", "03-14 10:00/03-14 10:30"),
    ("礼拜天", "03-15 00:00/03-16 00:00"),
    ("周一", "03-16 00:00/03-17 00:00"),
    ("下下周三", "03-25 00:00/03-26 00:00"),
    ("下周末", "03-21 00:00/03-23 00:00"),
    ("过两三天", "03-13 00:00/03-15 00:00"),
    ("3月20号上午", "03-20 09:00/03-20 12:00"),
    ("15号下午", "03-15 14:00/03-15 18:00"),
    ("后天晚上七点半", "03-13 19:30/03-13 20:00"),
    ("一点以后", "03-11 13:00/03-12 00:00"),
    ("晚点吧，八点以后", "03-11 20:00/03-12 00:00"),
    # must stay unknown: vague, impossible, or already past
    ("改天吧", UNKNOWN),
    ("过几天再说", UNKNOWN),
    ("下个月吧", UNKNOWN),
    ("回头再说", UNKNOWN),
    ("等会儿再打", UNKNOWN),
    ("晚点再说", UNKNOWN),
    ("到时候再说吧", UNKNOWN),
    ("下午十点", UNKNOWN),
    ("上午三点", UNKNOWN),
    ("二十五点", UNKNOWN),
    ("32号", UNKNOWN),
    ("2月30号", UNKNOWN),
    ("这周一", UNKNOWN),  # Monday of this week is past on Wednesday
    ("今天早上", UNKNOWN),  # 07:00–10:00 is over at 10:20
    ("十点六十分", UNKNOWN),
    # not a time at all
    ("说慢一点", NONE),
    ("我这两天都忙", NONE),
    ("好的可以", NONE),
    ("差一点忘了", NONE),
    ("两个小时的会", NONE),
]


def _shown(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


@pytest.mark.parametrize("text,expected", CASES, ids=[c[0] for c in CASES])
def test_callback_time(text: str, expected: str) -> None:
    found = find_callback_times(text, NOW)
    if expected == NONE:
        assert found == []
        return
    assert len(found) == 1, found
    (time_,) = found
    assert text[time_.start:time_.end] == time_.text
    if expected == UNKNOWN:
        assert not time_.resolved and time_.end_at is None
    else:
        assert time_.resolved, time_
        assert f"{_shown(time_.start_at)}/{_shown(time_.end_at)}" == expected


def test_there_are_at_least_forty_expressions() -> None:
    assert len([c for c in CASES if c[1] != NONE]) >= 40


def test_now_in_utc_is_read_in_shanghai() -> None:
    # 02:20 UTC is 10:20 in Shanghai: 三点 is 15:00 Shanghai time, the same day.
    (found,) = find_callback_times("三点", datetime(2026, 3, 11, 2, 20, tzinfo=timezone.utc))
    assert _shown(found.start_at) == "03-11 15:00"
    assert found.start_at.utcoffset().total_seconds() == 8 * 3600


def test_entities_are_rasa_shaped_with_iso_window() -> None:
    entities = extract_entities("我老婆说明天下午三点以后再打，百万医疗险我们买过了", NOW)
    by_kind = {e["entity"]: e for e in entities}
    assert by_kind["family_member"]["value"] == "spouse"
    assert by_kind["insurance_type"]["value"] == "百万医疗险"
    time_ = by_kind["callback_time"]
    assert time_["value"] == "明天下午三点以后" and time_["extractor"] == "waihu_spacy"
    assert time_["start_at"] == "2026-03-12T15:00:00+08:00"
    assert time_["end_at"] == "2026-03-12T18:00:00+08:00"
    text = "我老婆说明天下午三点以后再打，百万医疗险我们买过了"
    for entity in entities:
        assert text[entity["start"]:entity["end"]]


@pytest.mark.parametrize("text,kind,value", [
    ("我有重疾险了", "insurance_type", "重疾险"),
    ("公司给买了意外险", "insurance_type", "意外险"),
    ("我在买年金", "insurance_type", "年金险"),
    ("有医保", "insurance_type", "社保"),
    ("孩子还小", "family_member", "child"),
    ("要问我爸妈", "family_member", "parent"),
    ("我老公管这个", "family_member", "spouse"),
])
def test_insurance_types_and_family(text: str, kind: str, value: str) -> None:
    assert [(e["entity"], e["value"]) for e in extract_entities(text, NOW)] == [(kind, value)]


def test_unknown_time_entity_has_no_window() -> None:
    (entity,) = extract_entities("改天再打吧", NOW)
    assert entity["entity"] == "callback_time" and entity["start_at"] is None and entity["end_at"] is None


def test_entities_do_not_depend_on_jieba_segmentation() -> None:
    """The Rasa tokenizer loads the script's jieba dictionary into the same global jieba;
    a mention must come out the same whichever way jieba then splits it."""
    import jieba

    from bot.core.settings import get_settings

    for path in sorted((get_settings().dialogs_dir / "jieba").glob("*")):
        jieba.load_userdict(str(path))
    entities = extract_entities("百万医疗险我们买过了，重疾险也有", NOW)
    assert [(e["entity"], e["value"]) for e in entities] == [
        ("insurance_type", "百万医疗险"), ("insurance_type", "重疾险")]
