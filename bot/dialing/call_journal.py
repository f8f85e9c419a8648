"""The local journal: what the database could not take, kept on disk until it can.

A finished call whose result cannot be written (the database is down, after retries) is
appended here as one JSON line and fsync'd before the dial task lets go of it; so is the
give-back of an attempt that was claimed but never dialled, and a T-0 cancellation. Each
dial worker replays the journal every few seconds once the database answers again:
do-not-call entries of every pending call first, then each record in its own
transaction, all idempotent (a record already stored is skipped), so a replay cut short
by another outage is simply run again.

Why a local file and not a Redis stream: the outages this guards against include Redis
itself (a broker restarted empty loses its streams with its queues), and a result must
be durable before the task acknowledges it; an fsync'd append on the worker's own disk
needs nothing else to be up. What a local file cannot do by itself is tell the other
machines about an opt-out heard here, so pending do-not-call hashes are also mirrored to
a Redis set when Redis is up (best effort), and every T-0 check consults both: the
numbers in any unreplayed journal on this machine, and the shared set.

Files: each process appends to its own `calls-<host>-<pid>-<n>.jsonl` and holds an
exclusive flock on it while alive; a replay renames the file aside (the lock stays with
the open descriptor), replays it and deletes it. A file whose lock can be taken belongs
to a dead process (the kernel drops flocks with their process) and is replayed by
whoever takes the lock first.
"""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.dialing.call_runner import CallResult, assess
from intents.finished_call import Turn
from intents.followups import DO_NOT_CALL, SOFT_DECLINE

log = logging.getLogger(__name__)

VERSION = 1
# Entry kinds.
CALL = "call"  # a finished call's result
GIVE_BACK = "give_back"  # claimed, never dialled: back to scheduled (or cancelled if the reconciler closed it)
CANCEL = "cancel"  # cancelled at T-0 with its reason
FAILED = "failed"  # the call reached the carrier and then failed in the dialer
KINDS = (CALL, GIVE_BACK, CANCEL, FAILED)

_SUFFIX = ".jsonl"
_REPLAYING = ".replaying"


# ---------------------------------------------------------------- call results as JSON


def result_to_json(result: CallResult) -> dict[str, Any]:
    """The raw facts of a call (what the carrier and the callee did); the outcome is not
    stored: it is assessed again from them on replay, exactly as it was after the call."""
    data: dict[str, Any] = {}
    for field in dataclasses.fields(CallResult):
        if field.name in ("outcome", "turns"):
            continue
        data[field.name] = _plain(getattr(result, field.name))
    data["turns"] = [_plain(dataclasses.asdict(turn)) for turn in result.turns]
    return data


def result_from_json(data: dict[str, Any]) -> CallResult:
    names = {field.name for field in dataclasses.fields(CallResult)} - {"outcome", "turns"}
    values = {name: _revive(value) for name, value in data.items() if name in names}
    turn_fields = {field.name for field in dataclasses.fields(Turn)}
    turns = []
    for raw in data.get("turns", ()):
        raw = {k: v for k, v in raw.items() if k in turn_fields}
        raw["entities"] = tuple(dict(e) for e in raw.get("entities", ()))
        turns.append(Turn(**raw))
    result = CallResult(**values, turns=turns)
    result.outcome = assess(result)
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _revive(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        return {k: _revive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive(v) for v in value]
    return value


def dnc_of(result: CallResult) -> list[dict[str, Any]]:
    """The do-not-call entries a call's follow-ups ask for (applied first on replay)."""
    entries = []
    for followup in result.outcome.followups if result.outcome else ():
        if followup.action == DO_NOT_CALL:
            entries.append({"scope": "opt_out", "reason": followup.reason, "expires_at": None})
        elif followup.action == SOFT_DECLINE:
            entries.append(
                {
                    "scope": "soft_decline",
                    "reason": followup.reason,
                    "expires_at": followup.until.isoformat() if followup.until else None,
                }
            )
    return entries


def call_entry(attempt_id: int, phone_hash: str, result: CallResult, at: datetime) -> dict[str, Any]:
    return {
        "v": VERSION,
        "kind": CALL,
        "attempt_id": attempt_id,
        "phone_hash": phone_hash,
        "at": at.isoformat(),
        "dnc": dnc_of(result),
        "result": result_to_json(result),
    }


def attempt_entry(kind: str, attempt_id: int, phone_hash: str, reason: str, at: datetime) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown journal entry kind {kind!r}")
    return {
        "v": VERSION,
        "kind": kind,
        "attempt_id": attempt_id,
        "phone_hash": phone_hash,
        "reason": reason,
        "at": at.isoformat(),
    }


# ---------------------------------------------------------------- the files


class CallJournal:
    """Append-only, fsync'd JSON lines in `directory`, one file per process."""

    _serial = itertools.count()

    def __init__(self, directory: str | Path, redis_client: Any = None, redis_key: str = "waihu:pending_dnc") -> None:
        self.directory = Path(directory)
        self.redis = redis_client
        self.redis_key = redis_key
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._own_dnc: set[str] = set()  # pending opt-outs/declines appended by this process
        self._seen_dnc: set[str] = set()  # …and in other processes' files here, as of the last scan
        self._entries = 0  # lines appended and not yet replayed, by this process

    # -------------------------------------------------------------- writing

    def append(self, entry: dict[str, Any]) -> None:
        """Write one entry and fsync it; returns once it is on disk (raises if it is not)."""
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            fd = self._open()
            os.write(fd, line)
            os.fsync(fd)
            self._entries += 1
            if entry.get("kind") == CALL and entry.get("dnc"):
                self._own_dnc.add(entry["phone_hash"])
        if entry.get("kind") == CALL and entry.get("dnc"):
            self._mirror_add(entry["phone_hash"])

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"calls-{socket.gethostname()}-{os.getpid()}-{next(self._serial)}{_SUFFIX}"
            self._path = self.directory / name
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _fsync_dir(self.directory)
            self._fd = fd
        return self._fd

    # -------------------------------------------------------------- the T-0 check

    def blocks(self, phone_hash: str, shared: bool = True) -> bool:
        """Is an opt-out or soft decline for this number waiting in a journal (this
        machine's, or — `shared` — any worker's through the Redis set: a round trip, so
        not on the call loop)?"""
        if phone_hash in self._own_dnc or phone_hash in self._seen_dnc:
            return True
        if self.redis is None or not shared:
            return False
        try:
            return bool(self.redis.sismember(self.redis_key, phone_hash))
        except Exception:  # noqa: BLE001  (Redis down: the local journals still answer)
            return False

    # -------------------------------------------------------------- replaying

    def claim(self) -> Iterator[tuple[Path, list[dict[str, Any]], int]]:
        """Each journal this process may replay now, as (path, entries, locked fd): its own
        (moved aside, so new entries go to a new file) and those of dead processes. The
        caller replays and then calls `done` (or `keep` when the replay failed)."""
        if not self.directory.is_dir():
            return
        with self._lock:
            own = None
            if self._fd is not None and self._path is not None:
                aside = self._path.with_suffix(_REPLAYING)
                os.replace(self._path, aside)
                own = (aside, self._fd)
                self._fd = self._path = None
        if own is not None:
            yield own[0], _read(own[0]), own[1]
        seen: set[str] = set()
        for path in sorted(self.directory.iterdir()):
            if not path.name.startswith("calls-") or path.suffix not in (_SUFFIX, _REPLAYING):
                continue
            if own is not None and path == own[0]:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process's journal: only note its pending opt-outs
                os.close(fd)
                seen |= {e["phone_hash"] for e in _read(path) if e.get("kind") == CALL and e.get("dnc")}
                continue
            if not path.exists():  # replayed and deleted between listing and locking
                os.close(fd)
                continue
            yield path, _read(path), fd
        self._seen_dnc = seen

    def done(self, path: Path, fd: int, entries: list[dict[str, Any]]) -> None:
        path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        os.close(fd)
        hashes = {e["phone_hash"] for e in entries if e.get("kind") == CALL and e.get("dnc")}
        with self._lock:
            self._own_dnc -= hashes
            self._entries = max(0, self._entries - len(entries))
        self._mirror_remove(hashes)

    def keep(self, path: Path, fd: int) -> None:
        """A replay that failed: the file stays (unlocked) for the next pass, by anyone."""
        os.close(fd)

    def backlog(self) -> int:
        """Entries waiting in every journal file of this directory (for /metrics)."""
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.iterdir():
            if path.name.startswith("calls-") and path.suffix in (_SUFFIX, _REPLAYING):
                try:
                    with path.open("rb") as handle:
                        total += sum(1 for line in handle if line.endswith(b"\n"))
                except FileNotFoundError:
                    continue
        return total

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = self._path = None

    # -------------------------------------------------------------- the shared set

    def _mirror_add(self, phone_hash: str) -> None:
        if self.redis is None:
            return
        try:
            self.redis.sadd(self.redis_key, phone_hash)
        except Exception:  # noqa: BLE001  (best effort: the local journal is the record)
            log.warning("could not mirror a pending do-not-call entry to Redis (the local journal holds it)")

    def _mirror_remove(self, hashes: set[str]) -> None:
        if self.redis is None or not hashes:
            return
        try:
            self.redis.srem(self.redis_key, *hashes)
        except Exception:  # noqa: BLE001
            log.warning("could not clear %d replayed do-not-call entries from Redis", len(hashes))


def _read(path: Path) -> list[dict[str, Any]]:
    """Every complete entry; a torn last line (the process died mid-write, before its
    fsync returned, so nobody relied on it) is skipped."""
    entries: list[dict[str, Any]] = []
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return entries
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("journal %s: skipping a torn line", path.name)
    return entries


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
