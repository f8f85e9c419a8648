"""Exports of lead-pack data for spreadsheets: masked, and safe to open in Excel/WPS.

A cell starting with = + - @ (or a tab/CR) is a formula to Excel; `=cmd|' /C calc'!A0`
in a name column would run on the ops laptop. Such cells are prefixed with an apostrophe,
and so is every line inside a cell that starts like one (`张三\r=cmd|…`: a reader that
splits rows at a bare CR would see a formula cell). Every field is quoted, so no CR, LF,
comma or quote in a value can start a new cell or row.
"""

from __future__ import annotations

import csv
import json
import re
from typing import IO

from sqlalchemy.orm import Session

from bot.core.pii import mask_digit_runs
from bot.leads.models import LeadPack
from bot.leads.service import iter_rejects

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")


def neutralise_formula(value: object) -> str:
    """The value as text that no spreadsheet reads as a formula: the start of the value and of every
    line in it (after CR, LF or CRLF) gets an apostrophe if it starts like one."""
    text = "" if value is None else str(value)
    if "\r" not in text and "\n" not in text:
        return "'" + text if text.startswith(_FORMULA_START) else text
    pieces = _LINE_BREAK.split(text)  # text, break, text, break, …
    for index in range(0, len(pieces), 2):
        if pieces[index].startswith(_FORMULA_START):
            pieces[index] = "'" + pieces[index]
    return "".join(pieces)


def write_rejects_csv(session: Session, pack: LeadPack, out: IO[str]) -> int:
    """Every rejected row of `pack`: row number, reason, message, then the row as uploaded (masked)."""
    header = list((pack.column_map or {}).get("header") or [])
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["row", "reason", "message", *(neutralise_formula(h) for h in header)])
    count = 0
    for reject in iter_rejects(session, pack):
        cells = json.loads(reject.raw_masked)
        # raw_masked is masked at write time; mask again in case an older row was not.
        writer.writerow(
            [
                reject.row_number,
                reject.reason,
                neutralise_formula(mask_digit_runs(reject.message)),
                *(neutralise_formula(mask_digit_runs(c) if c is not None else "") for c in cells),
            ]
        )
        count += 1
    return count
