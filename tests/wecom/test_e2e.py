"""The whole add-friend loop end to end, on SQLite and PostgreSQL: a simulated morning of
calling three audience packs with the real dialogue model (planner → T-0 check → simulator
carrier → grading → record_call), invitations for the A/B calls, delivery through the
local WeCom server, a share of the customers adding the advisor, welcome messages with
the incentive each pack was promised on the phone, tags, and a funnel that adds up."""
from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import select

from bot.audiences.models import AudiencePack
from bot.dialing.dialer import Dialer, PreparedCall
from bot.campaigns.models import CallAttempt, Campaign, TurnRow
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.leads.models import Lead, LeadPack
from bot.wecom.funnel import wecom_funnel
from bot.wecom.models import WeComInvite
from bot.wecom.offers import incentive_for, load_offers
from telephony.simulator.carrier import SimulatorCarrier
from telephony.clock import SimClock
from tests.conftest import run
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.wecom.conftest import SURNAMES, _test_secret, wecom  # noqa: F401

# Tuesday 2026-11-24 09:00 in Shanghai: the window opens at 09:30.
START = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
PACKS = {"车主-华东": "车主", "宝妈-华南": "宝妈", "养老-华北": "养老"}
LEADS_PER_PACK = 30
PROMISED = {"宝妈-华南": {"一份免费的儿童意外险"}, "养老-华北": {"一次免费的理赔绿色通道服务"},
            "车主-华东": {"一份免费的驾乘意外险", "车险理赔绿色通道服务"}}


def seed(db, keyring) -> int:
    with session_scope(db) as session:
        serial = 0
        for name, scene in PACKS.items():
            audience = AudiencePack(name=name, scene=scene, tier="普通", attributes={})
            session.add(audience)
            session.flush()
            pack = LeadPack(name=f"pack-{scene}", file_name="x.csv", file_sha256=f"{scene}".encode().hex().ljust(64, "0"),
                            file_format="csv utf-8", uploaded_by="test", column_map={}, audience_id=audience.id)
            session.add(pack)
            session.flush()
            for _ in range(LEADS_PER_PACK):
                serial += 1
                phone = f"137{serial:08d}"
                session.add(Lead(pack_id=pack.id, audience_id=audience.id, row_number=serial + 1,
                                 phone_ciphertext=keyring.encrypt_phone(phone), phone_hash=keyring.hash_phone(phone),
                                 phone_masked=f"137****{phone[-4:]}", line_type="mobile",
                                 name=SURNAMES[serial % 10] + "某", gender="MF"[serial % 2],
                                 consent_source="landing page", consent_at=START, status="new"))
        campaign = create_campaign(session, name="加粉-e2e", packs=[f"pack-{s}" for s in PACKS.values()], lines=30,
                                   cps=10, incentive="一份免费的短期意外险",
                                   variants=[{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}])
        change_status(session, "加粉-e2e", "start", now=START)
        return campaign.id


def with_offered_incentive(db, prepared: PreparedCall) -> PreparedCall:
    """What the dialer does with the offers (bot.wecom.offers.incentive_for): the incentive
    the robot says is the one the invitation will repeat."""
    with session_scope(db) as session:
        attempt = session.get(CallAttempt, prepared.attempt_id)
        lead = session.get(Lead, attempt.lead_id)
        pack = session.get(AudiencePack, lead.audience_id)
        incentive = incentive_for(load_offers(), pack, lead.id, attempt.arms,
                                  campaign=session.get(Campaign, attempt.campaign_id))
    return dataclasses.replace(prepared, lead=dataclasses.replace(prepared.lead, incentive=incentive.text))


def dial_a_morning(db, keyring, agent) -> None:
    async def morning():
        clock = SimClock(start=START)
        carrier = SimulatorCarrier(clock=clock, seed=11)
        dialer = Dialer(db, agent, carrier, keyring, now=clock.now, worker="test")

        async def call(attempt_id: int) -> str:
            prepared = dialer.prepare(attempt_id)
            if isinstance(prepared, str):
                return prepared
            prepared = with_offered_incentive(db, prepared)
            return dialer.finish(prepared, await dialer.converse(prepared))

        calls: list[asyncio.Future] = []
        for _minute in range(3 * 60):  # 09:00–12:00 local
            for plan in dialer.plan():
                calls += [asyncio.ensure_future(call(attempt_id)) for attempt_id in plan.created]
            await clock.sleep(60)
        await asyncio.gather(*calls)

    run(morning())


def test_graded_calls_to_welcome_messages_and_the_funnel(db, keyring, dialogue_agent, wecom):
    campaign_id = seed(db, keyring)
    dial_a_morning(db, keyring, dialogue_agent)

    with session_scope(db) as session:
        attempts = session.execute(select(CallAttempt)).scalars().all()
        pack_of = {lead.id: pack for lead, pack in session.execute(
            select(Lead, AudiencePack.name).join(AudiencePack, AudiencePack.id == Lead.audience_id)).all()}
        invites = session.execute(select(WeComInvite).order_by(WeComInvite.id)).scalars().all()
        bot_lines = {}
        for turn in session.execute(select(TurnRow).where(TurnRow.speaker == "bot")).scalars():
            bot_lines.setdefault(turn.attempt_id, []).append((turn.response, turn.text))
    ab_leads = {a.lead_id for a in attempts if a.grade in ("A", "B")}
    grades = Counter(a.grade for a in attempts if a.grade)
    assert len(ab_leads) >= 6, grades  # enough for the loop to mean something
    # one invite per A/B lead, for its first A/B call, none for C/D or unanswered calls
    first_ab = {}
    for attempt in sorted(attempts, key=lambda a: a.id):
        if attempt.grade in ("A", "B"):
            first_ab.setdefault(attempt.lead_id, attempt.id)
    assert sorted(i.attempt_id for i in invites) == sorted(first_ab.values())
    assert all(i.status == "pending" for i in invites)

    pitched = 0
    for invite in invites:
        assert invite.incentive in PROMISED[pack_of[invite.lead_id]]
        assert invite.incentive in invite.welcome_text
        pitches = [text for response, text in bot_lines[invite.attempt_id] if response == "utter_pitch"]
        for text in pitches:  # what the robot promised on the phone is what the welcome will say
            assert invite.incentive in text, (text, invite.incentive)
        pitched += bool(pitches)
        said = " ".join(text for _, text in bot_lines[invite.attempt_id])
        for other in set().union(*PROMISED.values()) - {invite.incentive}:
            assert other not in said
    assert pitched >= len(invites) // 2

    report = run(wecom.deliver())
    assert report.delivered == len(invites) and report.failed == 0
    sent = run(wecom.simulate_adds(share=0.6, seed="e2e", campaign_id=campaign_id))
    assert 0 < len(sent) < len(invites)

    with session_scope(db) as session:
        after = {i.id: i for i in session.execute(select(WeComInvite)).scalars()}
        funnel = wecom_funnel(session, campaign_id)
    by_customer = {i.external_userid: i for i in after.values() if i.external_userid}
    assert len(by_customer) == len(sent)
    for callback in sent:
        invite = by_customer[callback.external_userid]
        welcome = wecom.server.welcome_to(callback.external_userid)
        assert welcome is not None and welcome.text == invite.welcome_text
        assert invite.incentive in welcome.text and invite.incentive in PROMISED[invite.audience]
        assert welcome.received_at - callback.sent_at < 20
        tags = wecom.server.tag_names_of(invite.advisor_userid, callback.external_userid)
        assert tags.get(invite.audience) == "外呼人群包" and tags.get(invite.arms["script"]) == "外呼话术"
        assert any(name.startswith(invite.grade) for name, group in tags.items() if group == "外呼意向等级")
        assert invite.status == "welcomed"

    total = funnel["total"]
    assert total["graded_ab"] == len(ab_leads) and total["invited"] == len(invites)
    assert total["sent"] == len(invites) and total["added"] == len(sent)
    assert total["welcomed"] == sum(1 for s in sent if wecom.server.welcome_to(s.external_userid))
    for row in funnel["by_audience"]:
        pack_invites = [i for i in after.values() if i.audience == row["name"]]
        assert row["invited"] == len(pack_invites)
        assert row["added"] == sum(1 for i in pack_invites if i.added_at)
        assert row["graded_ab"] == sum(1 for lead in ab_leads if pack_of[lead] == row["name"])
    incentive_arms = {r["name"]: r for r in funnel["by_arm"]["incentive"]}
    assert sum(r["added"] for r in incentive_arms.values()) == len(sent)
    print(f"\n[{db.dialect.name}] grades {dict(grades)}; funnel {({k: total[k] for k in funnel['stages']})}; "
          f"welcome after add {funnel['welcome_after_add_s']}")
