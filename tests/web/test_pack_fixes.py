"""Issue 16 in the console (items 1 and 2): the upload summary says how to fix a file most of whose
rows failed for one reason, in Chinese; ops replace a pack (替换已有名单) or delete it (a confirmation
page first), refused in Chinese once a lead of it was dialled."""
from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import func, select

from bot.campaigns.models import CallAttempt
from bot.campaigns.service import create_campaign
from bot.core.db.engine import session_scope
from bot.leads.models import Lead, LeadPack, LeadReject
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import MOBILE, clients, console  # noqa: F401


def export_without_consent(path: Path, rows: int = 200) -> Path:
    with path.open("w", encoding="gbk", newline="") as handle:
        csv.writer(handle).writerows([["姓名", "手机号", "城市", "人群包"]]
                                     + [["王伟", str(13800000000 + i * 7919), "上海", "车主-华东"] for i in range(rows)])
    return path


def post_pack(ops, path: Path, **fields):
    return ops.post("/api/v1/lead-packs", data={"pack": "2026-11-车主", **fields},
                    files={"file": (path.name, path.read_bytes(), "text/csv")})


def count(db, model) -> int:
    with session_scope(db) as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_upload_summary_says_in_chinese_how_to_fix_then_replace(console, clients, db, tmp_path):
    ops = clients("ops")
    path = export_without_consent(tmp_path / "export.csv")
    first = post_pack(ops, path)
    assert first.status_code == 200, first.text
    summary = first.json()
    assert (summary["accepted"], summary["rejected"]) == (0, {"consent_missing": 200})
    [hint] = summary["hints"]
    assert hint.startswith("200 行中有 200 行缺少授权记录：文件中没有授权列（现有列：姓名、手机号、城市、人群包）")
    for fix in ("consent_at=<列名>", "--map consent_at=<列名>", "第一方线索", "--first-party", "留资时间",
                "同意时间", "授权时间", "注册时间", "授权同意", "是否授权", "替换已有名单"):
        assert fix in hint, fix

    again = post_pack(ops, path, first_party="true", consent_basis="官网留资表单")
    assert again.json()["already_uploaded"] is True and again.json()["accepted"] == 0
    replaced = post_pack(ops, path, first_party="true", consent_basis="官网留资表单", replace="true")
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert (body["accepted"], body["replaced"], body["already_uploaded"], body["hints"]) == (200, "2026-11-车主",
                                                                                           False, [])
    assert count(db, LeadPack) == 1 and count(db, LeadReject) == 0

    other = export_without_consent(tmp_path / "other.csv", rows=10)
    taken = post_pack(ops, other)
    assert taken.status_code == 400 and "已有名为“2026-11-车主”的名单" in taken.json()["detail"]
    assert "替换已有名单" in taken.json()["detail"]
    page = ops.get("/ops/packs")
    assert 'name="replace"' in page.text and "留资时间" in page.text and "/ops/packs/" in page.text
    assert not MOBILE.search(page.text)


def test_delete_a_pack_after_a_confirmation_page_refused_once_dialled(console, clients, db, tmp_path):
    ops = clients("ops")
    path = export_without_consent(tmp_path / "export.csv", rows=12)
    pack_id = post_pack(ops, path, first_party="true", consent_basis="官网").json()["pack_id"]
    confirm = ops.get(f"/ops/packs/{pack_id}/delete")
    assert confirm.status_code == 200
    assert "将删除这个名单的 12 条线索和 0 条拒收行" in confirm.text and "确认删除" in confirm.text
    assert count(db, Lead) == 12  # showing the page deletes nothing

    with session_scope(db) as session:
        campaign = create_campaign(session, name="双十一", packs=["2026-11-车主"], created_by="ops")
        lead = session.execute(select(Lead).order_by(Lead.id)).scalars().first()
        attempt = CallAttempt(campaign_id=campaign.id, lead_id=lead.id, attempt_no=1, phone_hash=lead.phone_hash,
                              arms={}, status="completed", dialed_at=lead.created_at)
        session.add(attempt)
    refused_page = ops.get(f"/ops/packs/{pack_id}/delete")
    assert "不能删除名单“2026-11-车主”：已有 1 条线索拨打过（外呼任务：双十一）" in refused_page.text and "确认删除" not in refused_page.text
    refused = ops.http.delete(f"/api/v1/lead-packs/{pack_id}", headers=ops.headers())
    assert refused.status_code == 400 and refused.json()["detail"].startswith("不能删除名单“2026-11-车主”")
    replace_refused = post_pack(ops, path, first_party="true", consent_basis="官网", replace="true")
    assert replace_refused.status_code == 400 and "不能替换名单“2026-11-车主”" in replace_refused.json()["detail"]
    assert count(db, Lead) == 12

    with session_scope(db) as session:
        session.query(CallAttempt).delete()
    manager = clients("manager")
    assert manager.http.post(f"/ops/packs/{pack_id}/delete", data={"csrf_token": manager.csrf}).status_code == 403
    done = ops.http.post(f"/ops/packs/{pack_id}/delete", data={"csrf_token": ops.csrf})
    assert done.status_code == 303 and done.headers["location"] == "/ops/packs"
    listing = ops.get("/ops/packs")
    assert "已删除名单“2026-11-车主”：12 条线索、0 条拒收行，并已从外呼任务 双十一 中移除" in listing.text
    assert count(db, Lead) == count(db, LeadPack) == 0
