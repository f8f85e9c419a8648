"""Issue 16 item 4: the callee's province/city (from the upload's column, else the number's
归属地 from libphonenumber's geocoder) and the time zone it implies."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.core.region import SOURCE_COLUMN, SOURCE_NUMBER, Region, parse_place, region_of_number, resolve_region
from bot.leads.models import Lead
from bot.leads.service import UploadRequest, upload_lead_pack
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "number, province, city, zone",
    [
        ("13812345678", "江苏", "连云港市", "Asia/Shanghai"),
        ("02161234567", "上海", "上海市", "Asia/Shanghai"),
        ("13999123456", "新疆", "乌鲁木齐市", "Asia/Urumqi"),
        ("075512345678", "广东", "深圳市", "Asia/Shanghai"),
    ],
)
def test_number_geocodes_to_its_province_city_and_zone(number, province, city, zone):
    region = region_of_number(number)
    assert region == Region(province, city, SOURCE_NUMBER)
    assert region.timezone == zone


@pytest.mark.parametrize(
    "province_text, city_text, expected",
    [
        (None, "广东深圳", ("广东", "深圳市")),
        (None, "深圳市", ("广东", "深圳市")),
        (None, "广东省深圳市", ("广东", "深圳市")),
        (None, " 杭州 ", ("浙江", "杭州市")),
        ("广东省", "深圳", ("广东", "深圳市")),
        (None, "上海", ("上海", "上海市")),
        (None, "新疆乌鲁木齐", ("新疆", "乌鲁木齐市")),
        (None, "大理州", ("云南", "大理白族自治州")),
        ("广东", None, ("广东", None)),
    ],
)
def test_column_spellings_parse_to_the_geocoders_names(province_text, city_text, expected):
    region = parse_place(province_text, city_text)
    assert region is not None and (region.province, region.city) == expected
    assert region.source == SOURCE_COLUMN


def test_unknown_or_contradicting_place_falls_back_to_the_number():
    assert parse_place(None, "火星市") is None
    assert parse_place("浙江", "深圳") is None  # the two columns disagree
    region, unusable = resolve_region("13999123456", None, "火星市")
    assert unusable and region == Region("新疆", "乌鲁木齐市", SOURCE_NUMBER)
    # A province-only column keeps its province and takes the city from the number when they agree.
    region, unusable = resolve_region("13999123456", "新疆", None)
    assert not unusable and region == Region("新疆", "乌鲁木齐市", SOURCE_COLUMN)
    region, unusable = resolve_region("13812345678", None, None)  # no column: the number, nothing to report
    assert not unusable and region.source == SOURCE_NUMBER


def _pack(path: Path) -> Path:
    rows = [
        ["姓名", "手机号", "所在城市", "同意时间"],
        ["王伟", "13812345678", "广东深圳", "2026-11-01 10:00"],
        ["李娜", "13999123456", "", "2026-11-01 10:00"],
        ["张强", "13912345678", "火星市", "2026-11-01 10:00"],
        ["刘芳", "02161234567", "新疆乌鲁木齐", "2026-11-01 10:00"],
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_upload_stores_region_from_column_or_number_and_reports_bad_cities(db, keyring, tmp_path):
    summary = upload_lead_pack(
        db, keyring, UploadRequest(path=_pack(tmp_path / "p.csv"), pack_name="region", uploaded_by="t"), now=NOW
    )
    assert summary.accepted == 4 and summary.rejected_total == 0  # nothing dropped
    assert summary.region_unrecognised == 1 and summary.region_unrecognised_rows == [4]
    assert any("rows 4" in note and "火星市" not in note for note in summary.notes)
    with session_scope(db) as session:
        leads = {lead.row_number: lead for lead in session.execute(select(Lead).order_by(Lead.row_number)).scalars()}
        got = {n: (l.province, l.city, l.timezone, l.region_source) for n, l in leads.items()}
        custom = leads[4].custom_fields
    assert got == {
        2: ("广东", "深圳市", "Asia/Shanghai", "column"),
        3: ("新疆", "乌鲁木齐市", "Asia/Urumqi", "number"),
        4: (region_of_number("13912345678").province, region_of_number("13912345678").city, "Asia/Shanghai", "number"),
        5: ("新疆", "乌鲁木齐市", "Asia/Urumqi", "column"),
    }
    assert custom["城市(原值)"] == "火星市"
