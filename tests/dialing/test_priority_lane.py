"""The planner's priority lane (speed to lead) on SQLite and PostgreSQL: an API lead is planned in the
next tick ahead of the batch backlog, the batch still gets its share while API leads flood in, and
outside the window API leads wait and go first when it opens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.campaigns.models import CallAttempt, Campaign
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.dialing.planner import PRIORITY_SHARE, plan_campaign, priority_lane_share
from bot.leads.api_leads import LeadIn, add_leads
from bot.leads.models import Lead
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack

MORNING = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # Tuesday 10:00 in Shanghai
NIGHT = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)  # Monday 22:00: hard block
OPENING = datetime(2026, 11, 24, 1, 30, tzinfo=timezone.utc)  # Tuesday 09:30: the window opens


def api_leads(db, keyring, n: int, at: datetime, first: int = 0) -> list[int]:
    leads = [
        LeadIn(phone=f"136{first + i:08d}", lead_left_at=at + timedelta(seconds=i), external_id=f"web-{first + i}")
        for i in range(n)
    ]
    result = add_leads(db, keyring, leads, audience="车主", now=at + timedelta(seconds=n))
    return [r.lead_id for r in result.results]


def campaign_with_both_packs(db, keyring, *, lines: int, batch: int):
    api_leads(db, keyring, 1, MORNING - timedelta(days=10), first=9000)  # the API pack exists (an old lead)
    with session_scope(db) as session:
        add_pack(session, keyring, "batch", batch)
        create_campaign(session, name="speed", packs=["batch", "API·车主"], lines=lines, cps=5)
        change_status(session, "speed", "start", now=MORNING - timedelta(days=1))


def plan(db, now: datetime) -> list[int]:
    """One tick; the lead ids planned, in planning (dial) order."""
    with session_scope(db) as session:
        campaign = session.execute(select(Campaign).where(Campaign.name == "speed")).scalar_one()
        created = plan_campaign(session, campaign, now).created
        attempts = session.execute(select(CallAttempt).where(CallAttempt.id.in_(created))).scalars().all()
        order = {a.id: a.lead_id for a in attempts}
        # Free the lines again, as finished calls would.
        for attempt in attempts:
            attempt.status, attempt.history_outcome, attempt.dialed_at = "completed", "no_answer", now
        return [order[i] for i in created]


def test_an_api_lead_goes_before_the_batch_backlog_and_the_batch_still_moves(db, keyring) -> None:
    campaign_with_both_packs(db, keyring, lines=10, batch=200)
    with session_scope(db) as session:
        batch_ids = set(session.execute(select(Lead.id).where(Lead.priority == 0)).scalars())
    first_tick = plan(db, MORNING)  # no fresh API lead: the batch (and the 10-day-old API lead, as batch)
    assert len(first_tick) == 10 and len(set(first_tick) & batch_ids) >= 9
    fresh = api_leads(db, keyring, 2, MORNING + timedelta(seconds=30))
    second_tick = plan(db, MORNING + timedelta(minutes=1))
    assert second_tick[:2] == [fresh[1], fresh[0]]  # the API leads first, newest 留资 first
    assert len(second_tick) == 10 and set(second_tick[2:]) <= batch_ids  # the batch goes on with the rest


def test_a_flood_of_api_leads_does_not_starve_the_batch(db, keyring) -> None:
    campaign_with_both_packs(db, keyring, lines=10, batch=50)
    flood = set(api_leads(db, keyring, 60, MORNING - timedelta(minutes=5)))
    ticks = [plan(db, MORNING + timedelta(minutes=minute)) for minute in range(3)]
    share = priority_lane_share(10)
    assert share == int(10 * PRIORITY_SHARE) == 8
    for tick in ticks:
        assert len(tick) == 10
        assert len([lead for lead in tick if lead in flood]) == share  # the lane, no more
        assert len([lead for lead in tick if lead not in flood]) == 10 - share  # the batch's reserved lines


def test_lines_the_batch_leaves_go_to_priority_leads_beyond_the_lanes_share(db, keyring) -> None:
    campaign_with_both_packs(db, keyring, lines=30, batch=1)
    fresh = set(api_leads(db, keyring, 40, MORNING - timedelta(minutes=5)))
    tick = plan(db, MORNING)
    # The lane takes its 24; the batch has two (its lead and the old API lead); the last 4 are fresh again.
    assert priority_lane_share(30) == 24
    assert len(tick) == 30 and len(set(tick) & fresh) == 28


def test_outside_the_window_api_leads_wait_and_go_first_at_the_opening(db, keyring) -> None:
    campaign_with_both_packs(db, keyring, lines=10, batch=100)
    night = api_leads(db, keyring, 3, NIGHT)
    assert plan(db, NIGHT + timedelta(minutes=1)) == []  # 22:01: nobody is called
    opening = plan(db, OPENING)
    assert opening[:3] == list(reversed(night))
    assert len(opening) == 10


def test_batch_leads_are_dialled_freshest_lead_left_first_across_ticks(db, keyring) -> None:
    with session_scope(db) as session:
        ids = add_pack(session, keyring, "batch", 9)
        left = {ids[0]: None, ids[1]: 3, ids[2]: None, ids[3]: 1, ids[4]: 5, ids[5]: 1, ids[6]: None, ids[7]: 2}
        for lead_id, hours_ago in left.items():
            session.get(Lead, lead_id).lead_left_at = (
                None if hours_ago is None else MORNING - timedelta(hours=hours_ago)
            )
        # ids[8]: no 留资 time either; an old cursor (a bare lead id) is read as a place among those
        create_campaign(session, name="speed", packs=["batch"], lines=3, cps=5)
        change_status(session, "speed", "start", now=MORNING - timedelta(days=1))
    order = [lead for tick in range(3) for lead in plan(db, MORNING + timedelta(minutes=tick))]
    # Newest 留资 first (a tie: the higher id first), then the leads without one by id.
    assert order == [ids[5], ids[3], ids[7], ids[1], ids[4], ids[0], ids[2], ids[6], ids[8]]


def test_an_old_untried_cursor_goes_on_among_the_undated_leads(db, keyring) -> None:
    with session_scope(db) as session:
        ids = add_pack(session, keyring, "batch", 4)
        campaign = create_campaign(session, name="speed", packs=["batch"], lines=2, cps=5)
        change_status(session, "speed", "start", now=MORNING - timedelta(days=1))
        campaign.planner_cursor = {"untried": ids[1]}  # as a planner before freshest-first stored it
    assert plan(db, MORNING) == [ids[2], ids[3]]
    with session_scope(db) as session:
        cursor = session.execute(select(Campaign.planner_cursor).where(Campaign.name == "speed")).scalar_one()
    assert cursor["untried"] == [1, 0, ids[3]]
