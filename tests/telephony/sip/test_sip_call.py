"""A whole call over loopback SIP: the robot (SipCarrier + the real runner + the real Rasa
agent) calls a baresip phone through Kamailio; the phone answers and says a Mandarin WAV;
the call is graded and logged like any other, and the robot's audio is checked at the callee.
The call is recorded (PJSIP's recorder): both voices, from the answer to the hang-up, stored.
Barge-in over SIP: the callee's voice stops an interruptible prompt, not the opening."""

from __future__ import annotations

import time
import uuid
import wave
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import fftconvolve

from bot.campaigns.models import CallAttempt
from bot.campaigns.service import change_status, create_campaign
from bot.conversation.session import CallSession, LeadContext
from bot.core.db.engine import session_scope
from bot.core.settings import get_settings
from bot.dialing.call_prompts import CallPrompts
from bot.dialing.call_runner import EventRouter, run_call
from bot.dialing.call_store import record_call
from bot.dialing.planner import plan_campaign
from bot.dialing.recording_models import Recording
from bot.dialing.recordings import SwitchCallRecorder
from bot.script.project import DialogsProject
from bot.script.script_lines import load_script_domain
from telephony.carrier import Prompt
from telephony.prompts import EspeakNgProvider, PromptRenderer
from telephony.prompts.audio import AudioSegment, silence, to_telephone_audio, write_wav_atomically
from tests.dialing.test_planner import MORNING, add_pack
from tests.telephony.audio_clips import speech
from tests.telephony.sip.conftest import SipStack

REFUSAL = "不需要，谢谢。"
LEAD = LeadContext(surname="王", gender="M")


def clock() -> datetime:
    return MORNING


def samples(path: str | Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)


def correlation_peak(recording: np.ndarray, prompt: np.ndarray) -> float:
    """The highest normalised cross-correlation of `prompt` against every window of `recording`."""
    prompt = prompt - prompt.mean()
    products = fftconvolve(recording, prompt[::-1], mode="valid")
    # Each window's energy from a running sum: np.convolve with a box would be O(n·m), seconds a call.
    running = np.concatenate(([0.0], np.cumsum(recording**2)))
    window_energy = np.maximum(running[len(prompt) :] - running[: -len(prompt)], 0.0)
    norms = np.sqrt(window_energy * (prompt**2).sum()) + 1e-9
    return float(np.max(np.abs(products) / norms))


def callee_wav(folder: Path, name: str, *parts: AudioSegment | int) -> Path:
    audio = silence(0)
    for part in parts:
        audio += silence(part) if isinstance(part, int) else part
    path = folder / f"{name}.wav"
    write_wav_atomically(to_telephone_audio(audio), path)
    return path


@pytest.fixture(scope="session")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One render cache for every call here: each line is synthesized once."""
    return tmp_path_factory.mktemp("prompt-cache")


def test_call_over_sip_is_graded_logged_and_the_robot_is_heard(
    sip_stack: SipStack, baresip_callee, dialogue_agent, db, keyring, tmp_path: Path, prompt_cache: Path
) -> None:
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-sip", 1)
        create_campaign(session, name="sip", packs=["pack-sip"], lines=1)
        campaign = change_status(session, "sip", "start", now=MORNING)
        [attempt_id] = plan_campaign(session, campaign, MORNING).created

    prompts = CallPrompts(
        PromptRenderer(EspeakNgProvider(), prompt_cache), load_script_domain(DialogsProject(get_settings().dialogs_dir))
    )
    audio_for = prompts.for_call(LEAD)
    # The robot's first turn, rendered, to time the callee's reply after it.
    opening = sip_stack.run(CallSession(dialogue_agent, LEAD, call_id=f"probe-{uuid.uuid4().hex}", clock=clock).start())
    opening_paths = [audio_for(line) for line in opening.lines]
    assert opening.lines[0].response == "utter_opening" and len(opening.lines) > 1
    opening_ms = int(len(samples(opening_paths[0])) / 8)
    refusal = speech(REFUSAL)
    sip_stack.recogniser.learn(to_telephone_audio(refusal).raw_data, 8000, REFUSAL)
    # The callee refuses a second after the (uninterruptible) opening, talking over the
    # question that follows it: barge-in. baresip hangs up when its WAV ends: silence after.
    phone = baresip_callee("13911110001", callee_wav(tmp_path, "callee", opening_ms + 1000, refusal, 20_000))
    barge_ins = sip_stack.carrier.barge_ins
    # The SIP carrier's recorder as the worker sets it up: PJSIP writes the local directory.
    recordings_dir = tmp_path / "recordings"
    recorder = SwitchCallRecorder(db, recordings_dir, str(recordings_dir))
    dial_options = recorder.dial_options(attempt_id, MORNING)

    async def call():
        router = EventRouter(sip_stack.carrier)
        try:
            return await run_call(
                sip_stack.carrier,
                router,
                dialogue_agent,
                call_id=f"attempt-{attempt_id}",
                phone=phone.number,
                lead=LEAD,
                clock=clock,
                audio_for=audio_for,
                event_timeout_s=20,
                dial_options=dial_options,
            )
        finally:
            await router.aclose()

    result = sip_stack.run(call(), timeout=60)
    assert result.answered and result.hangup_by == "bot"
    heard = [turn.text for turn in result.turns if turn.speaker == "callee"]
    assert heard == [REFUSAL]
    assert [t.response for t in result.turns if t.speaker == "bot"][-1] == "utter_close_refuse"
    assert result.outcome is not None and result.outcome.grade.grade == "C"
    assert sip_stack.carrier.barge_ins == barge_ins + 1  # the question stopped, the opening played whole

    with session_scope(db) as session:
        record_call(session, session.get(CallAttempt, attempt_id), result)
    recorder.after_call(attempt_id, result)
    with session_scope(db) as session:
        attempt = session.get(CallAttempt, attempt_id)
        assert (attempt.status, attempt.outcome, attempt.grade) == ("completed", "answered", "C")

    # The call's recording: stored, as long as the call, with both voices in it.
    with session_scope(db) as session:
        row = session.query(Recording).filter_by(attempt_id=attempt_id).one()
        relpath, duration_s, size = row.path, row.duration_s, row.bytes
    assert recordings_dir / relpath == Path(dial_options["recording_path"])
    recorded = samples(recordings_dir / relpath)  # 8 kHz mono 16-bit, or samples() fails
    assert size == (recordings_dir / relpath).stat().st_size and duration_s == pytest.approx(len(recorded) / 8000)
    # From the answer: the opening, the refusal a second later, the close; never the 20 s of silence.
    refused_at_s = (opening_ms + 1000 + len(refusal)) / 1000
    assert refused_at_s < duration_s < refused_at_s + 15
    assert correlation_peak(recorded, samples(opening_paths[0])) > 0.5  # the robot
    assert correlation_peak(recorded, samples(callee_wav(tmp_path, "refusal", refusal))) > 0.5  # the callee
    unsaid = samples(callee_wav(tmp_path, "other", speech("这句话机器人没有说过。")))
    assert correlation_peak(recorded, unsaid) < 0.3  # and nobody said this

    # The robot's voice reached the phone: its opening is in what baresip received.
    time.sleep(0.5)  # baresip closes its recording after the BYE
    received = samples(phone.received_audio())
    assert correlation_peak(received, samples(opening_paths[0])) > 0.5
    # …and something it never played is not.
    assert correlation_peak(received, unsaid) < 0.3


def test_callee_talking_over_a_prompt_stops_it_but_not_the_opening(
    sip_stack: SipStack, baresip_callee, long_prompt: Prompt, tmp_path: Path
) -> None:
    # baresip hangs up when its WAV ends: long silence after the words.
    talker = callee_wav(tmp_path, "talker", 1000, speech("等一下，你是哪里？"), 20_000)

    def play(prompt: Prompt, number: str) -> float:
        """Seconds from answer until the prompt is reported done."""
        baresip_callee(number, talker)
        call_id = f"barge-{uuid.uuid4().hex[:8]}"

        async def go() -> float:
            await sip_stack.carrier.dial(call_id, number, timeout_s=5)
            answered_at = 0.0
            while True:
                event = await sip_stack.carrier.events.get()
                if event.call_id != call_id:
                    continue
                if event.kind == "answered":
                    answered_at = time.monotonic()
                    await sip_stack.carrier.play(call_id, prompt)
                elif event.kind == "playback_done":
                    took = time.monotonic() - answered_at
                    await sip_stack.carrier.hangup(call_id)
                    return took
                elif event.kind == "hangup":
                    raise AssertionError(f"call ended before the prompt did: {event}")

        return sip_stack.run(go())

    prompt_s = len(samples(long_prompt.audio_path or "")) / 8000
    barge_ins = sip_stack.carrier.barge_ins
    stopped_after = play(long_prompt, "13911110002")
    assert 1.0 < stopped_after < 2.0  # voice at 1 s, confirmed 100 ms later
    assert sip_stack.carrier.barge_ins == barge_ins + 1
    opening = Prompt("utter_opening", long_prompt.text, long_prompt.audio_path, interruptible=False)
    assert play(opening, "13911110003") > prompt_s - 0.2  # heard whole
