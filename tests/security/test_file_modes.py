"""Issue 13, Low 10: the data folder, the SQLite database and the secret key file are private from the
moment they exist (0700 / 0600), whatever the umask allows."""
from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import text

from bot.core.db.engine import create_database_engine
from bot.core.pii import load_secret


@pytest.fixture()
def permissive_umask():
    previous = os.umask(0o022)  # the common default: new files 0644, folders 0755
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_database_and_its_folder_are_created_private(tmp_path, permissive_umask):
    database = tmp_path / "data" / "nested" / "waihu.db"
    engine = create_database_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert mode(database) == 0o600
        assert mode(database.parent) == 0o700 and mode(database.parent.parent) == 0o700
        for extra in (database.with_name("waihu.db-wal"), database.with_name("waihu.db-shm")):
            if extra.exists():
                assert mode(extra) == 0o600
    finally:
        engine.dispose()


def test_an_existing_folder_is_left_as_its_owner_set_it(tmp_path, permissive_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    engine = create_database_engine(f"sqlite:///{shared / 'waihu.db'}")
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()
    assert mode(shared) == 0o750 and mode(shared / "waihu.db") == 0o600


def test_secret_key_file_and_folder_are_created_private(tmp_path, permissive_umask, monkeypatch):
    monkeypatch.setenv("WAIHU_DATABASE_URL", f"sqlite:///{tmp_path / 'db' / 'waihu.db'}")
    key_file = tmp_path / "keys" / "secret.key"
    load_secret(None, key_file)
    assert mode(key_file) == 0o600 and mode(key_file.parent) == 0o700
