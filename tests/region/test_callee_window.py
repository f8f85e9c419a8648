"""Issue 16 item 4: the legal window holds in Beijing time AND the courtesy window (the
lead's time-slot arm) in the callee's own zone — Xinjiang lives on Asia/Urumqi (UTC+6)."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.campaigns.models import CallAttempt
from bot.campaigns.service import policy_for_slot
from bot.core.db.engine import session_scope
from bot.dialing.planner import plan_campaign
from bot.leads.models import Lead
from telephony.compliance.eligibility import HARD_BLOCK, check_for_callee
from telephony.compliance.policy import load_profile
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack, running_campaign

BEIJING = ZoneInfo("Asia/Shanghai")
URUMQI = "Asia/Urumqi"


def beijing(hour: int, minute: int = 0) -> datetime:
    # Tuesday 2026-11-24, a working day.
    return datetime(2026, 11, 24, hour, minute, tzinfo=BEIJING).astimezone(timezone.utc)


@pytest.mark.parametrize(
    "at, shanghai_allowed, urumqi_allowed",
    [
        (beijing(9, 30), True, False),  # 07:30 in Urumqi: legal, too early there
        (beijing(11, 30), True, True),  # 09:30 in Urumqi
        (beijing(19, 30), True, True),  # 17:30 in Urumqi
        (beijing(20, 30), False, False),  # 18:30 in Urumqi, but past 20:00 in Beijing
    ],
)
def test_both_clocks_must_allow_the_dial(at, shanghai_allowed, urumqi_allowed):
    policy = load_profile()
    assert check_for_callee(policy, now=at).allowed is shanghai_allowed
    assert check_for_callee(policy, now=at, callee_zone=URUMQI).allowed is urumqi_allowed


def test_a_late_evening_in_urumqi_is_the_legal_hard_block_in_beijing():
    # 20:30 Urumqi = 22:30 Beijing: polite there, forbidden by law (21:00–09:00 Beijing).
    verdict = check_for_callee(load_profile(), now=beijing(22, 30), callee_zone=URUMQI)
    assert not verdict.allowed and verdict.reason == HARD_BLOCK


def test_a_time_slot_is_judged_in_the_callees_local_time():
    # The 上午 arm (09:30–12:00) of a Xinjiang lead: 10:00 Beijing is 08:00 there (not yet);
    # 11:45 Beijing is 09:45 there (its morning, and inside Beijing's legal morning window).
    class Campaign:
        name, compliance_profile, compliance_overrides = "slots", "CN_INSURANCE_DEFAULT", {}
        time_slots = [{"name": "上午", "windows": ["09:30-12:00"]}]

    slot, legal = policy_for_slot(Campaign, "上午"), policy_for_slot(Campaign, None)
    assert not check_for_callee(slot, now=beijing(10), callee_zone=URUMQI, legal_policy=legal).allowed
    assert check_for_callee(slot, now=beijing(11, 45), callee_zone=URUMQI, legal_policy=legal).allowed
    # 13:00 Beijing = 11:00 Urumqi: their morning, but Beijing's lunch-time gap in the legal windows.
    assert not check_for_callee(slot, now=beijing(13), callee_zone=URUMQI, legal_policy=legal).allowed


def test_the_planner_leaves_a_xinjiang_lead_until_their_morning(db, keyring):
    with session_scope(db) as session:
        ids = add_pack(session, keyring, "pack-a", 4)
        for lead in session.execute(select(Lead).where(Lead.id.in_(ids[:2]))).scalars():
            lead.province, lead.city, lead.timezone, lead.region_source = "新疆", "乌鲁木齐市", URUMQI, "column"
        campaign = running_campaign(session, lines=10)
        early = plan_campaign(session, campaign, beijing(9, 45))  # 07:45 in Urumqi: before their 09:00
        assert early.skipped["hard_block"] == 2
        assert set(session.execute(select(CallAttempt.lead_id)).scalars()) == set(ids[2:])
        later = plan_campaign(session, campaign, beijing(11, 40))  # 09:40 in Urumqi
        assert set(
            session.execute(select(CallAttempt.lead_id).where(CallAttempt.id.in_(later.created))).scalars()
        ) == set(ids[:2])
