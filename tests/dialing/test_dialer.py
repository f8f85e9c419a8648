"""A campaign dialled end to end on one process: planner → T-0 check → simulator carrier →
real dialogue model → grading → call log, on a simulated clock (SQLite and PostgreSQL)."""
from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.audiences.models import AudiencePack
from bot.dialing.dialer import Dialer
from bot.campaigns.models import CallAttempt, TurnRow
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from telephony.simulator.carrier import SimulatorCarrier
from telephony.clock import SimClock
from tests.conftest import run
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Tuesday 2026-11-24 09:00 in Shanghai: the window opens at 09:30.
START = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)


def test_a_simulated_morning_of_calling(db, keyring, dialogue_agent) -> None:
    with session_scope(db) as session:
        audience = AudiencePack(name="车主-华东", scene="车主", tier="普通", attributes={})
        session.add(audience)
        session.flush()
        lead_ids = add_pack(session, keyring, "pack-a", 60)
        for lead in session.execute(select(Lead)).scalars():
            lead.audience_id, lead.name, lead.gender = audience.id, "王小明", "M"
        create_campaign(session, name="morning", packs=["pack-a"], lines=15, incentive="一份免费的驾乘意外险",
                        variants=[{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}])
        change_status(session, "morning", "start", now=START)

    async def morning():
        clock = SimClock(start=START)
        carrier = SimulatorCarrier(clock=clock, seed=7)
        dialer = Dialer(db, dialogue_agent, carrier, keyring, now=clock.now, worker="test", sleep=clock.sleep)
        calls: list[asyncio.Task] = []
        windows_seen = Counter()
        for _minute in range(4 * 60):  # 09:00–13:00 local
            for plan in dialer.plan():
                if plan.created:
                    windows_seen[clock.now().astimezone(SHANGHAI).strftime("%H")] += len(plan.created)
                calls += [asyncio.ensure_future(dialer.dial(attempt_id)) for attempt_id in plan.created]
            await clock.sleep(60)
        results = await asyncio.gather(*calls)
        # the same attempt again (a redelivered task) is refused by the claim
        again = await dialer.dial(1)
        return results, sum(carrier.outcomes.values()), windows_seen, again

    results, dialled, windows_seen, again = run(morning())
    assert again.startswith("skipped")
    assert set(windows_seen) <= {"09", "10", "11"}  # nothing before 09:30 or after 12:00
    with session_scope(db) as session:
        attempts = session.execute(select(CallAttempt)).scalars().all()
        per_lead = Counter(a.lead_id for a in attempts)
        assert set(per_lead) == set(lead_ids)  # every lead tried
        assert max(per_lead.values()) == 1  # once: the 24 h cap
        assert {a.status for a in attempts} <= {"completed", "cancelled"}
        assert dialled == len([a for a in attempts if a.status == "completed"])
        outcomes = Counter(a.outcome for a in attempts)
        graded = [a for a in attempts if a.outcome == "answered"]
        assert graded and all(a.grade in "ABCD" and a.grade_reason for a in graded)
        assert sum(outcomes.values()) == 60
        for attempt in attempts:
            local = attempt.dialed_at.astimezone(SHANGHAI)
            assert (9, 30) <= (local.hour, local.minute) < (12, 0), local
        turns = session.execute(select(func.count()).select_from(TurnRow)).scalar_one()
        assert turns >= 3 * len(graded)
        # Paced at the campaign's 2 calls per second: the 15 dials planned in one tick go out
        # one token (0.5 s) apart, give or take the simulated clock's 0.2 s wake-up resolution.
        dialled_at = sorted(a.dialed_at for a in attempts if a.status == "completed")
        spans = [(dialled_at[i + 4] - dialled_at[i]).total_seconds() for i in range(len(dialled_at) - 4)]
        assert min(spans) >= 4 * 0.5 - 0.2, sorted(spans)[:5]
        variants = Counter(a.arms["script"] for a in attempts)
        assert set(variants) == {"standard", "benefit_first"}
    print(dict(outcomes), dict(Counter(a.grade for a in graded)), len(results))


def test_the_robot_offers_the_leads_incentive_arm(db, keyring) -> None:
    """With incentive arms the call's {incentive} slot is the lead's arm text (what the
    WeCom welcome later repeats)."""
    from bot.campaigns.experiment_design import build_experiments

    arms = [{"name": "policy_review", "text": "一次免费的保单检视", "weight": 1},
            {"name": "accident", "text": "一份赠送的意外险", "weight": 1}]
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 40)
        create_campaign(session, name="offers", packs=["pack-a"], lines=40,
                        experiments=build_experiments(incentives=arms))
        change_status(session, "offers", "start", now=START)
    clock = SimClock(start=START + timedelta(hours=1))  # 10:00 Shanghai
    dialer = Dialer(db, None, None, keyring, now=clock.now, worker="test")
    planned = [attempt_id for plan in dialer.plan() for attempt_id in plan.created]
    assert len(planned) == 40
    texts = {arm["name"]: arm["text"] for arm in arms}
    seen = Counter()
    for attempt_id in planned:
        prepared = dialer.prepare(attempt_id)
        with session_scope(db) as session:
            arm = session.get(CallAttempt, attempt_id).arms["incentive"]
        assert prepared.lead.incentive == texts[arm]
        seen[arm] += 1
    assert set(seen) == set(texts)
