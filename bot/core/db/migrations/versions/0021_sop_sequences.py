"""follow-up sequences after the WeCom add: enrolments, steps sent, link clicks (issue 17, item 3)

Placeholder in the chain so parallel work can each fill its own revision; its owner
writes the upgrade and downgrade.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
