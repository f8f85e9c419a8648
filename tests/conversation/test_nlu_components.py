"""The NLU's reply check (bot.conversation.nlu_components): agreement needs high confidence
and no negation; an FAQ topic the selector is unsure of becomes an honest 'the advisor
answers that' (ask_detail). Pure functions: no model needed."""

from __future__ import annotations

import pytest

from bot.conversation.nlu_components import check_reply, has_negation
from tests.conftest import run


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


def _loaded_components(dialogue_agent, component_type: type) -> list:
    """The instances of a component class in the loaded model's prediction graph."""
    runner = dialogue_agent._agent.processor.graph_runner
    nodes = runner._instantiated_nodes.values()
    return [node._component for node in nodes if isinstance(getattr(node, "_component", None), component_type)]


def test_the_response_selector_answers_only_replies_read_as_faq(dialogue_agent) -> None:
    from bot.conversation.nlu_components import FaqResponseSelector

    assert _loaded_components(dialogue_agent, FaqResponseSelector), "the FAQ selector is not in the pipeline"
    question = run(dialogue_agent.parse("那个等待期是多久啊"))
    assert question.intent == "faq/waiting_period", question
    assert question.raw["response_selector"]["faq"]["response"]["responses"]
    agreement = run(dialogue_agent.parse("好的你加我吧"))
    assert agreement.intent == "agree_add_wecom"
    assert "faq" not in (agreement.raw.get("response_selector") or {})


def test_the_rule_policy_memoises_its_lookup_without_changing_the_call(dialogue_agent) -> None:
    from bot.conversation.policies import CachedRulePolicy
    from bot.conversation.session import CallSession, LeadContext

    (policy,) = _loaded_components(dialogue_agent, CachedRulePolicy)
    assert policy._possible_keys_cache is not None

    async def call() -> list[str]:
        session = CallSession(dialogue_agent, LeadContext(surname="王", gender="M"))
        said = [line.response for line in (await session.start()).lines]
        for text in ("你是哪个公司的", "有没有等待期", "我考虑一下吧", "好吧那你加我"):
            if session.ended:
                break
            said += [line.response for line in (await session.hear(text)).lines]
        return said

    policy._possible_keys_cache.clear()
    first = run(call())
    remembered = len(policy._possible_keys_cache)
    second = run(call())
    assert remembered > 0
    assert len(policy._possible_keys_cache) == remembered  # the same call: every lookup a hit
    assert first == second
    assert "utter_faq/waiting_period" in first and not first[-1].startswith("utter_faq")


@pytest.mark.parametrize("text", ["我手机是13812345678", "你打这个号138 1234 5678", "嗯我在听"])
def test_stop_calling_without_an_opt_out_word_is_asked_again(text: str) -> None:
    assert check(text, "stop_calling") == ("nlu_fallback", "stop_calling_without_opt_out_words")


@pytest.mark.parametrize("text", ["以后别打了", "把我号码删了", "屏蔽我的号码", "再打我就投诉", "我要去消协告你们", "拉黑"])
def test_a_real_opt_out_is_never_second_guessed(text: str) -> None:
    assert check(text, "stop_calling") is None
