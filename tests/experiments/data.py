"""Experiment test data: leads in audience packs, and dial outcomes drawn from the simulator
carrier's own answer model, written as finished call attempts in bulk.

`simulated_outcome` follows telephony/simulator/carrier.py step for step for what decides
a dial's outcome (the number's operator recording, then the pack's answer probability at
the local hour, the ring time against the timeout, then the persona who picks up), with
the same random streams (`call_rng(seed, call_id, purpose)`), so a call id dialled at the
same time ends the same way here as on the carrier. What happens in the conversation is
not simulated: a persona's usual grade stands in for it (PERSONA_GRADES). That is what
makes it fast enough to run hundreds of campaigns in a test.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.audiences.models import AudiencePack
from bot.campaigns.models import CallAttempt
from bot.core.db.bulk import bulk_insert
from bot.leads.models import Lead, LeadPack
from telephony.simulator.personas import SimulatorConfig, call_rng, phone_fraction

SHANGHAI = ZoneInfo("Asia/Shanghai")
RING_TIMEOUT_S = 30
# persona → (grade, mean talk seconds, hard opt-out): what such a callee's call usually ends as.
PERSONA_GRADES = {
    "eager": ("A", 45, False), "curious": ("A", 70, False), "hesitant": ("B", 50, False), "busy": ("D", 15, False),
    "refuser": ("C", 20, False), "already_insured": ("C", 35, False), "hostile": ("C", 12, True),
    "wrong_person": ("D", 10, False), "silent": ("D", 18, False),
}
ATTEMPT_COLUMNS = ("campaign_id", "lead_id", "attempt_no", "phone_hash", "arms", "status", "outcome",
                   "history_outcome", "grade", "followups", "talk_time_s", "scheduled_at", "dialed_at",
                   "answered_at", "ended_at")


@dataclass(frozen=True)
class Outcome:
    outcome: str  # answered or a call status
    grade: str | None
    talk_time_s: float | None
    opt_out: bool


def simulated_outcome(config: SimulatorConfig, seed: int | str, call_id: str, phone: str, pack: str,
                      dialed_at: datetime) -> Outcome:
    profile = config.pack(pack)
    status = profile.announcement_for(phone_fraction(seed, phone))
    if status is not None and call_rng(seed, call_id, "announcement").random() < profile.announcements[status].per_attempt:
        return Outcome(status, None, None, False)
    rng = call_rng(seed, call_id, "answer")
    answers = rng.random() < profile.answer_probability(dialed_at.astimezone(SHANGHAI))
    ring_s = rng.uniform(*profile.ring_s)
    if not answers or ring_s >= RING_TIMEOUT_S:
        return Outcome("no_answer", None, None, False)
    persona = profile.persona_mix.pick(call_rng(seed, call_id, "persona"))
    grade, talk_s, opt_out = PERSONA_GRADES[persona]
    talk = call_rng(seed, call_id, "talk").uniform(0.5, 1.5) * talk_s
    return Outcome("answered", grade, round(talk, 1), opt_out)


def add_audience_leads(session, keyring, *, pack: str, audience: str, scene: str, count: int,
                       first_phone: int) -> list[tuple[int, str]]:
    """`count` leads of a new lead pack in a new audience pack; (lead id, phone) in id order."""
    audience_pack = AudiencePack(name=audience, scene=scene, tier="普通", attributes={})
    session.add(audience_pack)
    session.flush()
    lead_pack = LeadPack(name=pack, file_name=f"{pack}.csv", file_sha256=pack.encode().hex()[:64].ljust(64, "0"),
                         file_format="csv utf-8", uploaded_by="test", column_map={}, audience_id=audience_pack.id)
    session.add(lead_pack)
    session.flush()
    leads = []
    for i in range(count):
        phone = f"139{first_phone + i:08d}"
        lead = Lead(pack_id=lead_pack.id, audience_id=audience_pack.id, row_number=i + 2,
                    phone_ciphertext=keyring.encrypt_phone(phone), phone_hash=keyring.hash_phone(phone),
                    phone_masked=f"139****{phone[-4:]}", line_type="mobile", consent_source="landing page",
                    status="new")
        session.add(lead)
        leads.append(lead)
    session.flush()
    return [(lead.id, f"139{first_phone + i:08d}") for i, lead in enumerate(leads)]


def write_attempts(connection, rows: list[tuple]) -> None:
    bulk_insert(connection, CallAttempt.__table__, ATTEMPT_COLUMNS, rows)


def attempt_row(campaign_id: int, lead_id: int, attempt_no: int, phone_hash: str, arms: dict, outcome: Outcome,
                dialed_at: datetime) -> tuple:
    answered = outcome.outcome == "answered"
    history = "opt_out" if outcome.opt_out else outcome.outcome
    ended = dialed_at + timedelta(seconds=(outcome.talk_time_s or 0) + 20)
    return (campaign_id, lead_id, attempt_no, phone_hash, arms, "completed", outcome.outcome, history, outcome.grade,
            [], outcome.talk_time_s, dialed_at - timedelta(seconds=5), dialed_at,
            dialed_at + timedelta(seconds=10) if answered else None, ended)


def dial_time_in(window: str, day: datetime, rng: random.Random) -> datetime:
    """A uniformly drawn instant in a local window "HH:MM-HH:MM" on `day` (a Shanghai date)."""
    start, end = window.split("-")
    local = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    lo = local + timedelta(hours=int(start[:2]), minutes=int(start[3:]))
    hi = local + timedelta(hours=int(end[:2]), minutes=int(end[3:]))
    return lo + timedelta(seconds=rng.uniform(0, (hi - lo).total_seconds() - 60))
