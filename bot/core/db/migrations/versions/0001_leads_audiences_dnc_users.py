"""lead packs, audience packs, do-not-call, users

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

# Spelled out here (not imported from the models) so this revision stays as it was written.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('audience_packs',
    sa.Column('id', ID, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scene', sa.String(length=40), nullable=True),
    sa.Column('tier', sa.String(length=20), nullable=True),
    sa.Column('attributes', JSON_DOCUMENT, nullable=False),
    sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audience_packs')),
    sa.UniqueConstraint('name', name=op.f('uq_audience_packs_name'))
    )
    op.create_table('do_not_call',
    sa.Column('id', ID, nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('source_call_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
    sa.Column('expires_at', UTC_TIMESTAMP, nullable=True),
    sa.CheckConstraint("scope = 'soft_decline' OR expires_at IS NULL", name=op.f('ck_do_not_call_opt_out_is_permanent')),
    sa.CheckConstraint("scope IN ('opt_out', 'soft_decline')", name=op.f('ck_do_not_call_scope_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_do_not_call')),
    sa.UniqueConstraint('phone_hash', 'scope', name='uq_do_not_call_phone_hash_scope')
    )
    op.create_index('ix_do_not_call_phone_hash', 'do_not_call', ['phone_hash'], unique=False)
    op.create_table('users',
    sa.Column('id', ID, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
    sa.CheckConstraint("role IN ('ops', 'writer', 'manager', 'admin')", name=op.f('ck_users_role_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('lead_packs',
    sa.Column('id', ID, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('file_name', sa.String(length=500), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('file_format', sa.String(length=40), nullable=False),
    sa.Column('audience_id', ID, nullable=True),
    sa.Column('first_party', sa.Integer(), nullable=False),
    sa.Column('consent_basis', sa.Text(), nullable=True),
    sa.Column('column_map', JSON_DOCUMENT, nullable=False),
    sa.Column('uploaded_by', sa.String(length=100), nullable=False),
    sa.Column('uploaded_at', UTC_TIMESTAMP, nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('dnc_hits', sa.Integer(), nullable=False),
    sa.Column('rejected_by_reason', JSON_DOCUMENT, nullable=False),
    sa.ForeignKeyConstraint(['audience_id'], ['audience_packs.id'], name=op.f('fk_lead_packs_audience_id_audience_packs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_packs')),
    sa.UniqueConstraint('file_sha256', name=op.f('uq_lead_packs_file_sha256')),
    sa.UniqueConstraint('name', name=op.f('uq_lead_packs_name'))
    )
    op.create_table('lead_rejects',
    sa.Column('id', ID, nullable=False),
    sa.Column('pack_id', ID, nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=True),
    sa.Column('raw_masked', sa.Text(), nullable=False),
    sa.Column('raw_ciphertext', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['pack_id'], ['lead_packs.id'], name=op.f('fk_lead_rejects_pack_id_lead_packs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_rejects'))
    )
    op.create_index('ix_lead_rejects_pack_id_row_number', 'lead_rejects', ['pack_id', 'row_number'], unique=False)
    op.create_index('ix_lead_rejects_phone_hash', 'lead_rejects', ['phone_hash'], unique=False)
    op.create_table('leads',
    sa.Column('id', ID, nullable=False),
    sa.Column('pack_id', ID, nullable=False),
    sa.Column('audience_id', ID, nullable=True),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('phone_ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('phone_masked', sa.String(length=20), nullable=False),
    sa.Column('line_type', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('gender', sa.String(length=1), nullable=True),
    sa.Column('consent_source', sa.String(length=200), nullable=True),
    sa.Column('consent_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('consent_scope', sa.String(length=200), nullable=True),
    sa.Column('custom_fields', JSON_DOCUMENT, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['audience_id'], ['audience_packs.id'], name=op.f('fk_leads_audience_id_audience_packs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['pack_id'], ['lead_packs.id'], name=op.f('fk_leads_pack_id_lead_packs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads')),
    sa.UniqueConstraint('phone_hash', name=op.f('uq_leads_phone_hash'))
    )
    op.create_index('ix_leads_pack_id', 'leads', ['pack_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_leads_pack_id', table_name='leads')
    op.drop_table('leads')
    op.drop_index('ix_lead_rejects_phone_hash', table_name='lead_rejects')
    op.drop_index('ix_lead_rejects_pack_id_row_number', table_name='lead_rejects')
    op.drop_table('lead_rejects')
    op.drop_table('lead_packs')
    op.drop_table('users')
    op.drop_index('ix_do_not_call_phone_hash', table_name='do_not_call')
    op.drop_table('do_not_call')
    op.drop_table('audience_packs')
