"""secret_key_fingerprint: the fingerprint of the key the database's numbers are written with

A changed or missing secret key silently disabled do-not-call and duplicate checks (its hashes
match nothing stored). The fingerprint (an HMAC of a constant under the key material, never the
key) is recorded at first use and compared before numbers are read or written (bot.core.keys).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'secret_key_fingerprint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('rotations', sa.Integer(), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_secret_key_fingerprint_one_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_secret_key_fingerprint')),
    )


def downgrade() -> None:
    op.drop_table('secret_key_fingerprint')
