"""`waihu shell` as a script writer uses it: the grade and follow-ups the call would get,
and the offer (incentive, advisor) a real call to the chosen audience pack makes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot.cli.call_preview import next_dial
from bot.wecom.offers import load_offers
from intents.assess import CallOutcome
from intents.followups import CALLBACK, COOL_DOWN, DO_NOT_CALL, SOFT_DECLINE, WECOM_INVITE, FollowUp
from tests.cli.test_cli import assert_clean_failure, waihu


def test_shell_shows_the_grade_and_follow_ups_after_each_turn_and_at_the_end(model_path: Path,
                                                                             tmp_path: Path) -> None:
    result = waihu("shell", "--surname", "刘", "--gender", "F", stdin="考虑一下吧\n好的你加我微信吧\n",
                   WAIHU_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # After the hesitation: B (the grading rules' reason), and the WeCom invitation it triggers.
    assert "grade so far B — B：第1轮有兴趣但表示要考虑" in out, out
    assert "follow-ups: wecom_invite（企业微信邀请：B级，发送企业微信邀请）" in out
    # At the end: A, and what the invitation would carry (the offers' default block).
    assert "final grade A — A：第2轮同意添加企业微信" in out
    assert "WeCom invite: 专属顾问小安 (anxin_advisor01)" in out and "welcome (default/A/" in out
    assert "next dial: " in out and "at the earliest (" in out

    opted_out = waihu("shell", stdin="别再给我打电话了\n", WAIHU_DATA_DIR=str(tmp_path))
    assert opted_out.returncode == 0, opted_out.stderr
    assert "final grade C" in opted_out.stdout
    assert "do_not_call（永久免打扰：第1轮要求不再来电，永久免打扰）" in opted_out.stdout
    assert "WeCom invite" not in opted_out.stdout
    assert "next dial: never (dnc_opt_out, profile CN_INSURANCE_DEFAULT)" in opted_out.stdout


def test_next_dial_follows_the_dialers_retry_rules() -> None:
    """The shell's "next dial" is the compliance check every dial passes, on the attempt as
    the call store records it."""
    now = datetime.now(timezone.utc)

    def after(*followups: FollowUp) -> str:
        return next_dial(CallOutcome("shell", "answered", None, followups), now)

    def earliest(text: str) -> datetime:  # shown to the minute: the end of that minute
        shown = datetime.strptime(text[:16], "%Y-%m-%d %H:%M").replace(tzinfo=timezone(timedelta(hours=8)))
        return shown + timedelta(minutes=1)

    assert after(FollowUp(DO_NOT_CALL, "opt out")).startswith("never (dnc_opt_out")
    busy = after(FollowUp(COOL_DOWN, "busy", until=now + timedelta(days=7)))
    assert "(cooldown_busy" in busy and earliest(busy) >= now + timedelta(days=7)
    declined = after(FollowUp(SOFT_DECLINE, "no", until=now + timedelta(days=180)))
    assert earliest(declined) >= now + timedelta(days=180)
    invited = after(FollowUp(WECOM_INVITE, "A"))  # no follow-up that blocks: the rolling caps decide
    assert earliest(invited) >= now + timedelta(hours=24) and "cooldown" not in invited
    window = now + timedelta(days=2)
    window = window.replace(hour=6, minute=0, second=0, microsecond=0)  # 14:00 in Shanghai
    booked = after(FollowUp(CALLBACK, "明天下午", window_start=window, window_end=window + timedelta(hours=1)))
    assert booked.startswith(window.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")), booked


def test_shell_says_the_offer_of_the_chosen_audience_pack(model_path: Path, tmp_path: Path) -> None:
    offers = load_offers()
    default = offers.audiences["default"].incentives[0].text
    # Default: the offers' default block, not the domain's placeholder slot values.
    said = waihu("shell", stdin="考虑一下吧\n", WAIHU_DATA_DIR=str(tmp_path)).stdout
    assert f"平台免费为您准备了{default}" in said and "专属顾问小安会通过企业微信" in said, said
    assert "一份免费的短期意外险" not in said

    # An audience pack from the database: its scene's block (宝妈-华南 → 宝妈).
    data = tmp_path / "data"
    created = waihu("audiences", "create", "宝妈-华南", "--scene", "宝妈", WAIHU_DATA_DIR=str(data))
    assert created.returncode == 0, created.stderr
    kids = offers.audiences["宝妈"].incentives[0].text
    said = waihu("shell", "--audience", "宝妈-华南", stdin="考虑一下吧\n", WAIHU_DATA_DIR=str(data)).stdout
    assert f"平台免费为您准备了{kids}" in said and "audience 宝妈-华南 (offers: 宝妈)" in said, said

    # An A/B block: the first arm unless another is chosen; the others are named.
    arms = offers.audiences["车主"].incentives
    said = waihu("shell", "--audience", "车主", "--incentive-arm", arms[1].name, stdin="考虑一下吧\n",
                 WAIHU_DATA_DIR=str(tmp_path)).stdout
    assert f"平台免费为您准备了{arms[1].text}" in said and f"other arms: {arms[0].name}" in said, said

    assert_clean_failure(waihu("shell", "--audience", "没有这个包", stdin="", WAIHU_DATA_DIR=str(tmp_path)),
                         "unknown audience pack '没有这个包'", "the offers have: default")
    assert_clean_failure(waihu("shell", "--audience", "车主", "--incentive-arm", "nope", stdin="",
                               WAIHU_DATA_DIR=str(tmp_path)), "no incentive arm 'nope'")


def test_shell_says_the_lines_of_the_chosen_add_mode(model_path: Path, tmp_path: Path) -> None:
    landline = waihu("shell", "--add-mode", "callback", stdin="嗯你说\n", WAIHU_DATA_DIR=str(tmp_path))
    assert landline.returncode == 0, landline.stderr
    robot = "\n".join(line for line in landline.stdout.splitlines() if line.startswith("机器人"))
    assert "回个电话" in robot and "微信" not in robot, robot

    wrong = waihu("shell", "--add-mode", "wechat", stdin="", WAIHU_DATA_DIR=str(tmp_path))
    assert_clean_failure(wrong, "--add-mode wechat: not an add mode; use one of link, advisor_adds, callback")
