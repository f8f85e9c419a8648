"""Call recordings in the console (issue 18 item 3): the call page's player and 下载录音 link for
managers, ops and admins; script writers get no page and 403 on the file; the file is
audio/wav with Range support (seeking); every listen and download is audited (no phone)."""

from __future__ import annotations

import shutil
import wave
from io import BytesIO

import pytest
from sqlalchemy import select

from bot.core.db.engine import session_scope
from bot.dialing.recording_models import Recording, RecordingAudit
from tests.db_fixtures import database_url, db, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import MOBILE, USERS, clients  # noqa: F401
from tests.web.recording_fixtures import console, recorded_call  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def audits(db) -> list[tuple]:
    with session_scope(db) as session:
        return [
            tuple(r)
            for r in session.execute(
                select(RecordingAudit.attempt_id, RecordingAudit.user_name, RecordingAudit.action).order_by(
                    RecordingAudit.id
                )
            )
        ]


def test_player_download_range_and_audit(console, clients, db, keyring, tmp_path, caplog) -> None:
    attempt_id = recorded_call(db, keyring, tmp_path)
    with session_scope(db) as session:
        recording = session.execute(select(Recording)).scalar_one()
        size = recording.bytes

    manager = clients("manager")
    page = manager.get(f"/calls/{attempt_id}")
    assert page.status_code == 200
    assert f'<audio controls preload="metadata" src="/calls/{attempt_id}/recording"' in page.text
    assert f'href="/calls/{attempt_id}/recording?download=1"' in page.text and "下载录音" in page.text
    assert not MOBILE.search(page.text)
    assert audits(db) == []  # showing the page is not a listen

    with caplog.at_level("INFO", logger="bot.dialing.recordings"):
        whole = manager.get(f"/calls/{attempt_id}/recording")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    assert whole.headers["accept-ranges"] == "bytes" and int(whole.headers["content-length"]) == size
    assert whole.headers["content-disposition"].startswith("inline")
    with wave.open(BytesIO(whole.content)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() / 8000 == pytest.approx(recording.duration_s, abs=0.01)
    # the player seeking: a later byte range is a 206 and not another listen
    part = manager.get(f"/calls/{attempt_id}/recording", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == whole.content[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{size}"

    ops = clients("ops")
    download = ops.get(f"/calls/{attempt_id}/recording?download=1")
    assert download.status_code == 200 and download.content == whole.content
    assert download.headers["content-disposition"].startswith("attachment")
    assert f"call-{attempt_id}.wav" in download.headers["content-disposition"]  # by attempt id, never a phone
    assert clients("admin").get(f"/calls/{attempt_id}/recording", headers={"Range": "bytes=0-"}).status_code == 206

    assert audits(db) == [
        (attempt_id, USERS["manager"], "listen"),
        (attempt_id, USERS["ops"], "download"),
        (attempt_id, USERS["admin"], "listen"),
    ]
    lines = [r.getMessage() for r in caplog.records if "recording listen" in r.getMessage()]
    assert lines == [f"recording listen of attempt {attempt_id} by {USERS['manager']}"]
    assert not any(MOBILE.search(r.getMessage()) for r in caplog.records)


def test_script_writers_get_no_player_and_403_on_the_file(console, clients, db, keyring, tmp_path) -> None:
    attempt_id = recorded_call(db, keyring, tmp_path)
    writer = clients("writer")
    assert writer.get(f"/calls/{attempt_id}").status_code == 403
    refused = writer.get(f"/calls/{attempt_id}/recording")
    assert refused.status_code == 403 and "RIFF" not in refused.text
    assert writer.get(f"/calls/{attempt_id}/recording?download=1").status_code == 403
    anonymous = clients()
    assert anonymous.get(f"/calls/{attempt_id}/recording").status_code in (303, 401)
    assert audits(db) == []


def test_a_call_without_a_recording_says_so(console, clients, db, keyring, tmp_path) -> None:
    attempt_id = recorded_call(db, keyring, tmp_path)
    with session_scope(db) as session:
        recording = session.execute(select(Recording)).scalar_one()
        (tmp_path / "recordings" / recording.path).unlink()  # purged from disk, row still there
    manager = clients("manager")
    missing = manager.get(f"/calls/{attempt_id}/recording")
    assert missing.status_code == 404 and "录音文件已不在" in missing.text
    with session_scope(db) as session:
        session.delete(session.execute(select(Recording)).scalar_one())
    page = manager.get(f"/calls/{attempt_id}")
    assert "<audio" not in page.text and "这通电话没有录音" in page.text
    assert manager.get(f"/calls/{attempt_id}/recording").status_code == 404
