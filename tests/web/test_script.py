"""The script writers' tools through the console's API on a live server: publishing (snapshot,
refusals), the diff against the published version, the training job, and the chat panel on the
process-wide dialogue agent (intent, confidence, the grade so far)."""
from __future__ import annotations

import shutil
import time

import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.core.settings import PROJECT_ROOT
from bot.script.models import ScriptPublication
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from bot.web.app import create_app
from tests.web.conftest import Browserless, add_role_users, clients, console, console_config, live_server  # noqa: F401

JSON = {"Accept": "application/json"}


def load(writer, path: str) -> dict:
    return writer.get(f"/api/v1/script/file?path={path}", headers=JSON).json()


def save(writer, path: str, text: str, version: str, **extra):
    return writer.put("/api/v1/script/file", json={"path": path, "text": text, "base_version": version, **extra})


def wait_for_training(writer, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = writer.get("/api/v1/script/train", headers=JSON).json()
        if status["state"] != "running":
            return status
        time.sleep(0.5)
    raise AssertionError("training did not finish")


def test_publish_stores_a_snapshot_and_the_diff_compares_to_it(console, clients, db, dialogs_copy):
    writer = clients("writer")
    published = writer.post("/api/v1/script/publications", json={"variant": "benefit_first", "note": "首发"})
    assert published.status_code == 201, published.text
    body = published.json()
    assert body["variant"] == "benefit_first" and body["model_file"].startswith("waihu-") and body["files"] >= 20
    with session_scope(db) as session:
        row = session.execute(select(ScriptPublication)).scalar_one()
        assert row.files["domain/responses.yml"] == (dialogs_copy.root / "domain/responses.yml").read_text("utf-8")
        assert row.fingerprint == dialogs_copy.fingerprint() and row.published_by == "writer.user"

    unchanged = writer.get("/api/v1/script/diff?path=domain/responses.yml", headers=JSON).json()
    assert unchanged["publication_id"] == body["id"] and not unchanged["changed"]

    current = load(writer, "domain/responses.yml")
    assert save(writer, "domain/responses.yml", current["text"].replace("一分钟", "半分钟"), current["version"]).status_code == 200
    diff = writer.get("/api/v1/script/diff?path=domain/responses.yml", headers=JSON).json()
    assert diff["changed"]
    changed = [(line["kind"], line["text"]) for line in diff["lines"] if line["kind"] in ("add", "del")]
    assert changed == [("del", '-    - text: "请问您现在方便听我说一分钟吗？"'), ("add", '+    - text: "请问您现在方便听我说半分钟吗？"')]

    # ops see which variants are released
    ops_page = clients("ops").get("/ops/campaigns").text
    assert "benefit_first" in ops_page and "已发布" in ops_page


def test_publish_is_refused_without_a_model_or_with_errors(console, clients):
    writer = clients("writer")
    current = load(writer, "domain/responses.yml")
    edited = current["text"].replace("一分钟", "半分钟")
    saved = save(writer, "domain/responses.yml", edited, current["version"])
    no_model = writer.post("/api/v1/script/publications", json={"variant": "standard"})
    assert no_model.status_code == 400 and "请先" in no_model.json()["detail"] and "训练" in no_model.json()["detail"]
    broken = edited.replace("本次通话由AI合成语音完成，祝您生活愉快", "祝您生活愉快", 1)
    assert save(writer, "domain/responses.yml", broken, saved.json()["version"], allow_errors=True).status_code == 200
    with_errors = writer.post("/api/v1/script/publications", json={"variant": "standard"})
    assert with_errors.status_code == 400 and "个错误，不能发布" in with_errors.json()["detail"]
    assert any("lacks the AI label" in d for d in with_errors.json()["details"])
    unknown = writer.post("/api/v1/script/publications", json={"variant": "nope"})
    assert unknown.status_code == 400
    page = writer.http.post("/script/publish", data={"csrf_token": writer.csrf, "variant": "standard"})
    assert page.status_code == 400 and "发布失败" in page.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # training does not touch the database
def test_training_an_unchanged_script_reuses_the_model(console, clients, dialogs_copy):
    writer = clients("writer")
    started = writer.post("/api/v1/script/train", json={})
    assert started.status_code == 202 and started.json()["state"] == "running"
    again = writer.post("/api/v1/script/train", json={})
    assert again.status_code == 400 and "已有一次训练在进行中" in again.json()["detail"]
    status = wait_for_training(writer, timeout=120)
    assert status["state"] == "succeeded", status
    assert status["trained"] is False and status["model"] == status["current_model"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # training does not touch the database
def test_training_refuses_a_script_with_errors(console, clients):
    writer = clients("writer")
    current = load(writer, "domain/responses.yml")
    broken = current["text"].replace("本次通话由AI合成语音完成，祝您生活愉快", "祝您生活愉快", 1)
    assert save(writer, "domain/responses.yml", broken, current["version"], allow_errors=True).status_code == 200
    writer.post("/api/v1/script/train", json={})
    status = wait_for_training(writer, timeout=120)
    assert status["state"] == "failed" and "fix them before training" in status["error"]
    assert any("lacks the AI label" in p for p in status["problems"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # training does not touch the database
def test_a_changed_script_trains_a_new_model(db, database_url, dialogs_copy, tmp_path):
    """The one real retrain in these tests (~1 min): a changed line gives a new model, found as current."""
    models = tmp_path / "models"
    models.mkdir()
    for model in (PROJECT_ROOT / "models").glob("waihu-*.tar.gz"):
        shutil.copy2(model, models / model.name)
    add_role_users(db)
    # A private models folder (pruning there touches nothing shared); Rasa's component cache is
    # the repo's, so an edited line retrains only what depends on it.
    app = create_app(console_config(database_url, dialogs_copy.root, tmp_path / "data", models_dir=models), engine=db)
    app.state.services.trainer.environment["RASA_CACHE_DIRECTORY"] = str(PROJECT_ROOT / "models" / ".rasa-cache")
    with live_server(app) as server:
        writer = Browserless(server.url).login("writer")
        current = load(writer, "domain/responses.yml")
        save(writer, "domain/responses.yml", current["text"].replace("一分钟", "半分钟"), current["version"])
        before = writer.get("/api/v1/script/train", headers=JSON).json()
        assert before["current_model"] is None
        writer.post("/api/v1/script/train", json={})
        status = wait_for_training(writer)
        writer.close()
    assert status["state"] == "succeeded", status
    assert status["trained"] is True and status["current_model"] == status["model"]
    assert (models / status["model"]).exists()
    print(f"retrain after one edited line: {status['seconds']} s")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_chat_panel_shows_intent_confidence_and_grade(console, clients):
    writer = clients("writer")
    started = time.perf_counter()
    opened = writer.post("/api/v1/script/chat", json={"variant": "standard", "surname": "李", "gender": "F"})
    load_seconds = time.perf_counter() - started
    assert opened.status_code == 200, opened.text
    chat = opened.json()
    assert chat["lines"][0]["response"] == "utter_opening" and "李女士" in chat["lines"][0]["text"]
    assert not chat["stale_model"] and chat["intent"] is None

    robot = writer.post(f"/api/v1/script/chat/{chat['chat_id']}", json={"text": "你是机器人吗"}).json()
    assert robot["intent"] == "ask_is_robot" and robot["intent_label"] == "问是否机器人" and robot["confidence"] > 0.5
    assert any(line["response"] == "utter_answer_is_robot" for line in robot["lines"])
    assert robot["grade"]["grade"] in "ABCD" and robot["grade"]["reason"]

    typed_number = writer.post(f"/api/v1/script/chat/{chat['chat_id']}", json={"text": "我手机是13812345678"}).json()
    assert typed_number["heard"] == "我手机是138****5678"

    agreed = writer.post(f"/api/v1/script/chat/{chat['chat_id']}", json={"text": "好的你加我微信吧"}).json()
    assert agreed["intent"] == "agree_add_wecom" and agreed["ended"]
    assert agreed["grade"]["grade"] == "A" and agreed["grade"]["label"] == "A 有明确意向"
    ended = writer.post(f"/api/v1/script/chat/{chat['chat_id']}", json={"text": "喂"})
    assert ended.status_code == 400 and "已经挂断" in ended.json()["detail"]

    started = time.perf_counter()
    second = writer.post("/api/v1/script/chat", json={"variant": "benefit_first"})
    reuse_seconds = time.perf_counter() - started
    assert second.status_code == 200 and second.json()["chat_id"] != chat["chat_id"]
    assert reuse_seconds < 5, "the second chat reuses the loaded agent"
    other = clients("admin").post(f"/api/v1/script/chat/{chat['chat_id']}", json={"text": "你好"})
    assert other.status_code == 400  # a chat belongs to the writer who opened it
    print(f"first chat (agent load + warm-up) {load_seconds:.1f} s, next chat {reuse_seconds:.2f} s")
