"""Endpointing latency over loopback SIP: from the end of the callee's speech to the robot's
first audio frame sent, per turn, excluding ASR (the deterministic ClipRecogniser).

A baresip phone registered at a local Kamailio (the loopback test proxy) says the same
Mandarin sentence N times with pauses; the robot (SipCarrier, PJSIP in this process) answers
each recognised turn with a short prompt. Two figures per turn:
- from_last_voice_ms: from the last voiced frame the robot received to its first frame of the
  reply — includes the configured end-of-turn silence (WAIHU_VAD_END_SILENCE_MS, 700 ms);
- after_endpoint_ms: the same minus that silence — what the robot adds once the turn has ended
  (VAD frame, recogniser, event to the runtime, prompt start, next 20 ms media tick).
Needs kamailio and baresip (make setup). Usage: python -m bench.bench_endpointing [--turns 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from telephony.asr.clips import ClipRecogniser
from telephony.carrier import Prompt
from telephony.prompts.audio import silence, to_telephone_audio, write_wav_atomically
from telephony.prompts.tts import EspeakNgProvider
from telephony.sip.carrier import SipCarrier, SipConfig
from telephony.vad import EndpointerConfig

KAMAILIO_CFG = Path(__file__).resolve().parent.parent / "tests" / "telephony" / "sip" / "kamailio.cfg"
SAID = "我现在在开车，你长话短说。"
REPLY = "好的。"
NUMBER = "13911119999"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(3)
    except subprocess.TimeoutExpired:  # baresip waits for its BYE to be answered
        process.kill()
        process.wait(3)


def start_baresip(home: Path, proxy_port: int, wav: Path) -> subprocess.Popen:
    home.mkdir(parents=True)
    (home / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{free_udp_port()}\naudio_player aubridge,nil\n"
        f"audio_alert aubridge,nil\naudio_source aufile,{wav}\nmodule_path /usr/lib/baresip/modules\n"
        "module g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule_app account.so\nmodule_app menu.so\n"
    )
    (home / "accounts").write_text(
        f"<sip:{NUMBER}@127.0.0.1:{proxy_port}>;regint=60;answermode=auto;audio_codecs=PCMA\n"
    )
    (home / "contacts").write_text("")
    log = home / "baresip.log"
    process = subprocess.Popen(["baresip", "-f", str(home)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while "200 OK" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise SystemExit(f"baresip did not register: {log.read_text(errors='replace')[-1000:]}")
        time.sleep(0.05)
    return process


async def run_turns(carrier: SipCarrier, turns: int, reply: Prompt) -> tuple[int, list[float]]:
    """Answer each recognised turn; the number of turns heard and the call's reply latencies."""
    await carrier.start()
    await carrier.dial("bench", NUMBER, timeout_s=5)
    heard = 0
    ended = False
    while heard < turns and not ended:
        event = await asyncio.wait_for(carrier.events.get(), 20)
        if event.kind == "speech" and event.text:
            heard += 1
            await carrier.stop_playback("bench")
            await carrier.play("bench", reply)
        ended = event.kind == "hangup"
    if not ended:
        await carrier.hangup("bench", "NORMAL_CLEARING")
        # A normal hang-up lets the last reply finish before the BYE: the call is finished
        # (finished_call finds it, its latencies final) only once its hang-up event is out.
        while (await asyncio.wait_for(carrier.events.get(), 20)).kind != "hangup":
            pass
    call = carrier.finished_call("bench")
    return heard, list(call.reply_latencies) if call else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=15)
    args = parser.parse_args()
    vad = EndpointerConfig.from_env()
    with tempfile.TemporaryDirectory(prefix="waihu-bench-endpointing-") as folder:
        work = Path(folder)
        espeak = EspeakNgProvider()
        said = to_telephone_audio(espeak.synthesize(SAID))
        callee = silence(0)
        for _ in range(args.turns):
            callee += silence(1500) + said + silence(1500)
        callee += silence(10_000)
        write_wav_atomically(to_telephone_audio(callee), work / "callee.wav")
        write_wav_atomically(to_telephone_audio(espeak.synthesize(REPLY)), work / "reply.wav")
        recogniser = ClipRecogniser()
        recogniser.learn(said.raw_data, 8000, SAID)

        proxy_port = free_udp_port()
        kamailio = subprocess.Popen(
            ["kamailio", "-DD", "-E", "-f", str(KAMAILIO_CFG), "-l", f"udp:127.0.0.1:{proxy_port}"]
            + ["-w", folder, "-Y", folder, "-P", str(work / "kamailio.pid")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        phone = start_baresip(work / "baresip", proxy_port, work / "callee.wav")
        carrier = SipCarrier(SipConfig(domain=f"127.0.0.1:{proxy_port}", bind="127.0.0.1"), recogniser, vad=vad)
        reply = Prompt("utter_ack", REPLY, str(work / "reply.wav"))
        loop = asyncio.new_event_loop()
        try:
            heard, latencies = loop.run_until_complete(run_turns(carrier, args.turns, reply))
            loop.run_until_complete(carrier.aclose())
        finally:
            loop.close()
            for process in (phone, kamailio):
                stop(process)

    if not latencies:
        raise SystemExit(
            f"bench_endpointing: no reply latency measured ({heard} of {args.turns} turns recognised): "
            "check that baresip answered and that the ClipRecogniser matched the callee's sentence"
        )
    from_voice = [1000 * s for s in latencies]
    after_endpoint = [ms - vad.end_silence_ms for ms in from_voice]
    print(
        json.dumps(
            {
                "bench": "endpointing",
                "turns_said": args.turns,
                "turns_recognised": heard,
                "turns": len(from_voice),
                "end_silence_ms": vad.end_silence_ms,
                "from_last_voice_ms": {
                    "p50": round(statistics.median(from_voice), 1),
                    "p95": round(percentile(from_voice, 0.95), 1),
                },
                "after_endpoint_ms": {
                    "p50": round(statistics.median(after_endpoint), 1),
                    "p95": round(percentile(after_endpoint, 0.95), 1),
                    "max": round(max(after_endpoint), 1),
                },
                "target_after_endpoint_p95_ms": 300,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
