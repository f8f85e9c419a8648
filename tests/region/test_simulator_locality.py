"""The simulator picks up a local caller number more often than a far one (a modest,
documented effect: telephony/simulator/caller_locality.py), so the demo's report shows it."""

from __future__ import annotations

import math

from telephony.clock import SimClock
from telephony.simulator.caller_locality import (
    LOCAL_PICKUP_FACTOR,
    NON_LOCAL_PICKUP_FACTOR,
    locality,
    pickup_factor,
)
from telephony.simulator.carrier import SimulatorCarrier
from tests.conftest import run
from tests.telephony.test_simulator import MONDAY, dial_and_collect, shanghai, test_config  # noqa: F401

# Mobiles 1380000xxxx are Beijing numbers; 021 is Shanghai, 010 Beijing.
BEIJING_CALLER, SHANGHAI_CALLER = "01061234567", "02161234567"


def test_locality_of_caller_and_callee():
    assert locality("13800001234", BEIJING_CALLER) == "city"
    assert locality("13800001234", SHANGHAI_CALLER) == "other"
    assert locality("02512345678", "051812345678") == "province"  # Nanjing and Lianyungang, Jiangsu
    assert locality("13800001234", None) is None
    assert pickup_factor("13800001234", None) == 1.0
    assert pickup_factor("13800001234", BEIJING_CALLER) == LOCAL_PICKUP_FACTOR
    assert pickup_factor("13800001234", SHANGHAI_CALLER) == NON_LOCAL_PICKUP_FACTOR


def test_a_local_caller_number_is_answered_more_often(test_config):  # noqa: F811
    n = 3000
    rates = {}
    for caller in (BEIJING_CALLER, SHANGHAI_CALLER):
        carrier = SimulatorCarrier(test_config, clock=SimClock(shanghai(10, MONDAY)), seed=3)
        calls = {f"call-{i}": f"1380000{i % 10000:04d}" for i in range(n)}

        async def dial_all(carrier=carrier, caller=caller):
            original = carrier.dial

            async def dial(call_id, phone, timeout_s=30, **options):
                return await original(call_id, phone, timeout_s, caller_id=caller, **options)

            carrier.dial = dial  # type: ignore[method-assign]
            return await dial_and_collect(carrier, calls, audience_pack="晚间", script=())

        run(dial_all())
        assert carrier.call("call-0").caller_id == caller
        rates[caller] = carrier.outcomes["answered"] / n
    # The pack answers 20 % at 10:00 on a Monday: ×1.15 local, ×0.8 from another province.
    for caller, factor in ((BEIJING_CALLER, LOCAL_PICKUP_FACTOR), (SHANGHAI_CALLER, NON_LOCAL_PICKUP_FACTOR)):
        expected = 0.2 * factor
        assert abs(rates[caller] - expected) < 4 * math.sqrt(expected * (1 - expected) / n), (caller, rates)
    assert rates[BEIJING_CALLER] > rates[SHANGHAI_CALLER]
