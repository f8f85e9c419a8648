"""Do-not-call: scopes, expiry, import, and the pre-dial state (SQLite and PostgreSQL)."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import openpyxl
import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.dnc.models import DoNotCall
from bot.dnc.service import (active_entries, add_entry, dnc_state, import_file, parse_phone_or_fail,
                             remove_entries)
from bot.core.errors import UserError
from telephony.compliance import check_eligibility, load_profile
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401

NOW = datetime(2025, 3, 3, 2, 0, tzinfo=timezone.utc)


def test_opt_out_is_permanent_and_wins(db, keyring):
    phone_hash = keyring.hash_phone("13812345678")
    with session_scope(db) as session:
        add_entry(session, phone_hash, scope="soft_decline", reason="不需要", source="call:7", now=NOW)
        add_entry(session, phone_hash, scope="opt_out", reason="别再打了", source="call:9", now=NOW)
    with session_scope(db) as session:
        state = dnc_state(session, phone_hash, NOW + timedelta(days=3650))
    assert state.opt_out
    result = check_eligibility(load_profile(), now=NOW, dnc=state)
    assert (result.allowed, result.reason, result.earliest) == (False, "dnc_opt_out", None)


def test_soft_decline_defaults_to_180_days_and_expires(db, keyring):
    phone_hash = keyring.hash_phone("13912345678")
    with session_scope(db) as session:
        entry = add_entry(session, phone_hash, scope="soft_decline", reason="不需要", source="call:1", now=NOW)
        assert entry.expires_at == NOW + timedelta(days=180)
    with session_scope(db) as session:
        assert dnc_state(session, phone_hash, NOW).soft_until == NOW + timedelta(days=180)
        assert dnc_state(session, phone_hash, NOW + timedelta(days=181)).soft_until is None


def test_adding_again_only_extends(db, keyring):
    phone_hash = keyring.hash_phone("13912345678")
    with session_scope(db) as session:
        add_entry(session, phone_hash, scope="soft_decline", reason="a", source="s", now=NOW)
        add_entry(session, phone_hash, scope="soft_decline", reason="b", source="s",
                  expires_at=NOW + timedelta(days=10), now=NOW)
    with session_scope(db) as session:
        rows = session.execute(select(DoNotCall)).scalars().all()
    assert len(rows) == 1 and rows[0].expires_at == NOW + timedelta(days=180)


def test_remove_by_scope(db, keyring):
    phone_hash = keyring.hash_phone("13812345678")
    with session_scope(db) as session:
        add_entry(session, phone_hash, scope="soft_decline", reason="", source="s", now=NOW)
        add_entry(session, phone_hash, scope="opt_out", reason="", source="s", now=NOW)
    with session_scope(db) as session:
        assert remove_entries(session, phone_hash, "soft_decline") == 1
        assert [e.scope for e in active_entries(session, phone_hash, NOW)] == ["opt_out"]
        assert remove_entries(session, phone_hash) == 1
        assert active_entries(session, phone_hash, NOW) == []


def test_bad_scope_and_past_expiry(db, keyring):
    with session_scope(db) as session:
        with pytest.raises(UserError, match="scope"):
            add_entry(session, "x" * 64, scope="forever", reason="", source="s")
        with pytest.raises(UserError, match="past"):
            add_entry(session, "x" * 64, scope="soft_decline", reason="", source="s",
                      expires_at=NOW - timedelta(days=1), now=NOW)


def test_import_a_bare_list_and_a_spreadsheet(db, keyring, tmp_path):
    bare = tmp_path / "dnc.txt"
    bare.write_text("13812345678\n139-1234-5678\n\nnot a phone\n13812345678\n", encoding="gbk")
    with session_scope(db) as session:
        summary = import_file(session, keyring, bare, scope="opt_out", reason="投诉", source="complaints", now=NOW)
    assert (summary.rows, summary.added) == (4, 2)
    assert len(summary.invalid) == 1 and summary.invalid[0].startswith("row 4")

    workbook = openpyxl.Workbook()
    workbook.active.append(["客户", "联系电话"])
    workbook.active.append(["a", 13712345678])
    workbook.active.append(["b", "1.37E+10"])
    path = tmp_path / "dnc.xlsx"
    workbook.save(path)
    with session_scope(db) as session:
        summary = import_file(session, keyring, path, scope="soft_decline", reason="", source="partner", now=NOW)
        assert (summary.rows, summary.added, len(summary.invalid)) == (2, 1, 1)
        assert "13712345678" not in summary.invalid[0]
        assert dnc_state(session, keyring.hash_phone("13712345678"), NOW).soft_until is not None


def test_import_csv_with_header_and_column(db, keyring, tmp_path):
    path = tmp_path / "dnc.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "号码A", "号码B"], ["1", "", "13812345678"]])
    with session_scope(db) as session:
        summary = import_file(session, keyring, path, scope="opt_out", reason="", source="x", column="号码B", now=NOW)
    assert summary.added == 1


def test_phone_errors_are_masked():
    with pytest.raises(UserError) as error:
        parse_phone_or_fail("1381234567899")
    assert "1381234567899" not in str(error.value) and "****" in str(error.value)


def test_import_in_chunks_extends_what_is_listed_and_adds_the_rest(db, keyring, tmp_path):
    """1,200 numbers (three lookup chunks): 40 already soft-declined until soon get the full
    180 days, one listed until later keeps its later date, the rest are new; each once."""
    phones = [f"137{i:08d}" for i in range(1200)]
    soon, later = NOW + timedelta(days=5), NOW + timedelta(days=400)
    with session_scope(db) as session:
        for phone in phones[::30]:
            add_entry(session, keyring.hash_phone(phone), scope="soft_decline", reason="old", source="s",
                      expires_at=soon, now=NOW)
        add_entry(session, keyring.hash_phone(phones[1]), scope="soft_decline", reason="old", source="s",
                  expires_at=later, now=NOW)
    path = tmp_path / "partner.txt"
    path.write_text("\n".join(phones + phones[:10]) + "\n", encoding="utf-8")
    with session_scope(db) as session:
        summary = import_file(session, keyring, path, scope="soft_decline", reason="partner", source="p", now=NOW)
    assert (summary.rows, summary.added, summary.already_listed, summary.invalid) == (1210, 1200, 41, [])
    with session_scope(db) as session:
        rows = {r.phone_hash: r for r in session.execute(select(DoNotCall)).scalars()}
    assert len(rows) == 1200
    assert rows[keyring.hash_phone(phones[30])].expires_at == NOW + timedelta(days=180)
    assert rows[keyring.hash_phone(phones[30])].reason == "partner"
    assert rows[keyring.hash_phone(phones[1])].expires_at == later
    assert rows[keyring.hash_phone(phones[2])].expires_at == NOW + timedelta(days=180)
