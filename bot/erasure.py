"""PIPL erasure across domains: a person's leads, rejected rows, calls and transcripts,
grade corrections, call recordings (files too), WeCom invitations, advisor add tasks and their reveal audit go; only the do-not-call hash stays (it holds no number).
Their review-queue labels go too, and the NLU training examples their words became in
dialogs/data/nlu/from_calls.yml (unless another caller's labelled turn said the same words:
bot.campaigns.review.erase_labels); the next `waihu train` drops them from the model.

It sits above the domains it deletes from (leads, campaigns, dnc) so none of them has to
know about the others' tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.campaigns.models import CallAttempt, GradeCorrection
from bot.campaigns.review import erase_labels
from bot.core.keys import require_key_matches
from bot.core.pii import PhoneKeyring, mask_phone
from bot.dialing.recordings import erase_recordings
from bot.dialing.routing import erase_lead_routes
from bot.dnc.models import DoNotCall
from bot.dnc.service import parse_phone_or_fail
from bot.experiments.conversions import erase_lead_conversions
from bot.leads.models import Lead, LeadReject
from bot.script.project import DialogsProject
from bot.webhooks.service import erase_lead_events
from bot.wecom.advisor_tasks import erase_lead_tasks
from bot.wecom.sop import erase_lead_sop


@dataclass(frozen=True)
class ForgetResult:
    masked_phone: str
    leads: int
    rejects: int
    dnc_kept: bool
    calls: int = 0  # call attempts erased with their transcripts (and WeCom invites)
    recordings: int = 0  # call recording files deleted
    review_labels: int = 0  # their turns' labels in the review queue (待标注)
    training_examples: int = 0  # examples removed from dialogs/data/nlu/from_calls.yml
    training_examples_kept: int = 0  # their words kept there because another caller's labelled turn said them too


def forget_phone(
    session: Session, keyring: PhoneKeyring, raw_phone: str, project: DialogsProject | None = None
) -> ForgetResult:
    """PIPL erasure: the person's leads, rejected rows and calls (transcripts, invites) go; a DNC
    hash stays (it holds no number). Their labelled turns' training examples leave `project`'s
    tool file (default: the settings' dialogs/); callers hold the script edit lock
    (bot.web.script_workspace.edit_lock), as around labelling."""
    phone = parse_phone_or_fail(raw_phone)
    # With another key the hash matches nothing and "erased 0" would be a lie.
    require_key_matches(session, keyring)
    phone_hash = keyring.hash_phone(phone.number)

    # Grade corrections (their reasons may quote the person) go explicitly, whether or not
    # the database enforces the cascade from the calls.
    session.execute(
        delete(GradeCorrection)
        .where(GradeCorrection.attempt_id.in_(select(CallAttempt.id).where(CallAttempt.phone_hash == phone_hash)))
        .execution_options(synchronize_session=False)
    )
    # Review labels and the training examples their words became (a file outside the
    # database: rewritten now, before the commit; see erase_labels).
    if project is None:
        from bot.core.settings import get_settings

        project = DialogsProject(get_settings().dialogs_dir)
    labels = erase_labels(
        session, project, session.execute(select(CallAttempt.id).where(CallAttempt.phone_hash == phone_hash)).scalars()
    )
    # advisor_adds: the person's add tasks and every audited look at their number go too.
    lead_ids = list(session.execute(select(Lead.id).where(Lead.phone_hash == phone_hash)).scalars())
    erase_lead_tasks(session, lead_ids)
    erase_lead_routes(session, lead_ids)  # their routes to people (dialogs/routing.yml)
    erase_lead_sop(session, lead_ids)  # their follow-up sequences: steps, links, clicks, tags
    erase_lead_events(session, lead_ids)  # CRM webhook events about them, sent or waiting
    erase_lead_conversions(session, lead_ids, phone_hash)  # their policies and rejected conversion rows
    # Their call recordings: the files first (a cascade would only drop the rows).
    recordings = erase_recordings(
        session, session.execute(select(CallAttempt.id).where(CallAttempt.phone_hash == phone_hash)).scalars()
    )
    # Calls are deleted here rather than left to the leads' ON DELETE CASCADE so the person
    # can be told how many went; their turns and WeCom invites cascade from them.
    calls = (
        session.execute(
            delete(CallAttempt).where(CallAttempt.phone_hash == phone_hash).execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    leads = session.execute(delete(Lead).where(Lead.phone_hash == phone_hash)).rowcount or 0
    rejects = session.execute(delete(LeadReject).where(LeadReject.phone_hash == phone_hash)).rowcount or 0
    dnc_kept = session.execute(select(DoNotCall.id).where(DoNotCall.phone_hash == phone_hash)).first() is not None
    return ForgetResult(
        mask_phone(phone.number),
        leads,
        rejects,
        dnc_kept,
        calls,
        recordings,
        review_labels=labels.labels,
        training_examples=len(labels.examples),
        training_examples_kept=labels.kept_shared,
    )
