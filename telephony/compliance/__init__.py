"""Compliance for outbound calls: the versioned policy profile and the per-dial eligibility check.

Takes plain data (policy, time zone, holidays, attempt history, DNC state, now); imports
nothing from the application, the CLI or a web console.
"""

from telephony.compliance.eligibility import Attempt, DncState, Eligibility, check_eligibility  # noqa: F401
from telephony.compliance.policy import CompliancePolicy, load_profile, tighten  # noqa: F401
