"""Issue 13, High 2 (and the XLSX part of 11): a hostile or broken upload is refused with a clear message —
file, row, what to do — before it costs minutes of CPU or gigabytes of memory, and nothing is stored."""
from __future__ import annotations

import os
import random
import string
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.tabular_file import ReadLimits, inspect_file, map_columns, open_rows
from bot.leads.models import Lead, LeadPack
from bot.leads.service import UploadRequest, upload_lead_pack
from tests.security.hostile_files import (
    BILLION_LAUGHS,
    HEADER_ROW,
    XXE,
    lead_row,
    row,
    shared_cell,
    sheet_xml,
    strings_xml,
    text_cell,
    write_csv,
    write_xlsx,
)


def read_all(path: Path, limits: ReadLimits | None = None) -> list:
    facts = inspect_file(path)
    header, rows, _notes = open_rows(facts, **({"limits": limits} if limits else {}))
    return [header, *rows]


def upload(db, keyring, path: Path):
    return upload_lead_pack(db, keyring, UploadRequest(path=path, pack_name="p", uploaded_by="test",
                                                       first_party=True, consent_basis="form"))


def nothing_stored(db) -> bool:
    with session_scope(db) as session:
        return session.execute(select(func.count()).select_from(Lead)).scalar_one() == 0 and \
            session.execute(select(func.count()).select_from(LeadPack)).scalar_one() == 0


# ---- XLSX: the archive, checked before the workbook is opened -------------------------------------------

def test_shared_strings_bomb_is_refused_before_it_is_unpacked(db, keyring, tmp_path):
    """The review's 163 KiB file held 4M shared strings (30 s, +362 MiB); this one 400,000 (same shape)."""
    path = write_xlsx(tmp_path / "bomb.xlsx", sheet_xml(HEADER_ROW + lead_row(2)),
                      strings_xml(b"<si><t>a</t></si>" * 400_000))
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(UserError) as error:
        upload(db, keyring, path)
    message = str(error.value)
    assert "sharedStrings.xml" in message and "ratio" in message and "nothing was read" in message
    assert nothing_stored(db)


def test_one_64_mib_cell_in_a_small_file_is_refused(db, keyring, tmp_path):
    path = write_xlsx(tmp_path / "cell.xlsx", sheet_xml(HEADER_ROW + lead_row(2, note=shared_cell("B2", 0))),
                      strings_xml(b"<si><t>" + b"A" * (64 << 20) + b"</t></si>"))
    with pytest.raises(UserError, match="ratio"):
        upload(db, keyring, path)
    assert nothing_stored(db)


def test_an_archive_of_thousands_of_parts_is_refused(tmp_path):
    path = write_xlsx(tmp_path / "parts.xlsx", sheet_xml(HEADER_ROW + lead_row(2)), extra_parts=1_200)
    with pytest.raises(UserError, match="1,206 parts"):
        read_all(path)


def test_too_many_shared_strings_stop_while_they_stream(tmp_path):
    """Strings that do not compress pass the ratio check: their count is what is capped."""
    rng = random.Random(7)
    strings = b"".join(b"<si><t>%s</t></si>" % "".join(rng.choices(string.ascii_letters, k=12)).encode()
                       for _ in range(3_000))
    path = write_xlsx(tmp_path / "strings.xlsx", sheet_xml(HEADER_ROW + lead_row(2)), strings_xml(strings))
    assert len(read_all(path)) == 2  # within the default limits: read
    with pytest.raises(UserError, match="more than 2,000 shared strings"):
        read_all(path, ReadLimits(max_shared_strings=2_000))


# ---- XLSX: entity payloads are a clear error, never a traceback (issue 13, item 11) ---------------------

@pytest.mark.parametrize("prolog", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
@pytest.mark.parametrize("part", ["sheet", "shared-strings"])
def test_dtd_payloads_are_refused_with_a_message(db, keyring, tmp_path, prolog, part):
    entity = b"&lol9;" if prolog is BILLION_LAUGHS else b"&xxe;"
    if part == "sheet":
        path = write_xlsx(tmp_path / "dtd.xlsx", sheet_xml(HEADER_ROW + lead_row(2, note=text_cell("B2", entity)),
                                                           prolog=prolog))
    else:
        path = write_xlsx(tmp_path / "dtd.xlsx", sheet_xml(HEADER_ROW + lead_row(2, note=shared_cell("B2", 0))),
                          strings_xml(b"<si><t>" + entity + b"</t></si>", prolog=prolog))
    with pytest.raises(UserError, match="declares a DTD") as error:
        upload(db, keyring, path)
    assert "root:" not in str(error.value)  # /etc/passwd was not read into the message
    assert nothing_stored(db)


def test_a_broken_workbook_part_is_a_message_not_a_traceback(tmp_path):
    path = write_xlsx(tmp_path / "broken.xlsx", sheet_xml(HEADER_ROW + lead_row(2))[:-30])
    with pytest.raises(UserError, match="not well-formed XML|not a readable XLSX"):
        read_all(path)


# ---- XLSX: rows and columns as the sheet claims them ----------------------------------------------------

def test_a_row_number_far_away_is_refused_without_walking_to_it(tmp_path):
    path = write_xlsx(tmp_path / "far.xlsx", sheet_xml(HEADER_ROW + lead_row(2) + lead_row(3_000_000)))
    with pytest.raises(UserError, match="row numbered 3000000, more than 2,000,000 rows"):
        read_all(path)


def test_a_cell_far_to_the_right_is_refused_not_padded(tmp_path):
    rows = HEADER_ROW + b"".join(lead_row(n, note=text_cell(f"XFD{n}", "x")) for n in range(2, 50))
    path = write_xlsx(tmp_path / "wide.xlsx", sheet_xml(rows, dimension=b'<dimension ref="A1:XFD49"/>'))
    with pytest.raises(UserError, match="row 2 has a cell in column 16,384; a lead pack may have at most 256"):
        read_all(path)


def test_a_row_of_many_elements_stops_before_it_is_built(tmp_path):
    cells = b"".join(b'<c r="A2"/>' for _ in range(20_000))
    path = write_xlsx(tmp_path / "row.xlsx", sheet_xml(HEADER_ROW + row(2, cells)))
    with pytest.raises(UserError, match="row 2 has more than 16,384 XML elements"):
        read_all(path)


def test_a_long_cell_names_row_and_column(tmp_path):
    path = write_xlsx(tmp_path / "long.xlsx", sheet_xml(HEADER_ROW + lead_row(2, note=text_cell("B2", "长" * 5000))))
    with pytest.raises(UserError, match=r"row 2, column 2 holds 5,000 characters .*at most 4,000"):
        read_all(path)


def test_one_text_repeated_in_many_cells_is_capped(tmp_path):
    """Shared strings let one text fill every cell: the text read is bounded by the file's size."""
    rows = HEADER_ROW + b"".join(lead_row(n, phone=f"139{n:08d}", note=shared_cell(f"B{n}", 0)) for n in range(2, 400))
    path = write_xlsx(tmp_path / "repeat.xlsx", sheet_xml(rows), strings_xml(b"<si><t>" + b"N" * 3_000 + b"</t></si>"))
    assert len(read_all(path)) == 399
    limits = ReadLimits(text_chars_floor=100_000, text_chars_per_file_byte=1)
    with pytest.raises(UserError, match="far more than a .*-byte file of leads can"):
        read_all(path, limits)


# ---- CSV: the same caps ---------------------------------------------------------------------------------

def test_csv_cell_longer_than_the_cap_names_row_and_column(db, keyring, tmp_path):
    path = write_csv(tmp_path / "long.csv", [["手机号", "备注"], ["13812345678", "ok"], ["13912345678", "x" * 7_000]])
    with pytest.raises(UserError, match=r"row 3, column 2 holds 7,000 characters") as error:
        upload(db, keyring, path)
    assert len(str(error.value)) < 600  # the cell is not echoed whole
    assert nothing_stored(db)


def test_csv_with_hundreds_of_columns_is_refused(tmp_path):
    header = ["手机号"] + [f"c{i}" for i in range(299)]
    path = write_csv(tmp_path / "wide.csv", [header, ["13812345678"] + ["v"] * 299])
    with pytest.raises(UserError, match="row 1 has 300 cells; a lead pack may have at most 256 columns"):
        read_all(path)


def test_csv_line_without_end_is_refused_before_it_becomes_a_row(tmp_path):
    path = tmp_path / "line.csv"
    path.write_text("手机号,备注\n13812345678," + "," * 400_000 + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 2 is longer than"):
        read_all(path)


def test_csv_rows_past_the_cap_are_refused(tmp_path):
    path = write_csv(tmp_path / "rows.csv", [["手机号"]] + [[f"138{n:08d}"] for n in range(30)])
    assert len(read_all(path)) == 31
    with pytest.raises(UserError, match="more than 20 rows; split the file"):
        read_all(path, ReadLimits(max_rows=20))


# ---- what messages echo of a bad header ------------------------------------------------------------------

def test_a_bad_header_is_echoed_short_and_masked(tmp_path):
    header = [f"列{i}" + "很长的列名" * 150 for i in range(30)] + ["备用 13812345678"]
    path = write_csv(tmp_path / "header.csv", [header, ["x"] * len(header)])
    facts = inspect_file(path)
    header_cells, _rows, _notes = open_rows(facts)
    with pytest.raises(UserError) as error:
        map_columns(path, header_cells, {})
    message = " ".join([str(error.value), *error.value.details])
    assert "no phone column" in message and "more)" in message
    assert len(message) < 3_000  # was every header in full: 22,000+ characters
    assert "13812345678" not in message


def test_real_lead_packs_stay_far_inside_the_limits(db, keyring, tmp_path):
    rows = HEADER_ROW + b"".join(lead_row(n, phone=f"139{n:08d}", note=text_cell(f"B{n}", "下午方便，已有车险"))
                                 for n in range(2, 2_002))
    path = write_xlsx(tmp_path / "leads.xlsx", sheet_xml(rows, dimension=b'<dimension ref="A1:C2001"/>'))
    summary = upload(db, keyring, path)
    assert (summary.rows, summary.accepted) == (2_000, 2_000)
    assert os.path.getsize(path) < 200_000
