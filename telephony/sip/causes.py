"""SIP final responses → the Q.850 causes telephony.hangup_causes maps to call statuses
(RFC 3398 §8.2.6.1, as FreeSWITCH applies it), so SIP calls are graded like every other."""

from __future__ import annotations

SIP_RESPONSE_CAUSES: dict[int, str] = {
    200: "NORMAL_CLEARING",
    403: "CALL_REJECTED",
    404: "UNALLOCATED_NUMBER",
    408: "NO_ANSWER",  # the far end never gave a final answer: it rang out
    410: "NUMBER_CHANGED",
    480: "NO_USER_RESPONSE",  # temporarily unavailable: nobody picked up
    484: "INVALID_NUMBER_FORMAT",
    486: "USER_BUSY",
    487: "NO_ANSWER",  # our CANCEL after the ring timeout
    502: "NETWORK_OUT_OF_ORDER",
    503: "NORMAL_TEMPORARY_FAILURE",
    504: "RECOVERY_ON_TIMER_EXPIRE",
    600: "USER_BUSY",
    603: "CALL_REJECTED",
    604: "UNALLOCATED_NUMBER",
}


def cause_for_sip(code: int) -> str:
    """The Q.850 cause of a SIP final response (an unknown 4xx-6xx: a temporary failure)."""
    return SIP_RESPONSE_CAUSES.get(code, "NORMAL_CLEARING" if code < 300 else "NORMAL_TEMPORARY_FAILURE")
