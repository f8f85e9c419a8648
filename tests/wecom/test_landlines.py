"""Issue 16, item 3: a landline is accepted and called, but cannot be added on WeCom. Its A/B call
gets no invitation (recorded as skipped, with the reason), nothing is delivered for it, and the
funnel counts it apart (座机，无法加企业微信), not as invited — in JSON, the CLI and the console.
The robot told that callee the advisor would call back (add mode `callback`): the advisor of the
pack gets a call-back task (audited reveal), which a WeCom add never closes."""
from __future__ import annotations

import os

from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.cli.app import app
from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from bot.wecom.funnel import wecom_funnel
from bot.wecom.advisor_models import AdvisorTask
from bot.wecom.advisor_tasks import CALLBACK_CHANNEL, list_tasks, match_advisor_add
from bot.wecom.invites import LANDLINE_REASON, advisor_tasks
from bot.wecom.models import SmsOutbox, WeComInvite
from tests.conftest import run
from tests.db_fixtures import TEST_SECRET, db, database_url, keyring, migrated_engine  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign, wecom  # noqa: F401


def test_a_landline_is_not_invited_and_the_funnel_says_so(db, database_url, keyring, wecom, monkeypatch):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 3)}, name="座机测试")
        landline = session.get(Lead, leads["车主-华东"][0])
        landline.line_type, landline.phone_masked = "landline", "021****5678"
    attempts = [log_graded_call(db, campaign_id, lead, grade) for lead, grade in zip(leads["车主-华东"], "ABA")]

    with session_scope(db) as session:
        made = {i.attempt_id: i for i in session.execute(select(WeComInvite)).scalars()}
        skipped = made[attempts[0]]
        assert (skipped.status, skipped.last_error, skipped.link) == ("skipped", LANDLINE_REASON, None)
        assert "座机，无法加企业微信" in skipped.last_error and "landline" in skipped.last_error
        assert {made[a].status for a in attempts[1:]} == {"pending"}
        # The promised call back: one task, for the pack's advisor, shown as 待回电, never a WeCom add.
        assert skipped.channel == CALLBACK_CHANNEL and skipped.advisor_userid
        task = session.execute(select(AdvisorTask)).scalar_one()
        assert (task.lead_id, task.advisor_userid, task.status) == (landline.id, skipped.advisor_userid, "open")
        (row,) = list_tasks(session, campaign_id=campaign_id)
        assert (row.kind, row.status_label, row.phone_masked) == ("callback", "待回电", "021****5678")
        task.first_revealed_at = task.created_at  # even revealed, an add callback does not match it
        assert match_advisor_add(session, task.advisor_userid, [])[0] is None

    report = run(wecom.deliver())
    assert report.delivered == 2 and report.failed == 0
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(SmsOutbox)).scalar_one() == 2
        assert session.get(WeComInvite, skipped.id).status == "skipped"  # never picked up for delivery
        tasks = advisor_tasks(session, campaign_id=campaign_id, include_done=True)
        assert [t["last_error"] for t in tasks if t["status"] == "skipped"] == [LANDLINE_REASON]
        funnel = wecom_funnel(session, campaign_id)
    total = funnel["total"]
    assert (total["graded_ab"], total["invited"], total["sent"], total["landline"]) == (3, 2, 2, 1)
    assert funnel["labels"]["landline"] == "座机，无法加企业微信"
    assert funnel["by_audience"][0]["landline"] == 1
    from bot.web.exports import funnel_sheet

    sheet = funnel_sheet(funnel)
    column = list(sheet.headers).index("座机，无法加企业微信（线索数）")
    assert list(sheet.rows)[0][column] == 1 and sheet.headers[-1].startswith("加粉率")

    for key, value in {"WAIHU_DATABASE_URL": database_url, "WAIHU_SECRET_KEY": TEST_SECRET,
                       "COLUMNS": os.environ.get("COLUMNS", "200")}.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["wecom", "funnel", "座机测试"])
    assert result.exit_code == 0, result.output
    assert "landlines: 1 A/B lead(s) on a landline (座机) cannot be added on WeCom and were not invited" in result.stdout


def test_the_console_funnel_shows_the_landline_count():
    from jinja2 import Environment, FileSystemLoader

    from bot.core.settings import PROJECT_ROOT

    env = Environment(loader=FileSystemLoader(str(PROJECT_ROOT / "bot/web/templates")), autoescape=True)
    counts = {"graded_ab": 3, "invited": 2, "sent": 2, "added": 1, "welcomed": 1, "failed": 0, "deleted": 0,
              "landline": 1, "rates": {"invited": 0.67, "sent": 1.0, "added": 0.5, "welcomed": 1.0,
                                       "added_of_graded_ab": 0.33}}
    from bot.wecom.funnel import STAGE_LABELS, STAGES

    html = env.get_template("manager/_funnel.html").render(data={"funnel": {
        "campaign": "座机测试", "stages": list(STAGES), "labels": STAGE_LABELS, "total": counts,
        "by_audience": [], "by_grade": [], "by_arm": {}, "welcome_after_add_s": None}})
    assert "座机，无法加企业微信：1 条 A/B 线索（不发邀请，不计入已生成邀请）" in html
