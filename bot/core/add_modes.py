"""How an A/B callee gets onto WeCom, and so which script lines the robot may say.

A campaign chooses `link` (an SMS with the advisor's 联系我 link: the callee adds the
advisor; what the system has always done) or `advisor_adds` (the advisor adds the
callee's mobile number in WeCom from an audited task). WeCom cannot add a landline, so a
landline callee is always in `callback` mode: the advisor calls back, and the robot makes
no WeCom promise at all. The script's lines per mode are conditional variations on the
`add_mode` slot (dialogs/domain/responses.yml).
"""

from __future__ import annotations

from bot.core.phone import LANDLINE

ADD_MODE_SLOT = "add_mode"
LINK = "link"
ADVISOR_ADDS = "advisor_adds"
CALLBACK = "callback"
# What a campaign may choose; `callback` follows from the line type, never from the campaign.
CAMPAIGN_ADD_MODES = (LINK, ADVISOR_ADDS)
SCRIPT_ADD_MODES = (LINK, ADVISOR_ADDS, CALLBACK)


def add_mode_for_call(campaign_mode: str | None, line_type: str | None) -> str:
    """The mode one call speaks: a landline is a callback whatever the campaign chose."""
    if line_type == LANDLINE:
        return CALLBACK
    return campaign_mode if campaign_mode in CAMPAIGN_ADD_MODES else LINK
