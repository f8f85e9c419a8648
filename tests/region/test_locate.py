"""Region back-fill: leads stored before migration 0014 (no province/city/time zone) get their
region from the number's 归属地 — `waihu leads locate`, and the beat task that runs it without
anyone remembering to. Unknown numbers keep their empty region and are counted. On SQLite and
PostgreSQL."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from bot.cli.app import app
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.region import SOURCE_UNKNOWN
from bot.dialing.planner import Candidate, _callee_zones
from bot.leads.locate import count_unlocated, locate_missing
from bot.leads.models import Lead
from bot.leads.service import UploadRequest, upload_lead_pack
from bot.leads.tasks import run_locate_pass
from tests.db_fixtures import TEST_SECRET, database_url, db, keyring, migrated_engine  # noqa: F401

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=timezone.utc)
# number → the region the back-fill must find (None: the geocoder cannot place it)
NUMBERS = {
    "13999123456": ("新疆", "乌鲁木齐市", "Asia/Urumqi", "number"),
    "09991234567": ("新疆", "伊犁哈萨克自治州", "Asia/Urumqi", "number"),
    "02161234567": ("上海", "上海市", "Asia/Shanghai", "number"),
    "13812345678": ("江苏", "连云港市", "Asia/Shanghai", "number"),
    "19912345678": (None, None, None, SOURCE_UNKNOWN),  # a 199 number: no 归属地 in the geocoder's data
}
LOCATED = "13912345678"  # uploaded with a city column (广东深圳): already located, never touched


def _old_leads(engine, keyring, tmp_path: Path) -> dict[str, int]:
    """Uploads the numbers, then empties the region of all but LOCATED, as before migration 0014.
    Returns number → lead id."""
    path = tmp_path / "old.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        rows = [["手机号", "城市", "同意时间"], [LOCATED, "广东深圳", "2026-11-01 10:00"]]
        csv.writer(handle).writerows(rows + [[number, "", "2026-11-01 10:00"] for number in NUMBERS])
    summary = upload_lead_pack(
        engine, keyring, UploadRequest(path=path, pack_name="pre-0014", uploaded_by="t"), now=NOW
    )
    assert summary.accepted == len(NUMBERS) + 1
    with session_scope(engine) as session:
        ids = {
            keyring.decrypt_phone(blob): lead_id
            for lead_id, blob in session.execute(select(Lead.id, Lead.phone_ciphertext))
        }
        session.execute(
            update(Lead)
            .where(Lead.id != ids[LOCATED])
            .values(province=None, city=None, timezone=None, region_source=None)
            .execution_options(synchronize_session=False)
        )
    return ids


def _regions(engine, ids: dict[str, int]) -> dict[str, tuple]:
    with session_scope(engine) as session:
        by_id = {
            lead.id: (lead.province, lead.city, lead.timezone, lead.region_source)
            for lead in session.execute(select(Lead)).scalars()
        }
    return {number: by_id[lead_id] for number, lead_id in ids.items()}


def test_locate_fills_old_leads_from_the_number_and_counts_unknown_ones(db, keyring, tmp_path) -> None:
    ids = _old_leads(db, keyring, tmp_path)
    with session_scope(db) as session:
        assert count_unlocated(session) == len(NUMBERS)
        # Before: the planner sees no Xinjiang lead, so all are dialled on Beijing time.
        assert _callee_zones(session, [Candidate(i, "", 0) for i in ids.values()]) == {}
    located_before = _regions(db, ids)[LOCATED]
    batches = []

    report = locate_missing(db, keyring, batch_size=2, on_batch=lambda r: batches.append(r.looked_at))

    assert (report.looked_at, report.filled, report.unknown, report.remaining) == (5, 4, 1, 0)
    assert report.by_timezone == {"Asia/Urumqi": 2, "Asia/Shanghai": 2}
    assert batches == [2, 4, 5]  # committed a batch at a time
    assert _regions(db, ids) == {**NUMBERS, LOCATED: located_before}
    assert located_before == ("广东", "深圳市", "Asia/Shanghai", "column")
    with session_scope(db) as session:
        zones = _callee_zones(session, [Candidate(i, "", 0) for i in ids.values()])
    assert zones == {ids["13999123456"]: "Asia/Urumqi", ids["09991234567"]: "Asia/Urumqi"}

    # Idempotent: nothing left to look at, unknown numbers not decrypted again ...
    again = locate_missing(db, keyring)
    assert (again.looked_at, again.filled, again.unknown) == (0, 0, 0)
    # ... unless asked to (after a phonenumbers upgrade): still unknown, still kept as-is.
    retried = locate_missing(db, keyring, retry_unknown=True)
    assert (retried.looked_at, retried.unknown) == (1, 1)
    assert _regions(db, ids)["19912345678"] == NUMBERS["19912345678"]


def test_a_limited_run_says_what_is_left_and_the_next_one_finishes(db, keyring, tmp_path) -> None:
    ids = _old_leads(db, keyring, tmp_path)
    first = locate_missing(db, keyring, batch_size=10, limit=3)
    assert (first.looked_at, first.remaining) == (3, 2)
    second = locate_missing(db, keyring, batch_size=10)
    assert (second.looked_at, second.remaining) == (2, 0)
    assert first.filled + second.filled == 4 and first.unknown + second.unknown == 1
    assert _regions(db, ids)["13999123456"] == NUMBERS["13999123456"]


@pytest.fixture()
def settings_env(db, database_url, tmp_path, monkeypatch) -> dict[str, str]:
    env = {
        "WAIHU_DATABASE_URL": database_url,
        "WAIHU_SECRET_KEY": TEST_SECRET,
        "WAIHU_DATA_DIR": str(tmp_path / "data"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_the_beat_task_fills_a_pass_at_a_time(settings_env, db, keyring, tmp_path) -> None:
    ids = _old_leads(db, keyring, tmp_path)
    first = run_locate_pass(limit=3)
    assert (first["looked_at"], first["remaining"]) == (3, 2)
    second = run_locate_pass(limit=3)
    assert (second["looked_at"], second["filled"] + first["filled"], second["remaining"]) == (2, 4, 0)
    assert run_locate_pass(limit=3)["looked_at"] == 0  # nothing left: a pass is one query
    assert _regions(db, ids)["09991234567"] == NUMBERS["09991234567"]


def test_the_beat_task_rests_once_nothing_is_left(settings_env, db, keyring, tmp_path, monkeypatch) -> None:
    from bot.leads import tasks

    monkeypatch.setattr(tasks, "_idle_until", 0.0)
    monkeypatch.setattr(tasks, "LOCATE_PER_PASS", 3)
    ids = _old_leads(db, keyring, tmp_path)
    assert tasks.locate_leads()["looked_at"] == 3  # the task as beat runs it (Celery runs it in-process here)
    assert tasks.locate_leads()["looked_at"] == 2
    assert tasks.locate_leads()["looked_at"] == 0  # nothing left: this process rests for an hour ...
    with session_scope(db) as session:  # (a lead like those uploaded before 0014 appears)
        session.execute(update(Lead).where(Lead.id == ids[LOCATED]).values(region_source=None))
    assert "skipped" in tasks.locate_leads()
    monkeypatch.setattr(tasks, "_idle_until", 0.0)  # ... then looks again
    assert tasks.locate_leads()["filled"] == 1
    assert tasks.locate_leads.name in tasks.app.tasks  # registered on the workers' Celery app


def test_the_beat_task_skips_when_the_database_is_down(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WAIHU_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("WAIHU_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = run_locate_pass()
    assert list(result) == ["skipped"] and result["skipped"].startswith("cannot open the database")


def test_cli_locate_prints_a_summary_and_json(settings_env, db, keyring, tmp_path) -> None:
    ids = _old_leads(db, keyring, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["leads", "locate", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "filled │ 4" in out and "Asia/Urumqi │ 2" in out and "kept as-is (Beijing time) │ 1" in out
    assert not any(number in result.stdout for number in ids)  # numbers never printed
    again = json.loads(runner.invoke(app, ["leads", "locate", "--json"]).stdout)
    assert again == {"looked_at": 0, "filled": 0, "unknown": 0, "by_timezone": {}, "remaining": 0}
    retried = json.loads(runner.invoke(app, ["leads", "locate", "--retry-unknown", "--json"]).stdout)
    assert (retried["looked_at"], retried["unknown"]) == (1, 1)


def test_cli_locate_with_the_wrong_key_is_one_clear_error(settings_env, db, keyring, tmp_path, monkeypatch) -> None:
    _old_leads(db, keyring, tmp_path)
    monkeypatch.setenv("WAIHU_SECRET_KEY", "another-secret-key-that-is-long-enough")
    result = CliRunner().invoke(app, ["leads", "locate"])
    # A UserError: `waihu` prints it as one red line (bot.cli.app), no traceback.
    assert isinstance(result.exception, UserError) and "secret key does not match" in str(result.exception)
    with session_scope(db) as session:
        assert count_unlocated(session) == len(NUMBERS)  # nothing written with a key that cannot read
