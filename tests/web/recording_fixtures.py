"""A console whose recordings directory is the test's own, and a call with a real recording."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.core.db.engine import session_scope
from bot.dialing.recordings import SimulatedCallRecorder
from bot.web.app import create_app
from intents.finished_call import Turn
from telephony.recordings import CallMixer
from tests.web.conftest import add_role_users, console_config, live_server
from tests.wecom.conftest import graded_result, log_graded_call, seed_campaign


@pytest.fixture()
def console(db, database_url, dialogs_copy, tmp_path, monkeypatch):
    """The console (one user per role) reading recordings from tmp_path/recordings."""
    monkeypatch.setenv("WAIHU_RECORDINGS_DIR", str(tmp_path / "recordings"))
    add_role_users(db)
    app = create_app(console_config(database_url, dialogs_copy.root, tmp_path / "data"), engine=db)
    assert app.state.config.settings.recordings_dir == tmp_path / "recordings"
    with live_server(app) as server:
        yield server


def recorded_call(db, keyring, tmp_path: Path) -> int:
    """A graded call whose recording the simulator's recorder mixed (robot and callee, real TTS)."""
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 2)}, name="录音回放")
    ended_at = datetime.now(timezone.utc)
    attempt_id = log_graded_call(db, campaign_id, leads["车主-华东"][0], "A", ended_at=ended_at)
    result = graded_result(f"attempt-{attempt_id}", "A", ended_at)
    result.turns = [
        Turn("bot", "您好，这里是安心保险服务平台的AI合成语音客服，本次通话全程录音。", 0.0, "utter_opening", seq=1),
        Turn("callee", "嗯，你说", 9.0, seq=2),
        Turn("bot", "我让顾问用企业微信添加您，可以吗？", 9.5, "utter_ask_wecom", seq=3),
        Turn("callee", "可以", 15.0, seq=4),
    ]
    recorder = SimulatedCallRecorder(db, CallMixer.with_espeak(tmp_path / "prompts"), tmp_path / "recordings")
    recorder.after_call(attempt_id, result)
    recorder.drain()
    assert recorder.made == 1
    return attempt_id
