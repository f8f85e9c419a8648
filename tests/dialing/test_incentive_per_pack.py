"""Issue 16 item 7: incentive arms are per audience pack. What the robot says is what the
system stores and sends: for leads of different packs, the incentive line the call speaks,
the incentive arm stored on the call and the WeCom invitation name the same incentive, and
a pack the campaign gives no arms keeps its own incentive from dialogs/wecom/offers.yml."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import select

from bot.campaigns.experiment_design import build_experiments, parse_text_arm
from bot.campaigns.models import CallAttempt
from bot.core.db.engine import session_scope
from bot.core.settings import get_settings
from bot.dialing.call_store import record_call
from bot.dialing.dialer import Dialer
from bot.script.project import DialogsProject
from bot.script.script_lines import load_script_domain
from bot.wecom.models import WeComInvite
from telephony.clock import SimClock
from telephony.prompts.renderer import split_template
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_dialer import START
from tests.wecom.conftest import _test_secret, graded_result, seed_campaign  # noqa: F401

ARMS = ["车主:驾乘险=一份免费的驾乘意外险", "车主:道路救援=一次免费道路救援*2", "宝妈:儿童险=一份免费的儿童意外险"]
PROMISED = {"车主-华东": {"驾乘险": "一份免费的驾乘意外险", "道路救援": "一次免费道路救援"},
            "宝妈-华南": {"儿童险": "一份免费的儿童意外险"},
            # no arm for 养老: its own incentive from offers.yml, never another pack's
            "养老-华北": {"理赔绿色通道": "一次免费的理赔绿色通道服务"}}


def spoken_pitch(domain, prepared) -> str:
    """The pitch line as the call says it: the variant's template filled with the call's slots
    (the same split CallPrompts renders to audio)."""
    slots = {**domain.sample_slots(prepared.lead.script_variant), **prepared.lead.slots()}
    template = next(line.template for line in domain.lines_for_variant(prepared.lead.script_variant)
                    if line.response == "utter_pitch")
    return "".join(piece.text for piece in split_template(template, slots))


def test_spoken_incentive_stored_arm_and_invitation_agree_per_pack(db, keyring) -> None:
    experiments = build_experiments(incentives=[parse_text_arm("--incentive-arm", a, scoped=True) for a in ARMS])
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 30), "宝妈-华南": ("宝妈", 12),
                                                              "养老-华北": ("养老", 8)},
                                           name="分人群利益点", experiments=experiments)
    pack_of = {lead_id: pack for pack, ids in leads.items() for lead_id in ids}
    domain = load_script_domain(DialogsProject(get_settings().dialogs_dir))
    dialer = Dialer(db, None, None, keyring, now=SimClock(start=START + timedelta(hours=1)).now, worker="test")
    said: dict[int, str] = {}
    arms_seen: dict[str, Counter] = defaultdict(Counter)
    planned: list[int] = []
    while batch := [attempt_id for plan in dialer.plan() for attempt_id in plan.created]:  # 10 lines a round
        planned += batch
        for attempt_id in batch:
            prepared = dialer.prepare(attempt_id)
            pitch = spoken_pitch(domain, prepared)
            with session_scope(db) as session:
                attempt = session.get(CallAttempt, attempt_id)
                pack = pack_of[attempt.lead_id]
                arm = attempt.arms.get("incentive")
                if pack == "养老-华北":
                    assert arm is None  # no arm for this pack: the offers' incentive, not a test arm
                else:
                    assert arm in PROMISED[pack], (pack, arm)  # the stored arm is one of this pack's
                    assert prepared.lead.incentive == PROMISED[pack][arm]
                    arms_seen[pack][arm] += 1
                assert prepared.lead.incentive in PROMISED[pack].values(), (pack, prepared.lead.incentive)
                assert prepared.lead.incentive in pitch, pitch
                record_call(session, attempt, graded_result(f"attempt-{attempt_id}", "A", START + timedelta(hours=1)))
            said[attempt_id] = prepared.lead.incentive
    assert len(planned) == 50
    assert set(arms_seen["车主-华东"]) == {"驾乘险", "道路救援"} and set(arms_seen["宝妈-华南"]) == {"儿童险"}

    with session_scope(db) as session:
        invites = session.execute(select(WeComInvite)).scalars().all()
        stored = {a.id: a.arms for a in session.execute(select(CallAttempt)).scalars()}
    assert len(invites) == len(planned)
    for invite in invites:
        assert invite.incentive == said[invite.attempt_id]  # the invitation repeats what was said
        assert invite.incentive in invite.welcome_text
        if "incentive" in stored[invite.attempt_id]:
            assert invite.arms["incentive"] == stored[invite.attempt_id]["incentive"]
