"""GET /r/{token}: the tracked links of the follow-up sequences (bot.wecom.sop).

No login (the customer opens it in WeChat); the token is 144 random bits, so links cannot be
guessed or enumerated. A click is recorded, the click branch followed, and the customer is
sent on (302) to the page the sequences file names; the step's tag is marked on the contact in
WeCom after the answer (a background task), so the redirect never waits for WeCom.

For the web console: `app.include_router(router, prefix="/r")`. The app may set
`app.state.sop_wecom_client` (a WeComClient) and `app.state.sop_config` (sequences, policy);
without them the client comes from WAIHU_WECOM_* (no tagging while WeCom is not configured)
and the config from dialogs/wecom/sequences.yml and the default compliance profile.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.wecom.client import WeComClient
from bot.wecom.config import wecom_settings
from bot.wecom.sop import Click, default_sop_config, record_click, tag_click

log = logging.getLogger(__name__)

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
router = APIRouter()


@router.get("/{token}", include_in_schema=False)
async def follow_link(token: str, request: Request) -> Response:
    if not TOKEN.match(token):
        return _gone()
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        from bot.core.db.engine import open_database

        engine = request.app.state.engine = open_database()
    config = getattr(request.app.state, "sop_config", None) or default_sop_config
    try:
        sequences, policy = config()
    except UserError as exc:  # the click is still worth a redirect; the log names file:line
        log.error("sop link %s…: sequences file unusable: %s", token[:4], exc)
        return _gone()
    clock = getattr(request.app.state, "sop_clock", None) or utc_now

    def record() -> Click | None:
        with session_scope(engine) as session:
            return record_click(
                session,
                token,
                user_agent=request.headers.get("user-agent"),
                sequences=sequences,
                policy=policy,
                now=clock(),
            )

    click = await run_in_threadpool(record)
    if click is None:
        return _gone()
    log.info("sop click on link %s… (enrolment %s): %s", token[:4], click.enrolment_id, click.outcome)
    client = _client(request)
    background = BackgroundTask(tag_click, engine, client, click) if client is not None and click.tag else None
    return RedirectResponse(click.url, status_code=302, background=background)


def _client(request: Request) -> WeComClient | None:
    client = getattr(request.app.state, "sop_wecom_client", None)
    if client is None:
        settings = wecom_settings()
        if not settings.configured:
            return None
        client = request.app.state.sop_wecom_client = WeComClient(settings)
    return client


def _gone() -> Response:
    return PlainTextResponse("链接已失效或不存在。", status_code=404)
