"""How many calls one SIP carrier (one PJSIP library, so one worker process) holds at once.

Kept apart from telephony.sip.carrier so the settings can name the bounds without loading
PJSIP. The limit is the pjsua2 wheel's compile-time PJSUA_MAX_CALLS, measured: with
uaConfig.maxCalls set to 4, 32 or 1000, the 5th simultaneous INVITE fails with PJ_ETOOMANY
(70 asked, 4 sent); below it the setting holds (2 → 2, 3 → 3). More lines need more worker
processes, each with its own PJSIP.
"""

from __future__ import annotations

MAX_CALLS_LIMIT = 4  # this pjsua2 build's PJSUA_MAX_CALLS (pjsua2-python 2.15.1.post1)
DEFAULT_MAX_CALLS = MAX_CALLS_LIMIT
