"""call recordings with retention (issue 18, item 3)

recordings: one WAV per connected call, by attempt id (relative path
<yyyy>/<mm>/<attempt id>.wav, never a phone number), its duration, size, format and the
day it is purged (WAIHU_RECORDING_RETENTION_DAYS after the call). recording_audit: every
listen or download in the console (who, when, which attempt). Both go with their attempt.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'recordings',
        sa.Column('id', _Id, nullable=False),
        sa.Column('attempt_id', _Id, nullable=False),
        sa.Column('path', sa.String(length=200), nullable=False),
        sa.Column('duration_s', sa.Float(), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=False),
        sa.Column('format', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('retain_until', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], name=op.f('fk_recordings_attempt_id_call_attempts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recordings')),
        sa.UniqueConstraint('attempt_id', name=op.f('uq_recordings_attempt_id')),
    )
    op.create_index('ix_recordings_retain_until', 'recordings', ['retain_until'])
    op.create_table(
        'recording_audit',
        sa.Column('id', _Id, nullable=False),
        sa.Column('attempt_id', _Id, nullable=False),
        sa.Column('user_id', _Id, nullable=True),
        sa.Column('user_name', sa.String(length=100), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], name=op.f('fk_recording_audit_attempt_id_call_attempts'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recording_audit_user_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recording_audit')),
    )
    op.create_index('ix_recording_audit_attempt_id', 'recording_audit', ['attempt_id'])


def downgrade() -> None:
    op.drop_index('ix_recording_audit_attempt_id', table_name='recording_audit')
    op.drop_table('recording_audit')
    op.drop_index('ix_recordings_retain_until', table_name='recordings')
    op.drop_table('recordings')
