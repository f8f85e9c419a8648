"""The whole schema in one import: every domain's models on one `Base.metadata`.

For Alembic's autogenerate (`waihu db revision`) and the test that compares the
migrations with the models. Migrations themselves never need it: they are explicit
scripts, so the database layer in `bot.core.db` stays below every domain.
"""

from bot.audiences.models import AudiencePack
from bot.campaigns.models import CallAttempt, Campaign, CampaignPack, ExperimentHoldout, GradeCorrection, TurnRow
from bot.campaigns.review_models import ReviewLabel
from bot.core.db.base import Base
from bot.core.keys import SecretKeyFingerprint
from bot.dialing.recording_models import Recording, RecordingAudit
from bot.dialing.routing_models import LeadRoute, RouteReveal
from bot.dnc.models import DoNotCall
from bot.experiments.conversion_models import Conversion, ConversionReject
from bot.leads.models import Lead, LeadPack, LeadReject
from bot.script.models import ScriptPublication
from bot.users.models import ApiToken, User
from bot.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from bot.wecom.advisor_models import AdvisorTask, RevealAudit
from bot.wecom.models import SmsOutbox, WeComCallbackNonce, WeComEvent, WeComInvite
from bot.wecom.sop_models import SopClick, SopContactTag, SopEnrolment, SopLink, SopStepSend

__all__ = [
    "AdvisorTask",
    "ApiToken",
    "AudiencePack",
    "Base",
    "CallAttempt",
    "Campaign",
    "CampaignPack",
    "Conversion",
    "ConversionReject",
    "DoNotCall",
    "ExperimentHoldout",
    "GradeCorrection",
    "Lead",
    "LeadPack",
    "LeadReject",
    "LeadRoute",
    "Recording",
    "RecordingAudit",
    "ReviewLabel",
    "RouteReveal",
    "RevealAudit",
    "ScriptPublication",
    "SecretKeyFingerprint",
    "SmsOutbox",
    "SopClick",
    "SopContactTag",
    "SopEnrolment",
    "SopLink",
    "SopStepSend",
    "TurnRow",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WeComCallbackNonce",
    "WeComEvent",
    "WeComInvite",
]
