"""Simulated buyers (telephony.simulator.buyers) and the demo's conversions: the chance follows
grade, add and follow-up steps, policies are deterministic for a seed, and the demo's policies go
through the real import path so the report shows conversions (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timezone

from bot.campaigns.models import Campaign
from bot.cli.demo_conversions import simulate_conversions
from bot.core.db.engine import session_scope
from bot.experiments.report import build_report
from telephony.simulator.buyers import PRODUCTS, conversion_probability, simulated_policy
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.experiments.test_conversions import build_campaign

CALLED = datetime(2026, 11, 24, 2, tzinfo=timezone.utc)


def test_the_chance_follows_grade_add_and_steps() -> None:
    assert conversion_probability("A") == 0.08 and conversion_probability("B") == 0.03
    assert conversion_probability("C") == conversion_probability("D") == 0.003
    assert conversion_probability("A", added=True) > conversion_probability("A")
    assert conversion_probability("B", steps_received=3) > conversion_probability("B", steps_received=0)
    # over many leads the share of buyers is the chance
    buyers = sum(simulated_policy(7, lead, "A", CALLED) is not None for lead in range(20_000))
    assert abs(buyers / 20_000 - 0.08) < 0.01


def test_policies_are_deterministic_and_plausible() -> None:
    first = [simulated_policy(7, lead, "A", CALLED, added=True) for lead in range(2_000)]
    assert first == [simulated_policy(7, lead, "A", CALLED, added=True) for lead in range(2_000)]
    policies = [p for p in first if p is not None]
    assert policies and all(p.product in {x.name for x in PRODUCTS} and p.premium > 0 for p in policies)
    assert all(p.converted_at > CALLED for p in policies)
    assert first != [simulated_policy(8, lead, "A", CALLED, added=True) for lead in range(2_000)]


def test_demo_conversions_reach_the_report(db, keyring) -> None:
    with session_scope(db) as session:
        campaign_id, _ = build_campaign(session, keyring)
    made = None
    for seed in range(200):  # six leads: find a seed where someone buys (deterministic)
        made = simulate_conversions(db, keyring, campaign_id, seed)
        if made["policies"]:
            break
    assert made and made["policies"] >= 1 and made["attributed"] == made["policies"]
    with session_scope(db) as session:
        report = build_report(session, session.get(Campaign, campaign_id))
    assert report["overview"]["funnel"]["converted"] == made["policies"]
    assert report["overview"]["funnel"]["premium"] == made["premium"]
