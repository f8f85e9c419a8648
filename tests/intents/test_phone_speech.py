"""Phone-channel variants of training examples (intents.phone_speech)."""

from __future__ import annotations

import random

from intents import phone_speech
from intents.phone_speech import NEGATION_CHARS, augment, homophones


def test_homophones_sound_the_same() -> None:
    from pypinyin import Style, lazy_pinyin

    options = homophones("信")
    assert options and "信" not in options
    assert all(lazy_pinyin(c, style=Style.TONE3) == ["xin4"] for c in options)
    assert homophones("a") == ()


def test_variants_are_deterministic_for_a_seed() -> None:
    first = augment("我考虑一下吧", random.Random("s"), 5)
    assert first == augment("我考虑一下吧", random.Random("s"), 5)
    assert len(first) == len(set(first)) == 5 and "我考虑一下吧" not in first


def test_negation_words_survive_every_change() -> None:
    for seed in range(200):
        for variant in augment("我不加微信", random.Random(seed), 3):
            assert "不" in variant
        for variant in augment("别再给我打电话了", random.Random(seed), 3):
            assert "别" in variant


def test_each_change_looks_like_the_phone_line() -> None:
    rng = random.Random(1)
    assert phone_speech.add_greeting("在上班", rng).endswith("在上班")
    assert phone_speech.drop_char("不要", rng) is None  # never in a short reply
    slipped = phone_speech.homophone("加个微信吧", random.Random(3))
    assert slipped != "加个微信吧" and len(slipped) == len("加个微信吧")
    assert phone_speech.dialect("你说什么", random.Random(0)) in {"你说啥", "你说啥子", "你说么子", "你说咩"}
    assert all(c in NEGATION_CHARS for c in "不没别")
