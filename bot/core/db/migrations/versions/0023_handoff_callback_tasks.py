"""a failed hand-off (转人工) gets a human advisor's call-back task (issue 17/18)

advisor_tasks: `kind` (add | callback | handoff; existing tasks of a landline's `callback`
invitation become `callback`, the rest `add`), `call_from` (a call-back window's start),
`invite_id` nullable (a hand-off call-back is not a WeCom invitation), and at most one task of
a kind per call (unique attempt_id, kind) so storing a call twice makes one task.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("advisor_tasks") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), server_default="add", nullable=False))
        batch.add_column(sa.Column("call_from", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("invite_id", existing_type=_Id, nullable=True)
        batch.create_unique_constraint(op.f("uq_advisor_tasks_attempt_id"), ["attempt_id", "kind"])
    op.execute(
        "UPDATE advisor_tasks SET kind = 'callback' WHERE invite_id IN "
        "(SELECT id FROM wecom_invites WHERE channel = 'callback')"
    )


def downgrade() -> None:
    # Hand-off call-backs have no invitation; the old table cannot hold them.
    op.execute("DELETE FROM advisor_tasks WHERE invite_id IS NULL")
    with op.batch_alter_table("advisor_tasks") as batch:
        batch.drop_constraint("uq_advisor_tasks_attempt_id", type_="unique")
        batch.alter_column("invite_id", existing_type=_Id, nullable=False)
        batch.drop_column("call_from")
        batch.drop_column("kind")
