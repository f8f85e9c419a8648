"""The demo's conversions: simulated buyers (telephony.simulator.buyers) send their policies
through the same path as the insurer's file import, so the demo's report shows conversion
rate, premium per lead and per dial, and the full funnel."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.campaigns.grading import latest_corrections
from bot.campaigns.models import CallAttempt
from bot.core.db.engine import session_scope
from bot.core.pii import PhoneKeyring
from bot.experiments.conversion_models import SOURCE_FILE
from bot.experiments.conversions import ACCEPTED, ConversionIn, record_conversions
from bot.leads.models import Lead
from bot.wecom.models import WeComInvite
from bot.wecom.sop_models import SopEnrolment, SopStepSend
from telephony.simulator.buyers import simulated_policy

GRADE_ORDER = {"A": 0, "B": 1, "C": 2, "D": 3}


def simulate_conversions(engine: Engine, keyring: PhoneKeyring, campaign_id: int, seed: int) -> dict:
    """Each connected lead may buy (by its best grade and whether it added the advisor);
    returns {"policies", "attributed", "premium"}."""
    corrections = latest_corrections()
    grade = func.coalesce(corrections.c.grade, CallAttempt.grade)
    with session_scope(engine) as session:
        calls = session.execute(
            select(CallAttempt.lead_id, grade, CallAttempt.dialed_at, Lead.phone_ciphertext)
            .join(Lead, Lead.id == CallAttempt.lead_id)
            .outerjoin(corrections, corrections.c.attempt_id == CallAttempt.id)
            .where(CallAttempt.campaign_id == campaign_id, CallAttempt.outcome == "answered")
            .order_by(CallAttempt.lead_id, CallAttempt.dialed_at)
        ).all()
        added = set(
            session.execute(
                select(WeComInvite.lead_id).where(
                    WeComInvite.campaign_id == campaign_id, WeComInvite.added_at.isnot(None)
                )
            ).scalars()
        )
        # Follow-up steps each lead received (bot.wecom.sop; the demo runs the SOP month first).
        steps = dict(
            session.execute(
                select(SopStepSend.lead_id, func.count())
                .join(SopEnrolment, SopEnrolment.id == SopStepSend.enrolment_id)
                .where(SopEnrolment.campaign_id == campaign_id, SopStepSend.status == "sent")
                .group_by(SopStepSend.lead_id)
            ).all()
        )
    best: dict[int, tuple] = {}
    for lead_id, lead_grade, dialed_at, ciphertext in calls:
        known = best.get(lead_id)
        rank = GRADE_ORDER.get(lead_grade or "D", 3)
        if known is None or rank < known[0]:
            best[lead_id] = (rank, lead_grade, dialed_at, ciphertext)
    items: list[ConversionIn] = []
    for lead_id, (_, lead_grade, dialed_at, ciphertext) in sorted(best.items()):
        # each follow-up step received lifts the chance (telephony.simulator.buyers)
        policy = simulated_policy(
            seed, lead_id, lead_grade, dialed_at, added=lead_id in added, steps_received=int(steps.get(lead_id, 0))
        )
        if policy is not None:
            items.append(
                ConversionIn(
                    policy.policy_no,
                    policy.product,
                    f"{policy.premium:.2f}",
                    policy.converted_at.isoformat(),
                    phone=keyring.decrypt_phone(ciphertext),
                    row_number=len(items) + 2,
                )
            )
    with session_scope(engine) as session:
        results = record_conversions(session, keyring, items, source=SOURCE_FILE, batch="demo")
    accepted = [(item, r) for item, r in zip(items, results) if r.status == ACCEPTED]
    return {
        "policies": len(accepted),
        "attributed": sum(r.attributed for _, r in accepted),
        "premium": round(sum(float(str(item.premium)) for item, _ in accepted), 2),
    }
