"""campaigns, call attempts, turns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# Spelled out here (not imported from the models) so this revision stays as it was written.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('campaigns',
    sa.Column('id', ID, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('cps', sa.Float(), nullable=False),
    sa.Column('compliance_profile', sa.String(length=200), nullable=False),
    sa.Column('compliance_overrides', JSON_DOCUMENT, nullable=False),
    sa.Column('retry_policy', JSON_DOCUMENT, nullable=False),
    sa.Column('script_variants', JSON_DOCUMENT, nullable=False),
    sa.Column('time_slots', JSON_DOCUMENT, nullable=False),
    sa.Column('incentive', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
    sa.Column('started_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('stopped_at', UTC_TIMESTAMP, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('name', name=op.f('uq_campaigns_name'))
    )
    op.create_table('campaign_packs',
    sa.Column('campaign_id', ID, nullable=False),
    sa.Column('pack_id', ID, nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_packs_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pack_id'], ['lead_packs.id'], name=op.f('fk_campaign_packs_pack_id_lead_packs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'pack_id', name=op.f('pk_campaign_packs'))
    )
    op.create_table('call_attempts',
    sa.Column('id', ID, nullable=False),
    sa.Column('campaign_id', ID, nullable=False),
    sa.Column('lead_id', ID, nullable=False),
    sa.Column('attempt_no', sa.Integer(), nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('arms', JSON_DOCUMENT, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=40), nullable=True),
    sa.Column('history_outcome', sa.String(length=40), nullable=False),
    sa.Column('grade', sa.String(length=1), nullable=True),
    sa.Column('grade_reason', sa.Text(), nullable=True),
    sa.Column('followups', JSON_DOCUMENT, nullable=False),
    sa.Column('callback_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('hangup_by', sa.String(length=10), nullable=True),
    sa.Column('talk_time_s', sa.Float(), nullable=True),
    sa.Column('carrier_call_id', sa.String(length=100), nullable=True),
    sa.Column('worker', sa.String(length=100), nullable=True),
    sa.Column('scheduled_at', UTC_TIMESTAMP, nullable=False),
    sa.Column('dialed_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('answered_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('ended_at', UTC_TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_call_attempts_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_call_attempts_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_attempts')),
    sa.UniqueConstraint('campaign_id', 'lead_id', 'attempt_no', name=op.f('uq_call_attempts_campaign_id'))
    )
    op.create_index('ix_call_attempts_campaign_id_status', 'call_attempts', ['campaign_id', 'status'], unique=False)
    op.create_index('ix_call_attempts_phone_hash_scheduled_at', 'call_attempts', ['phone_hash', 'scheduled_at'], unique=False)
    op.create_index('ix_call_attempts_lead_id', 'call_attempts', ['lead_id'], unique=False)
    op.create_table('turns',
    sa.Column('id', ID, nullable=False),
    sa.Column('attempt_id', ID, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('speaker', sa.String(length=10), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('response', sa.String(length=100), nullable=True),
    sa.Column('intent', sa.String(length=40), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('entities', JSON_DOCUMENT, nullable=False),
    sa.Column('offset_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], name=op.f('fk_turns_attempt_id_call_attempts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turns')),
    sa.UniqueConstraint('attempt_id', 'seq', name=op.f('uq_turns_attempt_id'))
    )


def downgrade() -> None:
    op.drop_table('turns')
    op.drop_index('ix_call_attempts_lead_id', table_name='call_attempts')
    op.drop_index('ix_call_attempts_phone_hash_scheduled_at', table_name='call_attempts')
    op.drop_index('ix_call_attempts_campaign_id_status', table_name='call_attempts')
    op.drop_table('call_attempts')
    op.drop_table('campaign_packs')
    op.drop_table('campaigns')
