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
    "hesitate",  # 考虑一下 / 再看看 / 问问家里人: interest, never a refusal
    "request_human",  # 转人工 / 找真人: hand-off to an advisor
    # Insurance FAQ (retrieval intent `faq`, answered by the ResponseSelector), by topic.
    "faq/waiting_period",
    "faq/coverage",
    "faq/claims",
    "faq/is_it_free",
    "faq/auto_charge",
    "faq/term",
    "faq/advisor_role",
    "faq/privacy",
    "faq/age_limit",
    "faq/company",
)

FALLBACK_INTENT = "nlu_fallback"

# The Rasa retrieval intent of the FAQ: the domain and the rules know `faq`; NLU examples,
# turns and grading use the full name `faq/<topic>`.
RETRIEVAL_INTENT = "faq"
FAQ_INTENTS: tuple[str, ...] = tuple(i for i in CALLEE_INTENTS if i.startswith(RETRIEVAL_INTENT + "/"))

# Before the FAQ topics existed, money questions were ask_price and other product questions
# ask_detail: how a labelled file written for that taxonomy scores a predicted topic.
FAQ_PARENT_INTENTS: dict[str, str] = {"faq/is_it_free": "ask_price", "faq/auto_charge": "ask_price"}
FAQ_PARENT_DEFAULT = "ask_detail"

# Set by the NLU's agreement check, never by the classifier: the reply looked like a yes
# but not surely (low confidence or a negation word); the robot confirms once.
UNCERTAIN_AGREEMENT_INTENT = "uncertain_agreement"
# Intents the robot acts on without a callee ever saying them.
SYSTEM_INTENTS = frozenset({UNCERTAIN_AGREEMENT_INTENT})

# Sent by the call runtime when the callee picks up; never produced by NLU.
CALL_START_INTENT = "call_start"

# Questions the callee may ask; answering them is engagement, not refusal.
QUESTION_INTENTS = frozenset(
    {"ask_identity", "ask_number_source", "ask_is_robot", "ask_price", "ask_detail", *FAQ_INTENTS}
)
# Hard opt-out: permanent do-not-call, effective before the next dial.
OPT_OUT_INTENTS = frozenset({"stop_calling", "hostile"})
# A yes: to the WeCom add itself, or to whatever the robot last asked.
AGREEMENT_INTENTS = frozenset({"agree_add_wecom", "affirm"})

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
    VACANT_NUMBER,
    SUSPENDED,
    POWERED_OFF,
    UNREACHABLE,
    LINE_BUSY,
    NO_ANSWER,
    VOICEMAIL,
    CALL_RESTRICTED,
)
