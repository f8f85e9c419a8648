"""Tracker and lock stores from URLs, so several worker processes can serve calls.

memory (default) · redis://host:port/db · postgresql://user:pass@host:port/db · sqlite:///path
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from bot.core.errors import UserError

if TYPE_CHECKING:
    from rasa.core.lock_store import LockStore
    from rasa.core.tracker_store import TrackerStore

KEY_PREFIX = "waihu"
# A finished call's tracker is only needed for a while after hang-up (turns are logged
# elsewhere); Redis drops it after a day.
REDIS_RECORD_EXPIRY_S = 24 * 3600


def tracker_store_from_url(url: str | None) -> TrackerStore:
    """No URL means the live in-memory store (one process)."""
    if not url or url == "memory":
        return live_tracker_store()
    from rasa.core.tracker_store import RedisTrackerStore, SQLTrackerStore
    from rasa.shared.core.domain import Domain

    parsed = urlparse(url)
    # The agent sets the real domain when it loads the model.
    if parsed.scheme == "redis":
        return RedisTrackerStore(
            domain=Domain.empty(),
            host=parsed.hostname or "localhost",
            port=parsed.port or 6379,
            db=int(parsed.path.strip("/") or 0),
            password=unquote(parsed.password) if parsed.password else None,
            key_prefix=KEY_PREFIX,
            record_exp=REDIS_RECORD_EXPIRY_S,
        )
    if parsed.scheme.startswith(("postgresql", "sqlite")):
        dialect = parsed.scheme.split("+")[0]
        return SQLTrackerStore(
            domain=Domain.empty(),
            dialect=dialect,
            host=parsed.hostname,
            port=parsed.port,
            db=parsed.path[1:] if dialect == "sqlite" else parsed.path.strip("/"),
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
        )
    raise UserError(
        f"WAIHU_TRACKER_STORE_URL={url!r}: unsupported scheme '{parsed.scheme}'. "
        "Use memory, redis://host:port/db or postgresql://user@host:port/db."
    )


def lock_store_from_url(url: str | None) -> LockStore | None:
    """Redis lock store for trackers shared between processes; None means in-memory."""
    if not url or url == "memory":
        return None
    parsed = urlparse(url)
    if parsed.scheme != "redis":
        raise UserError(f"WAIHU_LOCK_STORE_URL={url!r}: only redis://host:port/db is supported.")
    from rasa.core.lock_store import RedisLockStore

    return RedisLockStore(
        host=parsed.hostname or "localhost",
        port=parsed.port or 6379,
        db=int(parsed.path.strip("/") or 1),
        password=unquote(parsed.password) if parsed.password else None,
        key_prefix=KEY_PREFIX,
    )


def live_tracker_store():
    """The default single-process store: keeps each call's tracker as a live object.

    Rasa's in-memory store serialises the whole tracker to JSON on every save and
    rebuilds it on every read (~3-5 ms a turn, growing with the call). A call is only
    ever served by one process under its lock, so keeping the object is safe and
    makes a turn that much cheaper.
    """
    from rasa.core.tracker_store import InMemoryTrackerStore
    from rasa.shared.core.domain import Domain

    class LiveTrackerStore(InMemoryTrackerStore):
        async def save(self, tracker) -> None:
            await self.stream_events(tracker)
            self.store[tracker.sender_id] = tracker

        async def retrieve(self, sender_id: str):
            return self.store.get(sender_id)

        async def retrieve_full_tracker(self, sender_id: str):
            return self.store.get(sender_id)

    return LiveTrackerStore(Domain.empty())
