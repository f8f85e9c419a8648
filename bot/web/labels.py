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
    "caller_numbers_capped": "主叫号码已达今日上限，顺延",
}
# How local the caller number was to the callee (CallAttempt.caller_match).
CALLER_MATCH = {"city": "本市号码", "province": "本省号码", "other": "外地号码"}
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
    "consent_invalid": "授权时间/授权答复无法识别",
    "consent_declined": "未同意接听营销电话",
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
    "hesitate": "犹豫/考虑一下",
    "uncertain_agreement": "不确定的同意",
    "faq/waiting_period": "问等待期",
    "faq/coverage": "问保障范围",
    "faq/claims": "问理赔",
    "faq/is_it_free": "问是否免费",
    "faq/auto_charge": "问自动扣费",
    "faq/term": "问保障期限",
    "faq/advisor_role": "问顾问做什么",
    "faq/privacy": "问隐私",
    "faq/age_limit": "问年龄限制",
    "faq/company": "问是哪家公司",
}
# The callee asked for a human (call_attempts.handoff).
HANDOFF = {"handed_off": "已转人工", "handoff_failed": "转人工失败，已预约顾问回电"}
FACTOR = {"script": "话术版本", "time_slot": "拨打时段", "incentive": "利益点", "welcome": "欢迎语"}
SPEAKER = {"bot": "机器人", "callee": "客户"}
ROLE = {"ops": "运营", "writer": "话术师", "manager": "经理", "admin": "管理员", "advisor": "顾问"}


def label(table: dict[str, str], code: str | None, empty: str = "—") -> str:
    if code is None or code == "":
        return empty
    return table.get(code, code)


def upload_hint(hint: dict) -> str:
    """The upload summary's fix hint (bot.leads.upload_hints.FixHint.as_json) in Chinese: what to do,
    naming the console field and the CLI option, and the header names the upload recognises."""
    reason, rows, total = hint["reason"], hint["rows"], hint["total"]
    share = f"{total} 行中有 {rows} 行"
    column = hint.get("column") or "—"
    headers = "、".join(hint.get("headers") or [])
    again = "改好后勾选“替换已有名单”重新上传（命令行：--replace）。"
    if reason == "consent_missing":
        first_party = (
            "如果是本机构自有渠道的线索，勾选“第一方线索”并填写授权依据（命令行：--first-party --consent-basis）"
        )
        if hint.get("column"):
            return (
                f"{share}缺少授权记录：授权列 {column} 在这些行是空的。请补全（时间或 是/否）；{first_party}。{again}"
            )
        columns = "、".join(hint.get("file_columns") or [])
        return (
            f"{share}缺少授权记录：文件中没有授权列（现有列：{columns}）。请加一列，列名可用 {headers}"
            "（留资时间＝客户在本机构表单留下号码的时间，视为第一方授权）；列名不同时，在“列映射”填写 "
            "consent_at=<列名>（时间）或 consent_given=<列名>（是/否）（命令行：--map consent_at=<列名>）；"
            f"{first_party}。{again}"
        )
    if reason == "consent_declined":
        return (
            f"{share}的授权列（{column}）写明客户未同意接听：这些行已拒收，不会拨打。"
            "如果这一列并不是授权答复，请在“列映射”填写 consent_given=<列名>（命令行：--map consent_given=<列名>）。"
        )
    if reason == "consent_invalid":
        return (
            f"{share}的授权时间或答复无法识别（{column}）：时间请写成 2024-05-01 10:30（或 2024/5/1、"
            "2024年5月1日、Excel 日期），答复写 是/否；如果列选错了，在“列映射”填写 consent_at=<列名>"
            f"（命令行：--map consent_at=<列名>）。{again}"
        )
    if reason in ("phone_missing", "phone_invalid", "phone_multiple", "phone_foreign", "phone_service_number"):
        return (
            f"{share}在手机号列（{column}）中没有可用的号码。如果号码在其他列，请在“列映射”填写 phone=<列名>"
            f"（命令行：--map phone=<列名>；可识别的列名：{headers}）。{again}"
        )
    if reason in ("phone_scientific_notation", "phone_leading_zero_lost"):
        return (
            f"{share}的号码被 Excel 改坏了（{column}）：保存前把这一列设为“文本”格式，"
            f"或从源系统直接导出“CSV UTF-8”。{again}"
        )
    if reason == "extra_cells":
        return (
            f"{share}的单元格比表头多：有值里含未加引号的逗号或制表符。请重新导出（值加引号，或导出为 XLSX）。{again}"
        )
    if reason == "duplicate_existing":
        return (
            f"{share}已是之前名单里的线索（同一号码只从一个名单拨打）。如果这个文件是要替换那次上传，"
            "请用同一名单名称并勾选“替换已有名单”（命令行：--replace --pack <原名单>），"
            "或先在下方列表中删除原名单（命令行：waihu leads delete-pack <名单>）；两者都只限原名单尚未拨打。"
        )
    if reason == "duplicate_in_file":
        return f"{share}与本文件前面的行号码重复，只保留第一次出现的行，无需处理。"
    if reason in ("dnc_opt_out", "dnc_soft_decline"):
        return f"{share}在免打扰名单中，不会拨打，无需处理。"
    return hint.get("text", "")
