"""The hopper with experiments (SQLite and PostgreSQL): held-out leads are never dialled and
never starve the retries; bandit weights move once a day and tried leads keep their arms."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from bot.dialing.planner import plan_campaign
from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import campaign_arms, change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.experiments.bandit import best_arm_probabilities, refresh_bandit_weights, with_floor
from bot.campaigns.experiment_design import build_experiments
from bot.campaigns.models import ExperimentHoldout
from bot.experiments.statistics import Proportion
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack

# Tuesday 2026-11-24 10:00 in Shanghai, and the next mornings.
MORNING = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
VARIANTS = [{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}]


def finish(session, attempt_ids: list[int], now: datetime, grade_of=lambda attempt: None) -> None:
    """What the dialer would have written: answered calls, graded by `grade_of`."""
    for attempt in session.execute(select(CallAttempt).where(CallAttempt.id.in_(attempt_ids))).scalars():
        grade = grade_of(attempt)
        attempt.status, attempt.dialed_at, attempt.ended_at = "completed", now, now + timedelta(seconds=40)
        attempt.outcome = attempt.history_outcome = "answered" if grade else "no_answer"
        attempt.grade, attempt.talk_time_s = grade, 30.0 if grade else None


def test_held_out_leads_are_never_dialled_and_do_not_starve_retries(db, keyring) -> None:
    with session_scope(db) as session:
        lead_ids = add_pack(session, keyring, "pack-a", 200)
        create_campaign(session, name="held", packs=["pack-a"], lines=10, experiments=build_experiments(holdout=0.5))
        change_status(session, "held", "start", now=MORNING)
    arms = None
    # Day 1: every lead not held out gets its first call.
    for minute in range(40):
        with session_scope(db) as session:
            campaign = session.execute(select(Campaign)).scalar_one()
            arms = campaign_arms(campaign)
            now = MORNING + timedelta(minutes=minute)
            result = plan_campaign(session, campaign, now)
            finish(session, result.created, now)
    held = {lead_id for lead_id in lead_ids if arms.in_holdout(lead_id)}
    assert 70 < len(held) < 130
    with session_scope(db) as session:
        dialled = set(session.execute(select(CallAttempt.lead_id)).scalars())
        recorded = set(session.execute(select(ExperimentHoldout.lead_id)).scalars())
    assert dialled == set(lead_ids) - held
    assert recorded == held
    # Day 2: only retries are left. The scan budget is 10 lines × 10 leads = 100, fewer than
    # the held-out leads: without the record of them every tick would spend it on them.
    with session_scope(db) as session:
        campaign = session.execute(select(Campaign)).scalar_one()
        result = plan_campaign(session, campaign, MORNING + timedelta(days=1))
        assert len(result.created) == 10
        retried = session.execute(select(CallAttempt.lead_id).where(CallAttempt.id.in_(result.created))).scalars()
        assert not set(retried) & held


def test_bandit_moves_weights_once_a_day_and_tried_leads_keep_their_arms(db, keyring) -> None:
    with session_scope(db) as session:
        lead_ids = add_pack(session, keyring, "pack-a", 600)
        create_campaign(session, name="bandit", packs=["pack-a"], lines=300, cps=10, variants=VARIANTS,
                        experiments=build_experiments(bandit_factor="script", bandit_floor=0.2))
        change_status(session, "bandit", "start", now=MORNING)
        campaign = session.execute(select(Campaign)).scalar_one()
        # Day 1: 300 leads, evenly split; benefit_first's callees show far more intent.
        result = plan_campaign(session, campaign, MORNING)
        assert len(result.created) == 300
        finish(session, result.created, MORNING,
               lambda a: ("A" if a.lead_id % 5 else "C") if a.arms["script"] == "benefit_first"
               else ("A" if a.lead_id % 5 == 0 else "C"))
        first_arms = {a.lead_id: a.arms for a in session.execute(select(CallAttempt)).scalars()}
        assert campaign.experiments["bandit"]["periods"] == []  # no data yet when day 1 was planned
    with session_scope(db) as session:
        campaign = session.execute(select(Campaign)).scalar_one()
        day2 = MORNING + timedelta(days=1)
        assert refresh_bandit_weights(session, campaign, day2)
        assert not refresh_bandit_weights(session, campaign, day2 + timedelta(hours=2))  # once a day
        period = campaign.experiments["bandit"]["periods"][-1]
        assert period["weights"]["benefit_first"] == pytest.approx(0.8) and period["weights"]["standard"] == 0.2
        assert period["leads"] == dict(Counter(arms["script"] for arms in first_arms.values()))
    with session_scope(db) as session:
        campaign = session.execute(select(Campaign)).scalar_one()
        result = plan_campaign(session, campaign, day2)  # the 300 untried leads, then retries
        rows = session.execute(select(CallAttempt).where(CallAttempt.id.in_(result.created))).scalars().all()
    new = [r for r in rows if r.attempt_no == 1]
    retries = [r for r in rows if r.attempt_no == 2]
    assert len(new) == 300 and not retries  # lines are full with the new leads
    shares = Counter(r.arms["script"] for r in new)
    assert shares["benefit_first"] / 300 > 0.7  # 80% expected under the moved weights
    with session_scope(db) as session:
        session.execute(update(CallAttempt).values(status="completed", outcome="no_answer", history_outcome="no_answer",
                                                   dialed_at=day2, ended_at=day2))
        campaign = session.execute(select(Campaign)).scalar_one()
        result = plan_campaign(session, campaign, day2 + timedelta(days=1))
        retries = session.execute(select(CallAttempt).where(CallAttempt.id.in_(result.created))).scalars().all()
        assert retries and all(r.attempt_no == 2 for r in retries)
        moved = [r for r in retries if r.lead_id in first_arms]
        assert moved and all(r.arms == first_arms[r.lead_id] for r in moved)
        # ...even where today's weights would hash the lead to the other arm
        today = campaign_arms(campaign)
        assert any(today.for_lead(r.lead_id)["script"] != first_arms[r.lead_id]["script"] for r in moved)
        assert session.execute(select(func.count()).select_from(CallAttempt)).scalar_one() == 600 + len(retries)
    assert set(lead_ids) == {r.lead_id for r in rows} | set(first_arms)


def test_bandit_waits_for_enough_leads_in_every_arm(db, keyring) -> None:
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 150)
        create_campaign(session, name="small", packs=["pack-a"], lines=150, cps=10, variants=VARIANTS,
                        experiments=build_experiments(bandit_factor="script"))
        change_status(session, "small", "start", now=MORNING)
        campaign = session.execute(select(Campaign)).scalar_one()
        finish(session, plan_campaign(session, campaign, MORNING).created, MORNING, lambda a: "A")
        # ~75 leads per arm < 100; and every call graded A: no variance either
        assert not refresh_bandit_weights(session, campaign, MORNING + timedelta(days=1))
        assert campaign.experiments["bandit"]["periods"] == []


def test_thompson_probabilities_and_floor() -> None:
    stats = [Proportion(500, 100), Proportion(500, 130), Proportion(500, 90)]
    first = best_arm_probabilities(stats, seed=7)
    assert first == best_arm_probabilities(stats, seed=7)  # reproducible
    assert sum(first) == pytest.approx(1) and first[1] == max(first) and first[1] > 0.9
    floored = with_floor(first, 0.1)
    assert sum(floored) == pytest.approx(1) and min(floored) == pytest.approx(0.1)
    assert floored[1] == pytest.approx(0.8)
    assert with_floor([0.5, 0.3, 0.2], 0.1) == pytest.approx([0.5, 0.3, 0.2])  # nothing below the floor
    assert with_floor([0, 0, 0], 0.1) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError):
        with_floor([0.5, 0.5], 0.5)
