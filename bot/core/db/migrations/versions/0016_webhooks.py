"""outbound webhooks: endpoints, events (the outbox), deliveries and dead letters (issue 17, item 5)

Events and their deliveries are written in the same transaction as the change they announce
(bot.webhooks). A delivery is pending until delivered or dead; the claim index covers
(status, next_attempt_at). The endpoint's signing secret is encrypted with the installation
key (rotated with it: bot.core.keys.KEYED_COLUMNS).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_Json = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', _Id, nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('secret_ciphertext', sa.LargeBinary(), nullable=False),
        sa.Column('event_types', _Json, nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=False),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    )
    op.create_table(
        'webhook_events',
        sa.Column('id', _Id, nullable=False),
        sa.Column('event_type', sa.String(length=40), nullable=False),
        sa.Column('payload', _Json, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    )
    op.create_index('ix_webhook_events_created_at', 'webhook_events', ['created_at'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', _Id, nullable=False),
        sa.Column('endpoint_id', _Id, nullable=False),
        sa.Column('event_id', _Id, nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('replays', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints')),
        sa.ForeignKeyConstraint(['event_id'], ['webhook_events.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_deliveries_event_id_webhook_events')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['status', 'next_attempt_at'])
    op.create_index('ix_webhook_deliveries_event_id', 'webhook_deliveries', ['event_id'])
    op.create_index('ix_webhook_deliveries_endpoint_id', 'webhook_deliveries', ['endpoint_id'])


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_endpoint_id', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_event_id', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_webhook_events_created_at', table_name='webhook_events')
    op.drop_table('webhook_events')
    op.drop_table('webhook_endpoints')
