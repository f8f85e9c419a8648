"""Hand-built XLSX and CSV files a careless exporter or an attacker could upload (openpyxl would not
write any of them). Each is small: the point is what reading it would cost, not its size."""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

NS = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    b'<Override PartName="/xl/sharedStrings.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
ROOT_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'officeDocument" Target="xl/workbook.xml"/></Relationships>')
WORKBOOK = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<workbook xmlns="' + NS + b'" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    b'<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
WORKBOOK_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    b'Target="worksheets/sheet1.xml"/>'
    b'<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'sharedStrings" Target="sharedStrings.xml"/></Relationships>')

BILLION_LAUGHS = (b'<!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10)) + b"]>")
XXE = b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def text_cell(ref: str, text: str | bytes) -> bytes:
    body = text.encode("utf-8") if isinstance(text, str) else text
    return b'<c r="%s" t="inlineStr"><is><t>' % ref.encode() + body + b"</t></is></c>"


def shared_cell(ref: str, index: int) -> bytes:
    return b'<c r="%s" t="s"><v>%d</v></c>' % (ref.encode(), index)


def row(number: int, *cells: bytes) -> bytes:
    return b'<row r="%d">' % number + b"".join(cells) + b"</row>"


def lead_row(number: int, phone: str = "13812345678", note: bytes | None = None) -> bytes:
    return row(number, text_cell(f"A{number}", phone), note or text_cell(f"B{number}", "hi"),
               text_cell(f"C{number}", "2024-05-01 10:00"))


HEADER_ROW = row(1, text_cell("A1", "手机号"), text_cell("B1", "备注"), text_cell("C1", "同意时间"))


def sheet_xml(rows: bytes, prolog: bytes = b"", dimension: bytes = b"") -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + prolog + b'<worksheet xmlns="' + NS
            + b'">' + dimension + b"<sheetData>" + rows + b"</sheetData></worksheet>")


def strings_xml(strings: bytes, prolog: bytes = b"") -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + prolog + b'<sst xmlns="' + NS + b'">'
            + strings + b"</sst>")


def write_xlsx(path: Path, sheet: bytes, strings: bytes | None = None, extra_parts: int = 0) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", sheet)
        archive.writestr("xl/sharedStrings.xml", strings if strings is not None else strings_xml(b"<si><t>x</t></si>"))
        for index in range(extra_parts):
            archive.writestr(f"docProps/custom{index}.xml", b"<x/>")
    return path


def write_csv(path: Path, rows: list[list], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path
