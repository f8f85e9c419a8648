"""Trunk registration: with WAIHU_SIP_REGISTRAR set, the carrier REGISTERs (answering a
digest challenge) before it takes any call, and a refusal is a clear error with the SIP
code — not a worker that hangs at start, nor one whose every INVITE the trunk refuses.

Each case runs the carrier in a process of its own (register_probe.py): PJSIP is one
library per process and the folder's shared carrier does not register. SIPp plays the
registrar (uas_registrar.xml: 401 challenge, then 200 for waihu01 / s3cret, else 403)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.telephony.sip.conftest import HERE, free_udp_port, require_tools

PROJECT_ROOT = HERE.parents[2]


@dataclass
class Probe:
    result: dict
    log: str
    registrar_exit: int | None


def register(
    tmp_path: Path, password: str, *, registrar_up: bool = True, wait_s: float = 5.0, starts: int = 1
) -> Probe:
    require_tools()
    port = free_udp_port()
    registrar = None
    if registrar_up:
        registrar = subprocess.Popen(
            ["sipp", "-sf", str(HERE / "uas_registrar.xml"), "-i", "127.0.0.1", "-p", str(port), "-m", "1"]
            + ["-nostdin", "-trace_err", "-error_file", str(tmp_path / "sipp-errors.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.telephony.sip.register_probe", f"sip:127.0.0.1:{port}"]
            + [f"127.0.0.1:{port}", "waihu01", password, str(wait_s), str(starts)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        exit_code = registrar.wait(10) if registrar is not None else None
    finally:
        if registrar is not None and registrar.poll() is None:
            registrar.terminate()
            registrar.wait(10)
    return Probe(result, done.stderr, exit_code)


def test_the_carrier_answers_the_digest_challenge_and_is_registered(tmp_path: Path) -> None:
    probe = register(tmp_path, "s3cret")
    assert probe.result == probe.result | {"registered": True, "code": 200, "expires": 300, "error": ""}
    assert "SIP registration at sip:127.0.0.1:" in probe.log and "200 OK, expires in 300 s" in probe.log
    assert probe.registrar_exit == 0  # SIPp's registrar challenged, verified the digest and granted it


def test_a_refused_registration_stops_the_start_with_its_sip_code(tmp_path: Path) -> None:
    probe = register(tmp_path, "wrong-password")
    assert (probe.result["registered"], probe.result["code"], probe.result["expires"]) == (False, 403, 0)
    assert "failed: 403 Forbidden (check WAIHU_SIP_USERNAME and WAIHU_SIP_PASSWORD)" in probe.result["error"]
    assert "WARNING telephony.sip.carrier: SIP registration at sip:127.0.0.1:" in probe.log
    assert "failed: 403 Forbidden" in probe.log
    assert probe.result["took_s"] < 5


def test_a_registrar_that_never_answers_fails_the_start_after_the_wait_not_never(tmp_path: Path) -> None:
    # Twice in one process, as a worker retrying its start: the first carrier's PJSIP is gone
    # (before, the second aborted the process in pj_thread_this).
    probe = register(tmp_path, "s3cret", registrar_up=False, wait_s=1.0, starts=2)
    assert (probe.result["registered"], probe.result["code"], probe.result["starts"]) == (False, 0, 2)
    assert "no answer within 1 s (check WAIHU_SIP_REGISTRAR" in probe.result["error"]
    assert 1.0 <= probe.result["took_s"] < 5
