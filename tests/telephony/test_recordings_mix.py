"""The simulator's call recording: robot lines and callee replies (real espeak-ng, two voices)
mixed at their offsets into one 8 kHz mono 16-bit WAV as long as the call."""

from __future__ import annotations

import shutil
import wave
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from intents.finished_call import Turn
from telephony.prompts.audio import read_wav
from telephony.recordings import CALLEE_VOICE, CallMixer, recording_relpath

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

OPENING = "您好，我是安心保险的AI客服，本次通话为人工智能合成语音，全程录音。"
ASK = "请问您现在方便听我说一分钟吗？"
REPLY = "嗯你说吧"


def samples(path: Path) -> np.ndarray:
    return np.asarray(read_wav(path).get_array_of_samples(), dtype=np.float64)


def rms_dbfs(chunk: np.ndarray) -> float:
    power = float(np.mean((chunk / 32768.0) ** 2)) if chunk.size else 0.0
    return -120.0 if power <= 0 else 10 * np.log10(power)


def test_robot_and_callee_are_at_their_offsets(tmp_path: Path) -> None:
    mixer = CallMixer.with_espeak(tmp_path / "cache")
    turns = [
        Turn("bot", OPENING, 0.0, "utter_opening", seq=1),
        Turn("bot", ASK, 0.0, "utter_ask_good_time", seq=2),  # same turn: plays after the opening
        Turn("callee", REPLY, 26.0, seq=3),
        Turn("callee", "", 30.0, seq=4),  # silence: nothing in the mix
    ]
    path = tmp_path / "rec" / recording_relpath(41, datetime(2026, 12, 6, tzinfo=timezone.utc))
    mixed = mixer.mix(turns, talk_time_s=32.0, path=path)

    assert path == tmp_path / "rec" / "2026" / "12" / "41.wav"
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() / 8000 == pytest.approx(mixed.duration_s)
    assert mixed.duration_s == pytest.approx(32.0)  # the call's length (answer → hang-up)
    assert mixed.bytes == path.stat().st_size

    opening, ask, reply = mixed.placed
    assert (opening.speaker, opening.start_ms) == ("bot", 0)
    assert ask.start_ms == opening.duration_ms  # queued behind the opening, as a carrier plays prompts
    assert reply.speaker == "callee"
    assert reply.start_ms + reply.duration_ms == pytest.approx(26000 - 700, abs=1)  # ends before the ASR final

    track = samples(path)
    per_ms = 8  # samples per millisecond at 8 kHz
    robot = samples(mixer.robot.render_line(OPENING, {}).path)
    # The robot's rendered line is in the track sample for sample where it was placed.
    start = opening.start_ms * per_ms
    assert np.array_equal(track[start : start + robot.size], robot)
    callee = samples(mixer.callee.render_line(REPLY, {}).path)
    at = reply.start_ms * per_ms
    assert np.array_equal(track[at : at + callee.size], callee)
    # Speech where lines are, digital silence between them and after the last one.
    assert rms_dbfs(track[start : start + robot.size]) > -30
    gap_from, gap_to = (ask.start_ms + ask.duration_ms) * per_ms, at
    assert gap_to - gap_from > 8000 and rms_dbfs(track[gap_from:gap_to]) == -120.0
    assert rms_dbfs(track[(reply.start_ms + reply.duration_ms) * per_ms :]) == -120.0


def test_turns_keep_their_order_when_speech_runs_longer_than_the_offsets(tmp_path: Path) -> None:
    """The simulator timed the robot's line shorter than espeak-ng speaks it: the reply waits
    for the question to end, and the robot's next line waits for the reply."""
    mixer = CallMixer.with_espeak(tmp_path / "cache")
    turns = [Turn("bot", OPENING, 0.0, seq=1), Turn("callee", REPLY, 3.0, seq=2), Turn("bot", ASK, 3.2, seq=3)]
    mixed = mixer.mix(turns, talk_time_s=6.0, path=tmp_path / "late.wav")
    opening, reply, ask = mixed.placed
    assert reply.start_ms == opening.start_ms + opening.duration_ms + 300
    assert ask.start_ms == reply.start_ms + reply.duration_ms + 300
    assert mixed.duration_s == pytest.approx((ask.start_ms + ask.duration_ms) / 1000, abs=0.001)
    assert mixed.duration_s > 6.0
    # The callee hung up 1.5 s into the opening: the recording ends there, the line cut.
    cut = mixer.mix(turns[:1], talk_time_s=1.5, path=tmp_path / "cut.wav", callee_hung_up=True)
    assert cut.duration_s == pytest.approx(1.5)


def test_callee_voice_differs_and_tts_is_cached(tmp_path: Path) -> None:
    mixer = CallMixer.with_espeak(tmp_path / "cache")
    assert mixer.callee.provider.voice == CALLEE_VOICE != mixer.robot.provider.voice
    robot = samples(mixer.robot.render_line(REPLY, {}).path)
    callee = samples(mixer.callee.render_line(REPLY, {}).path)
    assert robot.size != callee.size or not np.array_equal(robot, callee)

    turns = [Turn("callee", REPLY, 3.0, seq=1), Turn("callee", REPLY, 9.0, seq=2)]
    first = mixer.mix(turns, 10.0, tmp_path / "a.wav")
    cached = sorted((tmp_path / "cache").rglob("*.wav"))
    second = mixer.mix(turns, 10.0, tmp_path / "b.wav")
    assert sorted((tmp_path / "cache").rglob("*.wav")) == cached  # nothing synthesised again
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert first.duration_s == second.duration_s == pytest.approx(10.0)


def test_a_path_never_holds_a_phone_number() -> None:
    at = datetime(2027, 1, 31, 23, 0, tzinfo=timezone.utc)
    assert recording_relpath(12345, at) == "2027/01/12345.wav"
    with pytest.raises(ValueError):
        recording_relpath("13812345678.wav", at)  # type: ignore[arg-type]
