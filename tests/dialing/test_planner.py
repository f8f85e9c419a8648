"""The hopper on the real database (SQLite and PostgreSQL): who may be dialled now."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.dialing.planner import PlannedAttempt, _insert_attempts, plan_campaign
from bot.campaigns.models import CallAttempt
from bot.campaigns.service import campaign_arms, change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.dnc.models import SCOPE_OPT_OUT
from bot.dnc.service import add_entry
from bot.core.errors import UserError
from bot.leads.models import Lead, LeadPack
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401

# Tuesday 2026-11-24 10:00 in Shanghai (inside 09:30–12:00) and 22:00 (hard block).
MORNING = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
NIGHT = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)


def add_pack(session, keyring, name: str, n: int) -> list[int]:
    pack = LeadPack(name=name, file_name=f"{name}.csv", file_sha256=name.ljust(64, "0"), file_format="csv utf-8",
                    uploaded_by="test", column_map={})
    session.add(pack)
    session.flush()
    ids = []
    for i in range(n):
        phone = f"138{i:08d}"
        lead = Lead(pack_id=pack.id, row_number=i + 2, phone_ciphertext=keyring.encrypt_phone(phone),
                    phone_hash=keyring.hash_phone(phone), phone_masked=f"138****{phone[-4:]}", line_type="mobile",
                    consent_source="landing page", consent_at=MORNING - timedelta(days=3), status="new")
        session.add(lead)
        session.flush()
        ids.append(lead.id)
    return ids


def running_campaign(session, name: str = "autumn", **kwargs):
    campaign = create_campaign(session, name=name, packs=["pack-a"], **kwargs)
    change_status(session, name, "start", now=MORNING)
    return campaign


def test_fills_free_lines_once(db, keyring) -> None:
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 12)
        campaign = running_campaign(session, lines=5)
        first = plan_campaign(session, campaign, MORNING)
        second = plan_campaign(session, campaign, MORNING)
    assert len(first.created) == 5 and first.free_lines == 5
    assert second.created == [] and second.free_lines == 0
    with session_scope(db) as session:
        attempts = session.execute(select(CallAttempt)).scalars().all()
        assert {a.attempt_no for a in attempts} == {1}
        assert len({a.lead_id for a in attempts}) == 5
        assert all(a.arms["script"] == "standard" for a in attempts)


def test_caps_windows_and_retries(db, keyring) -> None:
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 3)
        campaign = running_campaign(session, lines=10)
        created = plan_campaign(session, campaign, MORNING).created
        assert len(created) == 3
        for attempt in session.execute(select(CallAttempt)).scalars():
            attempt.status, attempt.outcome, attempt.history_outcome = "completed", "no_answer", "no_answer"
            attempt.dialed_at = MORNING
        session.flush()
        same_day = plan_campaign(session, campaign, MORNING + timedelta(hours=2))
        at_night = plan_campaign(session, campaign, NIGHT + timedelta(days=1))
        next_day = plan_campaign(session, campaign, MORNING + timedelta(days=1, minutes=1))
    assert same_day.created == [] and same_day.skipped == {"cap_24h": 3}
    assert at_night.created == [] and sum(at_night.skipped.values()) == 3
    assert len(next_day.created) == 3
    with session_scope(db) as session:
        numbers = sorted(a.attempt_no for a in session.execute(select(CallAttempt)).scalars())
    assert numbers == [1, 1, 1, 2, 2, 2]


def test_do_not_call_is_read_at_plan_time(db, keyring) -> None:
    with session_scope(db) as session:
        leads = add_pack(session, keyring, "pack-a", 4)
        campaign = running_campaign(session, lines=10)
        opted_out = session.get(Lead, leads[0])
        add_entry(session, opted_out.phone_hash, scope=SCOPE_OPT_OUT, reason="别再打了", source="call", now=MORNING)
        result = plan_campaign(session, campaign, MORNING)
    assert len(result.created) == 3 and result.skipped["dnc_opt_out"] == 1
    with session_scope(db) as session:
        assert leads[0] not in {a.lead_id for a in session.execute(select(CallAttempt)).scalars()}


def test_time_slot_arms_are_honoured(db, keyring) -> None:
    slots = [{"name": "上午", "windows": ["09:30-12:00"], "weight": 1},
             {"name": "傍晚", "windows": ["18:00-20:00"], "weight": 1}]
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 40)
        campaign = running_campaign(session, lines=100, time_slots=slots)
        morning = plan_campaign(session, campaign, MORNING)
        evening = plan_campaign(session, campaign, MORNING + timedelta(hours=9))  # 19:00 Shanghai
    with session_scope(db) as session:
        slot_of = {a.id: a.arms["time_slot"] for a in session.execute(select(CallAttempt)).scalars()}
    assert morning.created and evening.created
    assert {slot_of[i] for i in morning.created} == {"上午"}
    assert {slot_of[i] for i in evening.created} == {"傍晚"}
    assert len(morning.created) + len(evening.created) == 40  # every lead has one of the two slots


def test_a_slot_outside_the_policy_is_refused(db, keyring) -> None:
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 1)
        with pytest.raises(UserError, match="stricter"):
            create_campaign(session, name="late", packs=["pack-a"],
                            time_slots=[{"name": "夜间", "windows": ["20:00-22:00"]}])


def test_a_full_hopper_is_written_in_chunks_with_each_leads_arms(db, keyring) -> None:
    """More attempts than one SQLite statement takes, and more leads than one page holds."""
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 700)
        campaign = running_campaign(session, lines=600, cps=10, variants=[{"name": "standard", "weight": 1},
                                                                  {"name": "benefit_first", "weight": 1}])
        result = plan_campaign(session, campaign, MORNING)
        expected_arms = {lead_id: campaign_arms(campaign).for_lead(lead_id) for lead_id in
                         session.execute(select(Lead.id)).scalars()}
    assert len(result.created) == len(set(result.created)) == 600
    with session_scope(db) as session:
        attempts = {a.id: a for a in session.execute(select(CallAttempt)).scalars()}
    assert set(attempts) == set(result.created)
    assert all(a.arms == expected_arms[a.lead_id] and a.status == "scheduled" and a.scheduled_at == MORNING
               for a in attempts.values())
    # the lowest lead ids first, in planning order
    assert [attempts[i].lead_id for i in result.created] == sorted(expected_arms)[:600]


def test_attempts_another_planner_created_are_not_reported_as_ours(db, keyring) -> None:
    with session_scope(db) as session:
        leads = add_pack(session, keyring, "pack-a", 5)
        campaign = running_campaign(session, lines=10)
        theirs = _insert_attempts(session, campaign.id, [PlannedAttempt(leads[1], 1, "h1", {"script": "standard"})],
                                  MORNING)
        batch = [PlannedAttempt(lead_id, 1, f"h{i}", {"script": "standard"}) for i, lead_id in enumerate(leads)]
        ours = _insert_attempts(session, campaign.id, batch, MORNING)
    assert len(theirs) == 1 and len(ours) == 4 and theirs[0] not in ours
    with session_scope(db) as session:
        owner = {a.id: a.lead_id for a in session.execute(select(CallAttempt)).scalars()}
    assert [owner[i] for i in ours] == [leads[0]] + leads[2:]


def test_retries_come_least_recently_tried_first(db, keyring) -> None:
    with session_scope(db) as session:
        leads = add_pack(session, keyring, "pack-a", 4)
        campaign = running_campaign(session, lines=10)
        plan_campaign(session, campaign, MORNING - timedelta(days=2))
        tried_at = {leads[0]: 3, leads[1]: 1, leads[2]: 2, leads[3]: 0}  # hours after the first attempts
        for attempt in session.execute(select(CallAttempt)).scalars():
            attempt.scheduled_at = MORNING - timedelta(days=2) + timedelta(hours=tried_at[attempt.lead_id])
            attempt.status, attempt.outcome, attempt.history_outcome = "completed", "answered", "answered"
        session.flush()
        retry = plan_campaign(session, campaign, MORNING, limit=3)
    with session_scope(db) as session:
        lead_of = {a.id: (a.lead_id, a.attempt_no) for a in session.execute(select(CallAttempt)).scalars()}
    assert [lead_of[i] for i in retry.created] == [(leads[3], 2), (leads[1], 2), (leads[2], 2)]


def test_leads_waiting_for_the_other_slot_do_not_hide_the_open_slots_leads(db, keyring) -> None:
    """2 lines, 200 leads split 上午/傍晚, evening open: each tick looks at 20 leads at most.
    Scanning from the lowest id every tick found the same 20 (half of them waiting for the
    morning) and never reached later evening leads; the scan now goes on where the last tick
    stopped and wraps round, so every evening lead is dialled within a few rounds."""
    slots = [{"name": "上午", "windows": ["09:30-12:00"], "weight": 1},
             {"name": "傍晚", "windows": ["18:00-20:00"], "weight": 1}]
    evening = MORNING + timedelta(hours=9)  # 19:00 Shanghai
    with session_scope(db) as session:
        lead_ids = add_pack(session, keyring, "pack-a", 200)
        campaign = running_campaign(session, lines=2, time_slots=slots)
    arms = campaign_arms(campaign)
    evening_leads = {i for i in lead_ids if arms.for_lead(i)["time_slot"] == "傍晚"}
    planned: list[int] = []
    for tick in range(len(evening_leads) // 2 + 10):
        with session_scope(db) as session:
            campaign = session.get(type(campaign), campaign.id)
            created = plan_campaign(session, campaign, evening + timedelta(minutes=tick)).created
            for attempt in session.execute(select(CallAttempt).where(CallAttempt.id.in_(created))).scalars():
                planned.append(attempt.lead_id)
                attempt.status, attempt.history_outcome = "completed", "no_answer"  # the call ends in the minute
    assert set(planned) == evening_leads and len(planned) == len(evening_leads)
    with session_scope(db) as session:
        cursor = session.get(type(campaign), campaign.id).planner_cursor
    assert set(cursor) <= {"untried", "tried"}
