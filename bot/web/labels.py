"""Chinese names for the codes the services use (statuses, reasons, intents, grades).

The services speak in codes (`powered_off`, `duplicate_in_file`); people using the
console read Chinese. Unknown codes are shown as they are, never hidden.
"""

from __future__ import annotations

CAMPAIGN_STATUS = {"draft": "草稿", "running": "进行中", "paused": "已暂停", "stopped": "已停止", "completed": "已完成"}
ATTEMPT_STATUS = {
    "scheduled": "待拨",
    "dialing": "通话中",
    "completed": "已结束",
    "failed": "失败",
    "cancelled": "已取消",
}
CALL_OUTCOME = {
    "answered": "已接通",
    "vacant_number": "空号",
    "suspended": "停机",
    "powered_off": "关机",
    "unreachable": "无法接通",
    "line_busy": "正在通话中",
    "no_answer": "无人接听",
    "voicemail": "语音信箱",
    "call_restricted": "呼叫受限",
    "worker_lost": "拨号进程中断",
    "scheduled": "待拨",
}
GRADE = {"A": "A 有明确意向", "B": "B 可能有意向", "C": "C 明确拒绝", "D": "D 用户忙/未表态"}
REJECT_REASON = {
    "phone_missing": "缺少手机号",
    "phone_invalid": "手机号无效",
    "phone_multiple": "一格多个号码",
    "phone_foreign": "非大陆号码",
    "phone_service_number": "客服/热线号码",
    "phone_leading_zero_lost": "首位 0 丢失（Excel）",
    "phone_scientific_notation": "科学计数法（Excel 1.38E+10）",
    "extra_cells": "多出的单元格",
    "consent_missing": "缺少授权记录",
    "consent_invalid": "授权时间无效",
    "duplicate_in_file": "文件内重复",
    "duplicate_existing": "已是现有线索",
    "dnc_opt_out": "免打扰（用户拒绝来电）",
    "dnc_soft_decline": "免打扰（近期婉拒）",
}
INTENT = {
    "greet": "打招呼",
    "affirm": "肯定",
    "deny": "否定",
    "agree_add_wecom": "同意加企业微信",
    "refuse": "明确拒绝",
    "stop_calling": "要求别再打",
    "hostile": "恶语/投诉",
    "busy": "在忙",
    "callback_request": "约回电",
    "ask_identity": "问身份",
    "ask_number_source": "问号码来源",
    "ask_is_robot": "问是否机器人",
    "ask_price": "问价格",
    "ask_detail": "问详情",
    "already_insured": "已有保险",
    "wrong_person": "打错人",
    "not_heard": "没听清",
    "goodbye": "再见",
    "nlu_fallback": "未理解",
    "request_human": "要求转人工",
}
# The callee asked for a human (call_attempts.handoff).
HANDOFF = {"handed_off": "已转人工", "handoff_failed": "转人工失败，已预约顾问回电"}
FACTOR = {"script": "话术版本", "time_slot": "拨打时段", "incentive": "利益点", "welcome": "欢迎语"}
SPEAKER = {"bot": "机器人", "callee": "客户"}
ROLE = {"ops": "运营", "writer": "话术师", "manager": "经理", "admin": "管理员"}


def label(table: dict[str, str], code: str | None, empty: str = "—") -> str:
    if code is None or code == "":
        return empty
    return table.get(code, code)
