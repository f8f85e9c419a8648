"""Issue 16, items 1 and 2: an upload that fails says how to fix itself, recognises the usual Chinese
consent headers, and a failed pack can be replaced or deleted while none of its leads was dialled."""
from __future__ import annotations

import csv
import random
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.campaigns.models import CallAttempt, CampaignPack
from bot.campaigns.pack_removal import delete_lead_pack, replace_guard
from bot.campaigns.service import create_campaign
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.leads.models import Lead, LeadPack, LeadReject
from bot.leads.service import PackNameTaken, UploadRequest, consent_flag, upload_lead_pack
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


def realistic_export(path: Path, extra: tuple[str, ...] = (), values=None) -> Path:
    """A 200-row GBK export as ops get it (姓名,手机号,城市,人群包), no consent column, with three
    broken rows (a short number, Excel's 1.38E+10, a repeated number); `extra` columns filled by `values`."""
    rng = random.Random(16)
    rows: list[list[str]] = [["姓名", "手机号", "城市", "人群包", *extra]]
    for i in range(200):
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
        phone = {17: "1381234", 88: "1.38E+10", 150: rows[5][1] if len(rows) > 5 else phone}.get(i, phone)
        row = [rng.choice("王李张刘陈") + rng.choice(["伟", "芳", "娜", "强"]), phone,
               rng.choice(["上海", "杭州", "南京"]), rng.choice(["车主-华东", "宝妈-华东"])]
        rows.append(row + (values(i) if values else []))
    with path.open("w", encoding="gbk", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def upload(db, keyring, path: Path, pack: str = "2026-11-车主", **kwargs):
    return upload_lead_pack(db, keyring, UploadRequest(path=path, pack_name=pack, uploaded_by="test", **kwargs),
                            now=NOW, replace_guard=replace_guard)


def count(db, model, *where) -> int:
    with session_scope(db) as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


# ---- item 1: the summary says what to do ------------------------------------------------------------

def test_most_rows_without_consent_get_one_hint_naming_the_flags_and_headers(db, keyring, tmp_path):
    summary = upload(db, keyring, realistic_export(tmp_path / "export.csv"))
    assert (summary.rows, summary.accepted, summary.rejected["consent_missing"]) == (200, 0, 198)
    [hint] = summary.hints
    assert hint.reason == "consent_missing" and (hint.rows, hint.total) == (198, 200)
    for fix in ("--map consent_at=<column>", "--first-party", "留资时间", "同意时间", "授权时间", "注册时间",
                "授权同意", "是否授权", "--replace"):
        assert fix in hint.text
    assert "姓名, 手机号, 城市, 人群包" in hint.text  # the columns the file does have
    assert summary.as_json()["hints"][0]["options"][0] == "--map consent_at=<column>"


def test_a_few_failed_rows_get_no_hint(db, keyring, tmp_path):
    summary = upload(db, keyring, realistic_export(tmp_path / "export.csv", ("同意时间",),
                                                   lambda i: ["" if i < 4 else "2026-11-01 10:00"]))
    assert summary.rejected.get("consent_missing") == 4 and summary.hints == []


def test_lead_time_column_is_a_first_party_consent_record_without_flags(db, keyring, tmp_path):
    path = realistic_export(tmp_path / "export.csv", ("留资时间",), lambda i: [f"2026-11-{1 + i % 20:02d} 10:30"])
    summary = upload(db, keyring, path)
    assert (summary.accepted, summary.rejected) == (197, {"phone_invalid": 1, "phone_scientific_notation": 1,
                                                          "duplicate_in_file": 1})
    assert summary.columns["consent_at"] == "#5 留资时间" and summary.hints == []
    with session_scope(db) as session:
        pack = session.execute(select(LeadPack)).scalar_one()
        assert pack.first_party == 1 and "留资时间" in pack.consent_basis
        lead = session.execute(select(Lead).order_by(Lead.row_number)).scalars().first()
        assert lead.consent_source == "first_party"
        assert lead.consent_at == datetime(2026, 11, 1, 2, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("header", ["授权时间", "同意时间", "注册时间"])
def test_other_consent_time_headers_are_recognised(db, keyring, tmp_path, header):
    summary = upload(db, keyring, realistic_export(tmp_path / "export.csv", (header,), lambda i: ["2026-10-01"]))
    assert summary.accepted == 197 and summary.columns["consent_at"] == f"#5 {header}"


@pytest.mark.parametrize("header", ["授权同意", "是否授权"])
def test_yes_no_consent_column(db, keyring, tmp_path, header):
    answers = ["是", "否", "已授权", "同意", "未授权", "Y", "不同意", "待定"]
    path = realistic_export(tmp_path / "export.csv", (header,), lambda i: [answers[i % len(answers)]])
    summary = upload(db, keyring, path)
    assert summary.columns["consent_given"] == f"#5 {header}"
    # rows 17 and 88 (0-based) fail on their phone first; the repeated number of row 150 on its answer
    phone_rejects = {17, 88}
    declined = sum(1 for i in range(200) if i not in phone_rejects and answers[i % 8] in ("否", "未授权", "不同意"))
    invalid = sum(1 for i in range(200) if i not in phone_rejects and answers[i % 8] == "待定")
    assert (summary.rejected["consent_declined"], summary.rejected["consent_invalid"]) == (declined, invalid)
    assert summary.accepted == 200 - 2 - declined - invalid - summary.rejected.get("duplicate_in_file", 0)
    with session_scope(db) as session:
        message = session.execute(select(LeadReject.message).where(LeadReject.reason == "consent_declined")).scalar()
        assert header in message and "did not agree" in message
        invalid = session.execute(select(LeadReject.message).where(LeadReject.reason == "consent_invalid")).scalar()
        assert "待定" in invalid and "是" in invalid
        sources = set(session.execute(select(Lead.consent_source)).scalars())
    assert sources <= {f"{header}=是", f"{header}=已授权", f"{header}=同意", f"{header}=Y"}


def test_consent_flag_values():
    assert [consent_flag(v) for v in ("是", " 已授权 ", "同意", "YES", 1, True)] == [True] * 6
    assert [consent_flag(v) for v in ("否", "未授权", "不同意", "no", 0, False)] == [False] * 6
    assert consent_flag("待定") is None


def test_hint_for_an_already_uploaded_file_says_replace(db, keyring, tmp_path):
    path = realistic_export(tmp_path / "export.csv")
    upload(db, keyring, path)
    again = upload(db, keyring, path, first_party=True, consent_basis="官网留资表单")
    assert again.already_uploaded and again.hints[0].reason == "consent_missing"
    assert any("--replace" in note for note in again.notes)


# ---- item 2: --replace and delete-pack ---------------------------------------------------------------

def test_replace_uploads_the_same_file_again_with_other_options(db, keyring, tmp_path):
    path = realistic_export(tmp_path / "export.csv")
    upload(db, keyring, path)
    replaced = upload(db, keyring, path, first_party=True, consent_basis="官网留资表单", replace=True)
    assert not replaced.already_uploaded and replaced.replaced == "2026-11-车主"
    assert replaced.accepted == 197 and count(db, LeadPack) == 1
    assert count(db, LeadReject) == 3  # the failed pack's 198 + 2 rejects are gone, not shown twice


def test_replace_by_name_with_a_corrected_file(db, keyring, tmp_path):
    upload(db, keyring, realistic_export(tmp_path / "export.csv"))
    fixed = realistic_export(tmp_path / "fixed.csv", ("留资时间",), lambda i: ["2026-11-01 09:00"])
    with pytest.raises(PackNameTaken, match="--replace"):
        upload(db, keyring, fixed)
    summary = upload(db, keyring, fixed, replace=True)
    assert summary.accepted == 197 and summary.replaced == "2026-11-车主"
    assert count(db, LeadPack) == 1


def test_replace_keeps_the_campaigns_of_the_earlier_pack(db, keyring, tmp_path):
    fixed = realistic_export(tmp_path / "fixed.csv", ("同意时间",), lambda i: ["2026-11-01 09:00"])
    upload(db, keyring, fixed, pack="p1")
    with session_scope(db) as session:
        create_campaign(session, name="c1", packs=["p1"], created_by="ops")
    again = realistic_export(tmp_path / "again.csv", ("同意时间",), lambda i: ["2026-11-02 09:00"])
    upload(db, keyring, again, pack="p1", replace=True)
    with session_scope(db) as session:
        pack_id = session.execute(select(LeadPack.id)).scalar_one()
        assert session.execute(select(CampaignPack.pack_id)).scalars().all() == [pack_id]


def _dial_first_lead(db, pack: str, status: str = "completed") -> None:
    with session_scope(db) as session:
        campaign = create_campaign(session, name=f"c-{pack}", packs=[pack], created_by="ops")
        lead = session.execute(select(Lead).order_by(Lead.id)).scalars().first()
        session.add(CallAttempt(campaign_id=campaign.id, lead_id=lead.id, attempt_no=1, phone_hash=lead.phone_hash,
                                arms={}, status=status, scheduled_at=NOW,
                                dialed_at=NOW if status != "scheduled" else None))


def test_a_dialled_pack_cannot_be_replaced_or_deleted(db, keyring, tmp_path):
    path = realistic_export(tmp_path / "fixed.csv", ("同意时间",), lambda i: ["2026-11-01 09:00"])
    upload(db, keyring, path, pack="p1")
    _dial_first_lead(db, "p1")
    with pytest.raises(UserError, match="1 of its leads were already dialled"):
        upload(db, keyring, path, pack="p1", replace=True)
    with pytest.raises(UserError, match="cannot delete lead pack 'p1': 1 of its leads were already dialled"):
        with session_scope(db) as session:
            delete_lead_pack(session, "p1")
    assert count(db, Lead) == 197 and count(db, CallAttempt) == 1  # nothing changed


def test_a_pack_with_a_call_scheduled_says_stop_the_campaign(db, keyring, tmp_path):
    path = realistic_export(tmp_path / "fixed.csv", ("同意时间",), lambda i: ["2026-11-01 09:00"])
    upload(db, keyring, path, pack="p1")
    _dial_first_lead(db, "p1", status="scheduled")
    with pytest.raises(UserError, match="call scheduled.*waihu campaign stop"):
        with session_scope(db) as session:
            delete_lead_pack(session, "p1")


def test_delete_pack_removes_leads_and_rejects_then_the_file_uploads_again(db, keyring, tmp_path):
    path = realistic_export(tmp_path / "fixed.csv", ("同意时间",), lambda i: ["2026-11-01 09:00"])
    upload(db, keyring, path, pack="p1")
    with session_scope(db) as session:
        deleted = delete_lead_pack(session, "p1")
    assert (deleted.leads, deleted.rejects) == (197, 3)
    assert count(db, Lead) == count(db, LeadReject) == count(db, LeadPack) == 0
    assert upload(db, keyring, path, pack="p1").accepted == 197  # not "already uploaded", not duplicates
    with pytest.raises(UserError, match="no lead pack named 'nope'"):
        with session_scope(db) as session:
            delete_lead_pack(session, "nope")


def test_replace_that_fails_leaves_the_earlier_pack(db, keyring, tmp_path):
    path = realistic_export(tmp_path / "fixed.csv", ("同意时间",), lambda i: ["2026-11-01 09:00"])
    upload(db, keyring, path, pack="p1")
    broken = tmp_path / "broken.csv"
    broken.write_text("手机号,同意时间\n,\n", encoding="utf-8")  # found out inside the transaction
    with pytest.raises(UserError, match="no data rows"):
        upload(db, keyring, broken, pack="p1", replace=True)
    assert count(db, Lead) == 197 and count(db, LeadPack) == 1
