"""`waihu wecom …` and the Celery delivery task as ops run them, on SQLite and PostgreSQL,
against the local WeCom-compatible server."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from bot.core.db.engine import session_scope
from bot.core.settings import PROJECT_ROOT
from bot.wecom.models import WeComInvite
from tests.conftest import run
from tests.db_fixtures import TEST_SECRET, db, database_url, keyring, migrated_engine  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign, wecom  # noqa: F401


def waihu(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli.app", "wecom", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120,
                          env={**os.environ, "WAIHU_DATABASE_URL": database_url, "WAIHU_SECRET_KEY": TEST_SECRET,
                               "COLUMNS": "220", **env})


def wecom_env(server) -> dict[str, str]:
    return {"WAIHU_WECOM_API_BASE": server.base_url, "WAIHU_WECOM_CORP_ID": server.corp_id,
            "WAIHU_WECOM_SECRET": server.secret, "WAIHU_WECOM_TOKEN": server.token,
            "WAIHU_WECOM_AES_KEY": server.encoding_aes_key}


def test_deliver_tasks_and_funnel_commands(db, database_url, keyring, wecom):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 4), "养老-华北": ("养老", 2)},
                                           name="双十二-加粉")
    grades = {"车主-华东": "AABC", "养老-华北": "BA"}
    for pack, pack_grades in grades.items():
        for lead, grade in zip(leads[pack], pack_grades):
            log_graded_call(db, campaign_id, lead, grade)

    delivered = waihu(database_url, "deliver", "--json", **wecom_env(wecom.server))
    assert delivered.returncode == 0, delivered.stderr
    assert json.loads(delivered.stdout)["delivered"] == 5

    listed = waihu(database_url, "tasks", "--campaign", "双十二-加粉", "--json")
    tasks = json.loads(listed.stdout)["tasks"]
    assert len(tasks) == 5 and all(t["status"] == "sent" and t["link"] for t in tasks)
    assert all(t["phone"].startswith("139****") for t in tasks)
    assert "139****" in waihu(database_url, "tasks").stdout

    with session_scope(db) as session:
        states = [i.state for i in session.query(WeComInvite).order_by(WeComInvite.id)][:3]
    for state in states:
        run(wecom.server.simulate_add(state))
    run(wecom.wait_processed())

    funnel = json.loads(waihu(database_url, "funnel", "双十二-加粉", "--json").stdout)
    total = funnel["total"]
    assert (total["graded_ab"], total["invited"], total["sent"], total["added"], total["welcomed"]) == (5, 5, 5, 3, 3)
    by_pack = {row["name"]: row for row in funnel["by_audience"]}
    assert (by_pack["车主-华东"]["graded_ab"], by_pack["养老-华北"]["graded_ab"]) == (3, 2)
    assert by_pack["车主-华东"]["added"] + by_pack["养老-华北"]["added"] == 3
    assert sum(row["graded_ab"] for row in funnel["by_arm"]["script"]) == 5
    text = waihu(database_url, "funnel", "双十二-加粉")
    assert text.returncode == 0 and "企业微信加粉漏斗" in text.stdout and re.search(r"人群包\s*│\s*车主-华东", text.stdout)
    missing = waihu(database_url, "funnel", "no-such")
    assert missing.returncode == 1 and "no campaign named 'no-such'" in missing.stderr


def test_offers_errors_are_one_clear_message_with_file_and_line(tmp_path, database_url):
    bad = tmp_path / "offers.yml"
    bad.write_text("advisor: {userid: a, name: 小安}\nsms: 加微{link}\naudiences: {}\n", encoding="utf-8")
    result = waihu(database_url, "offers", "--file", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{bad}:2:" in result.stderr and "opt out" in result.stderr
    good = waihu(database_url, "offers", "--json")
    assert good.returncode == 0 and set(json.loads(good.stdout)["audiences"]) >= {"default", "车主", "宝妈", "养老"}


def test_the_celery_task_delivers_and_is_quiet_without_credentials(db, database_url, keyring, wecom, monkeypatch):
    from bot.wecom.tasks import deliver_wecom_invites

    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"宝妈-华南": ("宝妈", 1)})
    log_graded_call(db, campaign_id, leads["宝妈-华南"][0], "A")
    monkeypatch.setenv("WAIHU_DATABASE_URL", database_url)
    assert deliver_wecom_invites.run() == {"skipped": "wecom not configured"}
    for key, value in wecom_env(wecom.server).items():
        monkeypatch.setenv(key, value)
    assert deliver_wecom_invites.run()["delivered"] == 1
    assert deliver_wecom_invites.run()["delivered"] == 0
