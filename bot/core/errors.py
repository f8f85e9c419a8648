"""Errors caused by what a user gave us. The CLI prints them as one clear line, no traceback.

`UserError` is the application's name for `intents.errors.InputError`: one error type,
raised by every layer for a user's mistake (grading rules, compliance profile, personas,
uploads, scripts), so `except UserError` catches them all.
"""

from __future__ import annotations

from intents.errors import InputError

UserError = InputError

__all__ = ["UserError"]
