"""Issue 16, managers (item 12, and the console side of items 8–9): the A/B report, the call list
and the WeCom funnel download as CSV (UTF-8 with BOM, Chinese headers) and XLSX, phone numbers
masked and formula-looking cells neutralised; the console's report shows each verdict's reason
and marks metrics the factor cannot move as checks (核对项)."""
from __future__ import annotations

import csv
import html
import io

from openpyxl import load_workbook
from sqlalchemy import select, update

from bot.campaigns.models import CallAttempt
from bot.core.db.engine import session_scope
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import MOBILE, clients, console, seed_graded_calls  # noqa: F401

BOM = b"\xef\xbb\xbf"
INJECTION = "=HYPERLINK(\"http://x\",\"点我\") 客户说号码是13912345678"


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(BOM)
    assert "filename*=UTF-8''" in response.headers["content-disposition"]
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def workbook(response):
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    return load_workbook(io.BytesIO(response.content))


def test_report_exports_as_csv_and_xlsx(console, clients, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=200)
    manager = clients("manager")
    page = manager.get(f"/reports?campaign_id={campaign_id}").text
    assert f'href="/api/v1/reports/comparison.csv?campaign_id={campaign_id}' in html.unescape(page)

    rows = csv_rows(manager.get("/api/v1/reports/comparison.csv", params={"campaign_id": campaign_id}))
    header = rows[0]
    for name in ("实验因素", "分组", "指标", "核对项", "数值", "相对提升", "校正后 p", "结论", "原因", "还需天数"):
        assert name in header
    body = [dict(zip(header, row)) for row in rows[1:]]
    assert {r["实验因素"] for r in body} == {"话术版本", "拨打时段"}
    verdicts = [r for r in body if r["对照组"] == "否"]
    assert verdicts and all(r["结论"] and r["原因"] for r in verdicts)  # every verdict says why
    checks = [r for r in verdicts if r["核对项"] == "是"]
    assert checks and all(r["实验因素"] == "话术版本" and r["指标"] == "接通率" and r["结论"].startswith("核对项")
                          for r in checks)
    assert all(r["数值"].endswith("%") for r in body if r["指标"] == "接通率")

    book = workbook(manager.get("/api/v1/reports/comparison.xlsx", params={"campaign_id": campaign_id,
                                                                         "factor": "script"}))
    assert book.sheetnames == ["A-B 对比明细", "结论摘要", "全流程漏斗"]
    funnel = list(book["全流程漏斗"].iter_rows(values_only=True))
    assert funnel[0][:8] == ("分组", "拨打", "接通", "A/B", "邀请", "添加", "成交", "保费（元）")
    assert funnel[1][0] == "全部" and funnel[1][1] == sum(row[1] for row in funnel[2:])  # arms add up to the total
    detail = list(book["A-B 对比明细"].iter_rows(values_only=True))
    assert detail[0] == tuple(header) and {r[0] for r in detail[1:]} == {"话术版本"}
    value_column = header.index("数值")
    first_rate = book["A-B 对比明细"].cell(row=2, column=value_column + 1)
    assert isinstance(first_rate.value, float) and first_rate.number_format == "0.00%"
    assert any("对照组为standard" in (row[0] or "") for row in book["结论摘要"].iter_rows(values_only=True))


def test_call_list_exports_every_filtered_call_masked_and_formula_safe(console, clients, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=120)
    with session_scope(db) as session:
        first_a = session.execute(select(CallAttempt.id).where(CallAttempt.grade == "A").order_by(CallAttempt.id)
                                  ).scalars().first()
        session.execute(update(CallAttempt).where(CallAttempt.id == first_a).values(grade_reason=INJECTION))
        expected_a = len(session.execute(select(CallAttempt.id).where(CallAttempt.grade == "A")).all())
    manager = clients("manager")
    page = manager.get(f"/calls?campaign_id={campaign_id}&grade=A").text
    assert f"/api/v1/reports/calls.xlsx?campaign_id={campaign_id}&amp;grade=A" in page

    rows = csv_rows(manager.get("/api/v1/reports/calls.csv", params={"campaign_id": campaign_id}))
    header = rows[0]
    assert header[:5] == ["通话编号", "计划时间（北京时间）", "结束时间（北京时间）", "外呼任务", "手机号（已打码）"]
    assert len(rows) - 1 == 120  # every call, not one page of 50
    text = "\n".join(",".join(r) for r in rows)
    assert not MOBILE.search(text), MOBILE.search(text)
    phones = [r[header.index("手机号（已打码）")] for r in rows[1:]]
    assert all("****" in p for p in phones)
    injected = next(r for r in rows[1:] if r[0] == str(first_a))
    reason = injected[header.index("等级原因")]
    assert reason.startswith("'=HYPERLINK") and "13912345678" not in reason

    only_a = csv_rows(manager.get("/api/v1/reports/calls.csv", params={"campaign_id": campaign_id, "grade": "A"}))
    assert len(only_a) - 1 == expected_a and {r[header.index("等级")] for r in only_a[1:]} == {"A"}

    book = workbook(manager.get("/api/v1/reports/calls.xlsx", params={"campaign_id": campaign_id, "grade": "A"}))
    sheet = book["通话记录"]
    assert sheet.max_row - 1 == expected_a
    cell = next(row[header.index("等级原因")] for row in sheet.iter_rows(min_row=2) if row[0].value == first_a)
    assert cell.data_type == "s" and cell.value.startswith("'=HYPERLINK")
    assert not any(MOBILE.search(str(c)) for row in sheet.iter_rows(values_only=True) for c in row if c)

    bad = manager.get("/api/v1/reports/calls.csv", params={"grade": "E"}, headers={"Accept": "application/json"})
    assert bad.status_code == 400 and "等级只能是" in bad.text
    assert manager.get("/api/v1/reports/calls.pdf").status_code == 422


def test_wecom_funnel_exports_in_leads(console, clients, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=60)
    manager = clients("manager")
    page = manager.get(f"/wecom?campaign_id={campaign_id}").text
    assert f"/api/v1/reports/wecom-funnel.csv?campaign_id={campaign_id}" in page
    funnel = manager.get("/api/v1/wecom/funnel", params={"campaign_id": campaign_id},
                         headers={"Accept": "application/json"}).json()["funnel"]
    rows = csv_rows(manager.get("/api/v1/reports/wecom-funnel.csv", params={"campaign_id": campaign_id}))
    assert rows[0][:3] == ["维度", "分组", "A/B 线索"] and rows[0][-1].startswith("加粉率")
    assert all("线索" in name for name in rows[0][2:-1])  # every count is of leads, and says so
    assert rows[1][:3] == ["合计", "", str(funnel["total"]["graded_ab"])]
    book = workbook(manager.get("/api/v1/reports/wecom-funnel.xlsx", params={"campaign_id": campaign_id}))
    assert list(book["企微漏斗"].iter_rows(values_only=True))[1][2] == funnel["total"]["graded_ab"]
    assert manager.get("/api/v1/reports/wecom-funnel.csv", params={"campaign_id": 999999}).status_code == 404


def test_exports_are_for_managers_only(console, clients, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=20)
    ops = clients("ops")
    for path in ("comparison.csv", "calls.xlsx", "wecom-funnel.csv"):
        response = ops.get(f"/api/v1/reports/{path}", params={"campaign_id": campaign_id},
                           headers={"Accept": "application/json"})
        assert response.status_code == 403, (path, response.status_code)
    anonymous = clients()
    assert anonymous.get("/api/v1/reports/calls.csv", headers={"Accept": "application/json"}).status_code == 401


def test_console_report_says_why_and_marks_checks(console, clients, db, keyring, tmp_path):
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=200)
    manager = clients("manager")
    report = manager.get("/api/v1/reports/comparison", params={"campaign_id": campaign_id}).json()["report"]
    page = html.unescape(manager.get(f"/reports?campaign_id={campaign_id}").text)
    script = next(f for f in report["factors"] if f["factor"] == "script")
    assert script["checks"] == {"connect_rate": "话术在客户接听之后才开始，影响不了接通率"}
    assert 'data-check="connect_rate"' in page and "话术在客户接听之后才开始，影响不了接通率" in page
    for factor in report["factors"]:
        for arm in factor["overall"]["arms"]:
            for comparison in arm["vs_control"].values():
                assert comparison["reason"] and comparison["reason"] in page  # each verdict's reason is shown


def test_funnel_and_campaign_pages_name_their_units(console, clients, db, keyring, tmp_path):
    """Item 11: the WeCom funnel counts leads, the campaign's grade counts are calls; each says so."""
    campaign_id = seed_graded_calls(db, keyring, tmp_path, leads=40)
    funnel_page = clients("manager").get(f"/wecom?campaign_id={campaign_id}").text
    assert 'id="funnel-unit"' in funnel_page and "单位：线索" in funnel_page and "通话次数" in funnel_page
    campaign_page = clients("ops").get(f"/ops/campaigns/{campaign_id}").text
    assert "A 有明确意向（通话）" in campaign_page
