"""advisor_adds mode: advisor tasks with an audited number reveal (issue 18, item 5)

advisor_tasks: one per A/B mobile lead of an `advisor_adds` campaign (with its WeComInvite),
assigned to an advisor's WeCom userid; open → done (the advisor says 已添加) → added (the
add callback matched it). reveal_audit: every look at a task's clear number (who, when,
IP, user agent). users: role `advisor` and the advisor's WeCom userid.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

_OLD_ROLES = "role IN ('ops', 'writer', 'manager', 'admin')"
_NEW_ROLES = "role IN ('ops', 'writer', 'manager', 'admin', 'advisor')"


def _users_table(roles: str, *, wecom_userid: bool) -> sa.Table:
    """The users table as it stands, for SQLite's batch copy: SQLite cannot alter a CHECK
    constraint, and a reflected one cannot be dropped by name, so the copy starts from this."""
    columns = [
        sa.Column('id', _Id, nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('session_generation', sa.Integer(), server_default=sa.text('0'), nullable=False),
    ]
    constraints = [
        sa.PrimaryKeyConstraint('id', name='pk_users'),
        sa.UniqueConstraint('name', name='uq_users_name'),
        sa.CheckConstraint(roles, name='ck_users_role_known'),
    ]
    if wecom_userid:
        columns.append(sa.Column('wecom_userid', sa.String(length=64), nullable=True))
        constraints.append(sa.UniqueConstraint('wecom_userid', name='uq_users_wecom_userid'))
    return sa.Table('users', sa.MetaData(), *columns, *constraints)


def _users_batch(roles: str, *, wecom_userid: bool):
    if op.get_bind().dialect.name == 'sqlite':
        return op.batch_alter_table('users', copy_from=_users_table(roles, wecom_userid=wecom_userid))
    return op.batch_alter_table('users')


def _replace_role_check(batch, check: str) -> None:
    batch.drop_constraint('ck_users_role_known', type_='check')
    batch.create_check_constraint(op.f('ck_users_role_known'), check)


def upgrade() -> None:
    with _users_batch(_OLD_ROLES, wecom_userid=False) as batch:
        _replace_role_check(batch, _NEW_ROLES)
        batch.add_column(sa.Column('wecom_userid', sa.String(length=64), nullable=True))
        batch.create_unique_constraint(op.f('uq_users_wecom_userid'), ['wecom_userid'])
    op.create_table(
        'advisor_tasks',
        sa.Column('id', _Id, nullable=False),
        sa.Column('invite_id', _Id, nullable=False),
        sa.Column('attempt_id', _Id, nullable=False),
        sa.Column('lead_id', _Id, nullable=False),
        sa.Column('campaign_id', _Id, nullable=False),
        sa.Column('advisor_userid', sa.String(length=64), nullable=False),
        sa.Column('advisor_name', sa.String(length=100), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('first_revealed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reveals', sa.Integer(), nullable=False),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('done_by', _Id, nullable=True),
        sa.Column('added_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('external_userid', sa.String(length=64), nullable=True),
        sa.Column('matched_by', sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(['invite_id'], ['wecom_invites.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['attempt_id'], ['call_attempts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['done_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('invite_id', name=op.f('uq_advisor_tasks_invite_id')),
    )
    op.create_index('ix_advisor_tasks_advisor_userid', 'advisor_tasks', ['advisor_userid'])
    op.create_index('ix_advisor_tasks_lead_id', 'advisor_tasks', ['lead_id'])
    op.create_index('ix_advisor_tasks_status', 'advisor_tasks', ['status'])
    op.create_table(
        'reveal_audit',
        sa.Column('id', _Id, nullable=False),
        sa.Column('task_id', _Id, nullable=False),
        sa.Column('lead_id', _Id, nullable=False),
        sa.Column('user_id', _Id, nullable=True),
        sa.Column('user_name', sa.String(length=100), nullable=False),
        sa.Column('revealed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ip', sa.String(length=64), nullable=True),
        sa.Column('user_agent', sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(['task_id'], ['advisor_tasks.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_reveal_audit_task_id', 'reveal_audit', ['task_id'])
    op.create_index('ix_reveal_audit_lead_id', 'reveal_audit', ['lead_id'])


def downgrade() -> None:
    op.drop_index('ix_reveal_audit_lead_id', table_name='reveal_audit')
    op.drop_index('ix_reveal_audit_task_id', table_name='reveal_audit')
    op.drop_table('reveal_audit')
    op.drop_index('ix_advisor_tasks_status', table_name='advisor_tasks')
    op.drop_index('ix_advisor_tasks_lead_id', table_name='advisor_tasks')
    op.drop_index('ix_advisor_tasks_advisor_userid', table_name='advisor_tasks')
    op.drop_table('advisor_tasks')
    op.execute("UPDATE users SET role = 'ops' WHERE role = 'advisor'")
    with _users_batch(_NEW_ROLES, wecom_userid=True) as batch:
        batch.drop_constraint('uq_users_wecom_userid', type_='unique')
        batch.drop_column('wecom_userid')
        _replace_role_check(batch, _OLD_ROLES)
