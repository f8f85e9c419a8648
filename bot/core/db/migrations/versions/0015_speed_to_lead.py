"""API leads: external id, 留资 time, priority lane (issue 17, item 1)

leads.external_id: the caller's id for a lead sent through POST /api/v1/leads, unique per
lead pack — the pack is the source (one API pack per audience, or one the caller names), and
two sources' ids may collide, so the id alone is not a key; a retry with the same id into
the same pack finds the same lead. leads.lead_left_at: when the person left their number
(留资时间, also 注册/提交/授权时间 of an upload), what speed to lead is measured from and what
batch packs are dialled freshest-first by. leads.priority: 1 for leads that should be
dialled within minutes (the planner's priority lane), 0 for batch leads.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
# Spelled out here (not imported from the models) so this revision stays as it was written.
UTC_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('leads') as batch:
        batch.add_column(sa.Column('external_id', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('lead_left_at', UTC_TIMESTAMP, nullable=True))
        batch.add_column(sa.Column('priority', sa.Integer(), nullable=False, server_default=sa.text('0')))
    # Idempotency of API leads: one lead per (pack, caller's id); NULLs (uploaded rows) never clash.
    op.create_index('ix_leads_pack_id_external_id', 'leads', ['pack_id', 'external_id'], unique=True)
    # The priority lane: the few priority leads, newest 留资 first, per pack.
    op.create_index('ix_leads_priority_lane', 'leads', ['pack_id', 'lead_left_at'],
                    postgresql_where=sa.text('priority = 1'), sqlite_where=sa.text('priority = 1'))
    # Freshest-first: the untried scan walks the dated leads newest first on this (row comparison).
    op.create_index('ix_leads_lead_left_at', 'leads', ['lead_left_at', 'id'],
                    postgresql_where=sa.text('lead_left_at IS NOT NULL'),
                    sqlite_where=sa.text('lead_left_at IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_leads_lead_left_at', table_name='leads')
    op.drop_index('ix_leads_priority_lane', table_name='leads')
    op.drop_index('ix_leads_pack_id_external_id', table_name='leads')
    with op.batch_alter_table('leads') as batch:
        batch.drop_column('priority')
        batch.drop_column('lead_left_at')
        batch.drop_column('external_id')
