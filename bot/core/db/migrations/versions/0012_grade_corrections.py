"""grade_corrections: a manager's or ops' correction of a call's grade (人工更正)

The attempt keeps the robot's grade; each correction records the grade it replaced, the
new one, why, who and when. The latest correction of an attempt is the grade the A/B
report counts; the call page shows the whole history. Deleted with its attempt.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'grade_corrections',
        sa.Column('id', _Id, nullable=False),
        sa.Column('attempt_id', _Id, nullable=False),
        sa.Column('old_grade', sa.String(length=1), nullable=True),
        sa.Column('new_grade', sa.String(length=1), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('corrected_by', sa.String(length=100), nullable=False),
        sa.Column('corrected_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_grade_corrections_attempt_id', 'grade_corrections', ['attempt_id'])


def downgrade() -> None:
    op.drop_index('ix_grade_corrections_attempt_id', table_name='grade_corrections')
    op.drop_table('grade_corrections')
