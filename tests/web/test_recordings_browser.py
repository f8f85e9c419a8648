"""Issue 18 item 3 in a browser: a manager opens a call page, the recording loads in the
<audio> player (duration > 0, seekable), plays, and the listen is audited; a script writer
gets no player. Screenshot in tests/artifacts/screenshots/."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.dialing.recording_models import Recording, RecordingAudit
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import USERS
from tests.web.recording_fixtures import console, recorded_call  # noqa: F401
from tests.web.test_e2e import browser, no_unmasked_phone, page_for, shot  # noqa: F401

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]


def test_manager_plays_the_call_recording(page_for, console, db, keyring, tmp_path):
    attempt_id = recorded_call(db, keyring, tmp_path)
    with session_scope(db) as session:
        duration = session.execute(select(Recording.duration_s)).scalar_one()

    manager = page_for("manager")
    manager.goto(f"{console.url}/calls/{attempt_id}")
    manager.wait_for_selector("#recording-player")
    manager.wait_for_function("document.querySelector('#recording-player').readyState >= 1")
    loaded = manager.evaluate("document.querySelector('#recording-player').duration")
    assert loaded > 0 and loaded == pytest.approx(duration, abs=0.1)
    # play (muted: headless autoplay rules), then seek: the server answers byte ranges
    manager.evaluate("""async () => { const a = document.querySelector('#recording-player');
                                      a.muted = true; await a.play(); a.currentTime = a.duration / 2; }""")
    manager.wait_for_function("document.querySelector('#recording-player').currentTime > 0")
    assert "下载录音" in manager.inner_text("#call-recording")
    no_unmasked_phone(manager)
    shot(manager, "manager-11-call-recording")
    with session_scope(db) as session:
        listens = session.execute(
            select(RecordingAudit.user_name, RecordingAudit.action).where(RecordingAudit.attempt_id == attempt_id)
        ).all()
    assert (USERS["manager"], "listen") in [tuple(row) for row in listens]

    writer = page_for("writer")
    refused = writer.goto(f"{console.url}/calls/{attempt_id}/recording")
    assert refused.status == 403
    assert writer.locator("audio").count() == 0
