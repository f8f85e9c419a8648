"""Loopback SIP: a real Kamailio proxy, SIPp and baresip callees, and the robot's SipCarrier
(PJSIP in this process), all on 127.0.0.1.

The tools are Debian packages (make setup installs them). Missing: the tests skip naming the
package on a developer's machine, and FAIL in CI (CI=true), like PostgreSQL and Redis.
PJSIP is one library per process, so one carrier (and one event loop) serves the whole folder.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from telephony.asr.clips import ClipRecogniser
from telephony.carrier import Prompt
from telephony.prompts.audio import to_telephone_audio, write_wav_atomically
from telephony.prompts.tts import EspeakNgProvider
from telephony.sip.carrier import SipCarrier, SipConfig
from telephony.vad import EndpointerConfig
from tests.db_fixtures import service_unavailable

HERE = Path(__file__).parent
TOOLS = {"kamailio": "kamailio", "sipp": "sip-tester", "baresip": "baresip-core"}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sipp_number(port: int) -> str:
    """The number the test proxy routes to the SIPp callee on `port` (its last five digits)."""
    return f"139000{port:05d}"


def require_tools() -> None:
    missing = [package for program, package in TOOLS.items() if shutil.which(program) is None]
    if missing:
        service_unavailable(
            f"SIP test tools not installed: {', '.join(missing)} (make setup, or apt-get install -y {' '.join(missing)})"
        )


@dataclass
class Proxy:
    port: int
    process: subprocess.Popen


@pytest.fixture(scope="session")
def sip_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    require_tools()
    port = free_udp_port()
    work = tmp_path_factory.mktemp("kamailio")
    log = (work / "kamailio.log").open("w")
    process = subprocess.Popen(
        ["kamailio", "-DD", "-E", "-f", str(HERE / "kamailio.cfg"), "-l", f"udp:127.0.0.1:{port}"]
        + ["-w", str(work), "-Y", str(work), "-P", str(work / "kamailio.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)
    if process.poll() is not None:
        pytest.fail(f"kamailio did not start: {(work / 'kamailio.log').read_text()[-2000:]}")
    yield Proxy(port, process)
    process.terminate()
    process.wait(10)
    log.close()


@dataclass
class SipStack:
    loop: asyncio.AbstractEventLoop
    carrier: SipCarrier
    proxy: Proxy
    recogniser: ClipRecogniser

    def run(self, coro, timeout: float = 30.0):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="session")
def sip_stack(sip_proxy: Proxy) -> Iterator[SipStack]:
    loop = asyncio.new_event_loop()
    recogniser = ClipRecogniser()
    # Short silence timers so the silence tests take seconds, not half a minute.
    vad = EndpointerConfig(end_silence_ms=700, reprompt_ms=2000, hangup_ms=4000)
    carrier = SipCarrier(SipConfig(domain=f"127.0.0.1:{sip_proxy.port}", bind="127.0.0.1"), recogniser, vad=vad)
    stack = SipStack(loop, carrier, sip_proxy, recogniser)
    stack.run(carrier.start())
    yield stack
    stack.run(carrier.aclose())
    loop.close()


class SippCallees:
    """Starts SIPp callees; `started[number]` is the SIPp process that number reaches."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.started: dict[str, subprocess.Popen] = {}

    def __call__(self, scenario: str, calls: int = 1) -> str:
        """SIPp with one of the scenarios here, for `calls` calls; returns the number that reaches it."""
        port = free_udp_port()
        process = subprocess.Popen(
            ["sipp", "-sf", str(HERE / scenario), "-i", "127.0.0.1", "-p", str(port), "-m", str(calls), "-nostdin"]
            + ["-trace_err", "-error_file", str(self.work / "sipp-errors.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=self.work,
        )
        number = sipp_number(port)
        self.started[number] = process
        time.sleep(0.3)
        return number

    def stop(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.terminate()
            process.wait(10)


@pytest.fixture()
def sipp_callee(tmp_path: Path) -> Iterator[SippCallees]:
    """Start SIPp with one of the scenarios here; returns the number that reaches it."""
    callees = SippCallees(tmp_path)
    yield callees
    callees.stop()


@dataclass
class Baresip:
    number: str
    recordings: Path
    process: subprocess.Popen

    def received_audio(self) -> Path:
        """The WAV of what the callee heard (baresip's sndfile module: the decoder side)."""
        files = sorted(self.recordings.glob("*-dec.wav"))
        assert files, f"baresip recorded nothing in {self.recordings}"
        return files[-1]


@pytest.fixture()
def baresip_callee(tmp_path: Path, sip_proxy: Proxy) -> Iterator:
    """A baresip phone registered at the proxy that answers at once and says `wav` (8 kHz mono)."""
    started: list[Baresip] = []

    def start(number: str, wav: Path) -> Baresip:
        home = tmp_path / f"baresip-{number}"
        recordings = home / "received"
        recordings.mkdir(parents=True)
        port = free_udp_port()
        (home / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen 127.0.0.1:{port}",
                    "audio_player aubridge,nil",  # nobody listens: the recording is what counts
                    "audio_alert aubridge,nil",
                    f"audio_source aufile,{wav}",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module aufile.so",
                    "module aubridge.so",
                    "module sndfile.so",
                    "module_app account.so",
                    "module_app menu.so",
                    f"snd_path {recordings}",
                    "",
                ]
            )
        )
        (home / "accounts").write_text(
            f"<sip:{number}@127.0.0.1:{sip_proxy.port}>;regint=60;answermode=auto;audio_codecs=PCMA,PCMU\n"
        )
        (home / "contacts").write_text("")
        log = home / "baresip.log"
        process = subprocess.Popen(
            ["baresip", "-f", str(home)], stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        phone = Baresip(number, recordings, process)
        started.append(phone)
        deadline = time.monotonic() + 10
        while "200 OK" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"baresip did not register at the proxy: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        return phone

    yield start
    for phone in started:
        phone.process.terminate()
        phone.process.wait(10)


@pytest.fixture(scope="session")
def long_prompt(tmp_path_factory: pytest.TempPathFactory) -> Prompt:
    """A rendered Mandarin prompt of about five seconds (espeak-ng, the renderer's 8 kHz WAV)."""
    text = "您好，我是安心保险的客服小安，今天给您来电是想介绍一款少儿重疾险，请问您现在方便听我说两句吗？"
    path = tmp_path_factory.mktemp("prompts") / "pitch.wav"
    write_wav_atomically(to_telephone_audio(EspeakNgProvider().synthesize(text)), path)
    return Prompt("utter_pitch", text, str(path))
