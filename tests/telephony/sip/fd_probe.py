"""Start a SipCarrier while the process has few files open, then open more than select()
takes (1024), dial `NUMBER` at `DOMAIN` (a SIPp busy callee) and print the hang-up as JSON:
{"status": ..., "cause": ..., "open_files": n}. A process of its own: the padding must not
leak into the test session. Used by test_sip_capacity.py:

    python -m tests.telephony.sip.fd_probe DOMAIN NUMBER
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from telephony.asr.clips import ClipRecogniser
from telephony.sip.carrier import SELECT_FD_LIMIT, SipCarrier, SipConfig


async def probe(domain: str, number: str) -> dict:
    carrier = SipCarrier(SipConfig(domain=domain, bind="127.0.0.1"), ClipRecogniser())
    await carrier.start()
    padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(SELECT_FD_LIMIT + 50)]
    assert min(padding[-10:]) >= SELECT_FD_LIMIT
    await carrier.dial("fd-probe", number, timeout_s=5)
    event = await asyncio.wait_for(carrier.events.get(), 10)
    result = {"status": event.status, "cause": event.cause, "open_files": len(os.listdir("/proc/self/fd"))}
    await carrier.aclose()
    for fd in padding:
        os.close(fd)
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1], sys.argv[2]))), flush=True)
