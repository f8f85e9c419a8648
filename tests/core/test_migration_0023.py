"""Migration 0023 (hand-off call-back tasks) on a database that already has advisor tasks: a
landline's task becomes kind `callback`, an advisor_adds task kind `add`, and the reveal audit
survives — SQLite rebuilds advisor_tasks, and with foreign keys on the rebuild's drop would
cascade to reveal_audit (it did: 2 rows → 0 before the migration kept them). Down again: the
hand-off tasks (no invitation) and their audit go, the rest stays. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import inspect, text

from bot.core.db.migrate import downgrade, upgrade
from tests.core.test_db_migrations import empty_engine  # noqa: F401

WHEN = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


def _row(engine, table: str, **given) -> None:
    """A row with `given` and a plain value in every other NOT NULL column."""
    values = {}
    for column in inspect(engine).get_columns(table):
        name = column["name"]
        if name in given:
            values[name] = given[name]
        elif not column["nullable"] and column.get("default") is None:
            kind = str(column["type"]).upper()
            if any(word in kind for word in ("INT", "NUMERIC", "FLOAT", "REAL", "DOUBLE")):
                values[name] = 1
            elif "BOOL" in kind:
                values[name] = False
            elif "DATE" in kind or "TIME" in kind:
                values[name] = WHEN
            elif "JSON" in kind:
                values[name] = "{}"
            elif "BLOB" in kind or "BYTEA" in kind or "BINARY" in kind:
                values[name] = b"x"
            else:
                values[name] = "x"
    columns = ", ".join(values)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)


def test_existing_tasks_get_their_kind_and_the_reveal_audit_survives(empty_engine):  # noqa: F811
    engine = empty_engine
    upgrade(engine, "0022")
    _row(engine, "lead_packs", id=1, file_sha256="a" * 64)
    _row(engine, "leads", id=1, pack_id=1, phone_hash="h1")
    _row(engine, "campaigns", id=1, name="c1")
    for attempt in (1, 2, 3):
        _row(engine, "call_attempts", id=attempt, campaign_id=1, lead_id=1, attempt_no=attempt)
    _row(engine, "users", id=1, name="xiao.an", role="advisor")
    _row(engine, "wecom_invites", id=1, attempt_id=1, lead_id=1, campaign_id=1, channel="callback", state="s1")
    _row(engine, "wecom_invites", id=2, attempt_id=2, lead_id=1, campaign_id=1, channel="advisor_adds", state="s2")
    for task in (1, 2):
        _row(engine, "advisor_tasks", id=task, invite_id=task, attempt_id=task, lead_id=1, campaign_id=1)
        _row(engine, "reveal_audit", id=task, task_id=task, lead_id=1, user_id=1, user_name="xiao.an")

    upgrade(engine)
    with engine.connect() as conn:
        tasks = conn.execute(text("SELECT id, kind, invite_id FROM advisor_tasks ORDER BY id")).all()
        assert [tuple(t) for t in tasks] == [(1, "callback", 1), (2, "add", 2)]
        assert conn.execute(text("SELECT id FROM reveal_audit ORDER BY id")).scalars().all() == [1, 2]
    with engine.begin() as conn:  # a hand-off call-back: no invitation
        conn.execute(text(
            "INSERT INTO advisor_tasks (id, attempt_id, lead_id, campaign_id, advisor_userid, kind, status, "
            "created_at, due_at, reveals) VALUES (3, 3, 1, 1, 'a', 'handoff', 'open', :t, :t, 1)"), {"t": WHEN})
    _row(engine, "reveal_audit", id=3, task_id=3, lead_id=1, user_id=1, user_name="xiao.an")

    downgrade(engine, "0022")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM advisor_tasks ORDER BY id")).scalars().all() == [1, 2]
        assert conn.execute(text("SELECT id FROM reveal_audit ORDER BY id")).scalars().all() == [1, 2]
