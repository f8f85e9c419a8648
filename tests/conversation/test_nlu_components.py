"""The NLU's reply check (bot.conversation.nlu_components): agreement needs high confidence
and no negation; an FAQ topic the selector is unsure of becomes an honest 'the advisor
answers that' (ask_detail). Pure functions: no model needed."""

from __future__ import annotations

import pytest

from bot.conversation.nlu_components import check_reply, has_negation


def check(text: str, intent: str, confidence: float = 0.9, faq_confidence: float | None = None):
    return check_reply(text, intent, confidence, faq_confidence, agreement_threshold=0.6, faq_threshold=0.5)


@pytest.mark.parametrize(
    "text",
    [
        "我不加微信",
        "别加我微信",
        "加微信就算了",
        "加微信就算了吧",
        "企业微信我就不加了",
        "顾问就不用加我了",
        "不用让顾问加我",
        "你别加我",
        "加了我也不会通过",
        "不想加",
        "微信算了",
    ],
)
def test_a_refusal_of_the_add_read_as_agreement_is_a_refusal(text: str) -> None:
    assert check(text, "agree_add_wecom") == ("refuse", "refuses_wecom")
    assert check(text, "affirm") == ("refuse", "refuses_wecom")


@pytest.mark.parametrize(
    "text", ["好的 你加吧", "可以加", "没问题 加吧", "不错 那就加吧", "行 你让顾问加我 我通过", "加吧加吧", "要得 加嘛"]
)
def test_a_plain_agreement_is_left_alone(text: str) -> None:
    assert check(text, "agree_add_wecom") is None


@pytest.mark.parametrize("text", ["没说不要 你先说说", "我没说不行 你继续", "也不是不可以 你先讲", "不是不听 你说吧"])
def test_a_negated_negation_is_not_a_negation(text: str) -> None:
    assert not has_negation(text)
    assert check(text, "affirm") is None


@pytest.mark.parametrize("text", ["不忙 你说", "嗯 不好说", "嗯 不太想"])
def test_an_agreement_with_a_negation_word_is_confirmed_first(text: str) -> None:
    assert check(text, "affirm") == ("uncertain_agreement", "negation")


def test_a_low_confidence_agreement_is_confirmed_first() -> None:
    assert check("嗯那就", "agree_add_wecom", confidence=0.45) == ("uncertain_agreement", "low_confidence")
    assert check("嗯那就", "agree_add_wecom", confidence=0.75) is None


def test_other_intents_are_never_changed_by_the_agreement_check() -> None:
    assert check("我不加微信", "refuse") is None
    assert check("不需要", "deny", confidence=0.3) is None


def test_an_faq_topic_the_selector_is_unsure_of_is_answered_by_the_advisor() -> None:
    assert check("能换成重疾险吗", "faq", faq_confidence=0.3) == ("ask_detail", "faq_topic_unsure")
    assert check("有没有等待期", "faq", faq_confidence=0.9) is None
    assert check("有没有等待期", "faq", faq_confidence=None) is None
