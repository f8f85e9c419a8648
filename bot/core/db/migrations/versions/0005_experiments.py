"""experiments, arms and assignments (issue 7)

The experiment design lives on the campaign (`campaigns.experiments`, JSON: incentive and
welcome arms, holdout share, seeds, bandit state; script and time-slot arms stay in their
own columns). Assignment itself is never stored: it is the hash of (seed, lead id), and
each call attempt records the arms it was made under. `experiment_holdouts` remembers the
leads the hopper found in a campaign's holdout, so it does not look at them again every
minute (see bot.dialing.planner).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Spelled out here (not imported from the models) so this revision stays as it was written.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('experiments', JSON_DOCUMENT, nullable=False, server_default=sa.text("'{}'")))
    op.create_table('experiment_holdouts',
    sa.Column('campaign_id', ID, nullable=False),
    sa.Column('lead_id', ID, nullable=False),
    sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_experiment_holdouts_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_experiment_holdouts_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'lead_id', name=op.f('pk_experiment_holdouts'))
    )


def downgrade() -> None:
    op.drop_table('experiment_holdouts')
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('experiments')
