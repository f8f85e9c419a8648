"""Reading a lead pack file: what it is (sniffed from its bytes), its encoding, and its columns.

Ops get these files from CRMs, landing pages and partners: CSV in UTF-8, UTF-8 with BOM
or GBK/GB18030 (Excel in China), TSV, UTF-16 "Unicode text", XLSX. The format is read
from the bytes, never from the extension, and every problem names the file and row.

Uploads come from outside, so reading is bounded (`ReadLimits`): rows, columns, cell and
row length for both formats; for XLSX also the archive (entries, uncompressed sizes and
ratios, checked before the workbook is opened) and the XML as it streams (no DTD, shared
strings, elements and bytes per row), so a small hostile file cannot cost minutes of CPU
or gigabytes of memory, and a broken one gives a message instead of a traceback.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import struct
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

from bot.core.errors import UserError
from bot.core.phone import Phone, normalise_phone
from bot.core.pii import mask_digit_runs

_BLOCK = 1 << 20
# Python's csv refuses fields over 128 KiB by default; a real lead cell never comes close,
# but a broken quote can swallow the rest of the file: we report that row instead.
csv.field_size_limit(16 << 20)
_MiB = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """What one uploaded file may make us read. A real lead pack stays far inside every bound (a row is
    a few hundred characters; Excel itself stops at 1,048,576 rows and 32,767 characters a cell)."""

    max_rows: int = 2_000_000  # rows as the spreadsheet numbers them, blank ones included
    max_columns: int = 256
    max_cell_chars: int = 4_000
    max_row_chars: int = 32_768  # all cells of one row together
    # XLSX (a ZIP of XML parts), checked before the workbook is opened:
    max_xlsx_entries: int = 1_000
    max_xlsx_uncompressed: int = 2048 * _MiB  # all parts together, as the archive declares them
    max_xlsx_part: int = 1024 * _MiB  # one part (a worksheet); shared strings and others: below
    max_xlsx_ratio: int = 100  # uncompressed : compressed, for parts over 1 MiB
    # … and while its XML streams:
    max_shared_strings: int = 2_000_000
    max_shared_strings_bytes: int = 256 * _MiB
    max_other_part_bytes: int = 64 * _MiB  # workbook, styles, relationships, themes
    max_row_elements: int = 16_384  # XML elements in one row (cells, their values, rich-text runs)
    max_other_elements: int = 1_000_000  # XML elements outside rows, in one part
    max_row_bytes: int = 16 * _MiB
    # Shared strings let one text fill many cells: all text read may be at most this many characters
    # per byte of the file (plus the floor); a real workbook has about 1.
    text_chars_per_file_byte: int = 32
    text_chars_floor: int = 32_000_000

    def max_text_chars(self, file_size: int) -> int:
        return self.text_chars_floor + self.text_chars_per_file_byte * file_size

    def max_line_chars(self) -> int:
        return self.max_row_chars + self.max_columns * 3 + 2  # quotes and delimiters around the cells


DEFAULT_LIMITS = ReadLimits()
_SHOWN_HEADERS = 20
_SHOWN_CHARS = 40


def shown(text: object, limit: int = _SHOWN_CHARS) -> str:
    """A cell as a message may echo it: phone-shaped text masked, long text cut (with its length)."""
    value = mask_digit_runs(str(text))
    if len(value) <= limit:
        return value
    return f"{value[:limit]}…({len(value):,} characters)"


def shown_list(values: list, limit: int = _SHOWN_HEADERS) -> str:
    """Header names for a message: the first few, each cut, and how many more there are."""
    names = ", ".join(repr(shown(value)) for value in values[:limit])
    return names + (f", … ({len(values) - limit} more)" if len(values) > limit else "")


# Field → names seen in real exports. Compared after `header_key` (case, width, spaces folded).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "phone": (
        "手机号",
        "手机号码",
        "手机",
        "电话",
        "电话号码",
        "联系电话",
        "联系方式",
        "号码",
        "客户电话",
        "mobile",
        "mobile_phone",
        "phone",
        "phone_number",
        "phonenumber",
        "tel",
        "telephone",
        "cellphone",
    ),
    "name": ("姓名", "名字", "客户姓名", "客户名称", "客户", "name", "full_name", "customer_name"),
    "gender": ("性别", "gender", "sex"),
    "audience": ("人群", "人群包", "客群", "人群名称", "audience", "audience_pack", "segment"),
    "consent_source": ("渠道", "来源", "数据来源", "授权渠道", "source", "channel", "consent_source"),
    # A time each person agreed to be called, or left their number (留资) on a form.
    "consent_at": (
        "同意时间",
        "授权时间",
        "留资时间",
        "注册时间",
        "授权日期",
        "同意日期",
        "留资日期",
        "注册日期",
        "提交时间",
        "提交日期",
        "consent_at",
        "consent_time",
        "consented_at",
        "lead_time",
    ),
    # A yes/no consent flag per row (是/否, 已授权/未授权, 同意/不同意 …).
    "consent_given": ("授权同意", "是否授权", "是否同意", "同意授权", "授权状态", "consent_given", "consented"),
    "consent_scope": ("授权范围", "同意范围", "授权内容", "consent_scope"),
    # Where the person lives: drives their time zone and the local caller number (bot.core.region).
    "province": ("省份", "省", "所在省份", "province"),
    "city": ("城市", "所在城市", "地区", "所在地", "所在地区", "city", "region"),
}
FIELDS = tuple(FIELD_ALIASES)
# A consent_at column with one of these headers is the time the person left their number on the
# insurer's own form (留资): a first-party consent record with that time, no --first-party needed.
FIRST_PARTY_TIME_HEADERS = ("留资时间", "留资日期")
# …and with one of these, the time is also when the person left their number (Lead.lead_left_at):
# what speed to lead is measured from and batch packs are dialled freshest-first by.
LEAD_LEFT_TIME_HEADERS = (
    *FIRST_PARTY_TIME_HEADERS,
    "注册时间",
    "注册日期",
    "提交时间",
    "提交日期",
    "授权时间",
    "授权日期",
)


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
    kind: str  # csv | xlsx
    encoding: str | None  # for csv: utf-8, utf-8-sig, gb18030, utf-16
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
        raise UserError(
            f"{path}: an old Excel 97-2003 (.xls) workbook; open it in Excel and save as .xlsx or as 'CSV UTF-8'"
        )
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
    raise UserError(
        f"{path}: cannot read the text: {where}",
        details=[
            "the file mixes encodings or is not a CSV/TSV/XLSX file",
            "in Excel: Save As → 'CSV UTF-8 (Comma delimited)' and upload that file",
        ],
    )


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
        raise UserError(
            f"{path}: contains NUL bytes, so it is not a text CSV (a database dump or a binary "
            "file?); export the lead pack as CSV or XLSX"
        )


def _line_of(path: Path, byte_offset: int) -> int:
    with path.open("rb") as handle:
        return handle.read(byte_offset).count(b"\n") + 1


def _sniff_delimiter(path: Path, encoding: str) -> str:
    with path.open("r", encoding=encoding, newline="") as handle:
        first_line = handle.readline()
    counts = {sep: first_line.count(sep) for sep in ("\t", ",", ";", "|")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


RowStream = Iterator[tuple[int, list]]  # (row number as a spreadsheet shows it, cells)


def open_rows(
    facts: FileFacts,
    *,
    sheet: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> tuple[list, RowStream, list[str]]:
    """The header cells, the data rows, and notes (e.g. ignored worksheets). Blank rows are skipped.
    A file past `limits` stops with a UserError naming the row (nothing is half-read silently)."""
    if facts.kind == "xlsx":
        rows, notes = _xlsx_rows(facts, sheet, on_progress, limits)
    else:
        if sheet:
            raise UserError(f"{facts.path}: --sheet only applies to XLSX workbooks")
        rows, notes = _csv_rows(facts, on_progress, limits), []
    for _row_number, cells in rows:
        if any(_filled(cell) for cell in cells):
            return [("" if c is None else str(c)).strip() for c in cells], rows, notes
    raise UserError(f"{facts.path}: no rows at all (only blank lines); export the lead pack again")


def _filled(cell: object) -> bool:
    return cell is not None and (not isinstance(cell, str) or cell.strip() != "")


def _csv_rows(facts: FileFacts, on_progress: Callable[[int], None] | None, limits: ReadLimits) -> RowStream:
    raw = facts.path.open("rb")
    text = io.TextIOWrapper(raw, encoding=facts.encoding, newline="")
    reader = csv.reader(_bounded_lines(facts.path, text, limits), delimiter=facts.delimiter or ",")
    row_number = 0
    max_rows, max_columns, max_cell = limits.max_rows, limits.max_columns, limits.max_cell_chars
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise UserError(
                    f"{facts.path}: row {row_number + 1} (line {reader.line_num}) cannot be parsed: {exc}",
                    details=[
                        'a quote (") opened and never closed, or a NUL byte; fix that row '
                        "and upload again — nothing was stored"
                    ],
                ) from None
            row_number += 1
            if row_number > max_rows or len(cells) > max_columns or (cells and max(map(len, cells)) > max_cell):
                check_row_size(facts.path, row_number, cells, limits)
            if on_progress is not None and row_number % 4096 == 0:
                on_progress(raw.tell())
            yield row_number, cells
    finally:
        if on_progress is not None:
            on_progress(facts.size)
        text.close()


def _bounded_lines(path: Path, text: io.TextIOWrapper, limits: ReadLimits) -> Iterator[str]:
    """The file's lines for csv.reader, none longer than a row may be: a 100 MB line without a newline
    would otherwise become one row of millions of cells before any check could see it."""
    limit = limits.max_line_chars()
    readline = text.readline
    line_number = 0
    while True:
        line = readline(limit)
        if not line:
            return
        line_number += 1
        if len(line) == limit and line[-1] not in "\r\n":
            raise UserError(
                f"{path}: line {line_number:,} is longer than {limit:,} characters, more than a row of "
                f"{limits.max_columns} columns of {limits.max_cell_chars:,} characters can be; nothing was "
                "stored",
                details=[
                    'is this a lead pack? a quote (") that never closes, or a file without line '
                    "breaks, looks like this; fix the file and upload again"
                ],
            )
        yield line


def check_row_size(path: Path, row_number: int, cells: list, limits: ReadLimits) -> None:
    """Stop on a row past the limits (rows, columns, cell and row length), saying where and what to do."""
    if row_number > limits.max_rows:
        raise UserError(
            f"{path}: more than {limits.max_rows:,} rows; split the file into smaller lead packs "
            "and upload each — nothing was stored"
        )
    filled = len(cells)
    while filled and cells[filled - 1] in (None, ""):
        filled -= 1
    if filled > limits.max_columns:
        raise UserError(
            f"{path}: row {row_number:,} has {filled:,} cells; a lead pack may have at most "
            f"{limits.max_columns} columns — remove the extra columns (or the stray delimiters) and "
            "upload again; nothing was stored"
        )
    total = 0
    for index, cell in enumerate(cells):
        if cell.__class__ is not str:
            continue
        total += len(cell)
        if len(cell) > limits.max_cell_chars:
            raise UserError(
                f"{path}: row {row_number:,}, column {index + 1} holds {len(cell):,} characters "
                f"({shown(cell)}); a cell may have at most {limits.max_cell_chars:,} — shorten it (or "
                "close the quote that swallowed the rows after it) and upload again; nothing was stored"
            )
    if total > limits.max_row_chars:
        raise UserError(
            f"{path}: row {row_number:,} holds {total:,} characters; a row may have at most "
            f"{limits.max_row_chars:,} — shorten its cells and upload again; nothing was stored"
        )


def _xlsx_rows(
    facts: FileFacts, sheet: str | None, on_progress: Callable[[int], None] | None, limits: ReadLimits
) -> tuple[RowStream, list[str]]:
    path = facts.path
    workbook = _open_workbook(path, limits)
    try:
        names = workbook.sheetnames
        if sheet is not None and sheet not in names:
            raise UserError(f"{path}: no worksheet {shown(sheet)!r}; the workbook has: {shown_list(names)}")
        if sheet is None and not workbook.worksheets:
            raise UserError(f"{path}: the workbook has no worksheet (only charts?); nothing to read")
        worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
        if not hasattr(worksheet, "reset_dimensions"):
            raise UserError(
                f"{path}: {shown(worksheet.title)!r} is a chart, not a worksheet; use --sheet to pick "
                "the worksheet with the leads"
            )
    except BaseException as exc:
        workbook.close()
        if isinstance(exc, _READ_ERRORS) and not isinstance(exc, UserError):
            raise _unreadable(path, exc) from None
        raise
    notes = []
    if sheet is None and len(names) > 1:
        notes.append(
            f"read worksheet {shown(worksheet.title)!r} only; the workbook also has "
            f"{shown_list([n for n in names if n != worksheet.title])} (use --sheet to pick one)"
        )
    total = min(worksheet.max_row or 0, limits.max_rows)
    # The sheet's <dimension> is the file's word, not a fact: rows padded to its width (XFD = 16,384
    # columns) cost as much as real cells. Read each row as wide as its own cells instead.
    worksheet.reset_dimensions()
    worksheet._get_row = _bounded_row_builder(path, limits)  # noqa: SLF001 (see _bounded_row_builder)
    max_text = limits.max_text_chars(facts.size)

    def rows() -> RowStream:
        text_read = 0
        row_number = 0
        try:
            for row_number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                if row_number > limits.max_rows:
                    check_row_size(path, row_number, [], limits)
                if on_progress is not None and total and row_number % 4096 == 0:
                    on_progress(min(row_number * 1000 // total, 1000))
                cells = list(values)
                while cells and cells[-1] is None:
                    cells.pop()
                if cells:
                    chars = sum(len(c) for c in cells if c.__class__ is str)
                    if chars > limits.max_cell_chars:
                        check_row_size(path, row_number, cells, limits)
                    text_read += chars
                    if text_read > max_text:
                        raise UserError(
                            f"{path}: the workbook's cells hold more than {max_text:,} characters of "
                            f"text by row {row_number:,}, far more than a {facts.size:,}-byte file of "
                            "leads can (the same long text repeated in many cells?); nothing was stored"
                        )
                yield row_number, cells
        except UserError:
            raise
        except _READ_ERRORS as exc:
            raise _unreadable(path, exc, f"row {row_number + 1:,}") from None
        finally:
            workbook.close()

    return rows(), notes


def _bounded_row_builder(path: Path, limits: ReadLimits) -> Callable:
    """A replacement for openpyxl's `ReadOnlyWorksheet._get_row` (read-only mode builds every row with it):
    same values, but a cell past `max_columns` stops the file instead of padding the row out to its column
    (a cell at XFD makes a 16,384-wide row), and cells out of column order cannot break it."""
    max_columns = limits.max_columns

    def get_row(row, min_col=1, max_col=None, values_only=False):
        if not row:
            return ()
        width = max(cell["column"] for cell in row)
        if width > max_columns:
            raise UserError(
                f"{path}: row {row[0]['row']:,} has a cell in column {width:,}; a lead pack may have at "
                f"most {max_columns} columns — delete the columns past that (or the stray cell) in Excel "
                "and upload again; nothing was stored"
            )
        values = [None] * width
        for cell in row:
            values[cell["column"] - 1] = cell["value"]
        return tuple(values)

    return get_row


# What a damaged or hand-made workbook makes openpyxl raise; each becomes one clear message.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    OSError,
    ParseError,
    expat.ExpatError,
    EOFError,
    struct.error,
    NotImplementedError,
)


def _unreadable(path: Path, exc: BaseException, where: str = "") -> UserError:
    cause = exc.__cause__ if isinstance(exc.__cause__, UserError) else None
    if cause is not None:  # openpyxl wraps what our guards raise in a ValueError
        return cause
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(
        f"{path}: a ZIP file but not a readable XLSX workbook{' at ' + where if where else ''} "
        f"({shown(reason, 120)}); open it in Excel and save it again as .xlsx — nothing was stored"
    )


def _open_workbook(path: Path, limits: ReadLimits):
    """openpyxl's read-only workbook over an archive whose sizes were checked first and whose XML parts
    are read through `_XmlCheck`."""
    from openpyxl.reader.excel import ExcelReader

    check_xlsx_archive(path, limits)
    try:
        # A file object, not the path: openpyxl would judge a path by its extension (the upload's name
        # is the user's; the bytes said XLSX).
        with path.open("rb") as handle:
            reader = ExcelReader(handle, read_only=True, data_only=True)
            reader.archive.close()
        # Every part openpyxl opens (now and while rows stream) goes through the guard.
        reader.archive = _GuardedZip(path, limits)
        reader.valid_files = reader.archive.namelist()
        reader.read()
    except UserError:
        raise
    except _READ_ERRORS as exc:
        raise _unreadable(path, exc) from None
    return reader.wb


def check_xlsx_archive(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """The archive's directory against the limits, before any part is decompressed. The sizes are the
    archive's own claims, but they bind: Python's zipfile stops each part at its declared size."""
    with path.open("rb") as handle:
        entries, directory_size = _zip_directory_size(handle)
    if entries is None:
        raise UserError(
            f"{path}: starts like a ZIP (XLSX) file but has no ZIP directory (cut short while copying?); "
            "export the workbook again — nothing was stored"
        )
    if entries > limits.max_xlsx_entries or directory_size > limits.max_xlsx_entries * 1024:
        raise UserError(
            f"{path}: the archive lists {entries:,} parts; an XLSX workbook of leads has a few dozen "
            f"(limit {limits.max_xlsx_entries:,}) — open it in Excel, save it again as .xlsx"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, struct.error) as exc:
        raise _unreadable(path, exc) from None
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise UserError(
                f"{path}: the workbook is password-protected; remove the password in Excel (File → Info "
                "→ Protect Workbook) and upload again"
            )
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if (
            info.file_size > limits.max_xlsx_part
            or total > limits.max_xlsx_uncompressed
            or (info.file_size > _MiB and ratio > limits.max_xlsx_ratio)
        ):
            raise UserError(
                f"{path}: part {shown(info.filename, 60)!r} unpacks to {info.file_size:,} bytes from "
                f"{info.compress_size:,} (ratio {ratio:,.0f}:1; archive total so far {total:,}); the limits are "
                f"{limits.max_xlsx_part:,} bytes a part, {limits.max_xlsx_uncompressed:,} in all and "
                f"{limits.max_xlsx_ratio}:1 — this is not a normal workbook of leads (a ZIP bomb?); nothing was read",
                details=["if it is a real export, save it as 'CSV UTF-8' and upload that, or split it"],
            )


def _zip_directory_size(handle) -> tuple[int | None, int]:
    """(entries, bytes) of the ZIP's central directory as its end record announces them (ZIP64 too), read
    before zipfile builds the directory: zipfile reads the whole announced size, whatever the count says,
    and a directory of millions of entries costs gigabytes of memory by itself."""
    # The end-record reader zipfile itself uses (private: typeshed does not declare it).
    from zipfile import _ECD_ENTRIES_TOTAL, _ECD_SIZE, _EndRecData  # type: ignore[attr-defined]

    try:
        end = _EndRecData(handle)
    except (OSError, struct.error):
        return None, 0
    if end is None:
        return None, 0
    return int(end[_ECD_ENTRIES_TOTAL]), int(end[_ECD_SIZE])


class _GuardedZip(zipfile.ZipFile):
    """A ZipFile whose parts are read through `_XmlCheck` (openpyxl reads only XML parts in read-only mode)."""

    def __init__(self, path: Path, limits: ReadLimits) -> None:
        super().__init__(path)
        self._limits, self._path = limits, path
        self._checks: dict[str, _XmlCheck] = {}

    def open(self, name, mode="r", pwd=None, *, force_zip64=False):
        stream = super().open(name, mode, pwd, force_zip64=force_zip64)
        if mode != "r":
            return stream
        part = name.filename if isinstance(name, zipfile.ZipInfo) else str(name)
        # One check per part, however often it is opened: openpyxl reads a sheet's start for its size and
        # then the whole sheet (twice whole when the sheet has no <dimension>); the bytes are the same, so
        # a later reader is checked only past where an earlier one stopped.
        check = self._checks.get(part)
        if check is None:
            check = self._checks[part] = _XmlCheck(self._path, part, self._limits)
        return _CheckedStream(stream, check)


class _CheckedStream:
    """A part as openpyxl reads it; the bytes no reader of this part has shown its check yet go to it."""

    def __init__(self, stream, check: _XmlCheck) -> None:
        self._stream, self._check, self._position = stream, check, 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            chunks: list[bytes] = []
            while True:
                chunk = self.read(1 << 16)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        data = self._stream.read(size)
        self._position += len(data)
        unseen = self._position - self._check.fed
        if unseen > 0:
            self._check.feed(data[len(data) - unseen :])
        elif not data and self._position == self._check.fed:
            self._check.feed(b"")
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _CheckedStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# Elements that belong inside a worksheet row: a cell, its formula and value, inline and rich text.
_ROW_CONTENT = frozenset(
    {
        "c",
        "f",
        "v",
        "is",
        "t",
        "r",
        "rPr",
        "rPh",
        "phoneticPr",
        "extLst",
        "ext",
        "rFont",
        "charset",
        "family",
        "b",
        "i",
        "strike",
        "outline",
        "shadow",
        "condense",
        "extend",
        "color",
        "sz",
        "u",
        "vertAlign",
        "scheme",
    }
)
_SHEET_ROOTS = frozenset({"worksheet", "chartsheet", "dialogsheet", "macrosheet"})


class _XmlCheck:
    """One part of the workbook, parsed by expat (a streaming parser that builds nothing) from the bytes
    openpyxl reads, just before openpyxl parses them, so each limit trips before openpyxl has built the
    thing it bounds: a DTD (Excel never writes one; it carries XXE and billion-laughs payloads), too many
    shared strings, too many elements or bytes in one row, a part larger than its kind may be."""

    def __init__(self, path: Path, part: str, limits: ReadLimits) -> None:
        self._path, self._part, self._limits = path, part, limits
        # Names as written (no namespace processing: faster, and every element is counted either way).
        self._parser = expat.ParserCreate()
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._parser.EntityDeclHandler = self._doctype
        self._parser.StartElementHandler = self._start_root
        self.fed = 0
        self._max_bytes = limits.max_other_part_bytes
        self._rows = self._row_elements = self._other_elements = self._strings = 0
        self._row_start = -1  # byte where the current row (or shared string) began; -1: not in one
        self._unit = "row"
        self._ended = False

    def feed(self, data: bytes) -> None:
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        if self._ended:
            return
        self.fed += len(data)
        try:
            self._parser.Parse(data, not data)
        except expat.ExpatError as exc:
            raise UserError(
                f"{self._path}: part {shown(self._part, 60)!r} is not well-formed XML "
                f"({expat.ErrorString(exc.code)}, line {exc.lineno}); open the workbook in Excel and "
                "save it again as .xlsx — nothing was stored"
            ) from None
        if not data:
            self._ended = True
            return
        if self.fed > self._max_bytes:
            self._refuse(f"part {shown(self._part, 60)!r} is larger than {self._max_bytes:,} bytes")
        if self._row_start >= 0 and self.fed - self._row_start > self._limits.max_row_bytes:
            number = self._strings if self._unit == "shared string" else self._rows
            self._refuse(f"{self._unit} {number:,} takes more than {self._limits.max_row_bytes:,} bytes of XML")

    def _refuse(self, why: str) -> None:
        raise UserError(
            f"{self._path}: {why}; this is not a normal workbook of leads — nothing was stored",
            details=["if it is a real export, save it as 'CSV UTF-8' and upload that, or split it"],
        )

    def _doctype(self, *_args) -> None:
        raise UserError(
            f"{self._path}: part {shown(self._part, 60)!r} declares a DTD (<!DOCTYPE …> / <!ENTITY …>), "
            "which Excel and WPS never write: the file was made or changed by hand (entity payloads such "
            "as XXE or 'billion laughs' look like this); save the workbook again from Excel — nothing "
            "was stored"
        )

    def _start_root(self, name: str, _attrs) -> None:
        local = name.rpartition(":")[2]
        if local in _SHEET_ROOTS:
            self._max_bytes = self._limits.max_xlsx_part
            self._parser.StartElementHandler = self._start_in_sheet
        elif local == "sst":
            self._max_bytes = self._limits.max_shared_strings_bytes
            self._unit = "shared string"
            self._parser.StartElementHandler = self._start_in_strings
        else:
            self._parser.StartElementHandler = self._start_in_other

    def _start_in_sheet(self, name: str, attrs) -> None:
        # Called for every element of the sheet: the common names are tested first, as written.
        if self._row_start >= 0 and name in _ROW_CONTENT:
            self._row_elements += 1
            if self._row_elements > self._limits.max_row_elements:
                self._refuse(
                    f"row {self._rows:,} has more than {self._limits.max_row_elements:,} XML elements "
                    f"(at most {self._limits.max_columns} cells are read)"
                )
            return
        local = name.rpartition(":")[2]
        if local == "row":
            self._rows += 1
            number = attrs.get("r", "")
            if len(number) > 7 or (number.isdigit() and int(number) > self._limits.max_rows):
                # openpyxl would walk every row number up to it, one empty row at a time
                raise UserError(
                    f"{self._path}: a row numbered {shown(number)}, more than {self._limits.max_rows:,} "
                    "rows; split the file into smaller lead packs and upload each — nothing was stored"
                )
            self._row_elements = 0
            self._row_start = self._parser.CurrentByteIndex
            return
        if self._row_start >= 0 and local in _ROW_CONTENT:
            self._start_in_sheet(local, attrs)
            return
        self._row_start = -1
        self._other_elements += 1
        if self._other_elements > self._limits.max_other_elements:
            self._refuse(
                f"part {shown(self._part, 60)!r} has more than {self._limits.max_other_elements:,} XML "
                "elements outside its rows"
            )

    def _start_in_strings(self, name: str, _attrs) -> None:
        if name == "si" or name.rpartition(":")[2] == "si":
            self._strings += 1
            self._row_start = self._parser.CurrentByteIndex
            if self._strings > self._limits.max_shared_strings:
                self._refuse(f"the workbook has more than {self._limits.max_shared_strings:,} shared strings")
            self._row_elements = 0
            return
        self._row_elements += 1
        if self._row_elements > self._limits.max_row_elements:
            self._refuse(
                f"shared string {self._strings:,} has more than {self._limits.max_row_elements:,} XML elements"
            )

    def _start_in_other(self, _name: str, _attrs) -> None:
        self._other_elements += 1
        if self._other_elements > self._limits.max_other_elements:
            self._refuse(
                f"part {shown(self._part, 60)!r} has more than {self._limits.max_other_elements:,} XML elements"
            )


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
            raise UserError(
                f"--map {shown(field_name)}=…: unknown field {shown(field_name)!r}; fields are: {', '.join(FIELDS)}"
            )
        claimed_by[field_name] = [_column_index(path, header, target)]
    for field_name, indexes in claimed_by.items():
        if len(indexes) > 1:
            columns = " and ".join(f"#{i + 1} {shown(header[i])!r}" for i in indexes[:_SHOWN_HEADERS])
            raise UserError(
                f"{path}: columns {columns} could both be the {field_name}; say which one with "
                f"--map {field_name}=#{indexes[0] + 1}"
            )
        fields[field_name] = indexes[0]
    if "phone" not in fields:
        raise UserError(
            f"{path}: no phone column found in the header ({shown_list(header)})",
            details=[
                _header_hint(header),
                "phone columns are recognised by: " + "/".join(FIELD_ALIASES["phone"][:8]) + "…",
                "or name it yourself: --map phone=<column name> (or --map phone=#<column number>)",
            ],
        )
    if isinstance(normalise_phone(header[fields["phone"]]), Phone):
        raise UserError(
            f"{path}: row 1 has a phone number ({shown(header[fields['phone']])}) where the "
            "header should be, so the file has no header row; add one (e.g. 手机号,姓名) and upload "
            "again — otherwise row 1 would be lost"
        )
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
        raise UserError(f"--map …={shown(target)}: the file has {len(header)} columns (#1 … #{len(header)})")
    matches = [i for i, name in enumerate(header) if header_key(name) == header_key(target)]
    if not matches:
        raise UserError(
            f"--map …={shown(target)}: {path} has no column named {shown(target)!r}; columns are: {shown_list(header)}"
        )
    if len(matches) > 1:
        raise UserError(
            f"--map …={shown(target)}: {len(matches)} columns are named {shown(target)!r} "
            f"(#{', #'.join(str(i + 1) for i in matches[:_SHOWN_HEADERS])}); use the column number, "
            f"e.g. #{matches[0] + 1}"
        )
    return matches[0]


def _header_hint(header: list[str]) -> str:
    for index, cell in enumerate(header):
        if isinstance(normalise_phone(cell), Phone):
            return (
                f"row 1, column {index + 1} ({shown(cell)}) is a phone number: the file seems to "
                "have no header row — add one (e.g. 手机号,姓名) and upload again"
            )
    return "rename the phone column to 手机号 or phone"


def parse_column_overrides(values: list[str]) -> dict[str, str]:
    """--map phone=联系电话 --map name=#2 (or comma-separated in one option)."""
    overrides: dict[str, str] = {}
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise UserError(
                    f"--map {shown(part)!r}: write FIELD=COLUMN, e.g. --map phone=联系电话 or --map phone=#3"
                )
            name, target = (s.strip() for s in part.split("=", 1))
            overrides[name] = target
    return overrides
