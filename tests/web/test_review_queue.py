"""Issue 16 item 17 in the console: the 待标注 page and its JSON API for script writers (admin
too): masked turns, Chinese intent names, 标注/跳过 with CSRF, the example written into the
project the console trains from, test lines refused naming file:line."""

from __future__ import annotations

from rasa.shared.nlu.training_data.loading import load_data

from bot.script.nlu_examples import TOOL_FILE
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.script.review_data import log_call, seed
from tests.web.conftest import MOBILE, clients, console  # noqa: F401
from tests.wecom.conftest import _test_secret  # noqa: F401


def test_writers_label_and_skip_on_the_page(clients, db, keyring, dialogs_copy) -> None:
    campaign_id, leads = seed(db, keyring)
    attempt_id, (number_turn, unsure, later) = log_call(
        db,
        campaign_id,
        leads[0],
        [("加我微信吧 13912345678", "nlu_fallback", 0.2), ("那我再琢磨琢磨", "deny", 0.3), ("呃", "nlu_fallback", 0.1)],
    )
    writer = clients("writer")
    page = writer.get("/script/review")
    assert page.status_code == 200
    assert "待标注" in page.text and "下次训练生效" in page.text and "139****5678" in page.text
    assert not MOBILE.search(page.text)
    assert '<option value="hesitate">犹豫/考虑一下（hesitate）</option>' in page.text
    assert '<option value="faq/claims">问理赔（faq/claims）</option>' in page.text
    assert 'id="review-total">3<' in page.text and 'id="added-since-training">0<' in page.text
    assert f"#{attempt_id}" in page.text and f'href="/calls/{attempt_id}"' not in page.text  # not a writer's page

    # a form without the CSRF token is refused, nothing written
    forged = writer.http.post(f"/script/review/{unsure}", data={"intent": "hesitate", "action": "label"})
    assert forged.status_code == 403 and not (dialogs_copy.root / TOOL_FILE).exists()

    done = writer.http.post(
        f"/script/review/{unsure}", data={"intent": "hesitate", "action": "label", "csrf_token": writer.csrf}
    )
    assert done.status_code == 303 and done.headers["location"] == "/script/review?page=1"
    after = writer.get("/script/review").text
    assert "已加入训练样例：“那我再琢磨琢磨” → 犹豫/考虑一下（dialogs/data/nlu/from_calls.yml:" in after
    assert 'id="review-total">2<' in after and 'id="added-since-training">1<' in after
    examples = load_data(str(dialogs_copy.root / TOOL_FILE)).intent_examples
    assert [(m.get("text"), m.get("intent")) for m in examples] == [("那我再琢磨琢磨", "hesitate")]

    writer.http.post(f"/script/review/{later}", data={"action": "skip", "csrf_token": writer.csrf})
    assert "已跳过这条发言" in writer.get("/script/review").text
    missing = writer.http.post(
        f"/script/review/{number_turn}", data={"intent": "", "action": "label", "csrf_token": writer.csrf}
    )
    assert missing.status_code == 303
    assert "请先在下拉框中选择意图" in writer.get("/script/review").text


def test_the_api_refuses_a_test_line_and_roles_are_kept(clients, db, keyring, dialogs_copy) -> None:
    lines = (dialogs_copy.tests_dir / "nlu_realistic.yml").read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.startswith("    - ") and len(line) > 9)
    campaign_id, leads = seed(db, keyring)
    attempt_id, (turn, other) = log_call(
        db,
        campaign_id,
        leads[0],
        [(lines[number - 1].strip()[2:], "nlu_fallback", 0.2), ("嗯嗯那个啥", "nlu_fallback", 0.2)],
    )
    admin = clients("admin")
    queue = admin.get("/api/v1/script/review", headers={"Accept": "application/json"}).json()
    assert queue["total"] == 2 and queue["threshold"] == 0.4
    assert [t["turn_id"] for t in queue["turns"]] == [turn, other] and queue["turns"][0][
        "call_url"
    ] == f"/calls/{attempt_id}"
    assert f'href="/calls/{attempt_id}"' in admin.get("/script/review").text  # admins may open the call

    refused = admin.post(f"/api/v1/script/review/{turn}", json={"intent": "affirm"})
    assert refused.status_code == 200, refused.text
    body = refused.json()
    assert body["outcome"] == "in_test_set" and body["place"] == f"dialogs/tests/nlu_realistic.yml:{number}"
    assert f"测试集 dialogs/tests/nlu_realistic.yml:{number}" in body["message"] and "永远不用于训练" in body["message"]
    assert not (dialogs_copy.root / TOOL_FILE).exists()

    again = admin.post(f"/api/v1/script/review/{turn}", json={"intent": "deny"})
    assert again.status_code == 400 and "已由 admin.user 处理过（测试集句子，未加入）" in again.json()["detail"]
    unknown = admin.post(f"/api/v1/script/review/{other}", json={"intent": "agree"})
    assert unknown.status_code == 400 and "不在话术的意图列表中" in unknown.json()["detail"]
    assert admin.post("/api/v1/script/review/999999", json={"skip": True}).status_code == 404

    ops, manager = clients("ops"), clients("manager")
    assert ops.get("/script/review").status_code == 403
    assert manager.post(f"/api/v1/script/review/{other}", json={"skip": True}).status_code == 403
    assert admin.get("/api/v1/script/review", headers={"Accept": "application/json"}).json()["total"] == 1
