"""campaigns.add_mode: how an A/B callee gets onto WeCom, and so what the robot promises

`link` (default, what the system has always done): an SMS with the advisor's 联系我 link,
the callee adds the advisor. `advisor_adds`: the advisor adds the callee by phone in WeCom
from an audited task. The script's add lines exist per mode (slot `add_mode`); a landline
callee always hears the `callback` lines (an advisor calls back; WeCom cannot add a landline).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('add_mode', sa.String(length=20), nullable=False, server_default='link'))


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('add_mode')
