"""call_attempts.callback_outcome and requeued_at: booked callbacks settled, re-sends once

callback_outcome: a booked callback (callback_at) is settled by the reconciler once a
later attempt was dialled inside its grace ("dialled") or the grace ran out
("missed:<reason>"); null while pending or when none was booked. requeued_at: when the
reconciler last re-sent a planned attempt whose queue message was lost, so two
reconcile runs never send the same attempt twice.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# Spelled out here (not imported from the models) so this revision stays as it was written.
UTC_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('call_attempts') as batch:
        batch.add_column(sa.Column('callback_outcome', sa.String(length=60), nullable=True))
        batch.add_column(sa.Column('requeued_at', UTC_TIMESTAMP, nullable=True))
    # Callbacks still to settle: few rows, looked up by the reconciler every minute.
    op.create_index('ix_call_attempts_callback_pending', 'call_attempts', ['callback_at'],
                    postgresql_where=sa.text('callback_at IS NOT NULL AND callback_outcome IS NULL'),
                    sqlite_where=sa.text('callback_at IS NOT NULL AND callback_outcome IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_call_attempts_callback_pending', table_name='call_attempts')
    with op.batch_alter_table('call_attempts') as batch:
        batch.drop_column('requeued_at')
        batch.drop_column('callback_outcome')
