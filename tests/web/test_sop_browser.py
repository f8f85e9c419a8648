"""跟进序列 in a browser: a manager sees the follow-up sequences per A/B arm (enrolled, sent,
clicks, stops by reason) and a lead's timeline; ops may open it too; the tracked link answers
without a login. Screenshots go to tests/artifacts/screenshots/."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import select

from bot.campaigns.models import CallAttempt
from bot.core.db.engine import session_scope
from bot.wecom.models import WeComInvite
from bot.wecom.sequences import load_sequences
from bot.wecom.sop import enrol, opt_out, record_click
from bot.wecom.sop_models import SopLink, SopStepSend
from telephony.compliance.policy import default_policy
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def enrolled_contacts(db, keyring) -> list[int]:
    """Three added contacts enrolled as the add callback does; the first clicked its link, the
    third opted out. Returns their lead ids."""
    sequences, policy = load_sequences(), default_policy()
    now = datetime.now(timezone.utc)
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 3)}, name="跟进序列")
    for lead_id in leads["车主-华东"]:
        log_graded_call(db, campaign_id, lead_id, "A")
    with session_scope(db) as session:
        enrolments = []
        for n, invite in enumerate(session.execute(select(WeComInvite).order_by(WeComInvite.id)).scalars()):
            invite.status, invite.external_userid, invite.added_at = "added", f"wmsop{n:04d}", now
            invite.advisor_userid = "anxin_advisor01"
            enrolments.append(enrol(session, invite, sequences=sequences, policy=policy, now=now))
        first = enrolments[0]
        step = session.execute(select(SopStepSend).where(SopStepSend.enrolment_id == first.id)).scalars().first()
        step.status, step.sent_at, step.msgid = "sent", now + timedelta(days=1), "msgdemo"
        session.add(SopLink(token="t" * 24, enrolment_id=first.id, send_id=step.id, url="https://example.com/anxin/car",
                            tag="点击-车主险", created_at=now))
        session.flush()
        record_click(session, "t" * 24, user_agent="MicroMessenger", sequences=sequences, policy=policy,
                     now=now + timedelta(days=1, hours=1))
        opt_out(session, enrolments[2], now=now, source="ops")
        return [e.lead_id for e in enrolments]


def test_managers_see_the_sequences_per_arm_and_a_leads_timeline(page_for, console, db, keyring):
    leads = enrolled_contacts(db, keyring)
    manager = page_for("manager")
    manager.goto(f"{console.url}/sop")
    row = manager.inner_text('#sop-arms tr[data-arm="车主跟进-A"]')
    assert "3" in row and "33.3%" in row and "退订 1" in row
    enrolments = manager.inner_text("#sop-enrolments")
    assert "点击后跟进" in enrolments and "已停止（退订）" in enrolments and "139****" in enrolments
    no_unmasked_phone(manager)
    shot(manager, "manager-11-sop-sequences")

    manager.click(f'#sop-enrolments a[href="/sop/leads/{leads[0]}"]')
    manager.wait_for_selector("#sop-timeline")
    timeline = manager.inner_text("#sop-timeline")
    assert "已发送（待顾问确认）" in timeline and "点击链接" in timeline and "已取消" in timeline
    assert "点击后跟进" in timeline
    shot(manager, "manager-12-sop-lead-timeline")

    # the call page of that lead shows its follow-up too
    with session_scope(db) as session:
        attempt_id = session.execute(select(CallAttempt.id).where(CallAttempt.lead_id == leads[0])).scalar_one()
    manager.goto(f"{console.url}/calls/{attempt_id}")
    followup = manager.inner_text("#call-followup")
    assert "车主跟进-A" in followup and "点击链接" in followup and "已发送（待顾问确认）" in followup
    shot(manager, "manager-13-call-followup")

    ops = page_for("ops")
    ops.goto(f"{console.url}/sop")
    assert "车主跟进-A" in ops.inner_text("#sop-arms")
    # the tracked link is for customers: no login, unknown tokens are 404
    assert httpx.get(f"{console.url}/r/{'x' * 24}").status_code == 404
    answer = httpx.get(f"{console.url}/r/{'t' * 24}")
    assert answer.status_code == 302 and answer.headers["location"] == "https://example.com/anxin/car"
