"""How a campaign's A/B callees get onto WeCom (campaigns.add_mode, migration 0017).

`link`: an SMS with the advisor's 联系我 link; the callee adds the advisor.
`advisor_adds`: the advisor adds the callee by phone in WeCom, from a task whose number
reveal is audited (bot.wecom.advisor_tasks).
"""

from __future__ import annotations

from bot.core.errors import UserError

ADD_MODES = ("link", "advisor_adds")
DEFAULT_ADD_MODE = "link"
ADD_MODE_LABELS = {"link": "短信链接（客户添加顾问）", "advisor_adds": "顾问主动添加"}


def check_add_mode(value: str | None, *, where: str = "--add-mode") -> str:
    """The add mode, or one clear error naming where the bad value came from."""
    mode = (value or "").strip()
    if mode not in ADD_MODES:
        raise UserError(
            f"{where}: unknown add mode {value!r}; use link (SMS with the 联系我 link, the callee adds the "
            "advisor) or advisor_adds (the advisor adds the callee by phone from an audited task)"
        )
    return mode
