"""Reading a lead pack file: what it is (sniffed from its bytes), its encoding, and its columns.

Ops get these files from CRMs, landing pages and partners: CSV in UTF-8, UTF-8 with BOM
or GBK/GB18030 (Excel in China), TSV, UTF-16 "Unicode text", XLSX. The format is read
from the bytes, never from the extension, and every problem names the file and row.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from bot.core.errors import UserError
from bot.core.phone import Phone, normalise_phone
from bot.core.pii import mask_digit_runs

_BLOCK = 1 << 20
# Python's csv refuses fields over 128 KiB by default; a real lead cell never comes close,
# but a broken quote can swallow the rest of the file: we report that row instead.
csv.field_size_limit(16 << 20)

# Field → names seen in real exports. Compared after `header_key` (case, width, spaces folded).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "phone": ("手机号", "手机号码", "手机", "电话", "电话号码", "联系电话", "联系方式", "号码", "客户电话",
              "mobile", "mobile_phone", "phone", "phone_number", "phonenumber", "tel", "telephone", "cellphone"),
    "name": ("姓名", "名字", "客户姓名", "客户名称", "客户", "name", "full_name", "customer_name"),
    "gender": ("性别", "gender", "sex"),
    "audience": ("人群", "人群包", "客群", "人群名称", "audience", "audience_pack", "segment"),
    "consent_source": ("渠道", "来源", "数据来源", "授权渠道", "source", "channel", "consent_source"),
    "consent_at": ("同意时间", "授权时间", "授权日期", "同意日期", "consent_at", "consent_time", "consented_at"),
    "consent_scope": ("授权范围", "同意范围", "授权内容", "consent_scope"),
}
FIELDS = tuple(FIELD_ALIASES)


def header_key(text: object) -> str:
    """手机号 / ＭＯＢＩＬＥ / ' Phone Number* ' all fold to comparable keys."""
    key = unicodedata.normalize("NFKC", str(text or "")).strip().lower().lstrip("\ufeff")
    key = key.rstrip("*").replace("(必填)", "").replace("（必填）", "")
    return "".join(ch for ch in key if ch not in " _-.\t")


_ALIAS_TO_FIELD = {header_key(alias): name for name, aliases in FIELD_ALIASES.items() for alias in aliases}


@dataclass(frozen=True)
class FileFacts:
    path: Path
    sha256: str
    size: int
    kind: str                  # csv | xlsx
    encoding: str | None       # for csv: utf-8, utf-8-sig, gb18030, utf-16
    delimiter: str | None = None

    @property
    def format_label(self) -> str:
        if self.kind == "xlsx":
            return "xlsx"
        name = {"\t": "tsv", ",": "csv", ";": "csv;", "|": "csv|"}.get(self.delimiter or ",", "csv")
        return f"{name} {self.encoding}"


@dataclass
class ColumnMap:
    """Which column (0-based) holds each known field; the other columns become custom fields."""

    header: list[str]
    fields: dict[str, int]
    custom: dict[int, str] = field(default_factory=dict)

    def describe(self) -> dict[str, str]:
        return {name: f"#{index + 1} {self.header[index]}" for name, index in self.fields.items()}


def inspect_file(path: Path) -> FileFacts:
    """Hash the file and find out what it is, in one streaming pass (50 MB files included)."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the lead pack file itself")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path}: the file is empty (0 bytes); export the lead pack again")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04"):
        return FileFacts(path, _sha256(path), size, "xlsx", None)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UserError(f"{path}: an old Excel 97-2003 (.xls) workbook; open it in Excel and save as .xlsx "
                        "or as 'CSV UTF-8'")
    sha256, encoding = _hash_and_detect_encoding(path, head)
    return FileFacts(path, sha256, size, "csv", encoding, _sniff_delimiter(path, encoding))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_and_detect_encoding(path: Path, head: bytes) -> tuple[str, str]:
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        # GB18030 is a superset of GBK and GB2312: one decoder covers what Chinese Excel writes.
        candidates = ["utf-8", "gb18030"]
    digest = hashlib.sha256()
    failed_at: dict[str, int] = {}
    for attempt, name in enumerate(candidates):
        position = _first_undecodable_byte(path, name, digest if attempt == 0 else None)
        if position is None:
            _reject_binary(path, name)
            # The first pass hashes as it decodes; if it stopped early, hash separately.
            return (digest.hexdigest() if attempt == 0 else _sha256(path)), name
        failed_at[name] = position
    where = ", ".join(f"not {name} (line {_line_of(path, pos)})" for name, pos in failed_at.items())
    raise UserError(f"{path}: cannot read the text: {where}",
                    details=["the file mixes encodings or is not a CSV/TSV/XLSX file",
                             "in Excel: Save As → 'CSV UTF-8 (Comma delimited)' and upload that file"])


def _first_undecodable_byte(path: Path, encoding: str, digest) -> int | None:
    """Byte offset where strict decoding fails, or None if the whole file decodes."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            if digest is not None:
                digest.update(block)
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset
    return None


def _reject_binary(path: Path, encoding: str) -> None:
    with path.open("r", encoding=encoding, newline="") as handle:
        sample = handle.read(4096)
    if "\x00" in sample:
        raise UserError(f"{path}: contains NUL bytes, so it is not a text CSV (a database dump or a binary "
                        "file?); export the lead pack as CSV or XLSX")


def _line_of(path: Path, byte_offset: int) -> int:
    with path.open("rb") as handle:
        return handle.read(byte_offset).count(b"\n") + 1


def _sniff_delimiter(path: Path, encoding: str) -> str:
    with path.open("r", encoding=encoding, newline="") as handle:
        first_line = handle.readline()
    counts = {sep: first_line.count(sep) for sep in ("\t", ",", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


RowStream = Iterator[tuple[int, list]]  # (row number as a spreadsheet shows it, cells)


def open_rows(facts: FileFacts, *, sheet: str | None = None,
              on_progress: Callable[[int], None] | None = None) -> tuple[list, RowStream, list[str]]:
    """The header cells, the data rows, and notes (e.g. ignored worksheets). Blank rows are skipped."""
    if facts.kind == "xlsx":
        rows, notes = _xlsx_rows(facts.path, sheet, on_progress)
    else:
        if sheet:
            raise UserError(f"{facts.path}: --sheet only applies to XLSX workbooks")
        rows, notes = _csv_rows(facts, on_progress), []
    for row_number, cells in rows:
        if any(_filled(cell) for cell in cells):
            return [("" if c is None else str(c)).strip() for c in cells], rows, notes
    raise UserError(f"{facts.path}: no rows at all (only blank lines); export the lead pack again")


def _filled(cell: object) -> bool:
    return cell is not None and (not isinstance(cell, str) or cell.strip() != "")


def _csv_rows(facts: FileFacts, on_progress: Callable[[int], None] | None) -> RowStream:
    raw = facts.path.open("rb")
    text = io.TextIOWrapper(raw, encoding=facts.encoding, newline="")
    reader = csv.reader(text, delimiter=facts.delimiter or ",")
    row_number = 0
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise UserError(f"{facts.path}: row {row_number + 1} (line {reader.line_num}) cannot be parsed: {exc}",
                                details=["a quote (\") opened and never closed, or a NUL byte; fix that row "
                                         "and upload again — nothing was stored"]) from None
            row_number += 1
            if on_progress is not None and row_number % 4096 == 0:
                on_progress(raw.tell())
            yield row_number, cells
    finally:
        if on_progress is not None:
            on_progress(facts.size)
        text.close()


def _xlsx_rows(path: Path, sheet: str | None, on_progress: Callable[[int], None] | None
               ) -> tuple[RowStream, list[str]]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise UserError(f"{path}: a ZIP file but not a readable XLSX workbook ({exc}); "
                        "open it in Excel and save it again as .xlsx") from None
    names = workbook.sheetnames
    if sheet is not None and sheet not in names:
        raise UserError(f"{path}: no worksheet {sheet!r}; the workbook has: {', '.join(names)}")
    worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
    notes = []
    if sheet is None and len(names) > 1:
        notes.append(f"read worksheet {worksheet.title!r} only; the workbook also has "
                     f"{', '.join(repr(n) for n in names if n != worksheet.title)} (use --sheet to pick one)")
    total = worksheet.max_row or 0

    def rows() -> RowStream:
        try:
            for row_number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                if on_progress is not None and total and row_number % 4096 == 0:
                    on_progress(row_number * 1000 // total)
                cells = list(values)
                while cells and cells[-1] is None:
                    cells.pop()
                yield row_number, cells
        finally:
            workbook.close()

    return rows(), notes


def map_columns(path: Path, header: list[str], overrides: dict[str, str]) -> ColumnMap:
    """Find each field's column by its Chinese or English name; `overrides` (from --map) win."""
    fields: dict[str, int] = {}
    claimed_by: dict[str, list[int]] = {}
    for index, name in enumerate(header):
        field_name = _ALIAS_TO_FIELD.get(header_key(name))
        if field_name:
            claimed_by.setdefault(field_name, []).append(index)
    for field_name, target in overrides.items():
        if field_name not in FIELD_ALIASES:
            raise UserError(f"--map {field_name}=…: unknown field {field_name!r}; fields are: {', '.join(FIELDS)}")
        claimed_by[field_name] = [_column_index(path, header, target)]
    for field_name, indexes in claimed_by.items():
        if len(indexes) > 1:
            columns = " and ".join(f"#{i + 1} {header[i]!r}" for i in indexes)
            raise UserError(f"{path}: columns {columns} could both be the {field_name}; say which one with "
                            f"--map {field_name}=#{indexes[0] + 1}")
        fields[field_name] = indexes[0]
    if "phone" not in fields:
        raise UserError(f"{path}: no phone column found in the header ({', '.join(repr(h) for h in header)})",
                        details=[_header_hint(header),
                                 "phone columns are recognised by: " + "/".join(FIELD_ALIASES["phone"][:8]) + "…",
                                 "or name it yourself: --map phone=<column name> (or --map phone=#<column number>)"])
    if isinstance(normalise_phone(header[fields["phone"]]), Phone):
        raise UserError(f"{path}: row 1 has a phone number ({mask_digit_runs(header[fields['phone']])}) where the "
                        "header should be, so the file has no header row; add one (e.g. 手机号,姓名) and upload "
                        "again — otherwise row 1 would be lost")
    used = set(fields.values())
    custom: dict[int, str] = {}
    seen: dict[str, int] = {}
    for index, name in enumerate(header):
        if index in used:
            continue
        label = name or f"column {index + 1}"
        if label in seen:  # duplicate header names: keep both values, told apart by position
            label = f"{label} (column {index + 1})"
        seen[label] = index
        custom[index] = label
    return ColumnMap(header, fields, custom)


def _column_index(path: Path, header: list[str], target: str) -> int:
    if target.startswith("#") and target[1:].isdigit():
        index = int(target[1:]) - 1
        if 0 <= index < len(header):
            return index
        raise UserError(f"--map …={target}: the file has {len(header)} columns (#1 … #{len(header)})")
    matches = [i for i, name in enumerate(header) if header_key(name) == header_key(target)]
    if not matches:
        raise UserError(f"--map …={target}: {path} has no column named {target!r}; columns are: "
                        f"{', '.join(repr(h) for h in header)}")
    if len(matches) > 1:
        raise UserError(f"--map …={target}: {len(matches)} columns are named {target!r} "
                        f"(#{', #'.join(str(i + 1) for i in matches)}); use the column number, e.g. #{matches[0] + 1}")
    return matches[0]


def _header_hint(header: list[str]) -> str:
    for index, cell in enumerate(header):
        if isinstance(normalise_phone(cell), Phone):
            return (f"row 1, column {index + 1} ({mask_digit_runs(cell)}) is a phone number: the file seems to "
                    "have no header row — add one (e.g. 手机号,姓名) and upload again")
    return "rename the phone column to 手机号 or phone"


def parse_column_overrides(values: list[str]) -> dict[str, str]:
    """--map phone=联系电话 --map name=#2 (or comma-separated in one option)."""
    overrides: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise UserError(f"--map {part!r}: write FIELD=COLUMN, e.g. --map phone=联系电话 or --map phone=#3")
            name, target = (s.strip() for s in part.split("=", 1))
            overrides[name] = target
    return overrides
