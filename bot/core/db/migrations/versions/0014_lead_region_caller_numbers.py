"""leads' province/city/time zone and the campaign caller-number pool (issue 16 item 4, issue 18 item 4)

leads.province/city/timezone/region_source: where the callee lives, from the upload's
city/province column or else the number's 归属地 (bot.core.region). Existing leads are not
back-filled here: the number is stored encrypted and a migration has no key; they keep
null (Beijing time, no local caller number preference) until uploaded again.
caller_numbers: each campaign's pool of caller numbers with a daily cap, today's count and
a rested flag; call_attempts.caller_number/caller_match: the number used and how local it was.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('leads') as batch:
        batch.add_column(sa.Column('province', sa.String(length=20), nullable=True))
        batch.add_column(sa.Column('city', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('timezone', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('region_source', sa.String(length=10), nullable=True))
    with op.batch_alter_table('call_attempts') as batch:
        batch.add_column(sa.Column('caller_number', sa.String(length=20), nullable=True))
        batch.add_column(sa.Column('caller_match', sa.String(length=10), nullable=True))
    op.create_index('ix_call_attempts_caller_number', 'call_attempts', ['campaign_id', 'caller_number', 'dialed_at'])
    op.create_table(
        'caller_numbers',
        sa.Column('id', _Id, nullable=False),
        sa.Column('campaign_id', _Id, nullable=False),
        sa.Column('number', sa.String(length=20), nullable=False),
        sa.Column('province', sa.String(length=20), nullable=True),
        sa.Column('city', sa.String(length=40), nullable=True),
        sa.Column('daily_cap', sa.Integer(), nullable=False),
        sa.Column('used_on', sa.String(length=10), nullable=True),
        sa.Column('used_today', sa.Integer(), nullable=False, server_default=sa.text('0')),
        sa.Column('rested', sa.Integer(), nullable=False, server_default=sa.text('0')),
        sa.Column('rested_reason', sa.String(length=300), nullable=True),
        sa.Column('rested_at', UTC_TIMESTAMP, nullable=True),
        sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('campaign_id', 'number', name='uq_caller_numbers_campaign_id'),
    )


def downgrade() -> None:
    op.drop_table('caller_numbers')
    op.drop_index('ix_call_attempts_caller_number', table_name='call_attempts')
    with op.batch_alter_table('call_attempts') as batch:
        batch.drop_column('caller_match')
        batch.drop_column('caller_number')
    with op.batch_alter_table('leads') as batch:
        batch.drop_column('region_source')
        batch.drop_column('timezone')
        batch.drop_column('city')
        batch.drop_column('province')
