"""The managers' report counts hand-offs to a human: handed off and failed (advisor callback
booked), in the overview and per arm."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import update

from bot.campaigns.models import CallAttempt, Campaign
from bot.core.db.engine import session_scope
from bot.experiments.report import build_report
from bot.experiments.report_html import render_report_html
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.experiments.test_report import arm_of, simulated_campaign


def test_handoffs_are_counted_in_the_overview_and_per_arm(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, rows = simulated_campaign(session, keyring, leads_per_pack=150, days=1, name="h")
    answered = [(r[1], r[4]) for r in rows if r[6] == "answered"]  # (lead id, arms)
    handed_off, failed = answered[0::5], answered[1::5]
    with session_scope(db) as session:
        for leads, value in ((handed_off, "handed_off"), (failed, "handoff_failed")):
            session.execute(update(CallAttempt).where(CallAttempt.campaign_id == campaign_id,
                                                      CallAttempt.lead_id.in_([lead for lead, _ in leads]))
                            .values(handoff=value))
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))

    assert report["overview"]["handoffs"] == {"handed_off": len(handed_off), "handoff_failed": len(failed)}
    for factor in report["factors"]:
        expected = {name: Counter(arms[factor["factor"]] for _, arms in leads)
                    for name, leads in (("handed_off", handed_off), ("handoff_failed", failed))}
        for arm in factor["overall"]["arms"]:
            assert arm["handoffs"] == {name: expected[name][arm["arm"]] for name in expected}
        # the audience-pack breakdowns add up to the overall counts
        for name in expected:
            assert sum(arm_of(b, a["arm"])["handoffs"][name] for b in factor["by_audience"]
                       for a in factor["overall"]["arms"]) == sum(expected[name].values())
    assert any(line.startswith(f"客户要求转人工 {len(handed_off) + len(failed)} 次：已转人工 {len(handed_off)} 次")
               for line in report["summary"])
    page = render_report_html(report)
    assert "已转人工" in page and "转人工失败" in page


def test_a_campaign_without_handoffs_reports_zeros_and_no_summary_line(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = simulated_campaign(session, keyring, leads_per_pack=20, days=1, name="none")
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))
    assert report["overview"]["handoffs"] == {"handed_off": 0, "handoff_failed": 0}
    assert not any("转人工" in line for line in report["summary"])
