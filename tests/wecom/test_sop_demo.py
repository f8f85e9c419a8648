"""The demo's simulated month of follow-up: SOP steps go out through the local WeCom server,
contacts click (real GETs on /r/{token}), buy (through the conversions code), opt out and
delete; the per-arm figures add up."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from bot.cli.sop_demo import simulate_followup_month
from bot.core.db.engine import session_scope
from bot.experiments.conversion_models import Conversion
from bot.wecom.sop_models import SopStepSend
from tests.conftest import run
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign, wecom  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CONTACTS = 40


def test_a_simulated_month_sends_the_steps_and_conversions_arrive(db, keyring, wecom):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"养老-华北": ("养老", CONTACTS)}, name="跟进演示")
    for n, lead_id in enumerate(leads["养老-华北"]):
        log_graded_call(db, campaign_id, lead_id, "AB"[n % 2])
    run(wecom.deliver())
    run(wecom.simulate_adds(share=1.0, campaign_id=campaign_id))
    started = time.perf_counter()
    result = simulate_followup_month(db, campaign_id, seed=7)
    seconds = time.perf_counter() - started
    with session_scope(db) as session:
        sent = session.execute(
            select(func.count()).select_from(SopStepSend).where(SopStepSend.status == "sent")
        ).scalar_one()
        open_steps = session.execute(select(func.count()).select_from(SopStepSend).where(
            SopStepSend.status.in_(("pending", "sending", "failed")))).scalar_one()
        conversions = session.execute(select(func.count()).select_from(Conversion)).scalar_one()
    assert result["sent"] == sent and sent >= CONTACTS and open_steps == 0
    assert result["clicks"] >= 1 and conversions >= 1 and result["bought"] == conversions
    arms = result["arms"]
    assert sum(a["enrolled"] for a in arms) == CONTACTS
    assert {a["arm"] for a in arms} >= {"短险跟进-A"} and len(arms) >= 2  # B leads split over two arms
    assert sum(a["converted"] for a in arms) == conversions
    print(f"\nsimulated month for {CONTACTS} contacts in {seconds:.1f} s: {sent} steps sent, {result['clicks']} clicks, "
          f"{conversions} conversions, {result['opted_out']} opt-outs, {result['deleted']} deleted; "
          + "; ".join(f"{a['arm']} click {a['click_rate']:.0%} conv {a['conversion_rate']:.0%}" for a in arms))


def test_the_simulated_buyers_heed_the_steps_each_lead_received(db, keyring, wecom, monkeypatch):
    import bot.cli.demo_conversions as demo_conversions

    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"养老-华东": ("养老", 6)}, name="跟进买家")
    for lead_id in leads["养老-华东"]:
        log_graded_call(db, campaign_id, lead_id, "A")
    run(wecom.deliver())
    run(wecom.simulate_adds(share=1.0, campaign_id=campaign_id))
    simulate_followup_month(db, campaign_id, seed=3)
    with session_scope(db) as session:
        sent = dict(session.execute(select(SopStepSend.lead_id, func.count()).where(
            SopStepSend.status == "sent").group_by(SopStepSend.lead_id)).all())
    seen: dict[int, int] = {}
    real = demo_conversions.simulated_policy

    def spy(seed, lead_id, grade, dialed_at, *, added, steps_received):
        seen[lead_id] = steps_received
        return real(seed, lead_id, grade, dialed_at, added=added, steps_received=steps_received)

    monkeypatch.setattr(demo_conversions, "simulated_policy", spy)
    demo_conversions.simulate_conversions(db, keyring, campaign_id, seed=3)
    assert seen and all(seen[lead] == sent.get(lead, 0) for lead in seen) and max(seen.values()) >= 2
