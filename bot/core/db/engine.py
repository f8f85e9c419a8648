"""Engines and sessions from `WAIHU_DATABASE_URL` (default: SQLite file in the data folder).

`open_database()` is what commands call: it creates the engine once per process and
brings the schema to the newest migration on first use, so a fresh clone needs no
separate setup step (`waihu db upgrade` does the same explicitly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from bot.core.errors import UserError
from bot.core.private_files import private_file
from bot.core.settings import get_settings

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: the dialer reads while an upload writes. foreign_keys: SQLite ignores FKs otherwise.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_database_engine(url: str) -> Engine:
    """A new engine for `url` (no caching, no migration): tests and migrations use this."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(
            f"WAIHU_DATABASE_URL is not a database URL: {url!r}",
            details=["examples: sqlite:///path/to/waihu.db, postgresql://user@host:5432/dbname"],
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            # 0600 in a 0700 folder before SQLite opens it (it would create 0644); its -wal and -shm
            # files take the database file's permissions.
            private_file(Path(parsed.database))
        engine = create_engine(parsed, future=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    settings = get_settings()
    # A dial worker runs claims and call logs on many task threads at once; the default
    # pool (5 + 10 overflow) made them queue for a connection.
    return create_engine(
        parsed, future=True, pool_pre_ping=True, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
    )


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    if url not in _engines:
        _engines[url] = create_database_engine(url)
    return _engines[url]


def open_database(url: str | None = None) -> Engine:
    """The process-wide engine for `url`, with the schema upgraded to the newest migration."""
    from bot.core.db.migrate import upgrade

    engine = get_engine(url)
    key = str(engine.url)
    if key not in _migrated:
        try:
            upgrade(engine)
        except OperationalError as exc:
            raise UserError(
                f"cannot open the database {engine.url.render_as_string(hide_password=True)}: "
                f"{str(exc.orig).strip().splitlines()[0]}",
                details=["check WAIHU_DATABASE_URL and that the server is running"],
            ) from None
        _migrated.add(key)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed if the block finishes, rolled back if it raises."""
    session = Session(engine, future=True, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
