"""Every domain's models in one import, so Alembic and tests see the whole schema."""
from bot.audiences.models import AudiencePack  # noqa: F401
from bot.db.base import Base  # noqa: F401
from bot.dnc.models import DoNotCall  # noqa: F401
from bot.leads.models import Lead, LeadPack, LeadReject  # noqa: F401
from bot.users.models import User  # noqa: F401
from bot.campaigns.models import CallAttempt, Campaign, CampaignPack, Turn  # noqa: F401
from bot.web.models import ApiToken, ScriptPublication  # noqa: F401
from bot.experiments.models import ExperimentHoldout  # noqa: F401
from bot.wecom.models import SmsOutbox, WeComCallbackNonce, WeComEvent, WeComInvite  # noqa: F401
