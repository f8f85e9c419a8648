"""Recordings of connected calls: made after each call, listed and audited, erased, purged.

Every opening line says the call is recorded (全程录音); this keeps that true for every
connected call, on every carrier:
- FreeSWITCH records the line itself: `uuid_record <uuid> start <path>` on answer and
  `stop` at hang-up (telephony.freeswitch); the path is on the switch's host
  (WAIHU_FS_RECORDINGS_DIR), the same file as <recordings_dir>/<relative path> here.
- The SIP carrier records in this process (PJSIP's recorder, telephony.sip.carrier) straight
  into <recordings_dir>/<relative path>; the same recorder stores its row.
- The simulator has no audio: its recording is mixed after the call (telephony.recordings)
  on a small thread pool, off the event loop that carries the calls, then stored.

Files live under WAIHU_RECORDINGS_DIR by attempt id (`<yyyy>/<mm>/<attempt id>.wav`) and
are kept WAIHU_RECORDING_RETENTION_DAYS days (`retain_until`); a beat task purges them.
"""

from __future__ import annotations

import logging
import threading
import time
import wave
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core.db.engine import session_scope
from bot.core.settings import get_settings
from bot.dialing.recording_models import Recording, RecordingAudit
from telephony.prompts.audio import wav_duration_s
from telephony.recordings import RECORDING_FORMAT, CallMixer, recording_relpath

if TYPE_CHECKING:  # the runner pulls in the dialogue stack; erasure and the console need none of it
    from bot.dialing.call_runner import CallResult

log = logging.getLogger(__name__)

LISTEN = "listen"
DOWNLOAD = "download"
# Mixing threads for simulated recordings: enough to keep up with a demo's calls, few
# enough that they never starve the call loop of the GIL.
MIXING_THREADS = 2
# A switch's file whose header is not written yet is re-read this many times, this far apart:
# the carriers close it before the hang-up, so this is only a last resort (said in the log).
UNFINISHED_RETRIES = 5
UNFINISHED_RETRY_S = 0.1


def attempt_id_of(call_id: str) -> int:
    """The dialer names calls "attempt-<id>"."""
    return int(call_id.rsplit("-", 1)[-1])


class CallRecorder(Protocol):
    """What the dialer asks of a recorder: options for the dial, and the call once stored."""

    def dial_options(self, attempt_id: int, at: datetime) -> dict[str, str]: ...

    def after_call(self, attempt_id: int, result: CallResult) -> None: ...


def store_recording(
    session: Session,
    attempt_id: int,
    relpath: str,
    *,
    duration_s: float,
    size: int,
    now: datetime,
    retention_days: int,
) -> Recording | None:
    """The recording's row (None if the attempt already has one, or is gone: erased meanwhile)."""
    if session.execute(select(Recording.id).where(Recording.attempt_id == attempt_id)).first() is not None:
        return None
    recording = Recording(
        attempt_id=attempt_id,
        path=relpath,
        duration_s=round(duration_s, 3),
        bytes=size,
        format=RECORDING_FORMAT,
        created_at=now,
        retain_until=now + timedelta(days=retention_days),
    )
    session.add(recording)
    try:
        session.flush()
    except IntegrityError:  # the attempt was erased while the recording was made
        session.rollback()
        return None
    return recording


def recording_file(recording: Recording, recordings_dir: Path | None = None) -> Path:
    """The file of a row, checked to stay inside the recordings directory."""
    root = (recordings_dir or get_settings().recordings_dir).resolve()
    path = (root / recording.path).resolve()
    if root not in path.parents:
        raise ValueError(f"recording {recording.id}: path outside the recordings directory")
    return path


def recording_for(session: Session, attempt_id: int) -> Recording | None:
    return session.execute(select(Recording).where(Recording.attempt_id == attempt_id)).scalar_one_or_none()


def audit_access(
    session: Session,
    attempt_id: int,
    *,
    user_id: int | None,
    user_name: str,
    action: str,
    ip: str | None,
    now: datetime,
) -> None:
    session.add(
        RecordingAudit(attempt_id=attempt_id, user_id=user_id, user_name=user_name, action=action, at=now, ip=ip)
    )
    # The log line ops grep for: who, what, which call; never a phone number.
    log.info("recording %s of attempt %s by %s", action, attempt_id, user_name)


def erase_recordings(session: Session, attempt_ids: Iterable[int], recordings_dir: Path | None = None) -> int:
    """Delete the files and rows of these calls (PIPL erasure); returns the files removed."""
    ids = list(attempt_ids)
    if not ids:
        return 0
    rows = session.execute(select(Recording).where(Recording.attempt_id.in_(ids))).scalars().all()
    removed = _unlink(rows, recordings_dir)
    session.execute(delete(Recording).where(Recording.attempt_id.in_(ids)).execution_options(synchronize_session=False))
    return removed


@dataclass(frozen=True)
class PurgeReport:
    due: int  # rows past their retention
    files: int  # files removed (or that would be, on a dry run)
    bytes: int
    dry_run: bool

    def as_json(self) -> dict:
        return {"due": self.due, "files": self.files, "bytes": self.bytes, "dry_run": self.dry_run}


def purge_expired(session: Session, now: datetime, *, dry_run: bool = False, recordings_dir: Path | None = None):
    """Recordings past `retain_until`: files and rows deleted (counted only on a dry run)."""
    rows = session.execute(select(Recording).where(Recording.retain_until <= now)).scalars().all()
    size = sum(row.bytes or 0 for row in rows)
    if dry_run:
        existing = sum(1 for row in rows if _exists(row, recordings_dir))
        return PurgeReport(len(rows), existing, size, True)
    removed = _unlink(rows, recordings_dir)
    if rows:
        session.execute(
            delete(Recording)
            .where(Recording.id.in_([row.id for row in rows]))
            .execution_options(synchronize_session=False)
        )
    return PurgeReport(len(rows), removed, size, False)


def _exists(row: Recording, recordings_dir: Path | None) -> bool:
    try:
        return recording_file(row, recordings_dir).exists()
    except ValueError:
        return False


def _unlink(rows: Iterable[Recording], recordings_dir: Path | None) -> int:
    removed = 0
    for row in rows:
        try:
            path = recording_file(row, recordings_dir)
        except ValueError as exc:
            log.warning("%s; row removed, file left", exc)
            continue
        if path.exists():
            path.unlink()
            removed += 1
    return removed


@dataclass
class SimulatedCallRecorder:
    """The simulator's recorder: each connected call's mix is made on a thread pool once the
    call is stored, and its row written then. `drain()` waits for the pending ones."""

    engine: Engine
    mixer: CallMixer
    recordings_dir: Path
    retention_days: int = 180
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(MIXING_THREADS, thread_name_prefix="waihu-recording")
    )
    _pending: set[Future] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    made: int = 0
    failed: int = 0

    def dial_options(self, attempt_id: int, at: datetime) -> dict[str, str]:
        return {}

    def after_call(self, attempt_id: int, result: CallResult) -> None:
        if not result.answered or result.answered_at is None:
            return
        future = self._pool.submit(self._record, attempt_id, result)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)

    def _record(self, attempt_id: int, result: CallResult) -> None:
        assert result.answered_at is not None
        relpath = recording_relpath(attempt_id, result.answered_at)
        try:
            mixed = self.mixer.mix(
                result.turns,
                result.talk_time_s,
                self.recordings_dir / relpath,
                callee_hung_up=result.hangup_by == "callee",
            )
            with session_scope(self.engine) as session:
                stored = store_recording(
                    session,
                    attempt_id,
                    relpath,
                    duration_s=mixed.duration_s,
                    size=mixed.bytes,
                    now=result.ended_at or result.answered_at,
                    retention_days=self.retention_days,
                )
            if stored is None:
                (self.recordings_dir / relpath).unlink(missing_ok=True)  # erased meanwhile (or a replay)
            with self._lock:
                self.made += 1
        except Exception:  # noqa: BLE001  (a recording must never take the dialer down)
            with self._lock:
                self.failed += 1
            log.exception("recording of attempt %s failed", attempt_id)

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait until every recording asked for so far is written."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout_s)


@dataclass
class SwitchCallRecorder:
    """FreeSWITCH records the call into `switch_dir`/<relative path> (uuid_record on answer);
    that directory is `recordings_dir` here. The row is written once the call is stored."""

    engine: Engine
    recordings_dir: Path
    switch_dir: str
    retention_days: int = 180
    _paths: dict[int, str] = field(default_factory=dict)

    def dial_options(self, attempt_id: int, at: datetime) -> dict[str, str]:
        relpath = recording_relpath(attempt_id, at)
        self._paths[attempt_id] = relpath
        (self.recordings_dir / relpath).parent.mkdir(parents=True, exist_ok=True)
        return {"recording_path": f"{self.switch_dir.rstrip('/')}/{relpath}"}

    def after_call(self, attempt_id: int, result: CallResult) -> None:
        relpath = self._paths.pop(attempt_id, None)
        if relpath is None or not result.answered:
            return
        local = self.recordings_dir / relpath
        try:
            duration, size = _finished_wav(local, attempt_id)
        except (OSError, EOFError, wave.Error):  # not there (yet): the call's length stands in
            duration, size = result.talk_time_s, 0
        with session_scope(self.engine) as session:
            store_recording(
                session,
                attempt_id,
                relpath,
                duration_s=duration,
                size=size,
                now=result.ended_at or datetime.now(timezone.utc),
                retention_days=self.retention_days,
            )


def _finished_wav(path: Path, attempt_id: int) -> tuple[float, int]:
    """The recording's duration and size. A file there whose WAV header is not written yet
    (its writer still closing it) is re-read a few times, 0.1 s apart, before giving up."""
    for retry in range(UNFINISHED_RETRIES + 1):
        try:
            return wav_duration_s(path), path.stat().st_size
        except (EOFError, wave.Error):
            if retry == UNFINISHED_RETRIES:
                raise
            log.warning("attempt %s: its recording is still being written; reading it again", attempt_id)
            time.sleep(UNFINISHED_RETRY_S)
    raise AssertionError("unreachable")


def recorder_from_settings(engine: Engine, carrier_kind: str) -> CallRecorder | None:
    """The recorder for the configured carrier (simulator: mixed; freeswitch: the switch's;
    sip: PJSIP's recorder in this process, writing straight into the recordings directory).
    None for a carrier without one, said in the log."""
    settings = get_settings()
    if carrier_kind == "freeswitch":
        return SwitchCallRecorder(
            engine,
            settings.recordings_dir,
            settings.fs_recordings_dir or str(settings.recordings_dir),
            settings.recording_retention_days,
        )
    if carrier_kind == "sip":
        local_dir = settings.recordings_dir.resolve()
        return SwitchCallRecorder(engine, local_dir, str(local_dir), settings.recording_retention_days)
    if carrier_kind != "simulator":
        log.warning("carrier %s has no call recorder yet: its calls are not recorded", carrier_kind)
        return None
    return SimulatedCallRecorder(
        engine,
        CallMixer.with_espeak(settings.prompts_dir),
        settings.recordings_dir,
        settings.recording_retention_days,
    )
