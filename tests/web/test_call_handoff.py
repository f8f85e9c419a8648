"""The call detail shows a hand-off to a human: 已转人工, or 转人工失败，已预约顾问回电 with the callback time."""
from __future__ import annotations

from datetime import timedelta

from bot.campaigns.models import CallAttempt
from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.dialing.planner import plan_campaign
from bot.web.manager_views import call_detail, list_calls
from bot.web.rendering import templates
from intents.callback_times import SHANGHAI
from intents.followups import advisor_callback
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import MORNING, add_pack


def handed_off_and_failed(db, keyring) -> tuple[int, int, str]:
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-web-h", 2)
        create_campaign(session, name="转人工", packs=["pack-web-h"], lines=2)
        campaign = change_status(session, "转人工", "start", now=MORNING)
        taken, failed = plan_campaign(session, campaign, MORNING).created
        ended = MORNING + timedelta(minutes=1)
        callback = advisor_callback(ended)
        for attempt_id, handoff, followups in ((taken, "handed_off", []),
                                               (failed, "handoff_failed", [callback.as_json()])):
            attempt = session.get(CallAttempt, attempt_id)
            attempt.status, attempt.outcome, attempt.grade = "completed", "answered", "B"
            attempt.grade_reason, attempt.handoff, attempt.followups = "B：要求转人工", handoff, followups
            attempt.ended_at = ended
    return taken, failed, callback.window_start.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def page(detail) -> str:
    """The call detail page as the console renders it (logged-in chrome left out)."""
    return templates.env.get_template("manager/call.html").render(call=detail, csrf="", principal=None, nav=[],
                                                                   messages=[], active_nav=None, role_name="")


def test_call_detail_shows_the_hand_off(db, keyring) -> None:
    taken, failed, callback_at = handed_off_and_failed(db, keyring)
    with session_scope(db) as session:
        taken_detail, failed_detail = call_detail(session, taken), call_detail(session, failed)
        listing = list_calls(session)
    assert (taken_detail.handoff, taken_detail.handoff_label) == ("handed_off", "已转人工")
    assert (failed_detail.handoff, failed_detail.handoff_label) == ("handoff_failed", "转人工失败，已预约顾问回电")
    assert {c.id: c.handoff for c in listing.calls} == {taken: "handed_off", failed: "handoff_failed"}
    assert "<dt>转人工</dt>" in page(taken_detail) and "已转人工" in page(taken_detail)
    failed_page = page(failed_detail)
    assert "转人工失败，已预约顾问回电" in failed_page and f"顾问回电时间 {callback_at} 起" in failed_page
    assert "<dt>转人工</dt>" not in page(taken_detail.copy(update={"handoff": None, "handoff_label": None}))
