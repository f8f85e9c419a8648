"""follow-up sequences after the WeCom add: enrolments, steps sent, link clicks (issue 17, item 3)

sop_enrolments: one per added invite (the contact), its sequence and A/B arm, state and stop
reason. sop_step_sends: one row per step of the current sequence, claimed atomically by the
sender (status pending → sending), unique per (enrolment, sequence, step) so a step is never
planned twice. sop_links / sop_clicks: our tracked redirect links (unguessable tokens) and
every click. sop_contact_tags: tags a click put on the contact.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'sop_enrolments',
        sa.Column('id', _Id, nullable=False),
        sa.Column('lead_id', _Id, nullable=False),
        sa.Column('invite_id', _Id, nullable=False),
        sa.Column('campaign_id', _Id, nullable=False),
        sa.Column('external_userid', sa.String(length=64), nullable=False),
        sa.Column('advisor_userid', sa.String(length=64), nullable=False),
        sa.Column('audience', sa.String(length=200), nullable=True),
        sa.Column('grade', sa.String(length=1), nullable=False),
        sa.Column('arm', sa.String(length=100), nullable=False),
        sa.Column('sequence', sa.String(length=100), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('stop_reason', sa.String(length=20), nullable=True),
        sa.Column('enrolled_at', _Time, nullable=False),
        sa.Column('sequence_started_at', _Time, nullable=False),
        sa.Column('ended_at', _Time, nullable=True),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_enrolments_lead_id_leads')),
        sa.ForeignKeyConstraint(['invite_id'], ['wecom_invites.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_enrolments_invite_id_wecom_invites')),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_enrolments_campaign_id_campaigns')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sop_enrolments')),
        sa.UniqueConstraint('invite_id', name=op.f('uq_sop_enrolments_invite_id')),
    )
    op.create_index('ix_sop_enrolments_lead_id', 'sop_enrolments', ['lead_id'])
    op.create_index('ix_sop_enrolments_state', 'sop_enrolments', ['state'])
    op.create_index('ix_sop_enrolments_external_userid', 'sop_enrolments', ['external_userid'])
    op.create_table(
        'sop_step_sends',
        sa.Column('id', _Id, nullable=False),
        sa.Column('enrolment_id', _Id, nullable=False),
        sa.Column('lead_id', _Id, nullable=False),
        sa.Column('sequence', sa.String(length=100), nullable=False),
        sa.Column('step_index', sa.Integer(), nullable=False),
        sa.Column('step_type', sa.String(length=20), nullable=False),
        sa.Column('due_at', _Time, nullable=False),
        sa.Column('moved_from', _Time, nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('claimed_at', _Time, nullable=True),
        sa.Column('sent_at', _Time, nullable=True),
        sa.Column('msgid', sa.String(length=100), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['enrolment_id'], ['sop_enrolments.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_step_sends_enrolment_id_sop_enrolments')),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_step_sends_lead_id_leads')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sop_step_sends')),
        sa.UniqueConstraint('enrolment_id', 'sequence', 'step_index', name='uq_sop_step_sends_step'),
    )
    op.create_index('ix_sop_step_sends_status_due_at', 'sop_step_sends', ['status', 'due_at'])
    op.create_index('ix_sop_step_sends_lead_id', 'sop_step_sends', ['lead_id'])
    op.create_table(
        'sop_links',
        sa.Column('id', _Id, nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('enrolment_id', _Id, nullable=False),
        sa.Column('send_id', _Id, nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('tag', sa.String(length=100), nullable=True),
        sa.Column('created_at', _Time, nullable=False),
        sa.ForeignKeyConstraint(['enrolment_id'], ['sop_enrolments.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_links_enrolment_id_sop_enrolments')),
        sa.ForeignKeyConstraint(['send_id'], ['sop_step_sends.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_links_send_id_sop_step_sends')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sop_links')),
        sa.UniqueConstraint('token', name=op.f('uq_sop_links_token')),
    )
    op.create_table(
        'sop_clicks',
        sa.Column('id', _Id, nullable=False),
        sa.Column('link_id', _Id, nullable=False),
        sa.Column('enrolment_id', _Id, nullable=False),
        sa.Column('clicked_at', _Time, nullable=False),
        sa.Column('user_agent', sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(['link_id'], ['sop_links.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_clicks_link_id_sop_links')),
        sa.ForeignKeyConstraint(['enrolment_id'], ['sop_enrolments.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_clicks_enrolment_id_sop_enrolments')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sop_clicks')),
    )
    op.create_index('ix_sop_clicks_link_id', 'sop_clicks', ['link_id'])
    op.create_table(
        'sop_contact_tags',
        sa.Column('id', _Id, nullable=False),
        sa.Column('enrolment_id', _Id, nullable=False),
        sa.Column('tag', sa.String(length=100), nullable=False),
        sa.Column('marked_in_wecom', sa.Integer(), nullable=False),
        sa.Column('created_at', _Time, nullable=False),
        sa.ForeignKeyConstraint(['enrolment_id'], ['sop_enrolments.id'], ondelete='CASCADE',
                                name=op.f('fk_sop_contact_tags_enrolment_id_sop_enrolments')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sop_contact_tags')),
        sa.UniqueConstraint('enrolment_id', 'tag', name='uq_sop_contact_tags_tag'),
    )


def downgrade() -> None:
    op.drop_table('sop_contact_tags')
    op.drop_index('ix_sop_clicks_link_id', table_name='sop_clicks')
    op.drop_table('sop_clicks')
    op.drop_table('sop_links')
    op.drop_index('ix_sop_step_sends_lead_id', table_name='sop_step_sends')
    op.drop_index('ix_sop_step_sends_status_due_at', table_name='sop_step_sends')
    op.drop_table('sop_step_sends')
    op.drop_index('ix_sop_enrolments_external_userid', table_name='sop_enrolments')
    op.drop_index('ix_sop_enrolments_state', table_name='sop_enrolments')
    op.drop_index('ix_sop_enrolments_lead_id', table_name='sop_enrolments')
    op.drop_table('sop_enrolments')
