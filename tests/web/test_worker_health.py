"""The console says whether a dial worker is running: a started campaign dials only then."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.campaigns.service import change_status, create_campaign
from bot.core.db.engine import session_scope
from bot.core.settings import get_settings
from bot.dialing.liveness import SEEN_WITHIN_S, DialWorkers
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.dialing.test_planner import add_pack
from tests.web.conftest import clients, console  # noqa: F401
from tests.web.test_e2e import browser, page_for, shot  # noqa: F401

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_campaign_pages_show_dial_worker_health(db, keyring, clients, console, tmp_path: Path,  # noqa: F811
                                                page_for) -> None:  # noqa: F811
    with session_scope(db) as session:
        add_pack(session, keyring, "pack-a", 3)
        campaign = create_campaign(session, name="秋季-车主", packs=["pack-a"], lines=2, cps=1)
        change_status(session, campaign.name, "start")
        campaign_id = campaign.id
    ops = clients("ops")
    # The console's data folder (tests/web/conftest.py): where embedded-broker workers say they are there.
    workers = DialWorkers(folder=tmp_path / "data" / "dial_workers" / get_settings().queue)

    for path in ("/ops/campaigns", f"/ops/campaigns/{campaign_id}"):
        page = ops.get(path).text
        assert "未发现拨号进程（最近 3 分钟），外呼不会开始：请运行 waihu run" in page, page[:2000]
    shot_page = page_for("ops")
    shot_page.goto(f"{console.url}/ops/campaigns/{campaign_id}")
    shot(shot_page, "ops-campaign-no-dial-worker")

    workers.beat("host-a:100")
    workers.beat("host-b:200")
    workers.beat("host-c:300", now=time.time() - SEEN_WITHIN_S - 30)  # killed minutes ago: not counted
    for path in ("/ops/campaigns", f"/ops/campaigns/{campaign_id}"):
        page = ops.get(path).text
        assert "拨号进程：在线 2 个" in page and "未发现拨号进程" not in page
    shot_page.goto(f"{console.url}/ops/campaigns")
    shot(shot_page, "ops-campaigns-dial-workers-online")
