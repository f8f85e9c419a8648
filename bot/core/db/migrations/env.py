"""Alembic environment: runs on the engine handed over by bot.core.db.migrate (or settings)."""

from __future__ import annotations

from alembic import context

config = context.config


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from bot.core.db.engine import get_engine

        engine = get_engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            # The models' metadata only matters to autogenerate (`waihu db revision`, which
            # hands over bot.schema's); upgrades run the explicit scripts in versions/.
            target_metadata=config.attributes.get("target_metadata"),
            # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()
