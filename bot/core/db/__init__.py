"""Database layer: one SQLAlchemy Base, engines from settings, Alembic migrations."""
