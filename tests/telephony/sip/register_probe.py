"""Start a SipCarrier that registers, in a process of its own (PJSIP is one library per
process, and the folder's shared carrier does not register), and print what happened as
JSON: {"registered": bool, "code": int, "reason": str, "expires": int, "error": str,
"took_s": float}. Used by test_sip_registration.py:

    python -m tests.telephony.sip.register_probe REGISTRAR_URI DOMAIN USERNAME PASSWORD WAIT_S [STARTS]

STARTS > 1: start that many carriers one after the other in this process, as a worker that
retries its start does (the last one's result is printed, with "starts": how many ran).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from telephony.asr.clips import ClipRecogniser
from telephony.sip.carrier import SipCarrier, SipConfig, SipRegistrationError


async def probe(registrar: str, domain: str, username: str, password: str, wait_s: float) -> dict:
    config = SipConfig(domain=domain, registrar=registrar, username=username, password=password, bind="127.0.0.1")
    carrier = SipCarrier(config, ClipRecogniser(), register_wait_s=wait_s)
    started = time.monotonic()
    error = ""
    try:
        await carrier.start()
    except SipRegistrationError as failure:
        error = str(failure)
    took = time.monotonic() - started
    registration = carrier.registration
    if not error:
        await carrier.aclose()
    return {
        "registered": registration.ok and not error,
        "code": registration.code,
        "reason": registration.reason,
        "expires": registration.expires,
        "error": error,
        "took_s": round(took, 3),
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    registrar, domain, username, password, wait_s = sys.argv[1:6]
    starts = int(sys.argv[6]) if len(sys.argv) > 6 else 1

    async def run() -> dict:
        for _ in range(starts):
            result = await probe(registrar, domain, username, password, float(wait_s))
        return result | {"starts": starts}

    print(json.dumps(asyncio.run(run())), flush=True)


if __name__ == "__main__":
    main()
