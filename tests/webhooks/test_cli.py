"""`waihu webhooks …` as an admin runs it, against a real HTTP receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bot.cli.app import app
from bot.core.db.engine import session_scope
from bot.core.errors import UserError
from bot.core.settings import PROJECT_ROOT
from tests.db_fixtures import TEST_SECRET, db, database_url, keyring, migrated_engine  # noqa: F401
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_webhooks import START, no_answer_call
from tests.wecom.conftest import _test_secret, seed_campaign  # noqa: F401


@pytest.fixture()
def cli(db, database_url, tmp_path, monkeypatch):
    for key, value in {
        "WAIHU_DATABASE_URL": database_url,
        "WAIHU_SECRET_KEY": TEST_SECRET,
        "WAIHU_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args), catch_exceptions=True)
        # `waihu` prints a UserError as one line with its details (bot.cli.app.main); here it is the exception
        error = result.exception if isinstance(result.exception, UserError) else None
        result.text = result.output + (" ".join([str(error), *error.details]) if error else "")
        return result

    return invoke


@pytest.fixture()
def receiver():
    server = Receiver(mode="gone").start()
    yield server
    server.stop()


def test_add_deliver_dead_letter_replay_and_ping(cli, db, keyring, receiver):
    added = cli("webhooks", "add", receiver.url, "--events", "call.finished,lead.graded", "--json")
    assert added.exit_code == 0, added.output
    summary = json.loads(added.stdout)
    assert summary["events"] == ["call.finished", "lead.graded"] and summary["secret"].startswith("whsec_")
    receiver.secret = summary["secret"]
    listed = cli("webhooks", "list")
    assert receiver.url in listed.stdout and summary["secret"] not in listed.stdout  # shown once only

    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 1)}, name="cli-hooks")
    no_answer_call(db, campaign_id, leads["车主-华东"][0], START)
    sent = json.loads(cli("webhooks", "deliver", "--json").stdout)
    assert (sent["claimed"], sent["dead"]) == (1, 1)  # 410 Gone: dead at once

    dead = json.loads(cli("webhooks", "deliveries", "--dead", "--json").stdout)["deliveries"]
    assert len(dead) == 1 and dead[0]["last_status_code"] == 410 and dead[0]["event_type"] == "call.finished"
    assert "410" in cli("webhooks", "deliveries", "--dead").stdout

    receiver.mode = "ok"
    assert cli("webhooks", "replay", str(dead[0]["id"])).exit_code == 0
    assert json.loads(cli("webhooks", "deliver", "--json").stdout)["delivered"] == 1
    assert cli("webhooks", "deliveries", "--dead").stdout.strip() == "no dead deliveries"

    pinged = cli("webhooks", "test", receiver.url)
    assert pinged.exit_code == 0 and "HTTP 200" in pinged.stdout
    assert receiver.requests[-1].event_type == "ping" and receiver.requests[-1].signature_ok

    assert cli("webhooks", "disable", str(summary["id"])).exit_code == 0
    assert "no" in cli("webhooks", "list").stdout.split(receiver.url)[1].split("\n")[0]


def test_mistakes_get_one_clear_error(cli):
    unknown = cli("webhooks", "add", "https://crm.example.com/h", "--events", "call.finshed")
    assert unknown.exit_code == 1 and "unknown webhook event type 'call.finshed'" in unknown.text
    assert "known types: call.finished" in unknown.text and "Traceback" not in unknown.text
    bad_url = cli("webhooks", "add", "crm.example.com/h", "--events", "all")
    assert bad_url.exit_code == 1 and "not an http(s) URL" in bad_url.text
    short = cli("webhooks", "add", "https://crm.example.com/h", "--events", "all", "--secret", "abc")
    assert short.exit_code == 1 and "too short" in short.text
    both = cli("webhooks", "replay")
    assert both.exit_code == 1 and "--all-dead" in both.text
    missing = cli("webhooks", "replay", "999")
    assert missing.exit_code == 1 and "no webhook delivery with id 999" in missing.text
    since = cli("webhooks", "replay", "--all-dead", "--since", "yesterday")
    assert since.exit_code == 1 and "--since 'yesterday' is not a date" in since.text


def test_the_command_prints_one_line_not_a_traceback(database_url):
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.app", "webhooks", "add", "ftp://crm", "--events", "all"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        env={**os.environ, "WAIHU_DATABASE_URL": database_url, "WAIHU_SECRET_KEY": TEST_SECRET},
    )
    assert done.returncode == 1 and "error: webhook URL 'ftp://crm' is not an http(s) URL" in done.stderr
    assert "Traceback" not in done.stderr
