"""Issue 16 item 16: people correct a call's grade (人工更正). Each correction is kept with
the grade it replaced, who, when and why; the robot's grade stays on the call; the A/B
report counts the latest correction instead of the robot's grade and shows per arm how
many grades were corrected (HTML and CLI); erasing a person erases their corrections."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from bot.campaigns.grading import correct_grade, corrections_of
from bot.campaigns.models import CallAttempt, Campaign, GradeCorrection
from bot.cli.console import console
from bot.cli.report_commands import print_tables
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.erasure import forget_phone
from bot.experiments.report import build_report
from bot.experiments.report_html import render_report_html
from bot.leads.models import Lead
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.experiments.test_report import simulated_campaign


def _answered(session, campaign_id: int, grade: str) -> list[CallAttempt]:
    return list(session.execute(
        select(CallAttempt).where(CallAttempt.campaign_id == campaign_id, CallAttempt.outcome == "answered",
                                  CallAttempt.grade == grade).order_by(CallAttempt.id)).scalars())


def test_a_correction_is_stored_with_its_history_and_the_robots_grade_kept(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=20, days=1, name="g")
        attempt_id = _answered(session, campaign_id, "C")[0].id
    with session_scope(db) as session:
        first = correct_grade(session, attempt_id, "b", "客户其实问了保费，应为 B", "manager.user")
    with session_scope(db) as session:
        second = correct_grade(session, attempt_id, "A", "  回访确认有明确意向  ", "ops.user")
    assert (first.old_grade, first.new_grade) == ("C", "B")
    assert (second.old_grade, second.new_grade, second.reason) == ("B", "A", "回访确认有明确意向")
    with session_scope(db) as session:
        assert session.get(CallAttempt, attempt_id).grade == "C"  # the robot's grade stays
        history = corrections_of(session, attempt_id)
    assert [(c.old_grade, c.new_grade, c.corrected_by) for c in history] == [
        ("C", "B", "manager.user"), ("B", "A", "ops.user")]
    assert all(c.corrected_at.tzinfo is not None for c in history)
    assert history[0].corrected_at <= history[1].corrected_at


@pytest.mark.parametrize("grade, reason, expected", [
    ("E", "理由", "等级只能是 A、B、C、D（收到“E”）"),
    ("A", "   ", "请填写更正原因"),
    ("", "", "等级只能是 A、B、C、D（收到“空”）；请填写更正原因"),
    ("B", "长" * 201, "更正原因最多 200 字（现有 201 字）"),
])
def test_a_bad_correction_is_one_clear_chinese_error_and_nothing_is_stored(db, keyring, grade, reason,
                                                                           expected) -> None:
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=10, days=1, name="bad")
        attempt_id = session.execute(select(CallAttempt.id).where(CallAttempt.campaign_id == campaign_id)).scalars().first()
    with pytest.raises(UserError) as error:
        with session_scope(db) as session:
            correct_grade(session, attempt_id, grade, reason, "manager.user")
    assert str(error.value) == "无法更正等级：" + expected
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(GradeCorrection)).scalar_one() == 0


def test_the_report_counts_the_latest_correction_and_the_corrections_per_arm(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=150, days=1, name="r")
    with session_scope(db) as session:
        before = build_report(session, session.get(Campaign, campaign_id))
        refused = _answered(session, campaign_id, "C")
        to_a = [(a.id, dict(a.arms)) for a in refused[0::3]]
        eager = _answered(session, campaign_id, "A")
        to_d = [(a.id, dict(a.arms)) for a in eager[0::4]]
    assert to_a and to_d
    with session_scope(db) as session:
        for attempt_id, _ in to_a:  # C → B, then (latest wins) B → A
            correct_grade(session, attempt_id, "B", "先改为 B", "manager.user")
            correct_grade(session, attempt_id, "A", "听录音确认有意向", "manager.user")
        for attempt_id, _ in to_d:
            correct_grade(session, attempt_id, "D", "客户只是客气，未表态", "ops.user")
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))

    a_before, a_after = (r["overview"]["metrics"]["a_rate"]["numerator"] for r in (before, report))
    ab_before, ab_after = (r["overview"]["metrics"]["ab_rate"]["numerator"] for r in (before, report))
    assert a_after == a_before + len(to_a) - len(to_d)
    assert ab_after == ab_before + len(to_a) - len(to_d)
    assert before["overview"]["corrected"] == 0
    assert report["overview"]["corrected"] == len(to_a) + len(to_d)  # calls, not corrections
    corrected = to_a + to_d
    for factor in report["factors"]:
        expected = Counter(arms[factor["factor"]] for _, arms in corrected)
        for arm in factor["overall"]["arms"]:
            assert arm["corrected"] == expected[arm["arm"]], (factor["factor"], arm["arm"])
        assert sum(a["corrected"] for b in factor["by_audience"] for a in b["arms"]) == len(corrected)
    assert any(line.startswith(f"人工更正等级 {len(corrected)} 通") for line in report["summary"])

    page = render_report_html(report)
    assert "人工更正" in page
    script = next(f for f in report["factors"] if f["factor"] == "script")
    for arm in script["overall"]["arms"]:
        assert f"人工更正 {arm['corrected']} 通" in page
    with console.capture() as captured:
        print_tables(report)
    cli = captured.get()
    for arm in script["overall"]["arms"]:
        assert f"{arm['arm']} 人工更正 {arm['corrected']} 通" in cli


def test_erasing_a_person_erases_their_grade_corrections(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=10, days=1, name="e")
        attempts = list(session.execute(select(CallAttempt).where(CallAttempt.campaign_id == campaign_id)
                                        .order_by(CallAttempt.id)).scalars())
        gone, kept = attempts[0], attempts[-1]
        gone_lead, gone_hash = gone.lead_id, gone.phone_hash
        correct_grade(session, gone.id, "A", "客户说了手机号 13812345678 让回电", "manager.user")
        correct_grade(session, kept.id, "B", "有意向", "manager.user")
        kept_id = kept.id
    with session_scope(db) as session:
        phone = keyring.decrypt_phone(session.get(Lead, gone_lead).phone_ciphertext)
    assert keyring.hash_phone(phone) == gone_hash
    with session_scope(db) as session:
        result = forget_phone(session, keyring, phone)
    assert result.calls >= 1
    with session_scope(db) as session:
        rows = session.execute(select(GradeCorrection.attempt_id)).scalars().all()
        assert rows == [kept_id]
        assert session.get(Lead, gone_lead) is None

