"""WeCom add-friend invitations (issue 6)

wecom_invites (one per graded A/B call), wecom_events (callbacks accepted, deduplicated by
the hash of the decrypted message), wecom_callback_nonces (replay guard) and
wecom_sms_outbox (the default SMS provider's queue).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# Spelled out here (not imported from the models) so this revision stays as it was written.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('wecom_invites',
    sa.Column('id', ID, nullable=False),
    sa.Column('attempt_id', ID, nullable=False),
    sa.Column('lead_id', ID, nullable=False),
    sa.Column('campaign_id', ID, nullable=False),
    sa.Column('grade', sa.String(length=1), nullable=False),
    sa.Column('audience', sa.String(length=200), nullable=True),
    sa.Column('arms', JSON_DOCUMENT, nullable=False),
    sa.Column('incentive', sa.Text(), nullable=True),
    sa.Column('incentive_key', sa.String(length=200), nullable=True),
    sa.Column('welcome_key', sa.String(length=200), nullable=True),
    sa.Column('welcome_text', sa.Text(), nullable=True),
    sa.Column('welcome_attachments', JSON_DOCUMENT, nullable=False),
    sa.Column('advisor_userid', sa.String(length=64), nullable=True),
    sa.Column('advisor_name', sa.String(length=100), nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('contact_way_id', sa.String(length=64), nullable=True),
    sa.Column('link', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('next_try_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
    sa.Column('sent_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('added_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('welcomed_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('deleted_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('external_userid', sa.String(length=64), nullable=True),
    sa.Column('tags', JSON_DOCUMENT, nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], name=op.f('fk_wecom_invites_attempt_id_call_attempts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_wecom_invites_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_wecom_invites_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wecom_invites')),
    sa.UniqueConstraint('attempt_id', name=op.f('uq_wecom_invites_attempt_id')),
    sa.UniqueConstraint('state', name=op.f('uq_wecom_invites_state'))
    )
    op.create_index('ix_wecom_invites_campaign_id', 'wecom_invites', ['campaign_id'], unique=False)
    op.create_index('ix_wecom_invites_lead_id', 'wecom_invites', ['lead_id'], unique=False)
    op.create_index('ix_wecom_invites_status', 'wecom_invites', ['status'], unique=False)
    op.create_table('wecom_events',
    sa.Column('id', ID, nullable=False),
    sa.Column('message_sha256', sa.String(length=64), nullable=False),
    sa.Column('change_type', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=64), nullable=True),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('external_userid', sa.String(length=64), nullable=True),
    sa.Column('welcome_code', sa.Text(), nullable=True),
    sa.Column('event_time', UTC_TIMESTAMP, nullable=True),
    sa.Column('received_at', UTC_TIMESTAMP, nullable=False),
    sa.Column('processed_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('welcome_sent_at', UTC_TIMESTAMP, nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('invite_id', ID, nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['invite_id'], ['wecom_invites.id'], name=op.f('fk_wecom_events_invite_id_wecom_invites'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wecom_events')),
    sa.UniqueConstraint('message_sha256', name=op.f('uq_wecom_events_message_sha256'))
    )
    op.create_index('ix_wecom_events_state', 'wecom_events', ['state'], unique=False)
    op.create_index('ix_wecom_events_status', 'wecom_events', ['status'], unique=False)
    op.create_table('wecom_callback_nonces',
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('seen_at', UTC_TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_wecom_callback_nonces'))
    )
    op.create_index('ix_wecom_callback_nonces_seen_at', 'wecom_callback_nonces', ['seen_at'], unique=False)
    op.create_table('wecom_sms_outbox',
    sa.Column('id', ID, nullable=False),
    sa.Column('invite_id', ID, nullable=False),
    sa.Column('phone_ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('phone_masked', sa.String(length=20), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', UTC_TIMESTAMP, nullable=False),
    sa.Column('sent_at', UTC_TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['invite_id'], ['wecom_invites.id'], name=op.f('fk_wecom_sms_outbox_invite_id_wecom_invites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wecom_sms_outbox'))
    )
    op.create_index('ix_wecom_sms_outbox_status', 'wecom_sms_outbox', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_wecom_sms_outbox_status', table_name='wecom_sms_outbox')
    op.drop_table('wecom_sms_outbox')
    op.drop_index('ix_wecom_callback_nonces_seen_at', table_name='wecom_callback_nonces')
    op.drop_table('wecom_callback_nonces')
    op.drop_index('ix_wecom_events_status', table_name='wecom_events')
    op.drop_index('ix_wecom_events_state', table_name='wecom_events')
    op.drop_table('wecom_events')
    op.drop_index('ix_wecom_invites_status', table_name='wecom_invites')
    op.drop_index('ix_wecom_invites_lead_id', table_name='wecom_invites')
    op.drop_index('ix_wecom_invites_campaign_id', table_name='wecom_invites')
    op.drop_table('wecom_invites')
