"""The clock the application schedules by: real time, or a simulated one from settings.

WAIHU_CLOCK_START (ISO 8601) with WAIHU_CLOCK_SPEED (default 1) makes every process run on
simulated time from that instant, so a dry run or a test dials inside the calling window
whatever the hour, and a day can pass in minutes. WAIHU_CLOCK_ANCHOR (Unix seconds) is the
real moment that corresponds to the start, so processes started at different times
(worker, beat) agree on the simulated time.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

from bot.errors import UserError
from telephony.simulator.clock import Clock, RealClock, SimClock


def clock_from_settings() -> Clock:
    start = os.environ.get("WAIHU_CLOCK_START")
    if not start:
        return RealClock()
    try:
        when = datetime.fromisoformat(start.replace("Z", "+00:00"))
        speed = float(os.environ.get("WAIHU_CLOCK_SPEED", "1"))
    except ValueError:
        raise UserError(f"WAIHU_CLOCK_START={start!r} / WAIHU_CLOCK_SPEED: expected an ISO time with a zone "
                        "(2026-11-24T10:00:00+08:00) and a number") from None
    if when.tzinfo is None:
        raise UserError(f"WAIHU_CLOCK_START={start!r} needs a time zone, e.g. +08:00 or Z")
    anchor = os.environ.get("WAIHU_CLOCK_ANCHOR")
    if anchor:
        when += timedelta(seconds=(time.time() - float(anchor)) * speed)
    return SimClock(start=when, speed=speed)
