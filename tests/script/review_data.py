"""Calls with caller turns for the review-queue tests, stored the way the call log stores them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.campaigns.models import CallAttempt, Campaign, TurnRow
from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from tests.wecom.conftest import seed_campaign

OPENING = "王先生您好，我是安心保险的AI合成语音客服，本次通话会录音。"
ASK_WECOM = "我让顾问用企业微信添加您，就用这个手机号，您看可以吗？"
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)


def seed(engine, keyring, leads: int = 6, name: str = "待标注测试") -> tuple[int, list[int]]:
    with session_scope(engine) as session:
        campaign_id, by_pack = seed_campaign(session, keyring, {"车主-华东": ("车主", leads)}, name=name)
    return campaign_id, by_pack["车主-华东"]


def log_call(
    engine,
    campaign_id: int,
    lead_id: int,
    replies: list[tuple[str, str | None, float | None]],
    *,
    minutes: int = 0,
    grade: str = "C",
    script: str = "standard",
) -> tuple[int, list[int]]:
    """An answered call: the opening, then for each (text, intent, confidence) a robot question and
    the caller's reply. Returns the attempt id and the caller turns' ids."""
    when = T0 + timedelta(minutes=minutes)
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        attempt_no = 1 + sum(1 for _ in session.query(CallAttempt).filter_by(campaign_id=campaign_id, lead_id=lead_id))
        attempt = CallAttempt(
            campaign_id=campaign_id,
            lead_id=lead_id,
            attempt_no=attempt_no,
            phone_hash=lead.phone_hash,
            arms={"script": script, "time_slot": "上午"},
            status="completed",
            outcome="answered",
            history_outcome="answered",
            grade=grade,
            grade_reason="测试",
            scheduled_at=when,
            dialed_at=when,
            answered_at=when + timedelta(seconds=5),
            ended_at=when + timedelta(seconds=60),
        )
        session.add(attempt)
        session.flush()
        session.add(
            TurnRow(
                attempt_id=attempt.id,
                seq=1,
                speaker="bot",
                text=OPENING,
                response="utter_opening",
                entities=[],
                offset_ms=0,
            )
        )
        callee_rows = []
        for index, (text, intent, confidence) in enumerate(replies):
            seq = 2 + 2 * index
            session.add(
                TurnRow(
                    attempt_id=attempt.id,
                    seq=seq,
                    speaker="bot",
                    text=ASK_WECOM + f"（{index}）",
                    response="utter_ask_wecom",
                    entities=[],
                    offset_ms=seq * 3000,
                )
            )
            row = TurnRow(
                attempt_id=attempt.id,
                seq=seq + 1,
                speaker="callee",
                text=text,
                intent=intent,
                confidence=confidence,
                entities=[],
                offset_ms=(seq + 1) * 3000,
            )
            session.add(row)
            callee_rows.append(row)
        session.flush()
        return attempt.id, [r.id for r in callee_rows]


def campaign_name(engine, campaign_id: int) -> str:
    with session_scope(engine) as session:
        return session.get(Campaign, campaign_id).name
