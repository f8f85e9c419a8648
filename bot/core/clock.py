"""The clock the application schedules by: real time, or a simulated one from settings.

WAIHU_CLOCK_START (ISO 8601 with a zone) with WAIHU_CLOCK_SPEED (default 1) makes every
process run on simulated time from that instant, so a dry run or a test dials inside the
calling window whatever the hour, and a day can pass in minutes. WAIHU_CLOCK_ANCHOR (Unix
seconds) is the real moment that corresponds to the start, so processes started at
different times (worker, beat) agree on the simulated time. The clocks themselves are
telephony's (`telephony.clock`): the carrier adapters schedule by them too.
"""

from __future__ import annotations

import time
from datetime import timedelta

from bot.core.settings import Settings, get_settings
from telephony.clock import Clock, RealClock, SimClock


def clock_from_settings(settings: Settings | None = None) -> Clock:
    settings = settings or get_settings()
    if settings.clock_start is None:
        return RealClock()
    when = settings.clock_start
    if settings.clock_anchor is not None:
        when += timedelta(seconds=(time.time() - settings.clock_anchor) * settings.clock_speed)
    return SimClock(start=when, speed=settings.clock_speed)


def clock_speed(settings: Settings | None = None) -> float:
    """How many simulated seconds pass per real second (1 on real time)."""
    settings = settings or get_settings()
    return settings.clock_speed if settings.clock_start is not None else 1.0
