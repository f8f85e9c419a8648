"""Exports of lead-pack data for spreadsheets: masked, and safe to open in Excel/WPS.

A cell starting with = + - @ (or a tab/CR) is a formula to Excel; `=cmd|' /C calc'!A0`
in a name column would run on the ops laptop. Such cells are prefixed with an apostrophe.
"""
from __future__ import annotations

import csv
import json
from typing import IO

from sqlalchemy.orm import Session

from bot.leads.models import LeadPack
from bot.leads.service import iter_rejects
from bot.core.pii import mask_digit_runs

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def neutralise_formula(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_rejects_csv(session: Session, pack: LeadPack, out: IO[str]) -> int:
    """Every rejected row of `pack`: row number, reason, message, then the row as uploaded (masked)."""
    header = list((pack.column_map or {}).get("header") or [])
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "reason", "message", *(neutralise_formula(h) for h in header)])
    count = 0
    for reject in iter_rejects(session, pack):
        cells = json.loads(reject.raw_masked)
        # raw_masked is masked at write time; mask again in case an older row was not.
        writer.writerow([reject.row_number, reject.reason, neutralise_formula(mask_digit_runs(reject.message)),
                         *(neutralise_formula(mask_digit_runs(c) if c is not None else "") for c in cells)])
        count += 1
    return count
