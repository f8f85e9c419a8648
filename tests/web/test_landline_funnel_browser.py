"""Issue 16, item 3 on the console: the WeCom funnel page says how many A/B leads are landlines
(座机，无法加企业微信) and were not invited. Screenshot manager-6-wecom-funnel-landlines.png."""
from __future__ import annotations

import pytest

from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_the_funnel_page_counts_landlines_apart(page_for, console, db, keyring):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 6)}, name="座机漏斗")
        for lead_id in leads["车主-华东"][:2]:
            session.get(Lead, lead_id).line_type = "landline"
    for lead_id, grade in zip(leads["车主-华东"], "ABAABC"):
        log_graded_call(db, campaign_id, lead_id, grade)
    page = page_for("manager")
    page.goto(f"{console.url}/wecom?campaign_id={campaign_id}")
    assert page.inner_text("#funnel-landlines") == "座机，无法加企业微信：2 条 A/B 线索（不发邀请，不计入已生成邀请）"
    assert page.inner_text('[data-stage="graded_ab"] .value') == "5"
    assert page.inner_text('[data-stage="invited"] .value') == "3"
    no_unmasked_phone(page)
    shot(page, "manager-6-wecom-funnel-landlines")
