"""Conversions (issue 17, item 4) on the real database (SQLite and PostgreSQL): matching by
external id and by phone, last-touch attribution within the window, idempotency, rejects kept
with row and field, the webhook event written with the match, erasure, and the report's
conversion metrics and funnel checked against numbers computed by hand."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import NormalDist

import pytest
from sqlalchemy import func, select, update

from bot.campaigns.models import CallAttempt, Campaign
from bot.cli.console import console
from bot.cli.report_commands import print_tables
from bot.campaigns.service import create_campaign
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.erasure import forget_phone
from bot.experiments.conversion_import import import_conversions
from bot.experiments.conversion_models import Conversion, ConversionReject
from bot.experiments.conversions import ConversionIn, record_conversions
from bot.experiments.report import build_report
from bot.experiments.report_html import render_report_html
from bot.leads.models import Lead
from bot.webhooks.models import WebhookEvent
from bot.webhooks.service import add_endpoint
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.experiments.data import Outcome, add_audience_leads, attempt_row, write_attempts

SHANGHAI = timezone(timedelta(hours=8))
DAY1 = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI)
VARIANTS = [{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}]
SLOTS = [{"name": "上午", "windows": ["09:30-12:00"], "weight": 1}]
NO_ANSWER = Outcome("no_answer", None, None, False)


def answered(grade: str) -> Outcome:
    return Outcome("answered", grade, 40.0, False)


# lead index → (script arm, its dials in order). Leads 0–2 standard, 3–5 benefit_first.
PLAN = {
    0: ("standard", [NO_ANSWER, answered("A")]),
    1: ("standard", [answered("C")]),
    2: ("standard", [answered("B")]),
    3: ("benefit_first", [answered("A")]),
    4: ("benefit_first", [NO_ANSWER, NO_ANSWER, answered("D")]),
    5: ("benefit_first", [NO_ANSWER]),
}


def build_campaign(session, keyring) -> tuple[int, list[tuple[int, str]]]:
    """Six leads with the dials of PLAN (one a day from DAY1 10:00 Shanghai); lead 0 has external id CRM-0."""
    leads = add_audience_leads(
        session, keyring, pack="p-conv", audience="宝妈-conv", scene="宝妈", count=6, first_phone=1
    )
    campaign = create_campaign(session, name="conv", packs=["p-conv"], variants=VARIANTS, time_slots=SLOTS)
    session.execute(update(Lead).where(Lead.id == leads[0][0]).values(external_id="CRM-0"))
    rows = []
    for index, (arm, outcomes) in PLAN.items():
        lead_id, phone = leads[index]
        for number, outcome in enumerate(outcomes, start=1):
            at = (DAY1 + timedelta(days=number - 1)).astimezone(timezone.utc)
            rows.append(
                attempt_row(
                    campaign.id,
                    lead_id,
                    number,
                    keyring.hash_phone(phone),
                    {"script": arm, "time_slot": "上午"},
                    outcome,
                    at,
                )
            )
    write_attempts(session.connection(), rows)
    return campaign.id, leads


def test_matching_attribution_idempotency_rejects_and_webhook(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, leads = build_campaign(session, keyring)
        add_endpoint(session, keyring, "https://crm.example.com/hook", ["conversion.matched"])
    items = [
        # by external id; lead 0's connected call was on day 2
        ConversionIn("P-1", "百万医疗", "1000", "2026-11-27 15:00", external_id="CRM-0", row_number=1),
        # by phone (clear number only used to match)
        ConversionIn("P-2", "重疾险", "500.50", "2026-11-26 09:00", phone=leads[2][1], row_number=2),
        # lead 1: connected 40 days before the policy → matched, unattributed
        ConversionIn("P-3", "意外险", "88", DAY1 + timedelta(days=40), phone=leads[1][1], row_number=3),
        ConversionIn("P-4", "意外险", "88", "2026-11-26", phone="13900009999", row_number=4),  # no such lead
        ConversionIn("P-5", "意外险", "-3", "2026-11-26", phone=leads[3][1], row_number=5),  # bad premium
    ]
    with session_scope(db) as session:
        results = record_conversions(session, keyring, items, source="api")
    assert [r.status for r in results] == ["accepted", "accepted", "accepted", "unmatched", "rejected"]
    first, second, outside = results[:3]
    assert first.lead_id == leads[0][0] and first.arms == {"script": "standard", "time_slot": "上午"}
    assert second.lead_id == leads[2][0] and second.attributed
    assert outside.lead_id == leads[1][0] and not outside.attributed and outside.campaign_id == campaign_id
    assert results[4].errors[0].field == "premium"
    with session_scope(db) as session:
        attempt = session.get(CallAttempt, first.attempt_id)
        assert attempt.lead_id == leads[0][0] and attempt.attempt_no == 2  # the connected one, not the first dial
        stored = session.execute(select(Conversion).where(Conversion.policy_no == "P-2")).scalar_one()
        assert float(stored.premium) == 500.50 and stored.source == "api"
        rejects = session.execute(select(ConversionReject).order_by(ConversionReject.row_number)).scalars().all()
        assert [(r.row_number, r.field, r.reason) for r in rejects] == [
            (4, "phone", "unmatched"),
            (5, "premium", "invalid"),
        ]
        assert "13900009999" not in rejects[0].raw_masked and "139****9999" in rejects[0].raw_masked
        events = (
            session.execute(select(WebhookEvent).where(WebhookEvent.event_type == "conversion.matched")).scalars().all()
        )
        assert sorted(e.payload["policy_number"] for e in events) == ["P-1", "P-2", "P-3"]
        p1 = next(e.payload for e in events if e.payload["policy_number"] == "P-1")
        assert p1["lead_external_id"] == "CRM-0" and p1["attempt_id"] == first.attempt_id and p1["premium"] == 1000.0

    # the same post again: duplicates, nothing changed, no new event
    with session_scope(db) as session:
        again = record_conversions(session, keyring, items[:3], source="api")
    assert [r.status for r in again] == ["duplicate"] * 3
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(Conversion)).scalar_one() == 3
        assert session.execute(select(func.count()).select_from(WebhookEvent)).scalar_one() == 3


def test_attribution_window_is_configurable(db, keyring) -> None:
    with session_scope(db) as session:
        _, leads = build_campaign(session, keyring)
        late = DAY1 + timedelta(days=10)
        narrow = record_conversions(
            session, keyring, [ConversionIn("W-1", "x", "10", late, phone=leads[3][1])], source="api", window_days=7
        )
        wide = record_conversions(
            session, keyring, [ConversionIn("W-2", "x", "10", late, phone=leads[3][1])], source="api", window_days=30
        )
        before_any_call = record_conversions(
            session,
            keyring,
            [ConversionIn("W-3", "x", "10", DAY1 - timedelta(days=1), phone=leads[3][1])],
            source="api",
        )
    assert not narrow[0].attributed and wide[0].attributed
    assert before_any_call[0].status == "accepted" and before_any_call[0].campaign_id is None


def write_csv(path: Path, rows: list[list[str]], encoding: str = "gbk") -> Path:
    path.write_bytes("\n".join(",".join(row) for row in rows).encode(encoding))
    return path


def test_file_import_with_chinese_headers_keeps_the_bad_row(db, keyring, tmp_path) -> None:
    with session_scope(db) as session:
        _, leads = build_campaign(session, keyring)
    path = write_csv(
        tmp_path / "成交.csv",
        [
            ["保单号", "产品名称", "年保费", "投保时间", "手机号", "外部ID"],
            ["F-1", "百万医疗", "1288.00", "2026-11-25 20:00", leads[3][1], ""],
            ["F-2", "重疾险", "十元", "2026-11-25 20:00", leads[2][1], ""],
            ["F-3", "重疾险", "300", "2026-11-27 20:00", "", "CRM-0"],
        ],
    )
    summary, problems = import_conversions(db, keyring, path, {})
    assert (summary.rows, summary.accepted, summary.rejected, summary.attributed) == (3, 2, 1, 2)
    assert [(p.row_number, p.errors[0].field) for p in problems] == [(3, "premium")]
    again, _ = import_conversions(db, keyring, path, {})
    assert (again.accepted, again.duplicates) == (0, 2)
    with session_scope(db) as session:
        reject = session.execute(select(ConversionReject).where(ConversionReject.row_number == 3)).scalars().first()
        assert reject.batch == "成交.csv" and reject.field == "premium" and "十元" in reject.message
        assert leads[2][1] not in reject.raw_masked


def test_file_without_a_policy_column_names_it(db, keyring, tmp_path) -> None:
    path = write_csv(
        tmp_path / "x.csv", [["产品", "保费", "成交时间", "手机号"], ["a", "1", "2026-11-25", "13900000001"]]
    )
    with pytest.raises(UserError, match="no policy_no column"):
        import_conversions(db, keyring, path, {})
    summary, problems = import_conversions(db, keyring, path, {"policy_no": "#1"})  # --map policy_no=#1
    assert summary.rows == 1


def test_erasure_removes_conversions_and_rejects(db, keyring) -> None:
    with session_scope(db) as session:
        _, leads = build_campaign(session, keyring)
        record_conversions(
            session,
            keyring,
            [
                ConversionIn("E-1", "x", "10", "2026-11-26", phone=leads[2][1]),
                ConversionIn("E-2", "x", "bad", "2026-11-26", phone=leads[2][1]),
            ],
            source="api",
        )
    with session_scope(db) as session:
        forget_phone(session, keyring, leads[2][1])
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(Conversion)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(ConversionReject)).scalar_one() == 0


def _delta_interval(numerators: list[float], denominators: list[float]) -> tuple[float, float, float]:
    """Σnum/Σden with its 95% delta-method interval, computed directly from the per-lead values."""
    n = len(numerators)
    mean_m, mean_d = sum(numerators) / n, sum(denominators) / n
    var_m = sum((m - mean_m) ** 2 for m in numerators) / (n - 1)
    var_d = sum((d - mean_d) ** 2 for d in denominators) / (n - 1)
    cov = sum((m - mean_m) * (d - mean_d) for m, d in zip(numerators, denominators)) / (n - 1)
    ratio = mean_m / mean_d
    variance = (var_m - 2 * ratio * cov + ratio**2 * var_d) / mean_d**2
    half = NormalDist().inv_cdf(0.975) * math.sqrt(variance / n)
    return ratio, ratio - half, ratio + half


def test_report_conversion_metrics_and_funnel_by_hand(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, leads = build_campaign(session, keyring)
        record_conversions(
            session,
            keyring,
            [
                ConversionIn("R-1", "百万医疗", "1000", "2026-11-27 15:00", phone=leads[0][1]),
                ConversionIn("R-2", "重疾险", "500", "2026-11-26 15:00", phone=leads[2][1]),
                ConversionIn("R-3", "重疾险", "2000", "2026-11-26 15:00", phone=leads[3][1]),
                ConversionIn("R-4", "意外险", "99", DAY1 + timedelta(days=60), phone=leads[1][1]),  # unattributed
            ],
            source="api",
        )
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id), method="frequentist")
    keys = [m["key"] for m in report["metrics"]]
    assert {"conversion_rate", "premium_per_lead", "premium_per_dial"} <= set(keys)
    assert report["conversions"] == {
        "available": True,
        "policies": 4,
        "attributed": 3,
        "attributed_premium": 3500.0,
        "unattributed": 1,
        "unattributed_premium": 99.0,
    }
    assert report["overview"]["funnel"] == {
        "dialled": 6,
        "connected": 5,
        "ab": 3,
        "invited": 0,
        "added": 0,
        "converted": 3,
        "premium": 3500.0,
    }
    script = next(f for f in report["factors"] if f["factor"] == "script")
    arms = {arm["arm"]: arm for arm in script["overall"]["arms"]}
    standard = arms["standard"]
    assert standard["funnel"] == {
        "dialled": 3,
        "connected": 3,
        "ab": 2,
        "invited": 0,
        "added": 0,
        "converted": 2,
        "premium": 1500.0,
    }
    assert arms["benefit_first"]["funnel"]["converted"] == 1
    # conversion rate: a proportion of leads (2 of 3)
    rate = standard["metrics"]["conversion_rate"]
    assert rate["value"] == pytest.approx(2 / 3)
    half = NormalDist().inv_cdf(0.975) * math.sqrt((2 / 3) * (1 / 3) / 3)
    assert rate["ci"] == pytest.approx([2 / 3 - half, 2 / 3 + half])
    # premium per dial: Σpremium / Σdials over the arm's leads, delta-method interval
    premium, dials = [1000.0, 0.0, 500.0], [2.0, 1.0, 1.0]
    value, lo, hi = _delta_interval(premium, dials)
    assert value == pytest.approx(375.0)
    assert standard["metrics"]["premium_per_dial"]["value"] == pytest.approx(value)
    assert standard["metrics"]["premium_per_dial"]["ci"] == pytest.approx([lo, hi])
    # premium per lead: the per-lead mean (denominator 1 per lead)
    value, lo, hi = _delta_interval(premium, [1.0, 1.0, 1.0])
    assert standard["metrics"]["premium_per_lead"]["value"] == pytest.approx(500.0)
    assert standard["metrics"]["premium_per_lead"]["ci"] == pytest.approx([lo, hi])
    assert "premium_per_dial" in arms["benefit_first"]["vs_control"]
    assert any(line.startswith("成交 3 单，保费 3,500.00 元") for line in report["summary"])
    assert any("另有 1 单" in line for line in report["summary"])
    page = render_report_html(report)
    assert "成交率" in page and "每次拨打保费" in page and "500.00 元" in page
    assert 'id="funnel"' in page and "拨打 → 接通 → A/B → 邀请 → 添加 → 成交 → 保费" in page
    assert 'data-funnel="script:standard"' in page and "1,500.00" in page
    json.dumps(report)
    with console.capture() as captured:
        print_tables(report)
    text = captured.get()
    assert "全流程漏斗" in text and "成交率" in text and "3,500.00" in text and "375.00 元" in text


def test_campaign_without_conversions_has_no_conversion_metrics(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = build_campaign(session, keyring)
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))
    assert "conversion_rate" not in [m["key"] for m in report["metrics"]]
    assert report["conversions"]["available"] is False
    assert report["overview"]["funnel"]["converted"] == 0
