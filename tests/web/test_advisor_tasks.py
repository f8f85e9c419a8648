"""Issue 18 item 5 on the console: 我的添加任务. An advisor sees their own tasks masked;
显示号码 (POST + CSRF) shows the clear number to the assigned advisor only, once, and audits
it; another advisor, a manager and an admin get 403; 标记已添加 marks the task done; managers
see every task and the reveal audit, masked; ops may not open the page. The campaign form
takes the add mode and the campaign page shows it."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.campaigns.service import set_add_mode
from bot.core.db.engine import session_scope
from bot.leads.models import Lead
from bot.users.service import add_user, set_wecom_userid
from bot.wecom.advisor_models import AdvisorTask, RevealAudit
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.web.conftest import CSRF_FIELD, MOBILE, Browserless, clients, console  # noqa: F401
from tests.wecom.conftest import _test_secret, log_graded_call, seed_campaign  # noqa: F401

ADVISOR = "anxin_advisor01"  # dialogs/wecom/offers.yml: advisor.userid
ADVISORS = {"xiao.an": ("advisor-pass-1", ADVISOR), "lao.wang": ("advisor-pass-2", "another_advisor")}


def seed_advisor_tasks(db, keyring, *, leads: int = 2, name: str = "顾问添加") -> tuple[int, list[int]]:
    """An advisor_adds campaign with `leads` A calls logged (one task each), and two advisors."""
    with session_scope(db) as session:
        campaign_id, packs = seed_campaign(session, keyring, {"车主-华东": ("车主", leads)}, name=name)
        set_add_mode(session, name, "advisor_adds")
        for user, (password, userid) in ADVISORS.items():
            add_user(session, user, password, "advisor")
            set_wecom_userid(session, user, userid)
    for lead in packs["车主-华东"]:
        log_graded_call(db, campaign_id, lead, "A")
    with session_scope(db) as session:
        tasks = list(session.execute(select(AdvisorTask.id).order_by(AdvisorTask.id)).scalars())
    return campaign_id, tasks


def advisor_client(url: str, name: str) -> Browserless:
    client = Browserless(url)
    client.refresh_csrf("/login")
    response = client.http.post(
        "/login", data={"name": name, "password": ADVISORS[name][0], "csrf_token": client.csrf, "next": "/"}
    )
    assert response.status_code == 303, response.text[:300]
    client.refresh_csrf("/")
    return client


def test_only_the_assigned_advisor_reveals_the_number_audited(console, clients, db, keyring):
    campaign_id, (task_id, other_task) = seed_advisor_tasks(db, keyring)
    with session_scope(db) as session:
        task = session.get(AdvisorTask, task_id)
        clear = keyring.decrypt_phone(session.get(Lead, task.lead_id).phone_ciphertext)

    xiao = advisor_client(console.url, "xiao.an")
    page = xiao.get("/advisor/tasks")
    assert page.status_code == 200 and "我的添加任务" in page.text
    assert f"WH{task_id}" in page.text and not MOBILE.findall(page.text)

    # Without the CSRF token: refused, nothing audited.
    bare = xiao.http.post(f"/advisor/tasks/{task_id}/reveal")
    assert bare.status_code == 403
    for client in (advisor_client(console.url, "lao.wang"), clients("manager"), clients("admin")):
        refused = client.post(f"/advisor/tasks/{task_id}/reveal", headers={"Accept": "text/html"})
        assert refused.status_code == 403 and clear not in refused.text
    with session_scope(db) as session:
        assert session.execute(select(RevealAudit)).first() is None

    shown = xiao.post(f"/advisor/tasks/{task_id}/reveal", headers={"Accept": "text/html"})
    assert shown.status_code == 200 and clear in shown.text and shown.headers["cache-control"] == "no-store"
    assert MOBILE.findall(shown.text) == [clear]  # the other task stays masked
    again = xiao.get("/advisor/tasks")
    assert clear not in again.text  # shown once, on that response only
    with session_scope(db) as session:
        audit = session.execute(select(RevealAudit)).scalars().all()
        assert [(a.task_id, a.user_name, a.ip) for a in audit] == [(task_id, "xiao.an", "127.0.0.1")]
        assert "python-httpx" in (audit[0].user_agent or "")

    done = xiao.post(f"/advisor/tasks/{task_id}/done", headers={"Accept": "text/html"})
    assert done.status_code == 303
    assert (
        advisor_client(console.url, "lao.wang")
        .post(f"/advisor/tasks/{other_task}/done", headers={"Accept": "text/html"})
        .status_code
        == 403
    )
    with session_scope(db) as session:
        assert session.get(AdvisorTask, task_id).status == "done"
        assert session.get(AdvisorTask, other_task).status == "open"

    manager_page = clients("manager").get("/advisor/tasks")
    assert manager_page.status_code == 200 and "号码查看记录" in manager_page.text
    assert "xiao.an" in manager_page.text and not MOBILE.findall(manager_page.text)
    assert re.search(r"\d{3}\*{4}\d{4}", manager_page.text)
    funnel = clients("manager").get(f"/wecom?campaign_id={campaign_id}")
    assert funnel.status_code == 200 and "添加方式：<strong>顾问主动添加</strong>" in funnel.text
    for stage in ("已建添加任务", "顾问已查看号码", "顾问已标记添加"):
        assert stage in funnel.text
    export = clients("manager").get(f"/api/v1/reports/wecom-funnel.csv?campaign_id={campaign_id}")
    assert export.status_code == 200 and "顾问已查看号码" in export.text and "顾问主动添加" in export.text
    assert clients("ops").get("/advisor/tasks").status_code == 403
    assert advisor_client(console.url, "lao.wang").get("/advisor/tasks").text.count("WH") <= 1  # none of theirs


def test_the_campaign_form_takes_the_add_mode(console, clients, db, keyring):
    with session_scope(db) as session:
        seed_campaign(session, keyring, {"宝妈": ("宝妈", 1)}, name="已有任务")
    ops = clients("ops")
    form = ops.get("/ops/campaigns")
    assert "顾问主动添加" in form.text and 'name="add_mode"' in form.text
    created = ops.http.post(
        "/ops/campaigns",
        data={
            "csrf_token": ops.csrf,
            "name": "顾问加粉",
            "packs": "pack-宝妈",
            "lines": "5",
            "cps": "1",
            "add_mode": "advisor_adds",
        },
    )
    assert created.status_code == 303, created.text[:500]
    page = ops.get(created.headers["location"])
    assert "添加方式：顾问主动添加" in page.text
    bad = ops.http.post(
        "/ops/campaigns",
        data={
            "csrf_token": ops.csrf,
            "name": "坏的",
            "packs": "pack-宝妈",
            "lines": "5",
            "cps": "1",
            "add_mode": "fax",
        },
    )
    assert bad.status_code == 400 and "添加方式只能是" in bad.text


def test_an_opted_out_persons_number_is_not_shown_and_the_task_goes(console, db, keyring):
    from bot.dnc.service import add_entry

    _, (task_id, other_task) = seed_advisor_tasks(db, keyring)
    with session_scope(db) as session:
        lead = session.get(Lead, session.get(AdvisorTask, task_id).lead_id)
        clear = keyring.decrypt_phone(lead.phone_ciphertext)
        add_entry(session, lead.phone_hash, scope="opt_out", reason="别再打了", source="test")
    xiao = advisor_client(console.url, "xiao.an")
    refused = xiao.post(f"/advisor/tasks/{task_id}/reveal", headers={"Accept": "text/html"})
    assert refused.status_code == 303 and clear not in refused.text
    page = xiao.get("/advisor/tasks")
    assert "客户已要求不再联系，任务已取消" in page.text
    assert f"WH{task_id}<" not in page.text and f"WH{other_task}<" in page.text
    with session_scope(db) as session:
        assert session.get(AdvisorTask, task_id).status == "cancelled"
        assert session.execute(select(RevealAudit)).first() is None
