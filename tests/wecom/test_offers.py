"""The offers file: validation with file:line, incentives per audience pack and arm, welcome
scripts per pack × grade, and the promise/welcome match."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.core.errors import UserError
from bot.wecom.offers import incentive_for, load_offers, parse_offers, render_sms, welcome_for, welcome_slots

OFFERS_FILE = Path(__file__).resolve().parents[2] / "dialogs" / "wecom" / "offers.yml"

MINIMAL = """\
advisor: {userid: adv01, name: 小安}
sms: "您的{incentive}：{link} 拒收请回复R"
audiences:
  default:
    incentives:
      - {name: 检视, text: 一次免费的保单检视}
    welcome:
      any:
        - {name: 标准, text: "{callee_title}您好，{incentive}请查收"}
"""


@dataclass
class Pack:
    name: str
    scene: str | None


@dataclass
class CampaignLike:
    incentive: str | None = None
    experiments: dict | None = None


def test_the_shipped_offers_file_is_valid_and_covers_the_demo_packs():
    offers = load_offers(OFFERS_FILE)
    assert offers.invite_grades == ("A", "B")
    for scene in ("车主", "宝妈", "养老"):
        assert offers.audience(Pack(f"{scene}-某地", scene)).key == scene
        for grade in ("A", "B"):
            welcome = welcome_for(offers, Pack(f"{scene}-某地", scene), grade, 1)
            assert "{incentive}" in welcome.text


def test_every_mistake_is_reported_with_file_and_line_at_once():
    text = """\
invite_grades: [A, C]
delivery: carrier-pigeon
advisor: {userid: adv01}
sms: "加微 {link}"
colour: blue
audiences:
  default:
    incentives:
      - {name: 检视, text: "一次免费的{thing}"}
      - {name: 检视, text: 一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三, weight: 0}
    welcome:
      C:
        - {name: x, text: hi}
      A:
        - name: 标准
          text: "{callee_title}您好 {nickname}"
          link: {url: ftp://x}
"""
    with pytest.raises(UserError) as caught:
        parse_offers(text, "offers.yml")
    problems = caught.value.problems
    details = "\n".join(problems)
    expected = [
        ("offers.yml:1:", "invite_grades"),
        ("offers.yml:2:", "delivery: 'carrier-pigeon'"),
        ("offers.yml:3:", "advisor.name"),
        ("offers.yml:4:", "opt out"),
        ("offers.yml:5:", "unknown key 'colour'"),
        ("offers.yml:9:", "cannot contain {slots}"),
        ("offers.yml:10:", "used twice"),
        ("offers.yml:10:", "at most 30"),
        ("offers.yml:10:", "weight: must be a number above 0"),
        ("offers.yml:12:", "the grade must be A, B or any"),
        ("offers.yml:16:", "unknown slot(s) {nickname}"),
        ("offers.yml:17:", "must start with https://"),
        ("offers.yml:17:", "missing `audiences.default.welcome.A[0].link.title`"),
    ]
    for where, what in expected:
        assert any(line.startswith(where) and what in line for line in problems), (where, what, details)


def test_yaml_syntax_errors_name_the_line():
    with pytest.raises(UserError, match=r"offers.yml:3:\d+: not valid YAML"):
        parse_offers("advisor:\n  userid: a\n  name: a: b\n", "offers.yml")


def test_a_missing_default_block_and_missing_welcome_for_an_invited_grade():
    with pytest.raises(UserError) as caught:
        parse_offers(MINIMAL.replace("  default:", "  车主:"), "o.yml")
    assert any("needs a `default` block" in line for line in caught.value.problems)
    only_b = MINIMAL.replace("      any:", "      B:")
    with pytest.raises(UserError) as caught:
        parse_offers(only_b, "o.yml")
    assert any("welcome for grade A" in line for line in caught.value.problems)
    assert parse_offers(only_b.replace("advisor:", "invite_grades: [B]\nadvisor:"), "o.yml").invite_grades == ("B",)


def test_incentive_by_pack_name_then_scene_then_default():
    offers = parse_offers(MINIMAL + """\
  车主:
    incentives: [{name: 驾乘险, text: 一份驾乘意外险}]
  车主-华东:
    incentives: [{name: 道路救援, text: 一次免费道路救援}]
""")
    assert incentive_for(offers, Pack("车主-华东", "车主"), 1).text == "一次免费道路救援"
    assert incentive_for(offers, Pack("车主-华南", "车主"), 1).text == "一份驾乘意外险"
    assert incentive_for(offers, Pack("宝妈-华南", "宝妈"), 1).text == "一次免费的保单检视"
    assert incentive_for(offers, "车主", 1).text == "一份驾乘意外险"
    assert incentive_for(offers, None, 1).audience == "default"


def test_incentive_arms_split_by_weight_deterministically_per_lead():
    offers = load_offers(OFFERS_FILE)
    pack = Pack("车主-华东", "车主")
    picks = [incentive_for(offers, pack, lead_id).name for lead_id in range(1, 20001)]
    shares = Counter(picks)
    assert set(shares) == {"驾乘意外险", "理赔绿色通道"}
    assert abs(shares["驾乘意外险"] / 20000 - 0.5) < 0.015
    again = [incentive_for(load_offers(OFFERS_FILE), pack, lead_id).name for lead_id in range(1, 20001)]
    assert again == picks  # the same lead always hears the same offer


def test_the_experiment_arm_on_the_attempt_wins_and_uses_the_right_text():
    offers = load_offers(OFFERS_FILE)
    pack = Pack("车主-华东", "车主")
    # an arm the offers know for this pack: the offers' wording
    assert incentive_for(offers, pack, 7, {"incentive": "理赔绿色通道"}).text == "车险理赔绿色通道服务"
    # an arm only the campaign's experiment defines: the campaign's text
    campaign = CampaignLike(experiments={"incentives": [{"name": "加油卡", "text": "一张加油卡", "weight": 1}]})
    chosen = incentive_for(offers, pack, 7, {"incentive": "加油卡"}, campaign=campaign)
    assert (chosen.text, chosen.source) == ("一张加油卡", "campaign_arm")
    # the campaign's single incentive covers packs without a block of their own
    campaign = CampaignLike(incentive="一份免费的短期意外险")
    assert incentive_for(offers, Pack("单身-华东", "单身"), 7, {}, campaign=campaign).text == "一份免费的短期意外险"
    assert incentive_for(offers, pack, 7, {}, campaign=campaign).audience == "车主"


def test_welcome_per_pack_and_grade_with_arms_and_the_same_incentive_as_the_call():
    offers = load_offers(OFFERS_FILE)
    pack = Pack("车主-华东", "车主")
    names = Counter(welcome_for(offers, pack, "A", lead).name for lead in range(1, 4001))
    assert set(names) == {"标准", "简短"}
    assert {welcome_for(offers, pack, "B", lead).key for lead in range(1, 200)} == {"车主/B/标准"}
    assert welcome_for(offers, pack, "A", 3, {"welcome": "简短"}).key == "车主/A/简短"
    assert welcome_for(offers, Pack("养老-华北", "养老"), "B", 3).key == "养老/any/标准"
    for lead in range(1, 300):
        incentive = incentive_for(offers, pack, lead)  # what the dialer puts in the call
        text, attachments = welcome_for(offers, pack, "A", lead).render(
            welcome_slots(offers, pack, incentive, "王先生"))
        assert incentive.text in text and text.startswith("王先生您好")
        assert attachments[0]["msgtype"] == "link" and attachments[0]["link"]["title"] == f"领取{incentive.text}"
        assert "{" not in text
    sms = render_sms(offers, welcome_slots(offers, pack, incentive_for(offers, pack, 5), "李女士"),
                     "https://wework.qpic.cn/x")
    assert "https://wework.qpic.cn/x" in sms and incentive_for(offers, pack, 5).text in sms and "拒收" in sms


def test_callee_title_matches_what_the_call_says():
    from bot.conversation.session import LeadContext
    from bot.wecom.invites import callee_title

    for name, gender in (("王小明", "M"), ("李芳", "F"), ("赵", None), (None, "M"), ("", None)):
        assert callee_title(name, gender) == LeadContext(surname=(name or "")[:1] or None, gender=gender).callee_title
