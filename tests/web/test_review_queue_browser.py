"""Issue 16 item 17 in a browser: a script writer opens 待标注 from the navigation, labels one
unsure caller turn and skips another; the queue shrinks, the counter of examples waiting for
the next training goes up, and the example is in the console's copy of dialogs/. Screenshots
go to tests/artifacts/screenshots/."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.loading import load_data

from bot.campaigns.grading import correct_grade
from bot.core.db.engine import session_scope
from bot.script.nlu_examples import TOOL_FILE
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.script.review_data import log_call, seed
from tests.web.conftest import console  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401
from tests.wecom.conftest import _test_secret  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_a_writer_labels_and_skips_unsure_turns(page_for, console, db, keyring, dialogs_copy):
    campaign_id, leads = seed(db, keyring)
    log_call(
        db,
        campaign_id,
        leads[0],
        [("嗯 这个我得问问我爱人", "nlu_fallback", 0.31), ("你加我 号码是13912345678", "uncertain_agreement", 0.52)],
        minutes=5,
    )
    corrected, _ = log_call(
        db, campaign_id, leads[1], [("不用了吧 我考虑考虑", "refuse", 0.82)], minutes=15, script="benefit_first"
    )
    log_call(db, campaign_id, leads[2], [("喂喂 信号不好", "nlu_fallback", 0.25)], minutes=25)
    with session_scope(db) as session:
        correct_grade(session, corrected, "B", "客户只是想考虑，不是拒绝", "manager.user")

    writer = page_for("writer")
    writer.click("nav >> text=待标注")
    writer.wait_for_selector("#review-queue")
    assert writer.inner_text("#review-total") == "4"
    rows = writer.locator("#review-queue tbody tr")
    assert rows.count() == 4
    assert "不用了吧 我考虑考虑" in rows.nth(1).inner_text() and "等级经人工更正" in rows.nth(1).inner_text()
    no_unmasked_phone(writer)
    shot(writer, "writer-10-review-queue")

    row = writer.locator("#review-queue tbody tr", has_text="我考虑考虑")
    row.locator('select[name="intent"]').select_option("hesitate")
    row.locator('button[value="label"]').click()
    writer.wait_for_selector(".flash.success")
    assert "下次训练生效" in writer.inner_text(".flash.success")
    assert writer.inner_text("#review-total") == "3" and writer.inner_text("#added-since-training") == "1"

    writer.locator("#review-queue tbody tr", has_text="信号不好").locator('button[value="skip"]').click()
    writer.wait_for_selector(".flash.success >> text=已跳过")
    assert writer.inner_text("#review-total") == "2"
    no_unmasked_phone(writer)
    shot(writer, "writer-11-review-labelled")

    examples = load_data(str(dialogs_copy.root / TOOL_FILE)).intent_examples
    assert [(m.get("text"), m.get("intent")) for m in examples] == [("不用了吧 我考虑考虑", "hesitate")]
