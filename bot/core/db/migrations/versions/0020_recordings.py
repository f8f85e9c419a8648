"""call recordings with retention (issue 18, item 3)

Placeholder in the chain so parallel work can each fill its own revision; its owner
writes the upgrade and downgrade.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
