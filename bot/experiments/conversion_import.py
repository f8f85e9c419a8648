"""`waihu conversions import FILE`: conversions from the insurer's export (CSV/XLSX, GBK or UTF-8).

Reads the file with the lead uploads' reader (bot.core.tabular_file: format sniffed from the
bytes, bounded, every problem naming the file and row) and recognises the usual Chinese and
English headers (保单号, 产品/产品名称, 保费/年保费, 成交时间/投保时间/承保时间, 外部ID, 手机号);
`--map field=column` names a column the headers do not say.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.pii import PhoneKeyring
from bot.core.tabular_file import header_key, inspect_file, open_rows, shown, shown_list
from bot.experiments.conversion_models import SOURCE_FILE
from bot.experiments.conversions import (
    DEFAULT_WINDOW_DAYS,
    FIELDS,
    ConversionIn,
    ConversionResult,
    record_conversions,
)

HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "policy_no": ("保单号", "保单号码", "保单编号", "policy_no", "policy_number", "policy"),
    "product": ("产品", "产品名称", "险种", "险种名称", "product", "product_name"),
    "premium": ("保费", "年保费", "首年保费", "保费（元）", "保费(元)", "premium", "annual_premium"),
    "converted_at": (
        "成交时间",
        "投保时间",
        "承保时间",
        "成交日期",
        "投保日期",
        "承保日期",
        "converted_at",
        "conversion_time",
    ),
    "external_id": ("外部ID", "外部编号", "线索ID", "线索编号", "客户编号", "external_id", "lead_id"),
    "phone": ("手机号", "手机号码", "手机", "电话", "联系电话", "投保人手机号", "phone", "mobile"),
}
_ALIAS_TO_FIELD = {header_key(alias): name for name, aliases in HEADER_ALIASES.items() for alias in aliases}
REQUIRED = ("policy_no", "product", "premium", "converted_at")
CHUNK = 500  # rows per transaction


@dataclass
class ImportSummary:
    file: str
    rows: int = 0
    accepted: int = 0
    attributed: int = 0
    duplicates: int = 0
    unmatched: int = 0
    rejected: int = 0
    premium: float = 0.0

    def add(self, results: list[ConversionResult], premiums: dict[int, float]) -> None:
        for result in results:
            self.rows += 1
            if result.status == "accepted":
                self.accepted += 1
                self.attributed += result.attributed
                self.premium += premiums.get(result.row_number, 0.0)
            elif result.status == "duplicate":
                self.duplicates += 1
            elif result.status == "unmatched":
                self.unmatched += 1
            else:
                self.rejected += 1


def map_conversion_columns(path: Path, header: list[str], overrides: dict[str, str]) -> dict[str, int]:
    """field → 0-based column; a required field or a way to match the lead missing is one clear error."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        field_name = _ALIAS_TO_FIELD.get(header_key(name))
        if field_name and field_name not in columns:
            columns[field_name] = index
    for field_name, target in overrides.items():
        if field_name not in HEADER_ALIASES:
            raise UserError(f"--map {shown(field_name)}=…: unknown field; fields are: {', '.join(FIELDS)}")
        columns[field_name] = _column(path, header, target)
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        name = missing[0]
        raise UserError(
            f"{path}: no {name} column in the header ({shown_list(header)})",
            details=[
                f"{name} columns are recognised by: " + "/".join(HEADER_ALIASES[name][:4]),
                f"or name it yourself: --map {name}=<column name> (or --map {name}=#<column number>)",
            ],
        )
    if "external_id" not in columns and "phone" not in columns:
        raise UserError(
            f"{path}: no column to match the lead by: add 外部ID (the lead's external id) or 手机号, "
            "or name it with --map external_id=<column> / --map phone=<column>"
        )
    return columns


def _column(path: Path, header: list[str], target: str) -> int:
    if target.startswith("#") and target[1:].isdigit() and 1 <= int(target[1:]) <= len(header):
        return int(target[1:]) - 1
    for index, name in enumerate(header):
        if header_key(name) == header_key(target):
            return index
    raise UserError(
        f"--map …={shown(target)}: {path} has no column {shown(target)!r}; columns are: {shown_list(header)}"
    )


def read_conversions(path: Path, overrides: dict[str, str]) -> tuple[int, Iterator[ConversionIn]]:
    """(file size, the rows as ConversionIn with their spreadsheet row numbers)."""
    facts = inspect_file(path)
    header, rows, _notes = open_rows(facts)
    columns = map_conversion_columns(path, header, overrides)

    def items() -> Iterator[ConversionIn]:
        for row_number, cells in rows:
            if not any(cell not in (None, "") and str(cell).strip() for cell in cells):
                continue
            values = {name: (cells[index] if index < len(cells) else None) for name, index in columns.items()}
            yield ConversionIn(row_number=row_number, **values)

    return facts.size, items()


def import_conversions(
    engine: Engine,
    keyring: PhoneKeyring,
    path: Path,
    overrides: dict[str, str],
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[ImportSummary, list[ConversionResult]]:
    """Import the file in chunks of CHUNK rows (each its own transaction, so a re-run after a
    crash finds the committed policies as duplicates). Returns the summary and the rows not taken."""
    _size, items = read_conversions(path, overrides)
    summary = ImportSummary(path.name)
    problems: list[ConversionResult] = []
    chunk: list[ConversionIn] = []

    def flush() -> None:
        with session_scope(engine) as session:
            results = record_conversions(
                session, keyring, chunk, source=SOURCE_FILE, batch=path.name[:200], window_days=window_days
            )
        premiums = {item.row_number: _amount(item.premium) for item in chunk}
        summary.add(results, premiums)
        problems.extend(r for r in results if r.status in ("unmatched", "rejected"))
        if on_rows:
            on_rows(len(chunk))
        chunk.clear()

    for item in items:
        chunk.append(item)
        if len(chunk) >= CHUNK:
            flush()
    if chunk:
        flush()
    if summary.rows == 0:
        raise UserError(f"{path}: the header is there but no conversion rows follow it")
    return summary, problems


def _amount(value: object) -> float:
    try:
        return float(str(value).replace(",", "").replace("¥", "").replace("￥", "").removesuffix("元"))
    except ValueError:
        return 0.0
