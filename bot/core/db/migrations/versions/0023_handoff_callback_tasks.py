"""a failed hand-off (转人工) gets a human advisor's call-back task (issue 17/18)

advisor_tasks: `kind` (add | callback | handoff; existing tasks of a landline's `callback`
invitation become `callback`, the rest `add`), `call_from` (a call-back window's start),
`invite_id` nullable (a hand-off call-back is not a WeCom invitation), and at most one task of
a kind per call (unique attempt_id, kind) so storing a call twice makes one task.

SQLite rebuilds the table; the reveal audit that points at it is kept (see _keeping_reveal_audit).

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


def _keeping_reveal_audit(rebuild) -> None:
    """SQLite rebuilds advisor_tasks (copy, drop, rename). With foreign keys on (our engine turns
    them on, and PRAGMA cannot turn them off inside the migration's transaction) the drop first
    deletes the old rows, and ON DELETE CASCADE would take the whole reveal audit with them
    (measured: 2 audit rows → 0). So the audit is kept aside and put back."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("CREATE TEMP TABLE _reveal_audit_0023 AS SELECT * FROM reveal_audit")
    rebuild()
    if sqlite:
        op.execute(
            "INSERT INTO reveal_audit SELECT * FROM _reveal_audit_0023 "
            "WHERE id NOT IN (SELECT id FROM reveal_audit) AND task_id IN (SELECT id FROM advisor_tasks)"
        )
        op.execute("DROP TABLE _reveal_audit_0023")


def _upgrade_tasks() -> None:
    with op.batch_alter_table("advisor_tasks") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=20), server_default="add", nullable=False))
        batch.add_column(sa.Column("call_from", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("invite_id", existing_type=_Id, nullable=True)
        batch.create_unique_constraint(op.f("uq_advisor_tasks_attempt_id"), ["attempt_id", "kind"])


def _downgrade_tasks() -> None:
    with op.batch_alter_table("advisor_tasks") as batch:
        batch.drop_constraint("uq_advisor_tasks_attempt_id", type_="unique")
        batch.alter_column("invite_id", existing_type=_Id, nullable=False)
        batch.drop_column("call_from")
        batch.drop_column("kind")


def upgrade() -> None:
    _keeping_reveal_audit(_upgrade_tasks)
    op.execute(
        "UPDATE advisor_tasks SET kind = 'callback' WHERE invite_id IN "
        "(SELECT id FROM wecom_invites WHERE channel = 'callback')"
    )


def downgrade() -> None:
    # Hand-off call-backs have no invitation: the old table cannot hold them (nor their audit).
    op.execute("DELETE FROM reveal_audit WHERE task_id IN (SELECT id FROM advisor_tasks WHERE invite_id IS NULL)")
    op.execute("DELETE FROM advisor_tasks WHERE invite_id IS NULL")
    _keeping_reveal_audit(_downgrade_tasks)
