"""Issue 18 item 4: a caller-number pool per campaign — local first, rotated, never above a
number's daily cap (also with 2 processes racing on PostgreSQL), deferral when all are
capped, numbers that stop connecting rested and flagged."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.campaigns.caller_number_health import lower_one_sided_p, rest_failing_numbers
from bot.campaigns.caller_numbers import (
    CALLER_NUMBERS_CAPPED,
    add_caller_number,
    pool,
    pool_status,
    set_rested,
    take_caller_number,
)
from bot.campaigns.models import CallAttempt, CallerNumber
from bot.core.db.engine import create_database_engine, session_scope
from bot.core.errors import UserError
from bot.dialing.dialer import Dialer, _dial_options
from bot.dialing.planner import plan_campaign
from bot.leads.models import Lead
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack, running_campaign

# Tuesday 2026-11-24 10:00 Beijing.
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
NANJING, LIANYUNGANG, SHANGHAI = "02512345678", "051812345678", "02161234567"


def make_pool(session, campaign_id: int, cap: int = 3) -> None:
    for number in (NANJING, LIANYUNGANG, SHANGHAI):
        add_caller_number(session, campaign_id, number, cap, now=NOW)


def test_numbers_get_their_region_from_the_geocoder_and_bad_input_is_refused(db, keyring):
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 1)
        campaign = running_campaign(session)
        make_pool(session, campaign.id)
        places = {e.number: e.place for e in pool(session, campaign.id, NOW)}
        assert places == {NANJING: "江苏 南京市", LIANYUNGANG: "江苏 连云港市", SHANGHAI: "上海市"}
        with pytest.raises(UserError, match="already in this campaign's pool"):
            add_caller_number(session, campaign.id, "025-1234 5678", 3)
        with pytest.raises(UserError, match="caller number '12345'"):
            add_caller_number(session, campaign.id, "12345", 3)


def test_local_first_then_province_then_least_used(db, keyring):
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 1)
        campaign = running_campaign(session)
        make_pool(session, campaign.id, cap=3)
        take = lambda province, city: take_caller_number(session, campaign.id, province, city, NOW)  # noqa: E731
        assert (take("江苏", "连云港市").number, take("江苏", "连云港市").match) == (LIANYUNGANG, "city")
        # Another Jiangsu city: a Jiangsu number (the less used one first), else any.
        assert take("江苏", "苏州市").number == NANJING
        assert take("江苏", "苏州市").match == "province"
        assert take("上海", "上海市").match == "city"
        # Guangdong has no local number: the least used of all (Shanghai 1 < Nanjing 2, Lianyungang 2).
        other = take("广东", "深圳市")
        assert (other.number, other.match) == (SHANGHAI, "other")
        assert take(None, None).number == NANJING  # unknown region: rotation only (all at 2: the first)
        assert take("江苏", "连云港市").number == LIANYUNGANG  # its third and last today
        # Both Jiangsu numbers are full: the Lianyungang callee gets the Shanghai number, then nothing.
        assert (take("江苏", "连云港市").number, take("江苏", "连云港市")) == (SHANGHAI, None)
        assert {e.number: e.used_today for e in pool(session, campaign.id, NOW)} == {
            NANJING: 3,
            LIANYUNGANG: 3,
            SHANGHAI: 3,
        }


def test_never_above_the_cap_and_a_new_day_resets(db, keyring):
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 1)
        campaign = running_campaign(session)
        make_pool(session, campaign.id, cap=2)
        taken = [take_caller_number(session, campaign.id, "江苏", "南京市", NOW) for _ in range(8)]
        assert Counter(t.number for t in taken if t) == {NANJING: 2, LIANYUNGANG: 2, SHANGHAI: 2}
        assert taken[6:] == [None, None]
        assert pool_status(session, campaign.id, NOW)["deferred"] is True
        tomorrow = NOW + timedelta(days=1)
        assert take_caller_number(session, campaign.id, "江苏", "南京市", tomorrow).number == NANJING
        # A rested number is never chosen.
        set_rested(session, campaign.id, NANJING, True, "投诉多", tomorrow)
        assert take_caller_number(session, campaign.id, "江苏", "南京市", tomorrow).number == LIANYUNGANG


def test_all_capped_defers_planning_and_the_dial(db, keyring):
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 6)
        campaign = running_campaign(session, lines=10)
        add_caller_number(session, campaign.id, NANJING, 2, now=NOW)
        planned = plan_campaign(session, campaign, NOW).created
    dialer = Dialer(db, None, None, keyring, now=lambda: NOW, worker="test")
    results = [dialer.prepare(attempt_id) for attempt_id in planned]
    dialled = [r for r in results if not isinstance(r, str)]
    assert len(dialled) == 2 and all(r.caller_number == NANJING for r in dialled)
    assert _dial_options(dialled[0])["caller_id"] == NANJING
    assert [r for r in results if isinstance(r, str)] == [f"cancelled at T-0: {CALLER_NUMBERS_CAPPED}"] * 4
    with session_scope(db) as session:
        attempts = {a.id: a for a in session.execute(select(CallAttempt)).scalars()}
        assert {attempts[r.attempt_id].caller_number for r in dialled} == {NANJING}
        deferred = [a for a in attempts.values() if a.outcome == CALLER_NUMBERS_CAPPED]
        # Deferred, not burnt: cancelled attempts never count against the leads' caps.
        assert len(deferred) == 4 and {a.history_outcome for a in deferred} == {"cancelled"}
        # The hopper plans nothing more for the campaign today, and says why.
        for attempt in attempts.values():
            attempt.status = "completed" if attempt.status == "dialing" else attempt.status
        campaign = session.merge(campaign)
        again = plan_campaign(session, campaign, NOW + timedelta(minutes=1))
        assert again.created == [] and again.skipped[CALLER_NUMBERS_CAPPED] > 0
        status = pool_status(session, campaign.id, NOW)
        assert status["deferred"] and status["deferred_dials_24h"] == 4


def test_a_cancelled_dial_gives_its_number_back(db, keyring):
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 1)
        campaign = running_campaign(session, lines=10)
        add_caller_number(session, campaign.id, NANJING, 1, now=NOW)
        (attempt_id,) = plan_campaign(session, campaign, NOW).created
    dialer = Dialer(db, None, None, keyring, now=lambda: NOW, worker="test")
    prepared = dialer.prepare(attempt_id)
    assert prepared.caller_number == NANJING
    dialer.cancel(prepared, "outside_window")
    with session_scope(db) as session:
        assert pool(session, campaign.id, NOW)[0].used_today == 0


def _race(url: str, campaign_id: int, tries: int, start, out) -> None:
    engine = create_database_engine(url)
    start.wait()
    won = []
    for i in range(tries):
        with session_scope(engine) as session:
            taken = take_caller_number(session, campaign_id, "江苏", "南京市", NOW)
            if taken:
                won.append(taken.number)
    engine.dispose()
    out.put(won)


def test_two_processes_racing_never_exceed_a_cap(db, keyring, database_url):
    if db.dialect.name != "postgresql":
        pytest.skip("the race is run on PostgreSQL (SQLite has a single writer)")
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 1)
        campaign = running_campaign(session)
        make_pool(session, campaign.id, cap=40)
        campaign_id = campaign.id
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    workers = [context.Process(target=_race, args=(database_url, campaign_id, 100, start, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    won = Counter(number for result in results for number in result)
    assert all(len(result) > 0 for result in results)  # both processes took numbers
    assert won == {NANJING: 40, LIANYUNGANG: 40, SHANGHAI: 40}  # 200 tries, 120 slots: never one more
    with session_scope(db) as session:
        assert {e.number: e.used_today for e in pool(session, campaign_id, NOW)} == dict(won)


def _dials(session, campaign_id: int, lead_ids: list[int], number: str, n: int, connected: int, start: int) -> None:
    for i in range(n):
        session.add(
            CallAttempt(
                campaign_id=campaign_id,
                lead_id=lead_ids[(start + i) % len(lead_ids)],
                attempt_no=start + i + 1,
                phone_hash="h",
                arms={},
                status="completed",
                outcome="answered" if i < connected else "no_answer",
                history_outcome="answered",
                caller_number=number,
                caller_match="other",
                scheduled_at=NOW - timedelta(hours=3),
                dialed_at=NOW - timedelta(hours=2, seconds=i),
            )
        )


def test_a_number_connecting_far_less_than_its_pool_is_rested_and_flagged(db, keyring):
    with session_scope(db) as session:
        lead_ids = add_pack(session, keyring, "pack-a", 1)
        campaign = running_campaign(session)
        make_pool(session, campaign.id, cap=500)
        _dials(session, campaign.id, lead_ids, NANJING, 60, 6, 0)  # 10 %
        _dials(session, campaign.id, lead_ids, LIANYUNGANG, 60, 27, 100)  # 45 %
        _dials(session, campaign.id, lead_ids, SHANGHAI, 60, 24, 200)  # 40 %: a little lower, not rested
        rested = rest_failing_numbers(session, NOW)
        assert [h.number for h in rested] == [NANJING]
        rows = {r.number: r for r in session.execute(select(CallerNumber)).scalars()}
        assert rows[NANJING].rested == 1 and rows[NANJING].rested_at is not None
        assert rows[NANJING].rested_reason.startswith("接通率 12%（近 50 通）远低于号码池 51%（100 通）")
        assert rows[SHANGHAI].rested == 0 and rows[LIANYUNGANG].rested == 0
        assert pool_status(session, campaign.id, NOW)["rested"][0]["number"] == NANJING


def test_the_one_sided_test():
    assert lower_one_sided_p(5, 50, 50, 100) < 0.01
    assert lower_one_sided_p(20, 50, 45, 100) > 0.2  # 40 % vs 45 %: no evidence
    assert lower_one_sided_p(0, 0, 5, 10) == 1.0
