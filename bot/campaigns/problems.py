"""Every problem of a campaign's settings at once, in the CLI's English and the console's Chinese.

A check adds a `Problem` (the option or field at fault, the value given, what is wrong and
what to do) and goes on; `raise_any` raises them all together as one `CampaignProblems`, a
UserError whose message says how many there are and whose details list each one, so
`waihu campaign create` prints them all, and the console's form shows them all in Chinese.
A parser that finds one problem raises a `CampaignProblems` with that one, so it can be
called on its own, and `attempt` folds it into the list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.core.errors import UserError

# The CLI's option → the console form's field, for the Chinese messages.
FIELD_LABELS = {
    "NAME": "任务名称",
    "--pack": "线索名单",
    "--lines": "最大并发线路",
    "--cps": "每秒新呼叫数",
    "--variant": "话术版本",
    "--slot": "拨打时段",
    "--incentive": "利益点",
    "--incentive-arm": "利益点 A/B",
    "--welcome-arm": "欢迎语 A/B",
    "--holdout": "留出对照比例",
    "--bandit": "自动调流",
    "--bandit-floor": "自动调流的最低流量",
    "--profile": "合规配置",
}

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    option: str  # the CLI option (its console field is FIELD_LABELS[option])
    value: str  # what was given ("" when the problem is about the option as a whole)
    english: str  # what is wrong and what to do
    chinese: str

    def in_english(self) -> str:
        return f"{self.option} {self.value}: {self.english}" if self.value else f"{self.option}: {self.english}"

    def in_chinese(self) -> str:
        label = FIELD_LABELS.get(self.option, self.option)
        return f"{label}“{self.value}”：{self.chinese}" if self.value else f"{label}：{self.chinese}"


class CampaignProblems(UserError):
    """All the problems found; str() is a one-line summary (the first problem alone when
    there is only one), `details` the rest in English, `problems` each one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0].in_english())
        else:
            super().__init__(
                f"{len(self.problems)} problems in the campaign settings; nothing was created. Fix them all:",
                details=[f"- {p.in_english()}" for p in self.problems],
            )

    def in_chinese(self) -> list[str]:
        return [p.in_chinese() for p in self.problems]


def problem(option: str, value: Any, english: str, chinese: str) -> CampaignProblems:
    """One problem, to raise."""
    return CampaignProblems([Problem(option, "" if value is None else str(value), english, chinese)])


class ProblemList:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, option: str, value: Any, english: str, chinese: str) -> None:
        self.problems.append(Problem(option, "" if value is None else str(value), english, chinese))

    def attempt(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """check(*args, **kwargs), or None with its problems noted."""
        try:
            return check(*args, **kwargs)
        except CampaignProblems as exc:
            self.problems.extend(exc.problems)
            return None

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_any(self) -> None:
        if self.problems:
            raise CampaignProblems(self.problems)
