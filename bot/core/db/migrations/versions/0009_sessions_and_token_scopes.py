"""users.session_generation and api_tokens.scopes (issue 13: logout ends sessions, scoped tokens)

users.session_generation: every console session carries the generation it began in and is
refused once the user's generation has moved on; logout, a new password and a new role raise
it, so a copied cookie stops working.

api_tokens.scopes: what a token may do on the JSON API, space-separated (leads:write,
campaigns:write, reports:read). Tokens made before scopes existed acted as a full session;
they keep all three scopes here (their role still applies) so automation keeps running, and
are no longer accepted on pages.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

ALL_SCOPES = "leads:write campaigns:write reports:read"


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('session_generation', sa.Integer(), nullable=False, server_default=sa.text('0')))
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('scopes', sa.String(length=200), nullable=False, server_default=''))
    op.execute(sa.text("UPDATE api_tokens SET scopes = :scopes").bindparams(scopes=ALL_SCOPES))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('scopes')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_generation')
