"""Speed to lead: leads sent by the caller's system (bot.leads.api_leads), on SQLite and PostgreSQL —
the upload's checks apply, a retry with the same external id returns the same lead, and uploaded
packs keep their 留资/注册/提交/授权时间 as lead_left_at."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import add_entry
from bot.leads.api_leads import ACCEPTED, DUPLICATE, MAX_BATCH, REJECTED, LeadIn, add_leads
from bot.leads.models import Lead, LeadPack, LeadReject
from bot.leads.service import UploadRequest, upload_lead_pack
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai


def test_a_lead_is_added_once_per_external_id(db, keyring) -> None:
    lead = LeadIn(phone="13800001234", lead_left_at="2026-11-24 09:55", name="张三", external_id="crm-1")
    first = add_leads(db, keyring, [lead], audience="车主", now=NOW)
    again = add_leads(db, keyring, [lead], audience="车主", now=NOW)
    assert first.pack == "API·车主" and first.results[0].status == ACCEPTED
    assert again.results[0].status == DUPLICATE and again.results[0].lead_id == first.results[0].lead_id
    assert first.results[0].phone_masked == "138****1234"
    with session_scope(db) as session:
        leads = session.execute(select(Lead)).scalars().all()
        assert len(leads) == 1
        stored = leads[0]
        assert stored.external_id == "crm-1" and stored.priority == 1
        assert stored.lead_left_at == datetime(2026, 11, 24, 1, 55, tzinfo=timezone.utc)  # Beijing 09:55
        assert stored.consent_at == stored.lead_left_at and stored.consent_source == "first_party"
        pack = session.execute(select(LeadPack)).scalar_one()
        assert (pack.rows, pack.accepted, pack.file_format) == (1, 1, "api")


def test_each_lead_is_checked_like_an_uploaded_row(db, keyring) -> None:
    with session_scope(db) as session:
        add_entry(
            session, keyring.hash_phone("13900000002"), scope=SCOPE_OPT_OUT, reason="别再打了", source="call", now=NOW
        )
    batch = [
        LeadIn(phone="13900000001", lead_left_at="2026-11-24 09:00", external_id="a"),
        LeadIn(phone="13900000002", lead_left_at="2026-11-24 09:00", external_id="b"),  # do-not-call
        LeadIn(phone="1380000", lead_left_at="2026-11-24 09:00", external_id="c"),  # too short
        LeadIn(phone="13900000004", external_id="d"),  # no 留资时间
        LeadIn(phone="13900000005", lead_left_at="昨天", external_id="e"),
        LeadIn(phone="13900000001", lead_left_at="2026-11-24 09:00", external_id="f"),  # a's number again
        LeadIn(phone="13900000001", lead_left_at="2026-11-24 09:00", external_id="a"),  # a again, same request
    ]
    result = add_leads(db, keyring, batch, audience="宝妈", now=NOW)
    by_id = {r.external_id: r for r in result.results if r.index != 6}
    assert by_id["a"].status == ACCEPTED
    assert result.results[6].status == DUPLICATE and result.results[6].lead_id == by_id["a"].lead_id
    where = {key: (r.status, [(e.field, e.reason) for e in r.errors]) for key, r in by_id.items() if key != "a"}
    assert where == {
        "b": (REJECTED, [("phone", "dnc_opt_out")]),
        "c": (REJECTED, [("phone", "phone_invalid")]),
        "d": (REJECTED, [("lead_left_at", "consent_missing")]),
        "e": (REJECTED, [("lead_left_at", "consent_invalid")]),
        "f": (REJECTED, [("phone", "duplicate_in_file")]),
    }
    assert "留资时间" in by_id["d"].errors[0].message
    assert by_id["b"].as_json()["errors"][0]["where"] == "leads[1].phone"
    assert all("13900000002" not in e.message for e in by_id["b"].errors)
    with session_scope(db) as session:
        reasons = sorted(session.execute(select(LeadReject.reason)).scalars())
        pack = session.execute(select(LeadPack)).scalar_one()
    assert reasons == sorted(
        ["dnc_opt_out", "phone_invalid", "consent_missing", "consent_invalid", "duplicate_in_file"]
    )  # every rejected lead is kept with its reason
    assert (pack.rows, pack.accepted, pack.rejected, pack.dnc_hits) == (6, 1, 5, 1)


def test_without_an_external_id_the_number_is_the_key(db, keyring) -> None:
    lead = LeadIn(phone="+86 138 0000 9999", lead_left_at=NOW)
    first = add_leads(db, keyring, [lead], audience="单身", now=NOW)
    again = add_leads(db, keyring, [LeadIn(phone="13800009999", lead_left_at=NOW)], audience="单身", now=NOW)
    assert first.results[0].status == ACCEPTED and again.results[0].status == DUPLICATE
    assert "13800009999" not in first.results[0].external_id


def test_batch_limit_and_upload_packs_are_refused_clearly(db, keyring, tmp_path) -> None:
    with pytest.raises(UserError, match=f"at most {MAX_BATCH}"):
        add_leads(db, keyring, [LeadIn(phone="13800000000")] * (MAX_BATCH + 1), audience="车主", now=NOW)
    path = tmp_path / "pack.csv"
    path.write_text("手机号,提交时间\n13700000001,2026-11-20 10:00\n13700000002,\n", encoding="utf-8")
    upload_lead_pack(
        db, keyring, UploadRequest(path=path, pack_name="表单", first_party=True, consent_basis="官网表单"), now=NOW
    )
    with pytest.raises(UserError, match="uploaded file's pack"):
        add_leads(db, keyring, [LeadIn(phone="13800000000", lead_left_at=NOW)], audience="车主", pack="表单", now=NOW)


@pytest.mark.parametrize("header", ["留资时间", "注册时间", "提交时间", "授权时间"])
def test_uploaded_packs_keep_when_the_number_was_left(db, keyring, tmp_path, header) -> None:
    path = tmp_path / "pack.csv"
    path.write_text(f"手机号,{header}\n13700000001,2026-11-20 10:00\n", encoding="utf-8")
    upload_lead_pack(db, keyring, UploadRequest(path=path, pack_name="p"), now=NOW)
    with session_scope(db) as session:
        lead = session.execute(select(Lead)).scalar_one()
    assert lead.lead_left_at == datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc) and lead.priority == 0


def test_an_agreement_time_is_not_a_lead_left_time(db, keyring, tmp_path) -> None:
    path = tmp_path / "pack.csv"
    path.write_text("手机号,同意时间\n13700000001,2026-11-20 10:00\n", encoding="utf-8")
    upload_lead_pack(db, keyring, UploadRequest(path=path, pack_name="p"), now=NOW)
    with session_scope(db) as session:
        lead = session.execute(select(Lead)).scalar_one()
    assert lead.consent_at is not None and lead.lead_left_at is None


def test_api_leads_get_their_region_from_the_city_or_the_number(db, keyring) -> None:
    """The callee's region drives their clock and the local caller number, for API leads too."""
    given = LeadIn(phone="13800001234", lead_left_at="2026-11-24 09:55", city="新疆乌鲁木齐", external_id="r-1")
    from_number = LeadIn(phone="13999123456", lead_left_at="2026-11-24 09:55", external_id="r-2")
    outcome = add_leads(db, keyring, [given, from_number], audience="车主", now=NOW)
    assert [r.status for r in outcome.results] == [ACCEPTED, ACCEPTED]
    with session_scope(db) as session:
        stored = {lead.external_id: lead for lead in session.execute(select(Lead)).scalars()}
        assert (stored["r-1"].province, stored["r-1"].timezone) == ("新疆", "Asia/Urumqi")
        assert stored["r-1"].region_source != stored["r-2"].region_source
        assert stored["r-2"].province == "新疆" and stored["r-2"].timezone == "Asia/Urumqi"  # 139 9912 is Urumqi
