"""Database fixtures for the data-layer tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL gets a uniquely named schema per test session (so parallel runs and other
suites' tables never collide), migrated once and dropped at the end; every test leaves
the tables empty for the next one.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bot.core.db.engine import create_database_engine
from bot.core.db.migrate import upgrade
from bot.core.keys import adopt_key
from bot.core.pii import PhoneKeyring
from bot.schema import Base

POSTGRES_URL = os.environ.get("WAIHU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_SECRET = "test-secret-key-not-for-production"


def postgres_schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


def service_unavailable(reason: str) -> NoReturn:
    """A service the test needs is down: skip, saying why, on a developer's machine; fail in CI (CI=true),
    where a missing PostgreSQL or Redis must not leave the run green."""
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI=true: a test that needs this service fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def create_postgres_schema() -> tuple[str, str]:
    """A fresh schema; skips the test (saying why) if PostgreSQL is not reachable, fails in CI."""
    schema = f"waihu_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, future=True)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001  (any connection failure means: not available here)
        service_unavailable(f"PostgreSQL not reachable at {POSTGRES_URL}: {str(exc).splitlines()[0]}")
    finally:
        admin.dispose()
    return schema, postgres_schema_url(schema)


def drop_postgres_schema(schema: str) -> None:
    admin = create_engine(POSTGRES_URL, future=True)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'waihu.db'}"
        return
    schema, url = create_postgres_schema()
    try:
        yield url
    finally:
        from bot.core.db.engine import _engines

        for engine in list(_engines.values()):
            if str(engine.url) == url or schema in str(engine.url):
                engine.dispose()
        drop_postgres_schema(schema)


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture()
def db(migrated_engine: Engine) -> Iterator[Engine]:
    """The migrated database, written with the test key (its fingerprint recorded), emptied after the test."""
    adopt_key(migrated_engine, PhoneKeyring.from_secret(TEST_SECRET.encode()))
    yield migrated_engine
    empty_tables(migrated_engine)
    migrated_engine.dispose()  # its idle connections: see tests/conftest.py, _release_idle_database_connections


def empty_tables(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def keyring() -> PhoneKeyring:
    return PhoneKeyring.from_secret(TEST_SECRET.encode())
