"""Issue 13, Low 9 and Medium 6: phone numbers are masked however they are written (and only phone
numbers), nothing phone-shaped from an upload is stored in clear, and the rejects CSV cannot carry a
formula into Excel, not even after a line break inside a cell."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select, text

from bot.core.db.engine import session_scope
from bot.core.pii import mask_digit_runs
from bot.leads.export import neutralise_formula, write_rejects_csv
from bot.leads.models import Lead, LeadReject
from bot.leads.service import UploadRequest, get_pack, upload_lead_pack
from tests.security.hostile_files import write_csv


@pytest.mark.parametrize("written", [
    "138.1234.5678", "1 3 8 1 2 3 4 5 6 7 8", "139/1234/5678", "139_1234_5678", "13812345678", "139 1234 5678",
    "+86 138-1234-5678", "(010) 8888-6666", "0755-1234567", "１３８１２３４５６７８",
    "一三八一二三四五六七八", "幺三八幺二三四五六七八", "一三八 一二三四 五六七八", "138一二三四5678",
])
def test_phone_numbers_are_masked_however_they_are_written(written):
    masked = mask_digit_runs(f"客户说：{written}，下午打")
    digits = "".join(ch for ch in masked.replace("+86 ", "") if ch.isdigit() or ch in "一二三四五六七八九〇零幺两")
    assert "****" in masked and len(digits) <= 8, masked  # at most the first 3-4 and last 4 digits remain
    assert masked.startswith("客户说：") and masked.endswith("，下午打")


@pytest.mark.parametrize("text_", [
    "16777216", "文件 16777216 字节", "2024-05-01 10:00", "2024.05.01 13:45", "价格 1,299,000 元", "192.168.100.200",
    "第一三八号", "0.123456789", "一般般", "三个月",
])
def test_numbers_that_are_not_phones_stay_readable(text_):
    assert mask_digit_runs(text_) == text_


def test_phone_shaped_text_in_other_columns_is_never_stored_in_clear(db, keyring, tmp_path):
    """备注 / 备用电话 / a name with a number in it: masked at upload (the lead's own number is the only one
    stored, and only encrypted and hashed)."""
    path = write_csv(tmp_path / "p.csv", [
        ["手机号", "姓名", "同意时间", "备注", "备用电话", "渠道"],
        ["13812345678", "张三 139 1234 5678", "2024-05-01 10:00", "备用 139.1234.5678 晚上打", "13912345678",
         "推荐人 一三七一二三四五六七八"],
        ["1381234567", "李四", "2024-05-01 10:00", "call 幺三七 1111 2222", "137/1111/2222", ""],  # rejected row
    ])
    upload_lead_pack(db, keyring, UploadRequest(path=path, pack_name="p", uploaded_by="test"))
    with session_scope(db) as session:
        lead = session.execute(select(Lead)).scalar_one()
        assert lead.custom_fields == {"备注": "备用 139****5678 晚上打", "备用电话": "139****5678"}
        assert lead.name == "张三 139****5678" and lead.consent_source == "推荐人 137****5678"
        assert "137****2222" in session.execute(select(LeadReject.raw_masked)).scalar_one()
    with db.connect() as conn:
        stored = " ".join(str(value) for table in ("leads", "lead_rejects", "lead_packs")
                          for row in conn.execute(text(f"SELECT * FROM {table}")) for value in row
                          if not isinstance(value, (bytes, memoryview)))
    for number in ("13912345678", "139.1234.5678", "139 1234 5678", "一三七一二三四五六七八", "13711112222",
                   "137/1111/2222"):
        assert number not in stored


def test_a_numeric_excel_cell_in_a_custom_column_is_masked_too(db, keyring, tmp_path):
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.active.append(["手机号", "同意时间", "备用电话", "件数"])
    workbook.active.append(["13812345678", "2024-05-01 10:00", 13912345678, 16777216])
    path = tmp_path / "n.xlsx"
    workbook.save(path)
    upload_lead_pack(db, keyring, UploadRequest(path=path, pack_name="p", uploaded_by="test"))
    with session_scope(db) as session:
        assert session.execute(select(Lead.custom_fields)).scalar_one() == {"备用电话": "139****5678",
                                                                             "件数": 16777216}


# ---- the rejects CSV -------------------------------------------------------------------------------------

def test_rejects_csv_quotes_every_field_and_neutralises_formulas_after_line_breaks(db, keyring, tmp_path):
    path = write_csv(tmp_path / "f.csv", [
        ["手机号", "姓名", "备注"],
        ["13812345678", "张三\r=cmd|' /C calc'!A0", "ok\n+SUM(A1)"],  # no consent time: rejected
        ["13912345678", "=HYPERLINK(\"http://x\")", "a\r\n@b"],
    ])
    upload_lead_pack(db, keyring, UploadRequest(path=path, pack_name="p", uploaded_by="test"))
    out = io.StringIO()
    with session_scope(db) as session:
        assert write_rejects_csv(session, get_pack(session, "p"), out) == 2
    exported = out.getvalue()
    for line in exported.split("\n"):
        assert not line or line.startswith('"') or line.startswith(("'", "\r")) or line[:1] not in "=+-@"
    rows = list(csv.reader(io.StringIO(exported)))
    assert all(len(row) == 6 for row in rows)
    cells = [cell for row in rows[1:] for cell in row[3:]]
    for cell in cells:
        for piece in cell.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            assert not piece.startswith(("=", "+", "-", "@")), cell
    # every field is quoted: nothing in a value can start a new cell or row for another reader
    assert exported.startswith('"row","reason","message"') and '\n"2","consent_missing"' in exported
    assert "\r'=cmd" in exported


@pytest.mark.parametrize("value, expected", [
    ("张三\r=cmd|' /C calc'!A0", "张三\r'=cmd|' /C calc'!A0"), ("a\r\n-1\n@x", "a\r\n'-1\n'@x"),
    ("=1+1", "'=1+1"), ("＝1", "'＝1"), ("plain", "plain"), ("line\nnext", "line\nnext"),
])
def test_neutralise_formula_after_any_line_break(value, expected):
    assert neutralise_formula(value) == expected
