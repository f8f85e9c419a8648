"""The script writers' lint: each mistake gives one error with file and line."""

from __future__ import annotations

import re
from pathlib import Path

from bot.script.lint import lint_project
from bot.script.project import DialogsProject


def errors(project: DialogsProject) -> list[str]:
    return [str(p) for p in lint_project(project) if p.severity == "error"]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text not found in {path}: {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_shipped_dialogs_have_no_errors(dialogs_project: DialogsProject) -> None:
    assert errors(dialogs_project) == []


def test_malformed_yaml_names_file_and_line(dialogs_copy: DialogsProject) -> None:
    rules = dialogs_copy.data_dir / "rules.yml"
    edit(rules, "  - rule: the callee picks up", "  - rule: the callee: picks: up")
    found = errors(dialogs_copy)
    assert len(found) == 1
    assert found[0].startswith(f"dialogs/data/rules.yml:{line_of(rules, 'the callee: picks')}: error: malformed YAML")


def test_unknown_intent_in_a_story(dialogs_copy: DialogsProject) -> None:
    stories = dialogs_copy.data_dir / "stories.yml"
    edit(stories, "      - intent: ask_identity", "      - intent: ask_identiti")
    found = errors(dialogs_copy)
    line = line_of(stories, "ask_identiti")
    assert any(f"dialogs/data/stories.yml:{line}: error: unknown intent 'ask_identiti'" in e for e in found), found


def test_unknown_action_in_a_rule(dialogs_copy: DialogsProject) -> None:
    rules = dialogs_copy.data_dir / "rules.yml"
    edit(rules, "      - action: utter_close_refuse", "      - action: utter_close_refused")
    line = line_of(rules, "utter_close_refused")
    assert any(f"rules.yml:{line}: error: unknown action 'utter_close_refused'" in e for e in errors(dialogs_copy))


def test_undefined_slot_in_a_response(dialogs_copy: DialogsProject) -> None:
    responses = dialogs_copy.domain_dir / "responses.yml"
    edit(responses, "我让{advisor}用企业微信", "我让{adviser}用企业微信")
    line = line_of(responses, "{adviser}")
    found = errors(dialogs_copy)
    assert any(
        f"responses.yml:{line}: error: response 'utter_ask_wecom' uses {{adviser}}, which is not a slot" in e
        for e in found
    ), found


def test_opening_without_ai_label_or_opt_out_fails(dialogs_copy: DialogsProject) -> None:
    variants = dialogs_copy.domain_dir / "variants.yml"
    edit(variants, "我是AI客服，声音为合成语音，通话录音，不需要请说“不要再打”。", "我是客服小安。")
    found = errors(dialogs_copy)
    assert any("opening (benefit_first) lacks the AI label" in e for e in found), found
    assert any("opening (benefit_first) lacks the recording notice" in e for e in found), found
    assert any("opening (benefit_first) lacks how to opt out" in e for e in found), found
    # the standard variant is untouched and stays clean
    assert not any("opening (standard)" in e for e in found)


def test_robot_must_not_deny_being_a_robot(dialogs_copy: DialogsProject) -> None:
    responses = dialogs_copy.domain_dir / "responses.yml"
    edit(responses, "是的，我是人工智能客服，声音是AI合成的。", "我不是机器人，我是真人客服。")
    assert any("denies being a robot" in e for e in errors(dialogs_copy))


def test_closing_line_needs_ai_label(dialogs_copy: DialogsProject) -> None:
    responses = dialogs_copy.domain_dir / "responses.yml"
    edit(responses, "好的，感谢您的接听。本次通话由AI合成语音完成，再见。", "好的，感谢您的接听，再见。")
    assert any("closing line 'utter_close_goodbye' lacks the AI label" in e for e in errors(dialogs_copy))


def test_empty_and_overlong_lines(dialogs_copy: DialogsProject) -> None:
    responses = dialogs_copy.domain_dir / "responses.yml"
    edit(responses, '"请问您现在方便听我说一分钟吗？"', '"  "')
    edit(responses, '"这个福利是完全免费的，', '"' + "这个福利是完全免费的，" * 8)
    found = errors(dialogs_copy)
    assert any("'utter_ask_good_time' has an empty line" in e for e in found), found
    assert any(re.search(r"'utter_answer_price' is too long to say \(≈\d+ s", e) for e in found), found


def test_every_intent_must_be_handled(dialogs_copy: DialogsProject) -> None:
    rules = dialogs_copy.data_dir / "rules.yml"
    text = rules.read_text(encoding="utf-8")
    # drop every rule that handles wrong_person
    blocks = text.split("\n\n")
    rules.write_text("\n\n".join(b for b in blocks if "intent: wrong_person" not in b), encoding="utf-8")
    assert any("intent 'wrong_person' is never handled" in e for e in errors(dialogs_copy))


def test_every_variant_needs_its_line(dialogs_copy: DialogsProject) -> None:
    core = dialogs_copy.domain_dir / "core.yml"
    edit(core, "      - benefit_first\n", "      - benefit_first\n      - short_pitch\n")
    found = errors(dialogs_copy)
    assert any("'utter_opening' has no line for script variant 'short_pitch'" in e for e in found), found
    assert any("'utter_pitch' has no line for script variant 'short_pitch'" in e for e in found), found


def test_nlu_example_with_two_labels(dialogs_copy: DialogsProject) -> None:
    refuse = dialogs_copy.data_dir / "nlu" / "refuse.yml"
    refuse.write_text(refuse.read_text(encoding="utf-8") + "    - 你是机器人吗\n", encoding="utf-8")
    ask_robot = dialogs_copy.data_dir / "nlu" / "ask_is_robot.yml"
    ask_robot.write_text(ask_robot.read_text(encoding="utf-8") + "    - 你是机器人吗\n", encoding="utf-8")
    assert any("example '你是机器人吗' is labelled" in e for e in errors(dialogs_copy))


# --- retrieval intents (FAQ) --------------------------------------------------------------


def test_an_faq_topic_without_an_answer_is_an_error(dialogs_copy: DialogsProject) -> None:
    faq = dialogs_copy.domain_dir / "faq.yml"
    edit(faq, "  utter_faq/claims:", "  utter_faq/claim:")
    assert any("FAQ topic 'faq/claims' has no answer" in e for e in errors(dialogs_copy))


def test_faq_examples_and_test_steps_use_the_topic_name(dialogs_copy: DialogsProject) -> None:
    # The shipped project labels examples faq/<topic> and rules use `faq` + `utter_faq`: no errors,
    # and an unknown retrieval intent in a test story is still caught.
    tests = dialogs_copy.tests_dir / "test_conversations.yml"
    edit(tests, "        intent: faq/waiting_period", "        intent: fqa/waiting_period")
    line = line_of(tests, "fqa/waiting_period")
    assert any(
        f"test_conversations.yml:{line}: error: unknown intent 'fqa/waiting_period'" in e for e in errors(dialogs_copy)
    )


def test_faq_answers_are_linted_like_every_line(dialogs_copy: DialogsProject) -> None:
    faq = dialogs_copy.domain_dir / "faq.yml"
    edit(faq, "不会自动扣费。领取不用", "我不是机器人，不会自动扣费。领取不用")
    assert any("response 'utter_faq/auto_charge' denies being a robot" in e for e in errors(dialogs_copy))
