"""`waihu demo`: train if needed, then play sample calls turn by turn."""
from __future__ import annotations
