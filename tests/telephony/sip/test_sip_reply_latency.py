"""A finished SIP call keeps its reply latencies (the endpointing bench reads them): from the
callee's last voiced frame to the robot's first reply frame, once per answered turn."""

from __future__ import annotations

import uuid
from pathlib import Path

from telephony.carrier import Prompt
from telephony.prompts.audio import silence, to_telephone_audio, write_wav_atomically
from telephony.prompts.tts import EspeakNgProvider
from tests.telephony.audio_clips import speech
from tests.telephony.sip.conftest import SipStack

SAID = "我现在在开车，你长话短说。"


def test_a_finished_call_keeps_the_reply_latency_of_each_turn(
    sip_stack: SipStack, baresip_callee, tmp_path: Path
) -> None:
    said = to_telephone_audio(speech(SAID))
    sip_stack.recogniser.learn(said.raw_data, 8000, SAID)
    wav = tmp_path / "callee.wav"
    write_wav_atomically(to_telephone_audio(silence(500) + said + silence(20_000)), wav)
    reply = Prompt("utter_ack", "好的。", str(tmp_path / "reply.wav"))
    write_wav_atomically(to_telephone_audio(EspeakNgProvider().synthesize(reply.text)), tmp_path / "reply.wav")
    phone = baresip_callee("13911110009", wav)
    call_id = f"latency-{uuid.uuid4().hex[:8]}"
    end_silence_s = sip_stack.carrier.vad.end_silence_ms / 1000

    async def go() -> None:
        await sip_stack.carrier.dial(call_id, phone.number, timeout_s=5)
        while True:
            event = await sip_stack.carrier.events.get()
            if event.call_id != call_id:
                continue
            if event.kind == "speech" and event.text == SAID:
                await sip_stack.carrier.play(call_id, reply)
                # As the bench does: hang up at once; the reply is finished first, then the BYE.
                await sip_stack.carrier.hangup(call_id)
            elif event.kind == "hangup":
                return

    sip_stack.run(go(), timeout=30)
    call = sip_stack.carrier.finished_call(call_id)
    assert call is not None, "a finished call must be kept for inspection"
    [latency] = call.reply_latencies
    # The end-of-turn silence, then the next 20 ms media ticks: well under 300 ms more.
    assert end_silence_s <= latency < end_silence_s + 0.3
