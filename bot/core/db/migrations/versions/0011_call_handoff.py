"""call_attempts.handoff: the outcome of a hand-off to a human (转人工)

handed_off: an advisor took the call (the robot's part ended there); handoff_failed:
nobody was free within the wait, the robot said so and an advisor callback was booked
(callback_at). Null when the callee never asked for a human. The managers' report counts
both per arm; the call detail shows them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('call_attempts') as batch:
        batch.add_column(sa.Column('handoff', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_attempts') as batch:
        batch.drop_column('handoff')
