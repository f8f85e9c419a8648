"""routing rules: lead routes and the human queue (issue 17, item 2)

One current route per lead (human | advisor | ai) from dialogs/routing.yml; open human and
advisor routes keep the robot off the lead.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'lead_routes',
        sa.Column('id', _Id, nullable=False),
        sa.Column('lead_id', _Id, nullable=False),
        sa.Column('route', sa.String(10), nullable=False),
        sa.Column('rule', sa.String(300), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('routed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('advisor_userid', sa.String(64)),
        sa.Column('status', sa.String(10), nullable=False),
        sa.Column('done_at', sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_lead_routes_lead_id_leads'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_routes')),
        sa.UniqueConstraint('lead_id', name=op.f('uq_lead_routes_lead_id')),
    )
    op.create_index('ix_lead_routes_status_route', 'lead_routes', ['status', 'route'])
    op.create_table(
        'route_reveals',
        sa.Column('id', _Id, nullable=False),
        sa.Column('lead_id', _Id, nullable=False),
        sa.Column('user_id', _Id),
        sa.Column('user_name', sa.String(100), nullable=False),
        sa.Column('revealed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ip', sa.String(64)),
        sa.Column('user_agent', sa.String(300)),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_route_reveals_lead_id_leads'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_route_reveals_user_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_route_reveals')),
    )
    op.create_index('ix_route_reveals_lead_id', 'route_reveals', ['lead_id'])


def downgrade() -> None:
    op.drop_index('ix_route_reveals_lead_id', table_name='route_reveals')
    op.drop_table('route_reveals')
    op.drop_index('ix_lead_routes_status_route', table_name='lead_routes')
    op.drop_table('lead_routes')
