"""Numbers from URLs, bounded before they reach the database.

Python's int takes any size and `str.isdigit()` says yes to "²" and "٣": an id of 10**30
overflowed PostgreSQL's bigint, and `int("²")` raised, both as 500s with a traceback. Ids
and offsets are checked here (ASCII digits, within range) and refused with a clear 400/422.
"""

from __future__ import annotations

from fastapi import Path, Query

from bot.core.errors import UserError

MAX_DB_ID = 2**63 - 1  # BIGINT
MAX_OFFSET = 10_000_000  # far beyond any list a person pages through
MAX_ID_DIGITS = len(str(MAX_DB_ID))


def record_id(description: str = "编号"):
    """A path parameter holding a database id."""
    return Path(..., ge=1, le=MAX_DB_ID, description=description)


def optional_id(description: str = "编号"):
    """An optional query parameter holding a database id."""
    return Query(None, ge=1, le=MAX_DB_ID, description=description)


def offset_query():
    return Query(0, ge=0, le=MAX_OFFSET, description="跳过前多少条")


def parse_optional_id(text: str | None, field: str) -> int | None:
    """An id typed into a page's filter form: empty means none; anything but 1–19 ASCII digits
    within BIGINT is a UserError (400) naming the field."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS) or not 1 <= int(value) <= MAX_DB_ID:
        raise UserError(f"{field}“{value[:40]}”不是有效的编号（应为正整数）")
    return int(value)
