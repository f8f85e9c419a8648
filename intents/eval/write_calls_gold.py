"""Writes intents/eval/calls_gold.jsonl, the labelled call set for `waihu grade eval`.

The calls are written by hand below in a compact form and rendered with the real
script lines (dialogs/domain), so bot turns look exactly like logged calls:

    "GOLD[>followup,…] | @STEP | callee text | @STEP | …"

GOLD is the grade (A/B/C/D) a manager would give by DESIGN.md's meanings, or the call
status of an unconnected call. Follow-ups default by grade (A/B: wecom_invite, C:
soft_decline, vacant_number: retire_lead, other statuses: retry, D: none) unless
given after `>`. `@STEP` is a script line (codes below); `~` is silence (an empty
callee turn); a trailing `!` means the callee hung up after the robot's last line.
`=STATUS` alone is a call the carrier never connected.

Labels were written from the situation each call depicts, before the rules were run
on the set, and are not edited to match the grader.

Run: .venv/bin/python -m intents.eval.write_calls_gold
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("calls_gold.jsonl")

STEPS = {
    "O": "utter_opening",
    "G": "utter_ask_good_time",
    "P": "utter_pitch",
    "W": "utter_ask_wecom",
    "C": "utter_confirm_wecom",
    "S": "utter_close_success",
    "K": "utter_close_callback",
    "R": "utter_close_refuse",
    "X": "utter_close_opt_out",
    "N": "utter_close_wrong_person",
    "B": "utter_close_goodbye",
    "L": "utter_close_silence",
    "T": "utter_ask_callback_time",
    "F": "utter_fallback",
    "D": "utter_default",
    "E": "utter_reprompt_silence",
    "Ai": "utter_answer_identity",
    "An": "utter_answer_number_source",
    "Ar": "utter_answer_is_robot",
    "Ap": "utter_answer_price",
    "Ad": "utter_answer_detail",
    "Aa": "utter_answer_already_insured",
    # hesitation, confirmation, hand-off
    "Rh": "utter_reassure_hesitation",
    "Wa": "utter_ask_wecom_again",
    "Hc": "utter_close_hesitate",
    "Cw": "utter_ask_confirm_wecom",
    "H": "utter_handoff",
    "Hf": "utter_handoff_failed",
    # FAQ answers
    "Qw": "utter_faq/waiting_period",
    "Qc": "utter_faq/coverage",
    "Ql": "utter_faq/claims",
    "Qf": "utter_faq/is_it_free",
    "Qa": "utter_faq/auto_charge",
    "Qt": "utter_faq/term",
    "Qr": "utter_faq/advisor_role",
    "Qp": "utter_faq/privacy",
    "Qg": "utter_faq/age_limit",
    "Qo": "utter_faq/company",
}
SLOTS = {"institution": "安心保险服务平台", "advisor": "专属顾问", "incentive": "一份免费的短期意外险"}
SURNAMES = ["王先生", "李女士", "张先生", "刘女士", "陈先生", "杨女士", "赵先生", "黄女士", "周先生", "吴女士"]
DEFAULT_FOLLOWUPS = {
    "A": ["wecom_invite"],
    "B": ["wecom_invite"],
    "C": ["soft_decline"],
    "D": [],
    "vacant_number": ["retire_lead"],
}

CALLS = [
    # ---- A: agreed to WeCom ------------------------------------------------------------
    "A | @O | 喂，你好 | @G | 嗯你说 | @P @W | 可以啊 | @C @S",
    "A | @O | 嗯 | @G | 方便，你说吧 | @P @W | 行，你加吧 | @C @S",
    "A | @O | 你好你好 | @G | 可以 | @P @W | 好的没问题 | @C @S",
    "A | @O | 喂 | @G | 说吧 | @P @W | 那你加我微信吧 | @C @S",
    "A | @O | 哎你好 | @G | 嗯 | @P @W | 可以的，加吧 | @C @S",
    "A | @O | 是我 | @G | 你说 | @P @W | 嗯好 | @C @S",
    "A | @O | 喂，哪位 | @Ai | 哦哦，什么福利 | @Ad @W | 那行，加一下吧 | @C @S",
    "A | @O | 你好 | @G | 嗯方便 | @P | 免费的啊？要钱吗 | @Ap @W | 好的那加吧 | @C @S",
    "A | @O | 喂你好 | @G | 可以说 | @P @W | 企业微信是吧，可以 | @C @S",
    "A | @O | 嗯嗯 | @G | 你讲 | @P @W | 好吧，那你让他加我 | @C @S",
    "A | @O | 你好，你是机器人吗 | @Ar | 哦这样，你说吧 | @P @W | 行 | @C @S",
    "A | @O2 | 嗯 | @G | 可以 | @P2 @W | 好啊好啊 | @C @S",
    "A | @O2 | 喂 | @G | 你说 | @P2 @W | 没问题，就这个号加 | @C @S",
    "A | @O | 你好 | @G | 方便 | @P | 这个意外险是保什么的 | @Ad @W | 可以，加吧 | @C @S",
    "A | @O | 喂 | @G | 嗯 | @P @W | 我同意，你加吧 | @C @S",
    "A | @O | 喂您好 | @G | 有一分钟 | @P @W | 可以可以，我等着 | @C @S",
    "A | @O | 哪个平台啊 | @Ai | 哦，那你说 | @P @W | 好的 | @C | 好嘞，拜拜 | @S",
    "A | @O | 嗯 | @G | 说 | @P @W | 加吧加吧 | @C @S",
    "A | @O | 喂 | @G | 你说我听着 | @P | 真的不要钱吗 | @Ap @W | 那可以 | @C @S",
    "A | @O | 你好 | @G | 可以 | @P @W | 用微信加可以吗，行，就企业微信吧 | @C @S",
    "A | @O2 | 你好 | @G | 嗯你讲 | @P2 | 怎么领取 | @Ad @W | 可以的 | @C @S",
    "A | @O | 喂 | @G | 可以的 | @P @W | 嗯，行吧 | @C @S",
    "A | @O | 喂，你好 | @G | 我现在有空 | @P @W | 好，加我吧 | @C @S",
    "A | @O | 嗯，你好 | @G | 你说 | @P | 你们从哪里拿到我号码的 | @An | 哦这样啊 | @W | 那好吧，你加吧 | @C @S",
    # ---- A: substantive questions, no refusal -------------------------------------------
    "A | @O | 你好 | @G | 嗯你说 | @P | 这个是要交钱的吗 | @Ap | 那保障内容具体是什么 | @Ad @W | 我先问一下，能保多久 | @Ad | ~ | @E @W | ~ | @L",
    "A | @O | 喂 | @G | 嗯 | @P | 多少钱一个月 | @Ap | 具体保什么，你详细说一下 | @Ad @W !",
    "A | @O | 你好 | @G | 你说吧 | @P | 有什么福利 | @Ad | 费用多少啊 | @Ap @W !",
    "A | @O | 喂，你们是哪家公司 | @Ai | 这个意外险保多少钱的 | @Ad | 要不要收费 | @Ap @W !",
    "A | @O | 嗯 | @G | 可以 | @P | 领这个要什么条件啊 | @Ad | 会不会自动扣费 | @Ap @W !",
    "A | @O | 你好 | @G | 方便 | @P | 是什么险种，保额多少 | @Ad | 有没有年龄限制 | @Ad @W !",
    "A | @O2 | 嗯 | @G | 说 | @P2 | 领取链接怎么用 | @Ad | 要填身份证吗 | @Ad @W !",
    "A | @O | 你是哪个保险公司的 | @Ai | 那这个福利具体是什么 | @Ad | 以后会收费吗 | @Ap @W !",
    "A | @O | 喂 | @G | 嗯你说 | @P | 免费的意外险保多久啊 | @Ad | 那后面续保多少钱 | @Ap @W | 你先跟我说说保什么 | @Ad @W !",
    "A | @O | 嗯你好 | @G | 可以 | @P | 这个怎么领 | @Ad | 是你们平台送的吗，有什么条件 | @Ad @W !",
    # ---- B: engaged, no decision ---------------------------------------------------------
    "B | @O | 嗯 | @G | 嗯你说 | @P @W | 我考虑一下吧 | @B",
    "B | @O | 喂 | @G | 可以 | @P @W | 我再想想 | @B",
    "B | @O | 你好 | @G | 你说 | @P @W | 嗯……先这样吧，我考虑考虑 | @B",
    "B | @O | 喂你好 | @G | 嗯 | @P | 这个是什么保险啊 | @Ad @W | 我跟家里人商量一下再说吧 | @B",
    "B | @O | 嗯 | @G | 方便 | @P @W | 我先看看再说吧 | @B",
    "B | @O | 你是机器人吧 | @Ar | 哦，那你说吧 | @P @W !",
    "B | @O | 你是哪里 | @Ai | 嗯 | @P @W !",
    "B | @O | 喂 | @G | 嗯好 | @P | 嗯 | @W !",
    "B | @O | 你好 | @G | 可以你说 | @P | 哦哦 | @W | ~ | @E @W | ~ | @L",
    "B | @O | 喂 | @G | 你说 | @P | 是免费的吗 | @Ap @W !",
    "B | @O | 你们怎么有我电话的 | @An | 哦，那你说吧 | @P @W !",
    "B | @O2 | 喂 | @G | 说 | @P2 | 嗯嗯 | @W | 这个我回头想想 | @B",
    "B | @O | 嗯 | @G | 行 | @P @W | 嗯，让我考虑一下 | @B",
    "B | @O | 喂 | @G | 你讲 | @P | 具体什么福利 | @Ad @W | 我再看看 | @B",
    "B | @O | 你好 | @G | 嗯 | @P | 真的假的 | @Ar | 那我想一下 | @B",
    "B | @O | 哦，你好 | @G | 可以 | @P | 嗯嗯好的 | @W !",
    "B | @O | 喂？ | @G | 嗯，说吧 | @P | 你是真人吗 | @Ar @W !",
    "B | @O | 嗯 | @G | 好 | @P @W | 我考虑下，先不加了，有需要再找你们 | @B",
    "B | @O | 你好 | @G | 嗯可以 | @P | 哦，意外险啊 | @Ad @W !",
    "B | @O | 喂 | @G | 你说吧 | @P @W | 我老公管这个，我问问他 | @B",
    "B | @O | 是我 | @G | 嗯 | @P | 是安心保险吗 | @Ai @W !",
    "B | @O | 你好 | @G | 有空 | @P | 嗯，我知道了 | @W | 我想想吧 | @B",
    # ---- C: explicit refusal --------------------------------------------------------------
    "C | @O | 不需要，谢谢 | @R",
    "C | @O | 不用了 | @R",
    "C | @O | 喂 | @G | 不感兴趣 | @R",
    "C | @O | 你好 | @G | 嗯 | @P @W | 不用了，我不需要 | @R",
    "C | @O | 喂 | @G | 说吧 | @P @W | 不加，谢谢 | @R",
    "C | @O | 我已经买过保险了 | @Aa | 不用了 | @R",
    "C | @O | 嗯 | @G | 可以 | @P | 我有保险了，不需要 | @Aa | 真的不用 | @R",
    "C | @O | 你好 | @G | 我不需要这个 | @R",
    "C | @O | 保险啊？不要不要 | @R",
    # Asked about the offer, then declined WeCom: B by DESIGN.md's grade table (was C before
    # issue 15 made a product question count as interest).
    "B | @O | 喂 | @G | 嗯 | @P | 多少钱 | @Ap @W | 算了，不需要 | @R",
    "C | @O | 你好 | @G | 你说 | @P @W | 不方便加，不用了 | @R",
    "C | @O | 嗯 | @G | 没兴趣 | @R",
    "C | @O | 我们家都买了保险了 | @Aa | 不需要了 | @R",
    "C | @O2 | 喂 | @G | 不用了谢谢，我不要 | @R",
    "C | @O | 你好 | @G | 可以 | @P @W | 不了不了 | @R",
    "C | @O | 喂 | @G | 你说 | @P | 我公司给买了重疾险了 | @Aa | 不需要 | @R",
    "C | @O | 你好 | @G | 我对保险不感兴趣 | @R",
    "C | @O | 嗯你说 | @G | 嗯 | @P @W | 不要 | @R",
    "C | @O | 喂，不需要 | @R",
    "C | @O | 你好 | @G | 不用，我都有了 | @R",
    "C | @O | 是保险推销吧，不需要 | @R",
    "C | @O | 嗯 | @G | 嗯 | @P @W | 不想加，谢谢 | @R",
    "C | @O | 喂 | @G | 我已经有百万医疗了，不用 | @Aa | 嗯，不需要 | @R",
    "C | @O | 你们是哪里 | @Ai | 不需要 | @R",
    "C | @O | 你好 | @G | 可以 | @P @W | 可以……算了还是不要了 | @R",
    "C | @O | 不感兴趣，谢谢 | @R",
    # ---- C: hard opt-out ----------------------------------------------------------------
    "C>do_not_call | @O | 别再打了 | @X",
    "C>do_not_call | @O | 不要再给我打电话了 | @X",
    "C>do_not_call | @O | 喂 | @G | 你们烦不烦，天天打，我要投诉你们 | @X",
    "C>do_not_call | @O | 滚 | @X",
    "C>do_not_call | @O | 神经病啊 | @X",
    "C>do_not_call | @O | 把我号码删了，别打了 | @X",
    "C>do_not_call | @O | 你好 | @G | 嗯 | @P @W | 不需要，以后别打了 | @X",
    "C>do_not_call | @O | 骗子吧你们，再打我报警了 | @X",
    "C>do_not_call | @O | 拉黑了，不要再打 | @X",
    "C>do_not_call | @O | 嗯你说 | @G | 可以 | @P @W | 好的 | @C | 算了你们别再给我打电话了 | @X",
    "C>do_not_call | @O2 | 你有病吧 | @X",
    "C>do_not_call | @O | 你们哪来的我号码 | @An | 我要投诉，别再打了 | @X",
    # ---- D: busy, no time ------------------------------------------------------------------
    "D>cool_down | @O | 我在开车 | @T | 回头再说吧 | @K",
    "D>cool_down | @O | 在开会，不方便 | @T | 改天吧 | @K",
    "D>cool_down | @O | 喂 | @G | 现在没空 | @T | ~ | @L",
    "D>cool_down | @O | 我在忙 | @T !",
    "D>cool_down | @O | 正上班呢，不方便接 | @T | 有空再说 | @K",
    "D>cool_down | @O | 喂 | @G | 在忙，晚点再说吧 | @T | 不知道，到时候再说 | @K",
    "D>cool_down | @O | 你好 | @G | 我在外面，听不太方便 | @T | 过几天吧 | @K",
    "D>cool_down | @O | 嗯 | @G | 我在带孩子，忙着呢 | @T !",
    "D>cool_down | @O | 开车呢 | @T | 等会儿吧 | @K",
    "D>cool_down | @O | 我这边有点事 | @T | 下次吧 | @K",
    # ---- D: callback with a time -------------------------------------------------------------
    "D>callback | @O | 我在开会，明天下午三点再打吧 | @K",
    "D>callback | @O | 喂 | @G | 现在不方便 | @T | 晚上八点以后吧 | @K",
    "D>callback | @O | 我在开车，半小时后再打 | @K",
    "D>callback | @O | 你好 | @G | 我在忙 | @T | 下周一上午吧 | @K",
    "D>callback | @O | 在上班，你明天上午再打过来 | @K",
    "D>callback | @O | 喂 | @G | 没时间 | @T | 周末吧，周末有空 | @K",
    "D>callback | @O | 正忙着呢，过两天再打吧 | @K",
    "D>callback | @O | 你好 | @G | 现在不行 | @T | 下午四点左右 | @K",
    "D>callback | @O | 我在医院，一个小时以后再打给我 | @K",
    "D>callback | @O | 嗯 | @G | 在开车 | @T | 今晚七点半 | @K",
    "D>callback | @O | 在忙，你后天上午再打 | @K",
    "D>callback | @O | 喂 | @G | 我这会儿不方便 | @T | 明天这个时候吧 | @K",
    # ---- D: wrong person ----------------------------------------------------------------------
    "D>retire_lead | @O | 你打错了 | @N",
    "D>retire_lead | @O | 我不是王先生，你找错人了 | @N",
    "D>retire_lead | @O | 喂 | @G | 这不是我的号码，我刚换的号 | @N",
    "D>retire_lead | @O | 没有这个人 | @N",
    "D>retire_lead | @O | 我是他老婆，他不在 | @N",
    "D>retire_lead | @O | 你好 | @G | 你找谁？我不姓李 | @N",
    # ---- D: no real conversation / nothing decisive --------------------------------------------
    "D | @O | ~ | @E @G | ~ | @L",
    "D | @O | 喂？喂？ | @G | 听不清 | @F | ~ | @E @G | ~ | @L",
    "D | @O !",
    "D | @O | 喂 | @G !",
    "D | @O | 嗯 | @G | 啊？你说什么 | @G !",
    "D | @O | 喂，你好 | @G | 信号不好听不见 | @G | ~ | @L",
    "D | @O | 哦 | @G | ~ | @E @G !",
    "D | @O | 你说啥 | @G | 喂喂 | @G !",
    "D | @O | 嗯嗯 | @G | 嗯 | @P !",
    "D | @O | 好的，再见 | @B",
    "D | @O | 啊 | @F | ~ | @L",
    "D | @O | 你好 | @G | 嗯 | @P | 嗯 | @W | 拜拜 | @B",
    "D | @O | 呃呃呃那个 | @D | ~ | @L",
    "D | @O | 喂 | @G | 啥事 | @P !",
    # ---- carrier announcements --------------------------------------------------------------
    "powered_off | 您拨打的电话已关机",
    "powered_off | 您好，您拨打的电话已关机，Sorry, the number you dialed is power off",
    "powered_off | 宁拨打的电话已观机",
    "powered_off | 您拨打的电话 | 已关机",
    "vacant_number | 您拨打的号码是空号，请查证后再拨",
    "vacant_number | 您拨打的号码不存在，请查证后再拨",
    "vacant_number | 您波打的号码是孔号，请查正后再拨",
    "suspended | 您拨打的电话已停机",
    "suspended | 您拨打的用户已欠费停机",
    "suspended | 您拨打的电话已挺机",
    "unreachable | 您拨打的电话暂时无法接通，请稍后再拨",
    "unreachable | 您拨打的用户不在服务区",
    "unreachable | 您呼叫的用户暂时无法接同，请稍后再拨",
    "unreachable | 您拨打的用户已开通来电提醒服务，我们将以短信方式通知机主您曾来电",
    "line_busy | 您拨打的电话正在通话中，请稍后再拨",
    "line_busy | 您拨打的用户正忙，请稍后再拨",
    "line_busy | 您拨打的电话正在痛话中请稍后再拨",
    "no_answer | 您拨打的电话暂时无人接听，请稍后再拨",
    "no_answer | 您拨打的电话暂时无人接丁，请稍后再拨",
    "voicemail | 您拨打的用户暂时无法接听，请在提示音后留言",
    "voicemail | 您好，我是机主的智能助理，机主现在不方便接听，请问您有什么事需要转达",
    "voicemail | 欢迎使用语音信箱，请留言",
    "call_restricted | 您拨打的电话已被限制呼入",
    "call_restricted | 对不起，您拨打的用户已设置了免打扰，暂时不接受来电",
    "=no_answer",
    "=powered_off",
    "=line_busy",
    # Forwarded: the recording, then a person answers and is graded.
    "A | 您拨打的电话已设置呼叫转移，请不要挂机 | @O | 喂你好 | @G | 嗯你说 | @P @W | 可以 | @C @S",
    "C | 您拨打的电话正在呼叫转移中，请勿挂机 | @O | 不需要 | @R",
    # ---- more everyday calls ------------------------------------------------------------------------
    "A | @O | 喂你好 | @G | 嗯嗯方便 | @P @W | 可以啊，我正好想了解一下 | @C @S",
    "A | @O | 嗯 | @G | 说吧 | @P | 给我孩子能买吗 | @Ad | 那大人有什么保障 | @Ad @W !",
    "A | @O | 你好 | @G | 可以 | @P @W | 嗯，好的，可以加 | @C @S",
    "B | @O | 嗯 | @G | 嗯嗯 | @P | 哦这样啊 | @W | ~ | @E @W !",
    "B | @O | 你好，你是人工智能吗 | @Ar | 哦，好吧 | @P @W !",
    "C | @O | 你好 | @G | 我有社保，不需要这个 | @R",
    "C | @O | 嗯 | @G | 不了，谢谢你 | @R",
    "C | @O | 喂 | @G | 可以 | @P | 我不要，谢谢 | @R",
    "D>callback | @O | 喂 | @G | 我现在在开车 | @T | 你明天下午再打 | @K",
    "D>cool_down | @O | 我在吃饭，不方便 | @T | 回头吧 | @K",
    "D | @O | 喂 | @G | 嗯？ | @F | ~ | @E @G !",
    "C>do_not_call | @O | 不要打了，烦死了 | @X",
    "D>retire_lead | @O | 我不认识什么王先生 | @N",
    "B | @O | 喂 | @G | 可以 | @P | 嗯 | @W | 这个……我再看看吧 | @B",
    "A | @O | 喂 | @G | 嗯方便 | @P @W | 行啊，加吧 | @C @S",
    "C | @O | 你好 | @G | 嗯 | @P | 我买过了 | @Aa | 真的不用了 | @R",
    # ---- hesitation: one low-commitment re-pitch, then a polite close (B, never a refusal) ------
    "B | @O | 喂 | @G | 嗯你说 | @P @W | 我考虑一下 | @Rh @Wa | 还是再想想吧 | @Hc",
    "A | @O | 你好 | @G | 可以 | @P @W | 我得问问我老公 | @Rh @Wa | 那行，你先加吧，资料我看看 | @C @S",
    "B | @O | 嗯 | @G | 方便 | @P @W | 让我想想 | @Rh @Wa | 嗯，回头再说吧 | @Hc",
    "B | @O | 喂 | @G | 说吧 | @P @W | 我先了解了解再说 | @Rh @Wa !",
    "B | @O | 你好 | @G | 嗯 | @P @W | 我再看看，不着急 | @Rh @Wa | 我在开车 | @T !",
    "B | @O2 | 喂 | @G | 你说 | @P2 @W | 考虑考虑吧 | @Rh @Wa | 不着急，我想好了找你们 | @Hc",
    "B | @O | 嗯你好 | @G | 嗯 | @P @W | 东西是不错，我再想想 | @Rh @Wa | 嗯，我还是再看看吧 | @Hc",
    "A | @O | 喂 | @G | 嗯 | @P @W | 这个嘛，我考虑下 | @Rh @Wa | 只发资料是吧，那可以 | @C @S",
    "B | @O | 你好 | @G | 嗯 | @P @W | 我跟家里人商量一下再说 | @Rh @Wa | ~ | @E @Wa | ~ | @L",
    # ---- FAQ: answered, then back to the question; a product question is interest ------------
    "A | @O | 你好 | @G | 嗯你说 | @P @W | 有没有等待期啊 | @Qw @W | 那行，你加我吧 | @C @S",
    "A | @O | 喂 | @G | 方便 | @P @W | 会不会自动扣费 | @Qa @W | 不扣钱就行，加吧 | @C @S",
    "A | @O | 你好 | @G | 可以 | @P @W | 这个保啥的 | @Qc @W | 出了事怎么理赔 | @Ql @W !",
    "B | @O | 喂 | @G | 嗯 | @P @W | 加了顾问干嘛用 | @Qr @W | 算了，还是不加了 | @R",
    "B | @O | 你好 | @G | 你说 | @P @W | 我的信息安全吗 | @Qp @W | 我再想想 | @Rh @Wa | ~ | @E @Wa | ~ | @L",
    "A | @O2 | 喂 | @G | 嗯 | @P2 @W | 多大年纪能领啊 | @Qg @W | 哪家保险公司承保的 | @Qo @W !",
    "A | @O | 你好 | @G | 有没有等待期 | @Qw @G | 嗯你说 | @P @W | 好的，可以 | @C @S",
    "B | @O | 喂 | @G | 嗯 | @P @W | 保多长时间 | @Qt @W !",
    "B | @O | 你好 | @G | 嗯 | @P @W | 能不能换成重疾险 | @Ad @W !",
    "A | @O2 | 喂 | @G | 说吧 | @P2 @W | 真的免费吗 | @Qf @W | 免费的话加吧 | @C @S",
    "B | @O | 喂你好 | @G | 嗯 | @P @W | 什么时候生效 | @Qw @W | 不用了，谢谢 | @R",
    # ---- hand-off to a human: B at least unless an opt-out --------------------------------------
    "B | @O | 喂 | @G | 转人工 | @H",
    "B | @O | 你好 | @G | 你是机器人吧 | @Ar @G | 那给我转人工 | @H @Hf",
    "B | @O | 喂 | @G | 嗯 | @P @W | 我要跟真人说 | @H @Hf",
    "B | @O | 你好 | @G | 可以 | @P @W | 找个真人跟我说吧 | @H",
    "B | @O2 | 喂 | @G | 叫你们客服来跟我说 | @H @Hf",
    "C>do_not_call | @O | 转什么人工，别再打了 | @X",
    # ---- negated agreement: a refusal, never an invitation --------------------------------------
    "C | @O | 喂 | @G | 嗯 | @P @W | 我不加微信 | @R",
    "C | @O | 你好 | @G | 说吧 | @P @W | 别加我微信了，不需要 | @R",
    "C | @O | 喂 | @G | 可以 | @P @W | 加微信就算了吧 | @R",
    "C | @O | 嗯 | @G | 你说 | @P @W | 企业微信我就不加了 | @R",
    "C | @O2 | 喂 | @G | 嗯 | @P2 @W | 顾问就不用加我了 | @R",
    "C | @O | 喂 | @G | 嗯 | @P @W | 加了我也不会通过的 | @R",
    "C | @O | 你好 | @G | 嗯 | @P @W | 加吧……算了，不加了 | @R",
    "A | @O | 你好 | @G | 没说不要啊，你先说说 | @P @W | 行，加吧 | @C @S",
    "A | @O | 你好 | @G | 嗯 | @P @W | 行吧，那就…… | @Cw | 对，加吧 | @C @S",
    "C | @O | 喂 | @G | 嗯 | @P @W | 嗯好…… | @Cw | 不是，我不加 | @R",
]


def _templates() -> dict[str, list[dict]]:
    responses: dict[str, list[dict]] = {}
    for path in sorted((ROOT / "dialogs" / "domain").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for name, variants in (data.get("responses") or {}).items():
            responses.setdefault(name, []).extend(variants)
    return responses


def _render(templates: dict[str, list[dict]], step: str, variant: str, slots: dict[str, str]) -> str:
    options = templates[step]
    chosen = next((o for o in options if any(c.get("value") == variant for c in o.get("condition") or [])), options[0])
    return re.sub(r"\{(\w+)\}", lambda m: slots.get(m.group(1), m.group(0)), chosen["text"])


def build_call(index: int, spec: str, templates: dict[str, list[dict]]) -> dict:
    head, *parts = [p.strip() for p in spec.split("|")]
    gold, _, followups = head.partition(">")
    started = datetime(2026, 3, 9, 10, 0) + timedelta(days=index % 5, minutes=37 * index % 540)
    record: dict = {
        "call_id": f"gold-{index + 1:03d}",
        "status": "answered",
        "started_at": started.isoformat() + "+08:00",
    }
    if gold.startswith("="):
        gold = gold[1:]
        record.update(status=gold, turns=[], hangup_by=None, duration_s=0)
    else:
        slots = {**SLOTS, "callee_title": SURNAMES[index % len(SURNAMES)]}
        turns: list[dict] = []
        t = 0.0
        callee_hung_up = parts and parts[-1].endswith("!")
        for part in parts:
            part = part.rstrip("!").strip()
            if part.startswith("@"):
                codes = part.split()
                variant = "benefit_first" if any(c.endswith("2") for c in codes) else "standard"
                text = "".join(_render(templates, STEPS[c.lstrip("@").rstrip("2")], variant, slots) for c in codes)
                turns.append({"speaker": "bot", "text": text, "t": round(t, 1)})
                t += 0.22 * len(text) + 0.8
            else:
                text = "" if part == "~" else part
                t += 1.0 if text else 6.0
                turns.append({"speaker": "callee", "text": text, "t": round(t, 1)})
                t += 0.3 * len(text)
        record.update(
            turns=turns,
            hangup_by="callee" if callee_hung_up or turns[-1]["speaker"] == "callee" else "bot",
            duration_s=round(t + 0.5, 1),
        )
    record["gold_grade"] = gold
    record["gold_followups"] = followups.split(",") if followups else DEFAULT_FOLLOWUPS.get(gold, ["retry"])
    return record


def main() -> None:
    templates = _templates()
    lines = [json.dumps(build_call(i, spec, templates), ensure_ascii=False) for i, spec in enumerate(CALLS)]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} calls to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
