"""Shared pieces of the WeCom tests: audience packs with leads, calls graded through the real
grading (intents.assess.assess_call) and logged through the real record_call, and the
local WeCom loop (test server + our callback endpoint, both real HTTP servers)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from sqlalchemy.engine import Engine

from bot.audiences.models import AudiencePack
from bot.dialing.call_store import record_call
from bot.dialing.call_runner import CallResult
from bot.campaigns.models import CallAttempt
from bot.campaigns.service import campaign_arms, change_status, create_campaign
from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.leads.models import Lead, LeadPack
from bot.core.pii import PhoneKeyring
from bot.wecom.dev.local import LocalWeCom
from bot.wecom.state import state_key
from intents.assess import NluResult, assess_call
from intents.finished_call import FinishedCall, Turn
from tests.db_fixtures import TEST_SECRET

STATE_KEY = state_key(TEST_SECRET.encode())
SURNAMES = "王李张刘陈杨赵黄周吴"

# What the callee says after each question, hand-labelled the way the NLU labels it.
CALLEE_LINES = {
    "A": [("utter_ask_good_time", "嗯你说", "affirm"), ("utter_ask_wecom", "好的你加我吧", "agree_add_wecom")],
    "B": [("utter_ask_good_time", "嗯你说", "affirm"), ("utter_ask_wecom", "这个要钱吗", "ask_price"),
          ("utter_answer_price", "我考虑一下", "deny")],
    "C": [("utter_ask_good_time", "不需要", "refuse")],
}


@pytest.fixture(autouse=True)
def _test_secret(monkeypatch):
    """record_call signs states with the installation secret: the tests' one, never a file."""
    monkeypatch.setenv("WAIHU_SECRET_KEY", TEST_SECRET)


@pytest.fixture(scope="module")
def wecom(migrated_engine, keyring) -> Iterator[LocalWeCom]:
    loop = LocalWeCom.start(migrated_engine, keyring=keyring, state_key=STATE_KEY, match_wait_s=3.0)
    yield loop
    loop.stop()


def seed_campaign(session, keyring: PhoneKeyring, packs: dict[str, tuple[str, int]], *, name: str = "加粉测试",
                  incentive: str | None = None, experiments: dict | None = None,
                  first_serial: int = 0) -> tuple[int, dict[str, list[int]]]:
    """Audience packs (name → (scene, leads)), one lead pack each, a running campaign over them
    (phone numbers counted on from first_serial, to seed several campaigns)."""
    leads: dict[str, list[int]] = {}
    serial = first_serial
    for pack_name, (scene, count) in packs.items():
        audience = AudiencePack(name=pack_name, scene=scene, tier="普通", attributes={})
        pack = LeadPack(name=f"pack-{pack_name}", file_name="x.csv", file_sha256=pack_name.encode().hex()[:64].ljust(64, "0"),
                        file_format="csv utf-8", uploaded_by="test", column_map={})
        session.add_all([audience, pack])
        session.flush()
        pack.audience_id = audience.id
        leads[pack_name] = []
        for _ in range(count):
            serial += 1
            phone = f"139{serial:08d}"
            lead = Lead(pack_id=pack.id, audience_id=audience.id, row_number=serial + 1,
                        phone_ciphertext=keyring.encrypt_phone(phone), phone_hash=keyring.hash_phone(phone),
                        phone_masked=f"139****{phone[-4:]}", line_type="mobile", name=SURNAMES[serial % 10] + "某",
                        gender="MF"[serial % 2], consent_source="landing page", consent_at=utc_now(), status="new")
            session.add(lead)
            session.flush()
            leads[pack_name].append(lead.id)
    campaign = create_campaign(session, name=name, packs=[f"pack-{p}" for p in packs], incentive=incentive,
                               experiments=experiments,
                               variants=[{"name": "standard", "weight": 1}, {"name": "benefit_first", "weight": 1}])
    change_status(session, name, "start", now=utc_now())
    return campaign.id, leads


def graded_result(call_id: str, grade: str, ended_at: datetime) -> CallResult:
    """A finished call graded by the real grading rules from hand-labelled replies."""
    lines = CALLEE_LINES[grade]
    labels = {text: intent for _, text, intent in lines}
    turns, t = [Turn("bot", "您好，这里是安心保险服务平台，AI合成语音", 0.0, "utter_opening")], 1.0
    for step, text, _ in lines:
        turns += [Turn("bot", "……", t, step), Turn("callee", text, t + 2)]
        t += 4
    answered = ended_at - timedelta(seconds=t)
    outcome = assess_call(FinishedCall(call_id, tuple(turns), duration_s=t, started_at=answered),
                          lambda text, at: NluResult(labels[text], 0.95))
    assert outcome.grade.grade == grade
    return CallResult(call_id, answered=True, hangup_by="bot", dialed_at=answered - timedelta(seconds=8),
                      answered_at=answered, ended_at=ended_at, outcome=outcome)


def log_graded_call(engine: Engine, campaign_id: int, lead_id: int, grade: str, *,
                    ended_at: datetime | None = None, arms: dict | None = None) -> int:
    """An attempt dialled under the campaign's arms for the lead, graded and logged by record_call."""
    ended_at = ended_at or datetime.now(timezone.utc)
    with session_scope(engine) as session:
        from bot.campaigns.models import Campaign

        campaign = session.get(Campaign, campaign_id)
        lead = session.get(Lead, lead_id)
        attempt = CallAttempt(campaign_id=campaign_id, lead_id=lead_id, attempt_no=1, phone_hash=lead.phone_hash,
                              arms=arms if arms is not None else campaign_arms(campaign).for_lead(lead_id),
                              status="dialing", history_outcome="scheduled", scheduled_at=ended_at,
                              dialed_at=ended_at - timedelta(minutes=1))
        session.add(attempt)
        session.flush()
        record_call(session, attempt, graded_result(f"attempt-{attempt.id}", grade, ended_at))
        return attempt.id
