"""Carrier announcements: the operator's recording that answers instead of a person.

Many "answered" calls start with 您拨打的电话已关机 / 是空号 / 正在通话中 …; those are
not people and must never be graded. Detection reads the first callee audio (ASR
text) before the dialogue starts and maps it to a call status (DESIGN.md), so the
retry policy can act: a vacant number is retired, a powered-off phone is retried.

ASR garbles these recordings in predictable ways (关机 → 观机/关鸡, 空号 → 空耗/孔号,
通话中 → 痛话中), so the text is first folded through a table of homophones seen in
ASR output, then matched against each status's key phrases allowing one wrong
character in phrases of four or more characters. A key phrase alone is not enough
when people say it too (我手机快关机了): it also needs the recording's frame
(您拨打的 / 请稍后再拨 / the English half) unless the phrase is marked standalone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from intents.finished_call import Turn
from intents.taxonomy import (
    CALL_RESTRICTED,
    LINE_BUSY,
    NO_ANSWER,
    POWERED_OFF,
    SUSPENDED,
    UNREACHABLE,
    VACANT_NUMBER,
    VOICEMAIL,
)

# Not a status: the network forwards the call and a person may still answer after it.
FORWARDED = "forwarded"


@dataclass(frozen=True)
class Signal:
    kind: str  # a call status, or FORWARDED
    phrases: tuple[str, ...]
    standalone: bool = False  # people never say these, so no frame is needed


# Order matters: the first kind with a match wins (空号 before 无法接通, because vacant
# recordings often end with 请查证后再拨 and unreachable ones never say 空号).
SIGNALS: tuple[Signal, ...] = (
    Signal(
        VACANT_NUMBER,
        ("号码不存在", "不存在的号码", "请查证后再拨", "查证后再拨", "isnotinservice", "doesnotexist"),
        standalone=True,
    ),
    Signal(VACANT_NUMBER, ("是空号", "空号", "号码有误")),
    Signal(SUSPENDED, ("已停机", "已经停机", "欠费停机", "停机", "暂停服务", "hasbeensuspended", "suspended")),
    Signal(
        CALL_RESTRICTED,
        (
            "限制呼入",
            "呼入限制",
            "已被限制",
            "被限制呼叫",
            "禁止呼入",
            "拒绝接听您的来电",
            "设置了免打扰",
            "免打扰模式",
            "不接受来电",
            "restricted",
        ),
        standalone=False,
    ),
    Signal(POWERED_OFF, ("已关机", "已经关机", "关机", "poweredoff", "poweroff", "switchedoff")),
    Signal(LINE_BUSY, ("正在通话中", "通话中", "正忙", "用户忙", "占线", "isbusy", "linebusy")),
    # A voicemail greeting often begins with 暂时无人接听, so it is tried first.
    Signal(
        VOICEMAIL,
        ("语音信箱", "请在提示音后留言", "提示音后留言", "嘀声后留言", "voicemail", "leaveamessage", "afterthetone"),
        standalone=True,
    ),
    Signal(VOICEMAIL, ("请留言", "语音留言", "智能助理", "语音助理", "机主的助理", "留言")),
    Signal(NO_ANSWER, ("无人接听", "暂时无人接听", "没有人接听", "无应答", "notanswering", "noanswer", "noonean")),
    Signal(UNREACHABLE, ("暂时无法接通", "不在服务区", "outofservicearea"), standalone=True),
    Signal(
        UNREACHABLE,
        (
            "无法接通",
            "来电提醒",
            "短信通知",
            "短信的方式通知",
            "短信方式通知",
            "cannotbeconnected",
            "notbeconnected",
            "notreachable",
        ),
    ),
    Signal(FORWARDED, ("呼叫转移", "呼叫转接", "正在为您转接", "正在转接", "转移到", "forwarded")),
)
# The recording's frame: how operator messages are worded around the key phrase.
FRAMES: tuple[str, ...] = (
    "您拨打的",
    "你拨打的",
    "您所拨打的",
    "您呼叫的",
    "您拨叫的",
    "拨打的电话",
    "拨打的号码",
    "拨打的用户",
    "请稍后再拨",
    "请稍后再拨打",
    "请稍后再试",
    "请不要挂机",
    "请勿挂机",
    "sorry",
    "thenumberyoudialed",
    "thesubscriber",
    "pleaseredial",
    "pleasecall",
    "机主",
)
# Homophones and near-homophones ASR writes for the words above (garbled → meant).
# Text and key phrases are folded alike, so a mapping may also touch other words.
ASR_HOMOPHONES: dict[str, str] = {
    "观": "关",
    "官": "关",
    "管": "关",
    "鸡": "机",
    "级": "机",
    "积": "机",
    "几": "机",
    "孔": "空",
    "控": "空",
    "耗": "号",
    "好": "号",
    "毫": "号",
    "挺": "停",
    "听": "停",
    "婷": "停",
    "亭": "停",
    "痛": "通",
    "同": "通",
    "桶": "通",
    "童": "通",
    "接丁": "接听",
    "接厅": "接听",
    "接停": "接听",
    "借听": "接听",
    "拔": "拨",
    "波": "拨",
    "播": "拨",
    "玻": "拨",
    "宁": "您",
    "林": "您",
    "无发": "无法",
    "无罚": "无法",
    "吴法": "无法",
    "接同": "接通",
    "节通": "接通",
    "街通": "接通",
    "服物": "服务",
    "伏务": "服务",
    "信相": "信箱",
    "信香": "信箱",
    "呼较": "呼叫",
    "护叫": "呼叫",
    "转以": "转移",
    "转一": "转移",
}
_NOISE = re.compile(r"[\s，。！？、,.!?：:；;'\"“”‘’…\-]+")
# How many leading callee turns may carry the recording (ASR often splits it in two).
LEADING_TURNS = 2


@dataclass(frozen=True)
class Announcement:
    kind: str  # a call status or FORWARDED
    phrase: str  # the key phrase that matched (after folding)
    text: str  # the callee text it was found in

    @property
    def status(self) -> str | None:
        """The call status, or None when the call may still reach a person (forwarding)."""
        return None if self.kind == FORWARDED else self.kind


def fold(text: str) -> str:
    """Lower-case, drop punctuation and spaces, undo common ASR homophones."""
    folded = _NOISE.sub("", text.lower())
    for wrong, right in sorted(ASR_HOMOPHONES.items(), key=lambda kv: -len(kv[0])):
        folded = folded.replace(wrong, right)
    return folded


def detect_announcement(text: str) -> Announcement | None:
    """The carrier announcement in one piece of callee audio, if it is one."""
    folded = fold(text)
    if not folded:
        return None
    framed = any(_contains(folded, frame) for frame in _FOLDED_FRAMES)
    # Exact phrases first across every kind, then one-slip matches: a near-miss of one
    # kind (无法接听 ≈ 无人接听) must not win over an exact phrase of another (留言).
    for tolerant in (False, True):
        for signal, phrases in _FOLDED_SIGNALS:
            for phrase in phrases:
                if (framed or signal.standalone) and _contains(folded, phrase, tolerant):
                    return Announcement(signal.kind, phrase, text)
    return None


def detect_in_turns(turns: Iterable[Turn]) -> tuple[Announcement | None, int]:
    """(announcement, how many leading callee turns it used) from the start of a call.

    Only the first callee audio is an operator recording; once a person has spoken,
    nothing later is read as one. Two leading turns are also tried joined, because
    ASR may split 您拨打的电话 | 已关机.
    """
    leading = [t for t in turns if t.is_callee and t.text.strip()][:LEADING_TURNS]
    if not leading:
        return None, 0
    first = detect_announcement(leading[0].text)
    if first is not None:
        return first, 1
    if len(leading) == 2:
        joined = detect_announcement(leading[0].text + leading[1].text)
        if joined is not None:
            return joined, 2
    return None, 0


_FOLDED_FRAMES = tuple(fold(f) for f in FRAMES)
_FOLDED_SIGNALS = tuple((signal, tuple(fold(p) for p in signal.phrases)) for signal in SIGNALS)


def _contains(folded: str, phrase: str, tolerant: bool = True) -> bool:
    if phrase in folded:
        return True
    if not tolerant:
        return False
    # One wrong character (an ASR slip the homophone table does not know) in a long phrase.
    if len(phrase) < 4 or _is_english(phrase):
        return False
    n = len(phrase)
    for start in range(0, len(folded) - n + 1):
        window = folded[start : start + n]
        if sum(1 for a, b in zip(window, phrase) if a != b) <= 1:
            return True
    return False


def _is_english(phrase: str) -> bool:
    return phrase.isascii()
