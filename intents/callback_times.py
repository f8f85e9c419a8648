"""Callback times in a callee's reply (明天下午三点, 半小时后, 晚上八点以后 …) → a window.

A reply is scanned for time *pieces* — a day (明天, 下周一, 周末, 过两天, 5号), a part
of the day (上午, 晚上), a clock time (三点半, 15:30, 两三点, 三点到五点), a modifier
(以后, 之前, 左右), a relative delay (半小时后) or a vague word (改天, 等会儿).
Adjacent pieces form one expression, which is resolved against the call's start time
in Asia/Shanghai to a concrete [start, end) window.

When a phrase does not pin a time down (改天, 过几天, 下个月, 等会儿), or pins one that
is impossible or already past (下午十点, 今天上午 said at 4 pm), the result is
*unknown* — a wrong callback time is worse than none: the dialer then falls back to the
busy cool-down. Clipping to the calling hours is not done here (see followups).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A named clock time means "around then": the dialer gets half an hour to reach them.
POINT_WINDOW = timedelta(minutes=30)
AROUND = timedelta(minutes=15)

_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "俩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_NUM = r"[零〇一二两三四五六七八九十\d]{1,3}"

# Parts of the day: (first hour, end hour) — what people mean by "下午" on the phone.
PARTS: dict[str, tuple[int, int]] = {
    "凌晨": (0, 6),
    "早上": (7, 10),
    "早晨": (7, 10),
    "一早": (7, 10),
    "大早上": (7, 10),
    "上午": (9, 12),
    "中午": (12, 14),
    "午饭后": (13, 14),
    "下午": (14, 18),
    "傍晚": (17, 19),
    "晚上": (18, 22),
    "晚间": (18, 22),
    "夜里": (21, 24),
    "白天": (9, 18),
}
# Which hours a clock time may take inside a part of the day (for AM/PM and sanity).
_PART_HOURS: dict[str, tuple[int, int]] = {
    "凌晨": (0, 6),
    "早上": (5, 10),
    "早晨": (5, 10),
    "一早": (5, 10),
    "大早上": (5, 10),
    "上午": (6, 12),
    "中午": (11, 14),
    "午饭后": (12, 15),
    "下午": (12, 19),
    "傍晚": (16, 20),
    "晚上": (17, 24),
    "晚间": (17, 24),
    "夜里": (20, 24),
    "白天": (7, 19),
}
_PM_PARTS = {"下午", "傍晚", "晚上", "晚间", "夜里", "午饭后"}
_WEEKDAYS = {
    "一": 0,
    "二": 1,
    "三": 2,
    "四": 3,
    "五": 4,
    "六": 5,
    "日": 6,
    "天": 6,
    "末": 5,
    "1": 0,
    "2": 1,
    "3": 2,
    "4": 3,
    "5": 4,
    "6": 5,
    "7": 6,
}

# Words that name no day at all: the time stays unknown whatever else is said.
_VAGUE_DAY = r"改天|回头|下次|下回|过段时间|过一段时间|过阵子|过些天|过些日子|过几天|几天后|以后再说|有空的时候|有时间的时候|到时候|下个月|月底|月初|年后|过年后"
# "Later today" with no time named: unknown unless a clock or part of day follows.
_VAGUE_SOON = r"晚点|晚些|晚一点|晚一些|待会儿?|等会儿?|等一会儿?|一会儿|过会儿?|稍后|迟点"

_PIECES = re.compile(
    "|".join(
        [
            r"(?P<couple_days>过(?P<couple_n>一两|两三|两|三|一)天(?:以后|之后|后)?)",
            rf"(?P<relative>(?:过|再过)?(?P<rel_n>{_NUM}|半)(?:个)?(?P<rel_half>半)?(?P<rel_unit>小时|钟头|分钟|天)(?P<rel_after>以后|之后|后|过后)?)",
            rf"(?P<vague_day>{_VAGUE_DAY})",
            r"(?P<same_time>这个时候|这个点|这个时间|同一时间|同样时间)",
            r"(?P<day_word>大后天|今天|今儿|今日|明天|明儿|明日|后天)",
            r"(?P<day_part_word>今早|今晚|明早|明晚|明天一早)",
            r"(?P<weekday>(?P<week_prefix>下下个?|下个?|这个?|本|这一)?(?:周|星期|礼拜)(?P<weekday_name>[一二三四五六日天末1-7]))",
            rf"(?P<date>(?:(?P<month>{_NUM})月)?(?P<mday>{_NUM})(?:号|日))",
            r"(?P<clock_pair>(?P<pair_a>[一二两三四五六七八九])(?P<pair_b>[二三四五六七八九十])点)",
            rf"(?P<clock>(?P<hour>{_NUM})(?:点钟|点|:|：)(?P<minute>半|一刻|三刻|{_NUM}(?:分)?)?)",
            "(?P<part>" + "|".join(sorted(PARTS, key=len, reverse=True)) + ")",
            r"(?P<range_to>到|至|~|-)",
            r"(?P<modifier>以后|之后|过后|以前|之前|左右|前后|后|前)",
            rf"(?P<vague_soon>{_VAGUE_SOON})",
        ]
    )
)
# What may separate two pieces of the same expression: 明天吧，下午三点 / 下午的三点.
_JOINER = re.compile(r"^[\s，,、的吧啊呢就大概差不多估计那再在或者大约]{0,4}$")
_MODIFIER_AFTER = {"以后", "之后", "过后", "后"}
_MODIFIER_BEFORE = {"以前", "之前", "前"}
_MODIFIER_AROUND = {"左右", "前后"}
# "一点" alone is usually "a bit" (快一点, 一点都不); only a clock with context counts.
_AMBIGUOUS_CLOCKS = {"一点"}


@dataclass(frozen=True)
class CallbackTime:
    """A time expression found in a reply, resolved to [start_at, end_at) or unknown."""

    text: str
    start: int  # character offsets in the reply
    end: int
    start_at: datetime | None = None
    end_at: datetime | None = None

    @property
    def resolved(self) -> bool:
        return self.start_at is not None


def find_callback_times(text: str, now: datetime) -> list[CallbackTime]:
    """Every time expression in `text`, resolved relative to `now` (the call's start)."""
    local_now = to_shanghai(now)
    found = []
    for group in _expressions(text):
        start, end = group[0].start(), group[-1].end()
        window = _resolve(group, local_now)
        found.append(CallbackTime(text[start:end], start, end, *(window or (None, None))))
    return found


def to_shanghai(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (how the database stores them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(SHANGHAI)


def _expressions(text: str) -> list[list[re.Match[str]]]:
    """Time pieces grouped into expressions; groups made only of glue words are dropped."""
    groups: list[list[re.Match[str]]] = []
    for match in _PIECES.finditer(text):
        if match.lastgroup == "relative" and not _is_delay(match):
            continue  # 这两天 / 两个小时: a duration, not a time from now
        if groups and _JOINER.match(text[groups[-1][-1].end() : match.start()]):
            groups[-1].append(match)
        else:
            groups.append([match])
    return [g for g in (_trim(g) for g in groups) if g and _meaningful(g)]


def _is_delay(match: re.Match[str]) -> bool:
    return bool(match.group("rel_after")) or match.group(0).startswith(("过", "再过"))


def _trim(group: list[re.Match[str]]) -> list[re.Match[str]]:
    # A range word or a modifier cannot start an expression (到 / 后 alone are not times).
    while group and group[0].lastgroup in ("range_to", "modifier"):
        group = group[1:]
    while group and group[-1].lastgroup == "range_to":
        group = group[:-1]
    return group


def _meaningful(group: list[re.Match[str]]) -> bool:
    kinds = {m.lastgroup for m in group}
    if kinds <= {"clock"} | {"modifier"} and len([m for m in group if m.lastgroup == "clock"]) == 1:
        clock = next(m for m in group if m.lastgroup == "clock")
        # "快一点" / "说慢一点": a bare 一点 is a time only with a modifier (一点以后) or 半/钟.
        if clock.group(0) in _AMBIGUOUS_CLOCKS and "modifier" not in kinds:
            return False
    if kinds <= {"date"}:
        # "3号" alone is often a house/line number; keep it only when it reads like a date.
        return any(m.group("month") for m in group) or any(m.group(0).endswith("号") for m in group)
    return True


@dataclass
class _Parsed:
    days: tuple[date, int] | None = None  # (first day, number of days)
    day_given: bool = False
    part: str | None = None
    clocks: list[tuple[int, int]] | None = None  # one clock, or a range of two
    modifier: str | None = None
    relative: timedelta | None = None
    relative_days: int | None = None
    same_time: bool = False
    vague_day: bool = False
    vague_soon: bool = False
    unknown: bool = False  # a piece that cannot be a real time (32号, 25点)


def _resolve(group: list[re.Match[str]], now: datetime) -> tuple[datetime, datetime] | None:
    parsed = _parse(group, now)
    if parsed.unknown or parsed.vague_day:
        return None
    if parsed.relative is not None:
        start = now + parsed.relative
        window = POINT_WINDOW if parsed.relative >= timedelta(hours=1) else timedelta(minutes=15)
        return start, start + window
    if parsed.relative_days is not None and parsed.days is None:
        parsed.days = (now.date() + timedelta(days=parsed.relative_days), 1)
        parsed.day_given = True
    if parsed.vague_soon and not (parsed.clocks or parsed.part):
        return None
    if parsed.same_time and not parsed.clocks:
        if not parsed.day_given:
            return None  # "这个时候" alone is now
        parsed.clocks = [(now.hour, now.minute)]
    if parsed.days is None and not (parsed.clocks or parsed.part):
        return None
    return _window(parsed, now)


def _parse(group: list[re.Match[str]], now: datetime) -> _Parsed:
    parsed = _Parsed()
    today = now.date()
    for match in group:
        kind = match.lastgroup
        word = match.group(0)
        if kind == "relative":
            amount = _relative(match)
            if amount is None:
                parsed.unknown = True
            elif isinstance(amount, int):
                parsed.relative_days = amount
            else:
                parsed.relative = amount
        elif kind == "vague_day":
            parsed.vague_day = True
        elif kind == "vague_soon":
            parsed.vague_soon = True
        elif kind == "same_time":
            parsed.same_time = True
        elif kind == "day_word":
            offset = {"今天": 0, "今儿": 0, "今日": 0, "明天": 1, "明儿": 1, "明日": 1, "后天": 2, "大后天": 3}[word]
            _set_days(parsed, today + timedelta(days=offset), 1)
        elif kind == "day_part_word":
            offset = 0 if word.startswith("今") else 1
            _set_days(parsed, today + timedelta(days=offset), 1)
            parsed.part = "晚上" if word.endswith("晚") else "早上"
        elif kind == "weekday":
            days = _weekday(match, today)
            if days is None:
                parsed.unknown = True
            else:
                _set_days(parsed, *days)
        elif kind == "couple_days":
            first, count = {"一两": (1, 2), "两三": (2, 2), "两": (2, 1), "三": (3, 1), "一": (1, 1)}[
                match.group("couple_n")
            ]
            _set_days(parsed, today + timedelta(days=first), count)
        elif kind == "date":
            day = _date(match, today)
            if day is None:
                parsed.unknown = True
            else:
                _set_days(parsed, day, 1)
        elif kind == "clock_pair":
            a, b = _number(match.group("pair_a")), _number(match.group("pair_b"))
            if a is None or b is None or b != a + 1:
                parsed.unknown = True
            else:
                parsed.clocks = [(a, 0), (b, 0)]
        elif kind == "clock":
            clock = _clock(match)
            if clock is None:
                parsed.unknown = True
            elif parsed.clocks and parsed.modifier is None and _follows_range(group, match):
                parsed.clocks.append(clock)
            else:
                parsed.clocks = [clock]
        elif kind == "part":
            parsed.part = word
        elif kind == "modifier":
            parsed.modifier = word
    return parsed


def _set_days(parsed: _Parsed, first: date, count: int) -> None:
    parsed.days = (first, count)
    parsed.day_given = True


def _follows_range(group: list[re.Match[str]], match: re.Match[str]) -> bool:
    index = group.index(match)
    return index > 0 and group[index - 1].lastgroup == "range_to"


def _window(parsed: _Parsed, now: datetime) -> tuple[datetime, datetime] | None:
    days = (
        [parsed.days[0] + timedelta(days=i) for i in range(parsed.days[1])]
        if parsed.days
        else [now.date(), now.date() + timedelta(days=1)]
    )
    if parsed.days is None and parsed.vague_soon:
        days = [now.date()]  # 晚点…八点以后: later today, not tomorrow
    candidates: list[tuple[datetime, datetime]] = []
    for day in days:
        for window in _windows_on(day, parsed):
            candidates.append(window)
    if not candidates:
        return None
    if parsed.days is not None and parsed.days[1] > 1 and not (parsed.clocks or parsed.part):
        # 周末 / 过两三天: the whole span, from now on if it has already begun.
        start, end = max(candidates[0][0], now), candidates[-1][1]
        return (start, end) if end > now else None
    # 三点 / 八点以后 said at 15:10 / 10:20 is not "now": take the next reading (tomorrow
    # 15:00 / tonight 20:00). Ranges and "before" times may have begun already.
    point = parsed.clocks is not None and len(parsed.clocks) == 1 and parsed.modifier not in _MODIFIER_BEFORE
    for start, end in candidates:
        if point and start + (AROUND if parsed.modifier in _MODIFIER_AROUND else timedelta(0)) <= now:
            continue
        if end > now:
            return max(start, now), end
    return None  # every reading is already past: not a time to call back


def _windows_on(day: date, parsed: _Parsed) -> Iterable[tuple[datetime, datetime]]:
    """Readings of the expression on one day, morning reading first."""
    midnight = datetime.combine(day, time(0), SHANGHAI)
    if not parsed.clocks:
        if parsed.part:
            first, last = PARTS[parsed.part]
            yield midnight + timedelta(hours=first), midnight + timedelta(hours=last)
        else:
            yield midnight, midnight + timedelta(days=1)
        return
    for hours in _hour_readings(parsed.clocks, parsed.part):
        if hours is None:
            continue
        start = midnight + timedelta(hours=hours[0][0], minutes=hours[0][1])
        if len(hours) == 2:
            end = midnight + timedelta(hours=hours[1][0], minutes=hours[1][1])
            if end <= start:
                continue
            yield start, end
            continue
        yield _around(start, midnight, parsed)


def _around(point: datetime, midnight: datetime, parsed: _Parsed) -> tuple[datetime, datetime]:
    part_first, part_last = PARTS.get(parsed.part or "", (0, 24))
    if parsed.modifier in _MODIFIER_AFTER:
        end = midnight + timedelta(hours=part_last)
        return point, max(end, point + POINT_WINDOW)
    if parsed.modifier in _MODIFIER_BEFORE:
        start = midnight + timedelta(hours=part_first if parsed.part else 9)
        return min(start, point - POINT_WINDOW), point
    if parsed.modifier in _MODIFIER_AROUND:
        return point - AROUND, point + AROUND
    return point, point + POINT_WINDOW


def _hour_readings(clocks: list[tuple[int, int]], part: str | None) -> list[list[tuple[int, int]] | None]:
    """The 24-hour readings of a clock (or range), morning first: 8点 → 8:00 then 20:00."""
    if part:
        low, high = _PART_HOURS[part]
        pm = part in _PM_PARTS or (part == "中午" and clocks[0][0] < 6)
        reading = [((h + 12) if pm and h < 12 else h, m) for h, m in clocks]
        fits = all(low <= h <= high and (h, m) <= (24, 0) for h, m in reading)
        return [reading] if fits and reading[0][0] < 24 else []
    readings: list[list[tuple[int, int]] | None] = []
    first = clocks[0][0]
    if 1 <= first <= 6:
        readings.append([(h + 12 if h < 12 else h, m) for h, m in clocks])  # 三点 on the phone is 15:00
    elif 7 <= first <= 9:
        readings.append(list(clocks))
        readings.append([(h + 12 if h < 12 else h, m) for h, m in clocks])  # 八点以后 at noon: 20:00
    elif 10 <= first <= 11:
        readings.append(list(clocks))  # 十点 is never 22:00 on a sales call
    elif 12 <= first <= 23:
        readings.append(list(clocks))
    return [r for r in readings if r and all(h < 24 for h, _ in r)]


def _clock(match: re.Match[str]) -> tuple[int, int] | None:
    hour = _number(match.group("hour"))
    if hour is None or not 0 <= hour <= 24:
        return None
    minute_word = match.group("minute") or ""
    minute: int | None
    if minute_word in ("", "整"):
        minute = 0
    elif minute_word == "半":
        minute = 30
    elif minute_word == "一刻":
        minute = 15
    elif minute_word == "三刻":
        minute = 45
    else:
        minute = _number(minute_word.rstrip("分"))
        if minute is None or minute > 59:
            return None
    if hour == 24 and minute:
        return None
    return hour, minute


def _relative(match: re.Match[str]) -> timedelta | int | None:
    unit = match.group("rel_unit")
    n_word = match.group("rel_n")
    amount = 0.5 if n_word == "半" else _number(n_word)
    if amount is None:
        return None
    if match.group("rel_half"):
        amount += 0.5
    if unit == "天":
        return int(amount) if float(amount).is_integer() and 1 <= amount <= 30 else None
    if unit == "分钟":
        return timedelta(minutes=amount) if 0 < amount <= 180 else None
    return timedelta(hours=amount) if 0 < amount <= 12 else None


def _weekday(match: re.Match[str], today: date) -> tuple[date, int] | None:
    prefix = match.group("week_prefix") or ""
    name = match.group("weekday_name")
    weekend = name == "末"
    target = _WEEKDAYS[name]
    monday = today - timedelta(days=today.weekday())
    weeks_ahead = 2 if prefix.startswith("下下") else 1 if prefix.startswith("下") else 0
    first = monday + timedelta(weeks=weeks_ahead, days=target)
    count = 2 if weekend else 1
    if first + timedelta(days=count - 1) < today:
        if prefix:  # 这周二 said on a Thursday: past, not next week
            return None
        first += timedelta(weeks=1)  # 周二 said on a Thursday: next Tuesday
    return first, count


def _date(match: re.Match[str], today: date) -> date | None:
    mday = _number(match.group("mday"))
    month_word = match.group("month")
    month = _number(month_word) if month_word else today.month
    if mday is None or month is None:
        return None
    for year_offset, month_offset in ((0, 0), (0, 1), (1, 0)):
        year, m = today.year + year_offset, month + month_offset
        if month_word and month_offset:
            continue
        if not month_word and year_offset:
            continue
        if m > 12:
            year, m = year + 1, m - 12
        try:
            day = date(year, m, mday)
        except ValueError:
            return None
        if day >= today:
            return day
    return None


def _number(word: str) -> int | None:
    """0–99 written in digits or Chinese numerals (三, 十五, 二十, 两)."""
    if not word:
        return None
    if word.isdigit():
        return int(word)
    if any(ch not in _DIGITS and ch != "十" for ch in word):
        return None
    if "十" in word:
        tens_word, _, ones_word = word.partition("十")
        tens = _DIGITS.get(tens_word, None) if tens_word else 1
        ones = _DIGITS.get(ones_word, None) if ones_word else 0
        if tens is None or ones is None or len(ones_word) > 1:
            return None
        return tens * 10 + ones
    if len(word) == 1:
        return _DIGITS[word]
    if all(ch in _DIGITS for ch in word) and word[0] in "零〇":
        return _DIGITS[word[-1]] if len(word) == 2 else None  # 零五 (十点零五)
    return None
