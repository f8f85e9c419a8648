"""SIP answers → call statuses over loopback: busy, ringing out, unknown number, a callee
who hangs up in the middle of the robot's first prompt."""

from __future__ import annotations

import time
import uuid

import pytest

from telephony.carrier import CallEvent, Prompt
from telephony.hangup_causes import status_for_hangup
from telephony.sip.carrier import SipConfig, SipConfigError
from telephony.sip.causes import cause_for_sip
from tests.telephony.sip.conftest import SipStack


def dial(
    stack: SipStack, number: str, timeout_s: int = 10, prompt: Prompt | None = None
) -> tuple[list[CallEvent], float]:
    call_id = f"sip-{uuid.uuid4().hex[:8]}"

    async def go() -> list[CallEvent]:
        await stack.carrier.dial(call_id, number, timeout_s=timeout_s)
        seen: list[CallEvent] = []
        while not seen or seen[-1].kind != "hangup":
            event = await stack.carrier.events.get()
            if event.call_id != call_id:
                continue
            seen.append(event)
            if event.kind == "answered" and prompt is not None:
                await stack.carrier.play(call_id, prompt)
        return seen

    started = time.monotonic()
    seen = stack.run(go())
    return seen, time.monotonic() - started


def test_busy_line_486_is_line_busy(sip_stack: SipStack, sipp_callee) -> None:
    [hangup], _ = dial(sip_stack, sipp_callee("uas_busy.xml"))
    assert (hangup.kind, hangup.cause, hangup.status, hangup.answered) == ("hangup", "USER_BUSY", "line_busy", False)


def test_phone_that_rings_out_is_no_answer_after_the_dial_timeout(sip_stack: SipStack, sipp_callee) -> None:
    [hangup], took = dial(sip_stack, sipp_callee("uas_no_answer.xml"), timeout_s=2)
    assert (hangup.cause, hangup.status, hangup.answered) == ("NO_ANSWER", "no_answer", False)
    assert 1.9 <= took < 4


def test_number_the_proxy_does_not_know_is_vacant(sip_stack: SipStack) -> None:
    [hangup], _ = dial(sip_stack, "10086")  # Kamailio answers 404
    assert (hangup.cause, hangup.status) == ("UNALLOCATED_NUMBER", "vacant_number")


def test_callee_hanging_up_mid_prompt_ends_a_conversation_without_a_status(
    sip_stack: SipStack, sipp_callee, long_prompt
) -> None:
    events, took = dial(sip_stack, sipp_callee("uas_hangs_up.xml"), prompt=long_prompt)
    assert [e.kind for e in events] == ["answered", "hangup"]  # no playback_done: cut off mid-prompt
    hangup = events[-1]
    assert (hangup.cause, hangup.status, hangup.answered) == ("NORMAL_CLEARING", None, True)
    assert took < 4  # the BYE at 1.5 s ended it, not the 5 s prompt


def test_sip_responses_map_to_call_statuses() -> None:
    statuses = {code: status_for_hangup(cause_for_sip(code), answered=False) for code in (486, 480, 408, 404, 603, 503)}
    assert statuses == {
        486: "line_busy",
        480: "no_answer",
        408: "no_answer",
        404: "vacant_number",
        603: "call_restricted",
        503: "unreachable",
    }


def test_sip_settings_name_what_to_fix() -> None:
    with pytest.raises(SipConfigError, match="WAIHU_SIP_DOMAIN is not set"):
        SipConfig.from_env({})
    with pytest.raises(SipConfigError, match="WAIHU_SIP_PORT='fifty'"):
        SipConfig.from_env({"WAIHU_SIP_DOMAIN": "trunk.example.cn", "WAIHU_SIP_PORT": "fifty"})
    config = SipConfig.from_env(
        {
            "WAIHU_SIP_DOMAIN": "trunk.example.cn:5060",
            "WAIHU_SIP_REGISTRAR": "sip:trunk.example.cn",
            "WAIHU_SIP_USERNAME": "u1",
        }
    )
    assert (config.domain, config.registrar, config.username, config.local_port) == (
        "trunk.example.cn:5060",
        "sip:trunk.example.cn",
        "u1",
        0,
    )
