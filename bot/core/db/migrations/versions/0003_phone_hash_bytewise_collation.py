"""phone hashes compare byte by byte on PostgreSQL (COLLATE "C")

Keyed phone hashes are hex text; their unique index on leads is maintained for every row a
lead pack upload inserts. Under the database's default collation each comparison goes
through strcoll; "C" compares bytes (same order for hex digits). SQLite already compares
bytes (BINARY): nothing to do there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# (table, nullable) — call_attempts.phone_hash (0002) is left to the campaigns tables' owners.
PHONE_HASH_COLUMNS = (("leads", False), ("lead_rejects", True), ("do_not_call", False))


def _set_collation(collation: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, nullable in PHONE_HASH_COLUMNS:
        # Rewrites the column's indexes (unique included) under the new collation.
        op.alter_column(table, "phone_hash", existing_type=sa.String(length=64), existing_nullable=nullable,
                        type_=sa.String(length=64, collation=collation))


def upgrade() -> None:
    _set_collation("C")


def downgrade() -> None:
    _set_collation("default")
