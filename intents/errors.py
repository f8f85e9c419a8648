"""The one error type for a mistake in what a user gave: a file, a setting, a value.

It lives in the lowest layer so every layer can raise it (the grading rules here, the
compliance profile and personas in `telephony`, uploads and scripts in `bot`); the CLI,
the console and the workers catch this one type and show its message, never a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """A mistake the user can fix: the message says where (file:line:col, row, field) and
    what to do; `details` are further lines (hints, the other problems found)."""

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = list(details or [])
