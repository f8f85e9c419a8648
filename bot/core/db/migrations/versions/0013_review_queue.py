"""review_labels: a script writer's label for a caller turn the model was unsure about (issue 16, item 17)

Placeholder in the chain so parallel work can each fill its own revision; its owner
writes the upgrade and downgrade.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
