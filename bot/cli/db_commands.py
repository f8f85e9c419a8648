"""`waihu db …`: schema migrations (commands also upgrade automatically on first use)."""

from __future__ import annotations

import typer

from bot.cli.console import console

db_app = typer.Typer(help="Database schema: upgrade, downgrade, current.", no_args_is_help=True)


def _engine():
    from bot.core.db.engine import get_engine

    return get_engine()


@db_app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from bot.core.db import migrate

    engine = _engine()
    migrate.upgrade(engine, revision)
    console.print(f"{engine.url.render_as_string(hide_password=True)} at revision {migrate.current_revision(engine)}")


@db_app.command()
def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base or 0001")) -> None:
    """Revert migrations down to REVISION (`base` empties the schema: data is lost)."""
    from bot.core.db import migrate

    engine = _engine()
    migrate.downgrade(engine, revision)
    console.print(
        f"{engine.url.render_as_string(hide_password=True)} at revision {migrate.current_revision(engine) or 'base'}"
    )


@db_app.command()
def current() -> None:
    """The database URL and its schema revision."""
    from bot.core.db import migrate

    engine = _engine()
    now, head = migrate.current_revision(engine), migrate.head_revision()
    console.print(
        f"{engine.url.render_as_string(hide_password=True)}: revision {now or 'base (empty)'}"
        f"{'' if now == head else f' (newest is {head}: waihu db upgrade)'}"
    )


@db_app.command()
def revision(message: str = typer.Argument(..., help="What the migration does, e.g. 'callbacks table'")) -> None:
    """Write a new migration from what the models have and the database lacks (autogenerate)."""
    from bot import schema
    from bot.core.db import migrate

    engine = _engine()
    migrate.upgrade(engine)
    migrate.new_revision(engine, message, schema.Base.metadata)
    console.print(f"new migration in {migrate.MIGRATIONS_DIR / 'versions'}: review it before committing")
