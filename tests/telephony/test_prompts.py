"""Audio prompts: real espeak-ng, 8 kHz mono 16-bit WAV, loudness, cache, concurrency, CLI."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from bot.cli.prompt_commands import load_script_domain, script_lines
from bot.core.errors import UserError
from bot.script.project import DialogsProject
from bot.core.settings import PROJECT_ROOT
from telephony.prompts import EspeakNgProvider, PromptRenderer, TtsUnavailableError
from telephony.prompts.audio import AudioSegment, PEAK_CEILING_DBFS, TARGET_ACTIVE_DBFS, to_telephone_audio
from telephony.prompts.tts import spell_out_acronyms

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (make setup, or apt-get install espeak-ng)")

OPENING = "{callee_title}您好，我是{institution}的AI客服，本通电话为人工智能合成语音，全程录音。"
SLOTS = {"callee_title": "王先生", "institution": "安心保险服务平台"}
LOUDNESS_TOLERANCE_DB = 1.5


class CountingProvider:
    """espeak-ng, recording every text it is asked to synthesize (a cache hit asks nothing)."""

    def __init__(self, inner=None, gain_db: float = 0.0) -> None:
        self.inner = inner or EspeakNgProvider()
        self.name, self.voice = self.inner.name, self.inner.voice
        self.gain_db = gain_db
        self.texts: list[str] = []

    def synthesize(self, text: str) -> AudioSegment:
        self.texts.append(text)
        return self.inner.synthesize(text).apply_gain(self.gain_db)


def speech_level_dbfs(path: Path) -> tuple[float, float]:
    """(RMS over 10 ms frames louder than −45 dBFS, peak) in dBFS, measured with numpy
    straight from the file, independently of the renderer's own level meter."""
    with wave.open(str(path), "rb") as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64) / 32768
        frame = wav.getframerate() // 100
    frames = samples[: samples.size // frame * frame].reshape(-1, frame)
    power = (frames ** 2).mean(axis=1)
    speech = power[power > 10 ** (-45 / 10)]
    return 10 * math.log10(speech.mean()), 20 * math.log10(np.abs(samples).max())


@needs_espeak
def test_rendered_prompt_is_8khz_mono_16bit_with_its_duration(tmp_path: Path) -> None:
    prompt = PromptRenderer(EspeakNgProvider(), tmp_path).render_line(OPENING, SLOTS)

    with wave.open(str(prompt.path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert prompt.duration_s == pytest.approx(wav.getnframes() / 8000)
    assert 5 < prompt.duration_s < 15 and not prompt.is_long
    assert prompt.path.is_relative_to(tmp_path)
    assert [s.slot for s in prompt.segments] == ["callee_title", None, "institution", None]
    assert [s.text for s in prompt.segments][::2] == ["王先生", "安心保险服务平台"]


@needs_espeak
@pytest.mark.parametrize("engine_gain_db", [0.0, -25.0, +6.0])
def test_loudness_is_normalised_whatever_the_engine_level(tmp_path: Path, engine_gain_db: float) -> None:
    provider = CountingProvider(gain_db=engine_gain_db)
    prompt = PromptRenderer(provider, tmp_path).render_line(OPENING, SLOTS)

    level, peak = speech_level_dbfs(prompt.path)
    assert level == pytest.approx(TARGET_ACTIVE_DBFS, abs=LOUDNESS_TOLERANCE_DB)
    assert peak <= PEAK_CEILING_DBFS + 0.1


@needs_espeak
def test_second_render_is_a_cache_hit_without_tts(tmp_path: Path) -> None:
    provider = CountingProvider()
    renderer = PromptRenderer(provider, tmp_path)
    first = renderer.render_line(OPENING, SLOTS)
    calls_after_first = len(provider.texts)
    written_at = first.path.stat().st_mtime_ns

    second = PromptRenderer(provider, tmp_path).render_line(OPENING, SLOTS)

    assert calls_after_first == 4 and not first.cached
    assert len(provider.texts) == calls_after_first, "a cached line must not call the TTS engine"
    assert second.cached and second.path == first.path
    assert second.duration_s == pytest.approx(first.duration_s)
    assert second.path.stat().st_mtime_ns == written_at
    assert all(segment.cached for segment in second.segments)


@needs_espeak
def test_new_slot_value_synthesizes_only_that_value(tmp_path: Path) -> None:
    provider = CountingProvider()
    renderer = PromptRenderer(provider, tmp_path)
    wang = renderer.render_line(OPENING, SLOTS)
    provider.texts.clear()

    li = renderer.render_line(OPENING, {**SLOTS, "callee_title": "李女士"})

    assert provider.texts == ["李女士"]
    assert li.path != wang.path and not li.cached
    assert [(s.text, s.cached) for s in li.segments][:2] == [("李女士", False), ("您好，我是", True)]
    assert all(s.cached for s in li.segments[1:])
    assert [s.path for s in li.segments[1:]] == [s.path for s in wang.segments[1:]]


@needs_espeak
def test_long_line_is_flagged(tmp_path: Path) -> None:
    renderer = PromptRenderer(EspeakNgProvider(), tmp_path)
    long_line = renderer.render_line(OPENING + "来电是为您送一份保险福利，不需要请直接说“不要再打”。" * 2, SLOTS)
    short_line = renderer.render_line("请问您现在方便听我说一分钟吗？", {})

    assert long_line.duration_s > 15 and long_line.is_long
    assert 1 < short_line.duration_s < 15 and not short_line.is_long


def test_missing_espeak_program_names_the_fix(tmp_path: Path) -> None:
    provider = EspeakNgProvider(program=str(tmp_path / "no-such-dir" / "espeak-ng"))

    with pytest.raises(TtsUnavailableError) as raised:
        PromptRenderer(provider, tmp_path / "cache").render_line(OPENING, SLOTS)

    message = str(raised.value)
    assert "espeak-ng" in message and "apt-get install espeak-ng" in message and "make setup" in message
    assert not list((tmp_path / "cache").rglob("*.wav"))


def test_missing_slot_value_is_a_clear_error(tmp_path: Path) -> None:
    from telephony.prompts import PromptTemplateError

    with pytest.raises(PromptTemplateError, match="institution"):
        PromptRenderer(CountingProvider(), tmp_path).render_line(OPENING, {"callee_title": "王先生"})


def test_anti_alias_filter_removes_what_8khz_cannot_carry() -> None:
    def tone(frequency: float) -> AudioSegment:
        t = np.arange(22050) / 22050
        samples = (np.sin(2 * np.pi * frequency * t) * 10000).astype("<i2")
        return AudioSegment(samples.tobytes(), frame_rate=22050, sample_width=2, channels=1)

    in_band, above_nyquist = tone(1000), tone(5000)
    # pydub's set_frame_rate alone would fold 5 kHz to 3 kHz at almost full level.
    assert to_telephone_audio(in_band).dBFS == pytest.approx(in_band.dBFS, abs=0.5)
    assert to_telephone_audio(above_nyquist).dBFS < above_nyquist.dBFS - 30


def test_acronyms_are_spelled_out_for_espeak() -> None:
    # Glued to Han text, cmn-latn-pinyin reads "AI" as the syllable ài; the opening's
    # AI label must be heard as the letters A-I.
    assert spell_out_acronyms("我是AI客服") == "我是 A I 客服"
    assert spell_out_acronyms("下载APP，加VIP") == "下载 A P P ，加 V I P "
    assert spell_out_acronyms("Wang2 xian1 sheng 王先生") == "Wang2 xian1 sheng 王先生"


_CONCURRENT_RENDER = """
import json, sys, time
from pathlib import Path
from telephony.prompts import EspeakNgProvider, PromptRenderer
shared, start_at, worker, rounds = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lines, slots = json.loads(sys.argv[5]), json.loads(sys.argv[6])
durations = []
for round_number in range(rounds):
    # Every round in a fresh cache; the second worker starts 0, 4, 8 … ms later, so one
    # of them looks into the cache while the other is writing the same files.
    time.sleep(max(0.0, start_at + round_number * 0.4 + worker * round_number * 0.004 - time.time()))
    renderer = PromptRenderer(EspeakNgProvider(), shared / f"round{round_number}")
    durations.append([renderer.render_line(line, slots).duration_s for line in lines])
print(json.dumps(durations))
"""
CONCURRENT_ROUNDS = 6


@needs_espeak
def test_concurrent_renders_in_two_processes_leave_whole_files(tmp_path: Path) -> None:
    lines = [OPENING, "{callee_title}，我是{institution}的AI智能客服。", "好的，感谢您的接听，再见。", OPENING + "再见。"]
    shared, reference = tmp_path / "shared", tmp_path / "reference"
    start_at = time.time() + 2.0  # both processes past their imports, then render together
    workers = [subprocess.Popen([sys.executable, "-c", _CONCURRENT_RENDER, str(shared), str(start_at), str(worker),
                                 str(CONCURRENT_ROUNDS), json.dumps(lines), json.dumps(SLOTS)],
                                cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for worker in range(2)]
    results = [worker.communicate(timeout=60) for worker in workers]

    assert all(worker.returncode == 0 for worker in workers), [err for _, err in results]
    alone_renderer = PromptRenderer(EspeakNgProvider(), reference)
    rendered_alone = [alone_renderer.render_line(line, SLOTS) for line in lines]
    # What each process got back (not only what is on disk at the end) must be whole.
    for out, _ in results:
        assert json.loads(out) == [[prompt.duration_s for prompt in rendered_alone]] * CONCURRENT_ROUNDS
    for round_number in range(CONCURRENT_ROUNDS):
        for line, alone in zip(lines, rendered_alone):
            together = shared / f"round{round_number}" / "lines" / alone.path.name
            assert together.read_bytes() == alone.path.read_bytes(), f"{line!r} differs from a render done alone"
    assert not [p for p in shared.rglob("*") if p.is_file() and p.suffix != ".wav"], "temporary files left behind"


def test_a_file_being_written_is_invisible_until_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic half of the concurrency guarantee: while a prompt is being written,
    its final path holds the previous whole file (or nothing), never a partial one."""
    import threading

    from telephony.prompts import audio

    target = tmp_path / "lines" / "prompt.wav"
    old, new = audio.silence(500), audio.silence(2000)
    audio.write_wav_atomically(old, target)
    writing, may_finish = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:  # the data is written, the rename not yet done
        writing.set()
        may_finish.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(audio.os, "fsync", slow_fsync)
    writer = threading.Thread(target=audio.write_wav_atomically, args=(new, target))
    writer.start()
    assert writing.wait(10)
    seen_during_write = audio.wav_duration_s(target)
    may_finish.set()
    writer.join(10)

    assert seen_during_write == pytest.approx(0.5)
    assert audio.wav_duration_s(target) == pytest.approx(2.0)
    assert [p.name for p in target.parent.iterdir()] == ["prompt.wav"]


# ---- the script's lines, per variant (plain YAML, no TTS) -------------------------------

def test_variant_picks_its_conditioned_variation_else_the_default() -> None:
    project = DialogsProject(PROJECT_ROOT / "dialogs")
    standard, _ = script_lines(project, "standard")
    benefit, slots = script_lines(project, "benefit_first")
    by_name = lambda lines: {line.response: line.template for line in lines}  # noqa: E731

    assert by_name(benefit)["utter_opening"].startswith("{callee_title}您好，{institution}为您准备了")
    assert by_name(standard)["utter_opening"].startswith("{callee_title}您好，这里是{institution}，本次通话为AI合成语音")
    assert by_name(benefit)["utter_fallback"] == by_name(standard)["utter_fallback"]
    assert set(by_name(standard)) == set(by_name(benefit)) == set(load_script_domain(project).responses)
    assert slots["callee_title"] == "王先生" and slots["institution"] == "安心保险服务平台"


def test_unknown_variant_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown script variant 'nope'.*standard, benefit_first"):
        script_lines(DialogsProject(PROJECT_ROOT / "dialogs"), "nope")


# ---- `waihu prompts render --json` on the real script --------------------------------------




@pytest.fixture(scope="module")
def standard_render(tmp_path_factory: pytest.TempPathFactory) -> dict:
    prompts_dir = tmp_path_factory.mktemp("prompts")
    env = {**os.environ, "WAIHU_PROMPTS_DIR": str(prompts_dir)}
    waihu = Path(sys.executable).with_name("waihu")
    result = subprocess.run([str(waihu), "prompts", "render", "--json"], env=env, cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["prompts_dir"] == str(prompts_dir)
    return report


@needs_espeak
def test_cli_renders_every_standard_response(standard_render: dict) -> None:
    expected = {line.response for line in script_lines(DialogsProject(PROJECT_ROOT / "dialogs"), "standard")[0]}
    rendered = {line["response"]: line for line in standard_render["lines"]}

    assert set(rendered) == expected and len(standard_render["lines"]) == len(expected)
    for line in rendered.values():
        assert line["seconds"] > 0.5 and Path(line["path"]).is_file() and not line["cached"]
        assert line["flagged"] == (line["seconds"] > 15)
    assert standard_render["flagged"] == [name for name, line in rendered.items() if line["flagged"]]


@needs_espeak
def test_no_standard_line_is_over_15_seconds(standard_render: dict) -> None:
    too_long = {line["response"]: line["seconds"] for line in standard_render["lines"] if line["seconds"] > 15}

    assert too_long == {}, f"lines over 15 s: {too_long}"
