"""Issue 17 item 5 in the console: 集成 / Webhook shows the endpoints, recent deliveries and the
dead letters; a manager sends a dead one again (重新投递, CSRF-checked); other roles are refused.
The browser test takes screenshots into tests/artifacts/screenshots/."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.webhooks.models import DELIVERED, PENDING, WebhookDelivery
from bot.webhooks.service import add_endpoint
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import clients, console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_webhooks import START, drive, no_answer_call
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401


@pytest.fixture()
def dead_letters(db, keyring):
    """Two endpoints: a CRM that answers 410 (its deliveries are dead letters) and one that answers 200."""
    gone, ok = Receiver(mode="gone").start(), Receiver(mode="ok").start()
    with session_scope(db) as session:
        _, gone.secret = add_endpoint(session, keyring, gone.url, ["call.finished"], by="test")
        _, ok.secret = add_endpoint(session, keyring, ok.url, ["all"], by="test")
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 2)}, name="集成测试")
    log_graded_call(db, campaign_id, leads["车主-华东"][0], "B", ended_at=START)
    no_answer_call(db, campaign_id, leads["车主-华东"][1], START)
    drive(db, keyring, START, random.Random(2))
    yield gone, ok
    gone.stop()
    ok.stop()


def dead_ids(db) -> list[int]:
    with session_scope(db) as session:
        return list(
            session.execute(
                select(WebhookDelivery.id).where(WebhookDelivery.status == "dead").order_by(WebhookDelivery.id)
            ).scalars()
        )


def test_the_page_lists_endpoints_deliveries_and_dead_letters_and_replays_with_csrf(dead_letters, clients, db):
    gone, ok = dead_letters
    dead = dead_ids(db)
    assert len(dead) == 2  # two calls finished, both refused by the 410 receiver
    manager = clients("manager")
    page = manager.get("/integrations/webhooks")
    assert page.status_code == 200
    for text in ("集成 / Webhook", gone.url, ok.url, "死信（2）", "HTTP 410", "重新投递", "已投递", "通话结束"):
        assert text in page.text
    assert "13900000001" not in page.text

    no_token = manager.http.post(f"/integrations/webhooks/deliveries/{dead[0]}/replay", data={})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    forged = manager.http.post(f"/integrations/webhooks/deliveries/{dead[0]}/replay", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert dead_ids(db) == dead
    done = manager.http.post(
        f"/integrations/webhooks/deliveries/{dead[0]}/replay", data={"csrf_token": manager.csrf}, follow_redirects=True
    )
    assert done.status_code == 200 and f"投递 {dead[0]} 已重新排队" in done.text and "死信（1）" in done.text
    with session_scope(db) as session:
        assert session.get(WebhookDelivery, dead[0]).status == PENDING

    for role in ("ops", "writer"):
        other = clients(role)
        assert other.get("/integrations/webhooks").status_code == 403
        refused = other.post(f"/integrations/webhooks/deliveries/{dead[1]}/replay", data={"csrf_token": other.csrf})
        assert refused.status_code == 403
    assert dead_ids(db) == [dead[1]]


def test_a_manager_replays_a_dead_letter_in_the_browser(dead_letters, page_for, console, db, keyring):
    gone, ok = dead_letters
    dead = dead_ids(db)
    manager = page_for("manager")
    manager.goto(f"{console.url}/")
    manager.click("nav >> text=集成")
    manager.wait_for_selector("#dead-letters")
    assert "死信（2）" in manager.inner_text("#dead-letters")
    assert gone.url in manager.inner_text("#webhook-endpoints")
    no_unmasked_phone(manager)
    shot(manager, "manager-10-webhooks-dead-letters")

    gone.mode = "ok"  # the CRM is fixed; send the dead letter again
    manager.click(f'tr[data-dead="{dead[0]}"] button:has-text("重新投递")')
    manager.wait_for_selector(f'tr[data-delivery="{dead[0]}"][data-status="pending"]')
    assert "已重新排队" in manager.content() and "死信（1）" in manager.inner_text("#dead-letters")
    drive(db, keyring, START, random.Random(2))
    manager.reload()
    manager.wait_for_selector(f'tr[data-delivery="{dead[0]}"][data-status="delivered"]')
    assert [r.answered for r in gone.requests] == [410, 410, 200]
    with session_scope(db) as session:
        assert session.get(WebhookDelivery, dead[0]).status == DELIVERED
    shot(manager, "manager-11-webhooks-replayed")
