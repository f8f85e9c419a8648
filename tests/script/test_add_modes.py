"""What the robot promises about WeCom matches what the call's add mode does (issue 18
item 5, issue 16 item 3): the lines per mode, the lint that fails a wrong promise with
file and line, and the mode a call gets (a landline always hears the callback lines)."""

from __future__ import annotations

from bot.conversation.session import CallSession, LeadContext
from bot.core.add_modes import ADVISOR_ADDS, CALLBACK, LINK, add_mode_for_call
from bot.core.phone import LANDLINE, MOBILE
from bot.script.project import DialogsProject
from bot.script.script_lines import load_script_domain
from tests.conftest import run
from tests.script.test_lint import edit, errors, line_of

LINK_ASK = "我给您发一条短信，点开里面的链接就能添加{advisor}的企业微信，您看可以吗？"
ADDS_ASK = "我让{advisor}用企业微信添加您，就用您现在这个手机号，您看可以吗？"


def test_a_landline_is_a_callback_whatever_the_campaign_chose() -> None:
    assert add_mode_for_call(LINK, LANDLINE) == CALLBACK
    assert add_mode_for_call(ADVISOR_ADDS, LANDLINE) == CALLBACK
    assert add_mode_for_call(ADVISOR_ADDS, MOBILE) == ADVISOR_ADDS
    assert add_mode_for_call(None, MOBILE) == LINK  # a campaign from before add modes
    assert add_mode_for_call("callback", MOBILE) == LINK  # never chosen by a campaign
    assert LeadContext(add_mode=CALLBACK).slots()["add_mode"] == CALLBACK


def test_each_mode_has_its_own_words(dialogs_project: DialogsProject) -> None:
    domain = load_script_domain(dialogs_project)
    for variant in domain.variants():
        said = {
            mode: {line.response: line.template for line in domain.lines_for_variant(variant, mode)}
            for mode in (LINK, ADVISOR_ADDS, CALLBACK)
        }
        assert "短信" in said[LINK]["utter_ask_wecom"] and "添加您" not in said[LINK]["utter_ask_wecom"]
        assert "添加您" in said[ADVISOR_ADDS]["utter_ask_wecom"] and "短信" not in said[ADVISOR_ADDS]["utter_ask_wecom"]
        for response, text in said[CALLBACK].items():
            assert "微信" not in text and "短信" not in text, (variant, response, text)
        assert "回电话" in said[CALLBACK]["utter_pitch"] and "回电话" in said[CALLBACK]["utter_confirm_wecom"]


def test_a_link_line_that_says_the_advisor_adds_fails_with_file_and_line(dialogs_copy: DialogsProject) -> None:
    responses = dialogs_copy.domain_dir / "responses.yml"
    edit(responses, f'      text: "{LINK_ASK}"', f'      text: "{ADDS_ASK}"')
    line = line_of(responses, ADDS_ASK)  # the link variation now sits first
    found = errors(dialogs_copy)
    assert any(
        f"responses.yml:{line}:" in e and "'utter_ask_wecom'" in e and "add mode link" in e and "the advisor adds" in e
        for e in found
    ), found


def test_a_wecom_promise_to_a_landline_fails(dialogs_copy: DialogsProject) -> None:
    faq = dialogs_copy.domain_dir / "faq.yml"
    edit(faq, "顾问回电话时给您讲清楚。", "顾问会用企业微信发给您。")
    found = errors(dialogs_copy)
    assert any("'utter_faq/coverage'" in e and "add mode callback" in e and "faq.yml:" in e for e in found), found


def test_an_sms_in_advisor_adds_mode_fails(dialogs_copy: DialogsProject) -> None:
    responses = dialogs_copy.domain_dir / "responses.yml"
    edit(responses, f'      text: "{ADDS_ASK}"', f'      text: "{LINK_ASK}"')
    found = errors(dialogs_copy)
    assert any("'utter_ask_wecom'" in e and "add mode advisor_adds" in e and "an SMS" in e for e in found), found


def test_an_unknown_mode_in_a_condition_fails(dialogs_copy: DialogsProject) -> None:
    responses = dialogs_copy.domain_dir / "responses.yml"
    text = responses.read_text(encoding="utf-8")
    responses.write_text(text.replace("value: advisor_adds", "value: advisor_calls", 1), encoding="utf-8")
    found = errors(dialogs_copy)
    assert any("add mode 'advisor_calls'" in e for e in found), found


def test_the_call_says_the_lines_of_its_mode(dialogue_agent) -> None:
    async def ask(mode: str) -> tuple[str, str]:
        session = CallSession(dialogue_agent, LeadContext(surname="王", gender="M", add_mode=mode))
        await session.start()
        pitch = await session.hear("嗯你说吧")
        agreed = await session.hear("好的可以")
        return pitch.text, agreed.text

    link_pitch, link_agreed = run(ask(LINK))
    adds_pitch, adds_agreed = run(ask(ADVISOR_ADDS))
    callback_pitch, callback_agreed = run(ask(CALLBACK))
    assert "短信" in link_pitch and "添加您" not in link_pitch
    assert "添加您" in adds_pitch and "短信" not in adds_pitch
    assert "微信" not in callback_pitch and "回个电话" in callback_pitch
    assert "短信" in link_agreed and "验证消息" in adds_agreed
    assert "微信" not in callback_agreed and "回电话" in callback_agreed
