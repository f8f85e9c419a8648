"""conversions and premium matched to leads and arms (issue 17, item 4)

conversions: one row per policy (policy_no unique: re-posts are duplicates), the lead it was
matched to (ON DELETE CASCADE: erasure), and the attempt, campaign and arms it was
attributed to. conversion_rejects: rows not taken, with row, field and reason.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_Json = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
_PhoneHash = sa.String(length=64).with_variant(sa.String(length=64, collation='C'), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'conversions',
        sa.Column('id', _Id, nullable=False),
        sa.Column('policy_no', sa.String(length=64), nullable=False),
        sa.Column('product', sa.String(length=200), nullable=False),
        sa.Column('premium', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('converted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('lead_id', _Id, nullable=False),
        sa.Column('attempt_id', _Id, nullable=True),
        sa.Column('campaign_id', _Id, nullable=True),
        sa.Column('arms', _Json, nullable=False),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('batch', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['attempt_id'], ['call_attempts.id'], name=op.f('fk_conversions_attempt_id_call_attempts'), ondelete='SET NULL'
        ),
        sa.ForeignKeyConstraint(
            ['campaign_id'], ['campaigns.id'], name=op.f('fk_conversions_campaign_id_campaigns'), ondelete='SET NULL'
        ),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_conversions_lead_id_leads'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_conversions')),
        sa.UniqueConstraint('policy_no', name=op.f('uq_conversions_policy_no')),
    )
    op.create_index('ix_conversions_campaign_id_lead_id', 'conversions', ['campaign_id', 'lead_id'], unique=False)
    op.create_index('ix_conversions_lead_id', 'conversions', ['lead_id'], unique=False)
    op.create_table(
        'conversion_rejects',
        sa.Column('id', _Id, nullable=False),
        sa.Column('source', sa.String(length=10), nullable=False),
        sa.Column('batch', sa.String(length=200), nullable=True),
        sa.Column('row_number', sa.Integer(), nullable=False),
        sa.Column('field', sa.String(length=40), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('policy_no', sa.String(length=64), nullable=True),
        sa.Column('phone_hash', _PhoneHash, nullable=True),
        sa.Column('raw_masked', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_conversion_rejects')),
    )
    op.create_index('ix_conversion_rejects_phone_hash', 'conversion_rejects', ['phone_hash'], unique=False)
    op.create_index('ix_conversion_rejects_created_at', 'conversion_rejects', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_conversion_rejects_created_at', table_name='conversion_rejects')
    op.drop_index('ix_conversion_rejects_phone_hash', table_name='conversion_rejects')
    op.drop_table('conversion_rejects')
    op.drop_index('ix_conversions_lead_id', table_name='conversions')
    op.drop_index('ix_conversions_campaign_id_lead_id', table_name='conversions')
    op.drop_table('conversions')
