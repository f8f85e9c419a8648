"""Recordings of connected calls (issue 18 item 3): made for every connected call by the
dialer (the simulator's mix, off the call loop), filed by attempt id, erased with the person,
purged after their retention — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from bot.audiences.models import AudiencePack
from bot.campaigns.models import CallAttempt, TurnRow
from bot.campaigns.service import change_status, create_campaign
from bot.cli.app import app
from bot.core.db.engine import session_scope
from bot.core.settings import get_settings
from bot.dialing.dialer import Dialer
from bot.dialing.recording_models import Recording
from bot.dialing.recordings import SimulatedCallRecorder, SwitchCallRecorder, purge_expired, recorder_from_settings
from bot.erasure import forget_phone
from bot.leads.models import Lead
from intents.finished_call import Turn
from telephony.clock import SimClock
from telephony.prompts.audio import read_wav, wav_duration_s
from telephony.recordings import CallMixer
from telephony.simulator.carrier import SimulatorCarrier
from tests.conftest import run
from tests.db_fixtures import TEST_SECRET, db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack
from tests.wecom.conftest import graded_result, log_graded_call, seed_campaign

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

START = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)  # Tuesday 09:00 in Shanghai
PATH = re.compile(r"\d{4}/\d{2}/(\d+)\.wav")


def test_every_connected_call_is_recorded_with_the_robot_at_the_answer(db, keyring, dialogue_agent, tmp_path):
    with session_scope(db) as session:
        audience = AudiencePack(name="车主-华东", scene="车主", tier="普通", attributes={})
        session.add(audience)
        session.flush()
        add_pack(session, keyring, "pack-a", 24)
        for lead in session.execute(select(Lead)).scalars():
            lead.audience_id, lead.name, lead.gender = audience.id, "王小明", "M"
        create_campaign(session, name="recorded", packs=["pack-a"], lines=12, incentive="一份免费的驾乘意外险")
        change_status(session, "recorded", "start", now=START)
    recorder = SimulatedCallRecorder(db, CallMixer.with_espeak(tmp_path / "prompts"), tmp_path / "recordings")

    async def morning():
        clock = SimClock(start=START + timedelta(minutes=40))  # 09:40: inside the window
        carrier = SimulatorCarrier(clock=clock, seed=3)
        dialer = Dialer(
            db, dialogue_agent, carrier, keyring, now=clock.now, worker="test", sleep=clock.sleep, recorder=recorder
        )
        calls = []
        for _minute in range(30):
            for plan in dialer.plan():
                calls += [asyncio.ensure_future(dialer.dial(attempt_id)) for attempt_id in plan.created]
            await clock.sleep(60)
        await asyncio.gather(*calls)

    run(morning())
    recorder.drain()
    assert recorder.failed == 0
    with session_scope(db) as session:
        connected = session.execute(select(CallAttempt).where(CallAttempt.answered_at.is_not(None))).scalars().all()
        recordings = {r.attempt_id: r for r in session.execute(select(Recording)).scalars()}
        phones = [keyring.decrypt_phone(lead.phone_ciphertext) for lead in session.execute(select(Lead)).scalars()]
    assert len(connected) >= 3
    assert set(recordings) == {attempt.id for attempt in connected}  # 100 % of connected calls, nothing else
    ratios: list[float] = []
    for attempt in connected:
        recording = recordings[attempt.id]
        match = PATH.fullmatch(recording.path)
        assert match and int(match.group(1)) == attempt.id
        assert not any(phone in recording.path or phone[-8:] in recording.path for phone in phones)
        path = tmp_path / "recordings" / recording.path
        assert wav_duration_s(path) == pytest.approx(recording.duration_s, abs=0.01)
        assert recording.bytes == path.stat().st_size
        # As long as the call; longer only by what espeak-ng speaks slower than the simulated
        # timing (at most all of the robot's speech, and no more than that).
        with session_scope(db) as session:
            said = (
                session.execute(select(TurnRow.text).where(TurnRow.attempt_id == attempt.id, TurnRow.speaker == "bot"))
                .scalars()
                .all()
            )
        robot_speech_s = sum(wav_duration_s(recorder.mixer.robot.render_line(text, {}).path) for text in said)
        assert attempt.talk_time_s - 0.01 <= recording.duration_s <= attempt.talk_time_s + robot_speech_s + 1
        ratios.append(recording.duration_s / max(attempt.talk_time_s, 0.1))
        assert recording.retain_until - recording.created_at == timedelta(days=180)
        # The robot speaks at the answer: its opening is in the first second, loud.
        audio = np.asarray(read_wav(path).get_array_of_samples(), dtype=np.float64) / 32768
        assert 10 * np.log10(np.mean(audio[:8000] ** 2) + 1e-12) > -35
    print(
        f"recordings {len(recordings)}/{len(connected)}; duration / call length median "
        f"{sorted(ratios)[len(ratios) // 2]:.2f}"
    )


def _recorded_call(db, keyring, recordings: Path, prompts: Path, *, serial: int = 0, ended_at=None) -> int:
    """A logged call with a real mixed recording, made by the recorder as the dialer does."""
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(
            session, keyring, {f"包{serial}": ("车主", 1)}, name=f"录音{serial}", first_serial=serial
        )
    ended_at = ended_at or datetime.now(timezone.utc)
    attempt_id = log_graded_call(db, campaign_id, leads[f"包{serial}"][0], "A", ended_at=ended_at)
    result = graded_result(f"attempt-{attempt_id}", "A", ended_at)
    result.turns = [
        Turn("bot", "您好，这里是安心保险服务平台，本次通话全程录音。", 0.0, "utter_opening", seq=1),
        Turn("callee", "可以，你加我吧", 6.0, seq=2),
    ]
    recorder = SimulatedCallRecorder(db, CallMixer.with_espeak(prompts), recordings)
    recorder.after_call(attempt_id, result)
    recorder.drain()
    assert recorder.made == 1
    return attempt_id


def test_forget_deletes_the_persons_recording_files_and_rows(db, keyring, tmp_path, monkeypatch):
    monkeypatch.setenv("WAIHU_RECORDINGS_DIR", str(tmp_path / "recordings"))
    kept = _recorded_call(db, keyring, tmp_path / "recordings", tmp_path / "prompts", serial=10)
    erased = _recorded_call(db, keyring, tmp_path / "recordings", tmp_path / "prompts", serial=20)
    with session_scope(db) as session:
        files = {r.attempt_id: tmp_path / "recordings" / r.path for r in session.execute(select(Recording)).scalars()}
    assert all(path.exists() for path in files.values())
    with session_scope(db) as session:
        result = forget_phone(session, keyring, "13900000021")  # seed_campaign's first phone after serial 20
    assert result.calls == 1 and result.recordings == 1
    assert not files[erased].exists() and files[kept].exists()
    with session_scope(db) as session:
        assert [r.attempt_id for r in session.execute(select(Recording)).scalars()] == [kept]


def test_purge_after_retention_and_the_dry_run(db, keyring, tmp_path, monkeypatch):
    recordings = tmp_path / "recordings"
    old = _recorded_call(db, keyring, recordings, tmp_path / "prompts", serial=30)
    new = _recorded_call(db, keyring, recordings, tmp_path / "prompts", serial=40)
    now = datetime.now(timezone.utc)
    with session_scope(db) as session:
        session.execute(
            update(Recording).where(Recording.attempt_id == old).values(retain_until=now - timedelta(days=1))
        )
        files = {r.attempt_id: recordings / r.path for r in session.execute(select(Recording)).scalars()}

    # ops' dry run through the CLI: counts, deletes nothing
    monkeypatch.setenv("WAIHU_DATABASE_URL", str(db.url.render_as_string(hide_password=False)))
    monkeypatch.setenv("WAIHU_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("WAIHU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WAIHU_RECORDINGS_DIR", str(recordings))
    dry = CliRunner().invoke(app, ["recordings", "purge", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout) == {
        "due": 1,
        "files": 1,
        "bytes": files[old].stat().st_size,
        "dry_run": True,
        "retention_days": 180,
    }
    assert files[old].exists()

    with session_scope(db) as session:
        report = purge_expired(session, now, recordings_dir=recordings)
    assert (report.due, report.files, report.dry_run) == (1, 1, False)
    assert not files[old].exists() and files[new].exists()
    with session_scope(db) as session:
        assert [r.attempt_id for r in session.execute(select(Recording)).scalars()] == [new]
        assert session.get(CallAttempt, old) is not None  # the call itself stays
    said = CliRunner().invoke(app, ["recordings", "purge"])
    assert said.exit_code == 0 and "0 recording(s) past 180 days" in said.stdout


def test_switch_recorder_maps_the_switch_path_to_ours(db, keyring, tmp_path):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"包": ("车主", 1)}, name="交换机录音")
    ended_at = datetime(2026, 12, 6, 3, 0, tzinfo=timezone.utc)
    attempt_id = log_graded_call(db, campaign_id, leads["包"][0], "B", ended_at=ended_at)
    recorder = SwitchCallRecorder(db, tmp_path / "mounted", "/var/lib/freeswitch/recordings")
    options = recorder.dial_options(attempt_id, ended_at)
    assert options == {"recording_path": f"/var/lib/freeswitch/recordings/2026/12/{attempt_id}.wav"}
    local = tmp_path / "mounted" / "2026" / "12" / f"{attempt_id}.wav"
    assert local.parent.is_dir()  # made for the switch to write into
    from tests.telephony.fake_freeswitch import FakeFreeSwitch

    FakeFreeSwitch()._write_recording(str(local))  # what the switch leaves behind
    recorder.after_call(attempt_id, graded_result(f"attempt-{attempt_id}", "B", ended_at))
    with session_scope(db) as session:
        recording = session.execute(select(Recording)).scalar_one()
    assert (recording.attempt_id, recording.path) == (attempt_id, f"2026/12/{attempt_id}.wav")
    assert recording.duration_s == pytest.approx(1.0) and recording.bytes == local.stat().st_size
    # which recorder each carrier gets: a SIP trunk records in this process (PJSIP), never a fake mix
    assert isinstance(recorder_from_settings(db, "freeswitch"), SwitchCallRecorder)
    assert isinstance(recorder_from_settings(db, "simulator"), SimulatedCallRecorder)
    sip = recorder_from_settings(db, "sip")
    assert isinstance(sip, SwitchCallRecorder) and Path(sip.switch_dir) == get_settings().recordings_dir.resolve()
