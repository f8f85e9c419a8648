"""Errors caused by what a user gave us. The CLI prints them as one clear line, no traceback."""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: the message says where and what to do."""

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []
