"""Downloads of the managers' pages — the A/B comparison, the call list and the WeCom funnel —
as CSV or XLSX, for Excel/WPS.

Chinese headers; CSV in UTF-8 with a BOM (Excel reads BOM-less UTF-8 as the local code page
and shows mojibake); phone numbers only masked (the call list's stored masked number, and
phone-shaped runs in free text masked again); every text cell that a spreadsheet would read
as a formula (= + - @ …) neutralised with an apostrophe (bot.leads.export.neutralise_formula),
in XLSX too, where openpyxl would otherwise store `=…` as a formula. Rates are written as
percentages (CSV `23.5%`, which Excel reads as a number; XLSX a number with a % format).
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import IO, Any
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from bot.core.pii import mask_digit_runs
from bot.leads.export import neutralise_formula

# Excel's sheet holds 1,048,576 rows; beyond this an export says it was cut.
MAX_ROWS = 1_000_000
COPY_BLOCK = 1 << 16
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ExportFormat(str, Enum):
    csv = "csv"
    xlsx = "xlsx"


class Percent(float):
    """A rate (0.235) shown as a percentage (23.5%)."""


@dataclass
class Sheet:
    title: str  # the XLSX sheet's name (≤ 31 characters)
    headers: Sequence[str]
    rows: Iterable[Sequence[Any]]


def _text(value: Any) -> str:
    return neutralise_formula(mask_digit_runs(str(value)))


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, Percent):
        return f"{value * 100:.2f}%"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return _text(value)


def write_csv(sheet: Sheet, out: IO[str]) -> int:
    """The sheet as CSV (every field quoted); returns the rows written."""
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow([_text(h) for h in sheet.headers])
    count = 0
    for row in sheet.rows:
        if count >= MAX_ROWS:
            writer.writerow([f"（只导出了前 {MAX_ROWS:,} 行，请缩小筛选范围后再导出）"])
            break
        writer.writerow([_csv_cell(v) for v in row])
        count += 1
    return count


def write_xlsx(sheets: Sequence[Sheet], out: IO[bytes]) -> None:
    """The sheets as one workbook (write-only: rows stream to the file, not into memory)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    for sheet in sheets:
        sheet_out = book.create_sheet(title=_sheet_title(sheet.title))
        bold = Font(bold=True)
        header = []
        for name in sheet.headers:
            cell = WriteOnlyCell(sheet_out, value=_text(name))
            cell.font = bold
            header.append(cell)
        sheet_out.append(header)
        count = 0
        for row in sheet.rows:
            if count >= MAX_ROWS:
                sheet_out.append([f"（只导出了前 {MAX_ROWS:,} 行，请缩小筛选范围后再导出）"])
                break
            cells: list[Any] = []
            for value in row:
                if isinstance(value, Percent):
                    cell = WriteOnlyCell(sheet_out, value=float(value))
                    cell.number_format = "0.00%"
                    cells.append(cell)
                elif isinstance(value, bool):
                    cells.append("是" if value else "否")
                elif value is None or isinstance(value, (int, float)):
                    cells.append(value)
                elif isinstance(value, datetime):
                    cells.append(value.strftime("%Y-%m-%d %H:%M:%S"))
                else:
                    cells.append(ILLEGAL_CHARACTERS_RE.sub("", _text(value)))
            sheet_out.append(cells)
            count += 1
    book.save(out)


def _sheet_title(title: str) -> str:
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in title)
    return cleaned[:31] or "Sheet"


def download(sheets: Sequence[Sheet], fmt: ExportFormat, name: str) -> StreamingResponse:
    """A file download of the sheets: CSV holds the first sheet, XLSX all of them."""
    spool = tempfile.TemporaryFile(mode="w+b")  # a call list can be long: not in memory
    try:
        if fmt is ExportFormat.csv:
            text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
            write_csv(sheets[0], text)
            text.flush()
            text.detach()
            media_type = "text/csv; charset=utf-8"
        else:
            write_xlsx(sheets, spool)
            media_type = XLSX_TYPE
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    def chunks() -> Iterator[bytes]:
        try:
            while block := spool.read(COPY_BLOCK):
                yield block
        finally:
            spool.close()

    file_name = f"{name}.{fmt.value}"
    ascii_name = f"export.{fmt.value}"
    return StreamingResponse(
        chunks(),
        media_type=media_type,
        headers={"Content-Disposition": f"attachment; filename={ascii_name}; filename*=UTF-8''{quote(file_name)}"},
    )


# ---- what each page exports ---------------------------------------------------------------------

REPORT_HEADERS = (
    "实验因素",
    "细分",
    "分组",
    "对照组",
    "权重",
    "已拨打线索",
    "拨打次数",
    "指标",
    "核对项",
    "数值",
    "区间下限",
    "区间上限",
    "分子",
    "分母",
    "相对提升",
    "提升区间下限",
    "提升区间上限",
    "p 值",
    "校正后 p",
    "胜出概率",
    "结论",
    "原因",
    "说明",
    "每组所需线索",
    "还需天数",
    "近期每天新线索",
    "样本比例检验 p",
    "样本比例告警",
)


def report_sheets(report: dict) -> list[Sheet]:
    """The comparison (bot.experiments.report.build_report) as a detail sheet — one row per
    breakdown, arm and metric — and a summary sheet."""
    metrics = {m["key"]: m for m in report["metrics"]}

    def rate(value: Any, key: str) -> Any:
        if value is None:
            return None
        return Percent(value) if metrics[key]["unit"] == "percent" else round(float(value), 2)

    def rows() -> Iterator[list[Any]]:
        for factor in report["factors"]:
            tables = [("总体", factor["overall"])] + [(f"人群包：{b['audience']}", b) for b in factor["by_audience"]]
            checks = factor.get("checks", {})
            for breakdown, table in tables:
                pace = (table.get("pace") or {}).get("leads_per_day", {})
                for arm in table["arms"]:
                    for key, value in arm["metrics"].items():
                        versus = arm["vs_control"].get(key, {})
                        ci = versus.get("ci") or [None, None]
                        yield [
                            factor["label"],
                            breakdown,
                            arm["arm"],
                            arm["control"],
                            arm["weight"],
                            arm["leads"],
                            arm["dials"],
                            metrics[key]["label"],
                            key in checks,
                            rate(value["value"], key),
                            rate(value["ci"][0], key),
                            rate(value["ci"][1], key),
                            value["numerator"],
                            value["denominator"],
                            None if versus.get("lift") is None else Percent(versus["lift"]),
                            None if ci[0] is None else Percent(ci[0]),
                            None if ci[1] is None else Percent(ci[1]),
                            versus.get("p_value"),
                            versus.get("p_adjusted"),
                            None if versus.get("chance_to_win") is None else Percent(versus["chance_to_win"]),
                            versus.get("decision_label") or ("对照组" if arm["control"] else None),
                            versus.get("reason"),
                            versus.get("hint"),
                            versus.get("leads_needed_per_arm"),
                            versus.get("days_needed"),
                            None if arm["arm"] not in pace else round(pace[arm["arm"]], 1),
                            table["srm"]["p_value"],
                            table["srm"]["alert"],
                        ]

    summary = Sheet("结论摘要", ["结论摘要"], [[line] for line in report["summary"]])
    return [Sheet("A-B 对比明细", REPORT_HEADERS, rows()), summary, funnel_sheet_of_report(report)]


FUNNEL_HEADERS = ("分组", "拨打", "接通", "A/B", "邀请", "添加", "成交", "保费（元）", "成交率")
_FUNNEL_STAGES = ("dialled", "connected", "ab", "invited", "added", "converted", "premium")


def funnel_sheet_of_report(report: dict) -> Sheet:
    """The full funnel in leads (拨打 → 接通 → A/B → 邀请 → 添加 → 成交 → 保费), overall and per arm."""

    def row(name: str, counts: dict) -> list[Any]:
        rate = Percent(counts["converted"] / counts["dialled"]) if counts["dialled"] else None
        return [name, *(counts[stage] for stage in _FUNNEL_STAGES), rate]

    rows = [row("全部", report["overview"]["funnel"])] if report["overview"].get("funnel") else []
    for factor in report["factors"]:
        rows += [
            row(f"{factor['label']}：{arm['arm']}", arm["funnel"])
            for arm in factor["overall"]["arms"]
            if "funnel" in arm
        ]
    return Sheet("全流程漏斗", list(FUNNEL_HEADERS), rows)


CALL_HEADERS = (
    "通话编号",
    "计划时间（北京时间）",
    "结束时间（北京时间）",
    "外呼任务",
    "手机号（已打码）",
    "人群包",
    "第几次拨打",
    "话术版本",
    "拨打时段",
    "利益点",
    "欢迎语",
    "通话状态",
    "等级",
    "等级原因",
    "转人工",
    "通话秒数",
)


def call_sheet(rows: Iterable[dict], status_label, beijing) -> Sheet:
    """The call list (bot.web.manager_views' call rows: the phone already masked)."""

    def out() -> Iterator[list[Any]]:
        for call in rows:
            arms = call["arms"] or {}
            yield [
                call["id"],
                beijing(call["scheduled_at"], "%Y-%m-%d %H:%M:%S"),
                beijing(call["ended_at"], "%Y-%m-%d %H:%M:%S") if call["ended_at"] else None,
                call["campaign"],
                call["phone"],
                call["audience"],
                call["attempt_no"],
                arms.get("script"),
                arms.get("time_slot"),
                arms.get("incentive"),
                arms.get("welcome"),
                status_label(call),
                call["grade"],
                call["reason"],
                call["handoff_label"],
                None if call["talk_time_s"] is None else round(float(call["talk_time_s"]), 1),
            ]

    return Sheet("通话记录", CALL_HEADERS, out())


FACTOR_NAMES = {"script": "话术版本", "time_slot": "拨打时段", "incentive": "利益点", "welcome": "欢迎语"}


def funnel_sheet(funnel: dict) -> Sheet:
    """The WeCom funnel (bot.wecom.funnel.wecom_funnel): every count is of leads."""
    stages = list(funnel["stages"])
    labels = funnel["labels"]
    named = [labels.get(s, s) for s in stages]
    headers = ["维度", "分组", *(n if n.endswith("线索") else f"{n}（线索数）" for n in named)]
    # A/B leads on a landline: never invited (they cannot be added on WeCom), counted apart.
    headers.append(f"{labels.get('landline', '座机，无法加企业微信')}（线索数）")
    headers.append("加粉率（已加好友 ÷ A/B 线索）")

    def line(dimension: str, name: str, counts: dict) -> list[Any]:
        added = (counts.get("rates") or {}).get("added_of_graded_ab")
        return [
            dimension,
            name,
            *(counts.get(s) for s in stages),
            counts.get("landline", 0),
            None if added is None else Percent(added),
        ]

    rows = [line("合计", "", funnel["total"])]
    rows += [line("人群包", r["name"], r) for r in funnel["by_audience"]]
    rows += [line("通话等级", r["name"], r) for r in funnel["by_grade"]]
    for factor, arm_rows in funnel["by_arm"].items():
        rows += [line(FACTOR_NAMES.get(factor, factor), r["name"], r) for r in arm_rows]
    if funnel.get("add_mode_label"):  # which stages these are: link or advisor_adds
        rows.append(["添加方式", funnel["add_mode_label"], *([None] * (len(headers) - 2))])
    return Sheet("企微漏斗", headers, rows)
