"""Q.850 hang-up causes → call statuses, for every carrier adapter.

FreeSWITCH names the causes this way, SIP responses map onto them (RFC 3398), and the
simulator ends its calls with them, so one table serves all adapters.
"""

from __future__ import annotations

# Q.850 hang-up causes as FreeSWITCH names them → call statuses (DESIGN.md). A cause not
# listed on a call that was answered is a normal end of conversation.
HANGUP_CAUSE_STATUS: dict[str, str] = {
    "USER_BUSY": "line_busy",
    "NO_ANSWER": "no_answer",
    "NO_USER_RESPONSE": "no_answer",
    "ALLOTTED_TIMEOUT": "no_answer",
    "UNALLOCATED_NUMBER": "vacant_number",
    "NO_ROUTE_DESTINATION": "vacant_number",
    "INVALID_NUMBER_FORMAT": "vacant_number",
    "NUMBER_CHANGED": "vacant_number",
    "SUBSCRIBER_ABSENT": "powered_off",
    "CALL_REJECTED": "call_restricted",
    "OUTGOING_CALL_BARRED": "call_restricted",
    "INCOMING_CALL_BARRED": "call_restricted",
    "NETWORK_OUT_OF_ORDER": "unreachable",
    "DESTINATION_OUT_OF_ORDER": "unreachable",
    "NORMAL_TEMPORARY_FAILURE": "unreachable",
    "RECOVERY_ON_TIMER_EXPIRE": "unreachable",
    "USER_NOT_REGISTERED": "unreachable",
    "GATEWAY_DOWN": "unreachable",
}


def status_for_hangup(cause: str, answered: bool) -> str | None:
    if answered and cause not in ("UNALLOCATED_NUMBER", "SUBSCRIBER_ABSENT"):
        return None
    return HANGUP_CAUSE_STATUS.get(cause, "unreachable" if not answered else None)
