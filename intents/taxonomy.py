"""The taxonomy (DESIGN.md): callee intents and call statuses. Other tools and evaluation sets use these names."""
from __future__ import annotations

CALLEE_INTENTS: tuple[str, ...] = (
    "greet",
    "affirm",
    "deny",
    "agree_add_wecom",
    "refuse",
    "stop_calling",
    "hostile",
    "busy",
    "callback_request",
    "ask_identity",
    "ask_number_source",
    "ask_is_robot",
    "ask_price",
    "ask_detail",
    "already_insured",
    "wrong_person",
    "not_heard",
    "goodbye",
)

FALLBACK_INTENT = "nlu_fallback"

# Sent by the call runtime when the callee picks up; never produced by NLU.
CALL_START_INTENT = "call_start"

# Questions the callee may ask; answering them is engagement, not refusal.
QUESTION_INTENTS = frozenset(
    {"ask_identity", "ask_number_source", "ask_is_robot", "ask_price", "ask_detail"}
)
# Hard opt-out: permanent do-not-call, effective before the next dial.
OPT_OUT_INTENTS = frozenset({"stop_calling", "hostile"})

# Call statuses: how a call ended when it never reached a person (DESIGN.md). Carriers
# report them on hang-up, `intents.announcements` reads them from operator recordings.
VACANT_NUMBER = "vacant_number"
SUSPENDED = "suspended"
POWERED_OFF = "powered_off"
UNREACHABLE = "unreachable"
LINE_BUSY = "line_busy"
NO_ANSWER = "no_answer"
VOICEMAIL = "voicemail"
CALL_RESTRICTED = "call_restricted"
CALL_STATUSES: tuple[str, ...] = (
    VACANT_NUMBER, SUSPENDED, POWERED_OFF, UNREACHABLE, LINE_BUSY, NO_ANSWER, VOICEMAIL, CALL_RESTRICTED,
)
