"""Migrations upgrade an empty database, match the models, and are reversible — on both backends."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from bot.core.db.engine import create_database_engine
from bot.core.db.migrate import current_revision, downgrade, head_revision, upgrade
from bot.schema import Base
from tests.db_fixtures import create_postgres_schema, drop_postgres_schema

OUR_TABLES = {t.name for t in Base.metadata.sorted_tables}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request, tmp_path):
    if request.param == "sqlite":
        engine = create_database_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield engine
        engine.dispose()
        return
    schema, url = create_postgres_schema()
    engine = create_database_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_postgres_schema(schema)


def tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade(empty_engine):
    assert current_revision(empty_engine) is None
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert OUR_TABLES <= tables(empty_engine)
    downgrade(empty_engine, "base")
    assert current_revision(empty_engine) is None
    assert not (OUR_TABLES & tables(empty_engine))
    upgrade(empty_engine)
    assert OUR_TABLES <= tables(empty_engine)


def test_models_match_the_migrations(empty_engine):
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True,
            "include_name": lambda name, type_, parent: type_ != "table" or name in OUR_TABLES})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(empty_engine):
    upgrade(empty_engine)
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
