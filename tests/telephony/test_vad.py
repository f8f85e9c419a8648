"""The endpointer on real speech (espeak-ng) and silence: turn ends, barge-in, no-input timers."""

from __future__ import annotations

import numpy as np
import pytest

from telephony.vad import FRAME_MS, Endpointer, EndpointerConfig, VadConfigError, VadEvent
from tests.telephony.audio_clips import needs_espeak, pcm, speech

pytestmark = needs_espeak


def feed_in_chunks(endpointer: Endpointer, audio: bytes, chunk: int = 333) -> list[VadEvent]:
    """Odd-sized chunks, as RTP/recorder callbacks deliver them."""
    events: list[VadEvent] = []
    for start in range(0, len(audio), chunk):
        events.extend(endpointer.feed(audio[start : start + chunk]))
    return events


def test_one_utterance_gives_one_turn_ending_700ms_after_the_voice() -> None:
    said = speech("你好，我想了解一下这个保险。")
    events = feed_in_chunks(Endpointer(), pcm(500, said, 1500))
    kinds = [e.kind for e in events]
    assert kinds == ["speech_start", "end_of_turn"]
    start, end = events
    assert 500 <= start.at_ms <= 500 + 400  # the voice starts after the 500 ms lead-in
    assert end.at_ms - end.last_voiced_ms == 700
    speech_ms = len(said) - 0
    # The utterance carries the speech (most of it; VAD trims quiet edges).
    utterance_ms = len(end.audio) // 16
    assert 0.7 * speech_ms <= utterance_ms <= speech_ms + 100
    assert end.last_voiced_ms <= 500 + speech_ms + FRAME_MS


def test_pause_inside_a_sentence_shorter_than_the_end_silence_keeps_one_turn() -> None:
    events = feed_in_chunks(Endpointer(), pcm(300, speech("我考虑一下"), 400, speech("再说吧"), 1200))
    assert [e.kind for e in events] == ["speech_start", "end_of_turn"]


def test_a_shorter_end_silence_setting_splits_the_same_audio_in_two_turns() -> None:
    config = EndpointerConfig.from_env({"WAIHU_VAD_END_SILENCE_MS": "300"})
    events = feed_in_chunks(Endpointer(config), pcm(300, speech("我考虑一下"), 600, speech("再说吧"), 1200))
    assert [e.kind for e in events] == ["speech_start", "end_of_turn", "speech_start", "end_of_turn"]
    assert all(e.at_ms - e.last_voiced_ms == 300 for e in events if e.kind == "end_of_turn")


def test_silence_reprompts_at_10s_and_gives_up_at_30s_counting_from_the_last_voice() -> None:
    endpointer = Endpointer()
    events = feed_in_chunks(endpointer, pcm(12_000), chunk=1600)
    assert [(e.kind, e.at_ms) for e in events] == [("no_input", 10_000)]
    endpointer.reset_silence()  # the robot re-prompted: a new 10 s, but the 30 s clock runs on
    events = feed_in_chunks(endpointer, pcm(19_000), chunk=1600)
    assert [(e.kind, e.at_ms) for e in events] == [("no_input", 22_000), ("silence_timeout", 30_000)]


def test_speech_restarts_both_silence_clocks() -> None:
    events = feed_in_chunks(Endpointer(), pcm(8000, speech("喂？"), 9000))
    kinds = [e.kind for e in events]
    assert kinds == ["speech_start", "end_of_turn"]  # 8 s then 9 s: never 10 s in a row


def test_faint_line_noise_is_not_speech() -> None:
    rng = np.random.default_rng(7)
    hiss = (rng.normal(0, 60, 8000 * 3)).astype("<i2").tobytes()  # about -55 dBFS of hiss
    assert feed_in_chunks(Endpointer(), hiss + pcm(2000)) == []


def test_16khz_audio_is_supported_and_other_rates_are_a_clear_error() -> None:
    said = speech("好的").set_frame_rate(16000)
    events = feed_in_chunks(Endpointer(EndpointerConfig(sample_rate=16000)), said.raw_data + bytes(32000))
    assert [e.kind for e in events] == ["speech_start", "end_of_turn"]
    with pytest.raises(VadConfigError, match="8000 or 16000"):
        EndpointerConfig(sample_rate=44100)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WAIHU_VAD_END_SILENCE_MS": "0.7s"}, "WAIHU_VAD_END_SILENCE_MS"),
        ({"WAIHU_VAD_AGGRESSIVENESS": "5"}, "0, 1, 2 or 3"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(VadConfigError, match=message):
        EndpointerConfig.from_env(env)
