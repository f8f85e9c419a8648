"""advisor_adds mode: advisor tasks with an audited number reveal (issue 18, item 5)

Placeholder in the chain so parallel work can each fill its own revision; its owner
writes the upgrade and downgrade.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
