"""campaigns.planner_cursor: where the hopper's lead scans stopped, so the next tick goes on

Without it every tick scanned from the lowest lead id, and the leads of a time slot whose
window was closed filled the whole scan budget: the open slot's later leads were never
reached (one simulated day dialled 214 of 468 morning leads and 386 of 432 evening ones).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('planner_cursor', JSON_DOCUMENT, nullable=False, server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('planner_cursor')
