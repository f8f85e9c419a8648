"""review_labels: a script writer's label for a caller turn the model was unsure about (issue 16, item 17)

One row per labelled (or skipped) turn: the intent chosen, what happened to the example
(added to dialogs/data/nlu/from_calls.yml, a duplicate, refused as a test line, skipped),
the masked text, who and when. Deleted with its turn.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'review_labels',
        sa.Column('id', _Id, nullable=False),
        sa.Column('turn_id', _Id, nullable=False),
        sa.Column('intent', sa.String(length=60), nullable=True),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('example_text', sa.Text(), nullable=False),
        sa.Column('labelled_by', sa.String(length=100), nullable=False),
        sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['turn_id'], ['turns.id'], name='fk_review_labels_turn_id_turns', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_review_labels'),
        sa.UniqueConstraint('turn_id', name='uq_review_labels_turn_id'),
    )


def downgrade() -> None:
    op.drop_table('review_labels')
