"""The demo's simulated month of follow-up (SOP) after the adds: the real sender (run_due)
sends every due step to the local WeCom server as add_msg_template tasks, hour by simulated
hour; contacts play their part — a reproducible share clicks the tracked links (a real GET on
/r/{token}, which records, tags and switches), some of the clickers and a few others buy
(recorded through the conversions code, which fires the purchase branch), a few reply 退订
(opt-out + DNC) and a few delete the advisor (WeCom's signed callback). Prints the sequences
per A/B arm: enrolled, sent, click rate, conversion rate."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from fastapi import FastAPI
from rich.table import Table
from sqlalchemy import func, select

from bot.campaigns.assignment import bucket
from bot.cli.console import console, err_console
from bot.core.db.engine import session_scope
from bot.core.pii import keyring_from_settings
from bot.experiments.conversions import ConversionIn, record_conversions
from bot.experiments.sop_report import sequence_arms
from bot.leads.models import Lead
from bot.wecom import sop_links
from bot.wecom.dev.local import LocalWeCom
from bot.wecom.dev.server import UvicornThread
from bot.wecom.sop import default_sop_config, on_reply, run_due
from bot.wecom.sop_models import SopEnrolment, SopLink, SopStepSend

FOLLOWUP_DAYS = 30
CLICK_SHARE = 0.35  # of the tracked links sent
BUY_AFTER_CLICK = 0.30
BUY_WITHOUT_CLICK = 0.03
OPT_OUT_SHARE = 0.04
DELETE_SHARE = 0.05


def simulate_followup_month(engine, campaign_id: int, seed: int, days: int = FOLLOWUP_DAYS) -> dict:
    with session_scope(engine) as session:
        contacts = session.execute(
            select(SopEnrolment.advisor_userid, SopEnrolment.external_userid).where(
                SopEnrolment.campaign_id == campaign_id
            )
        ).all()
        first = session.execute(
            select(func.min(SopEnrolment.enrolled_at)).where(SopEnrolment.campaign_id == campaign_id)
        ).scalar_one()
    if not contacts or first is None:
        console.print("[dim]no contact entered a follow-up sequence (dialogs/wecom/sequences.yml)[/]")
        return {}
    with err_console.status(f"WeCom follow-up: a simulated month of SOP steps for {len(contacts)} contacts…"):
        with LocalWeCom.start(engine) as wecom:
            for advisor, external in contacts:  # the friendships made by the adds
                wecom.server.customers.add((advisor, external))
            outcome = asyncio.run(_month(engine, wecom, campaign_id, first, days, f"sop-demo-{seed}"))
    with session_scope(engine) as session:
        arms = sequence_arms(session, campaign_id)
    table = Table("跟进序列（A/B 组）", "入组", "已发送", "超上限跳过", "点击率", "成交率", "保费（元）", "停止")
    for arm in arms:
        table.add_row(
            arm.arm,
            str(arm.enrolled),
            str(arm.sent),
            str(arm.skipped_cap),
            f"{arm.click_rate:.1%}",
            f"{arm.conversion_rate:.1%}",
            f"{arm.premium:,.0f}",
            "，".join(f"{k} {v}" for k, v in arm.stopped.items()) or "-",
        )
    console.print(table)
    console.print(
        f"[dim]follow-up month: {outcome['sent']} steps sent as WeCom message tasks, {outcome['clicks']} clicks, "
        f"{outcome['bought']} purchases, {outcome['opted_out']} opt-outs, {outcome['deleted']} deleted friends[/]"
    )
    return {"arms": [arm.as_json() for arm in arms], **outcome}


async def _month(engine, wecom: LocalWeCom, campaign_id: int, start: datetime, days: int, seed: str) -> dict:
    sequences, policy = default_sop_config()
    now = [start]
    app = FastAPI()
    app.state.engine = engine
    app.state.sop_config = lambda: (sequences, policy)
    app.state.sop_clock = lambda: now[0]
    app.state.sop_wecom_client = wecom.client()
    app.include_router(sop_links.router, prefix="/r")
    redirect = UvicornThread(app).start()
    keyring = keyring_from_settings()
    counts = {"sent": 0, "clicks": 0, "bought": 0, "opted_out": 0, "deleted": 0}
    purchases: list[tuple[datetime, int]] = []
    seen_link = 0
    leaving: list[tuple[datetime, int, str]] = []  # (when, enrolment, opt_out|delete)
    with session_scope(engine) as session:
        for enrolment_id, lead_id, enrolled_at in session.execute(
            select(SopEnrolment.id, SopEnrolment.lead_id, SopEnrolment.enrolled_at).where(
                SopEnrolment.campaign_id == campaign_id
            )
        ).all():
            draw = bucket(seed + "-leave", str(enrolment_id))
            if draw < OPT_OUT_SHARE:
                leaving.append((enrolled_at + timedelta(days=2, hours=3), enrolment_id, "opt_out"))
            elif draw < OPT_OUT_SHARE + DELETE_SHARE:
                leaving.append((enrolled_at + timedelta(days=4, hours=5), enrolment_id, "delete"))
            if bucket(seed + "-buy", str(lead_id)) < BUY_WITHOUT_CLICK:
                purchases.append((enrolled_at + timedelta(days=9, hours=2), lead_id))
    try:
        async with wecom.client() as client, httpx.AsyncClient(base_url=redirect.url) as browser:
            end = start + timedelta(days=days)
            while now[0] <= end:
                report = await run_due(engine, client, sequences=sequences, policy=policy, now=now[0])
                counts["sent"] += report.sent
                seen_link = await _clicks(engine, browser, now, campaign_id, seen_link, seed, purchases, counts)
                for when, enrolment_id, how in [item for item in leaving if item[0] <= now[0]]:
                    leaving.remove((when, enrolment_id, how))
                    await _leave(engine, wecom, enrolment_id, how, now[0], sequences, policy, counts)
                for when, lead_id in [item for item in purchases if item[0] <= now[0]]:
                    purchases.remove((when, lead_id))
                    counts["bought"] += _buy(engine, keyring, lead_id, when)
                # the clock jumps to the next thing that happens (a due step, a purchase, a leave)
                upcoming = [when for when, *_ in leaving + purchases] + _next_due(engine, campaign_id)
                now[0] = max(now[0] + timedelta(minutes=1), min(upcoming, default=end + timedelta(hours=1)))
    finally:
        redirect.stop()
    return counts


def _next_due(engine, campaign_id: int) -> list[datetime]:
    with session_scope(engine) as session:
        due = session.execute(
            select(func.min(SopStepSend.due_at))
            .join(SopEnrolment, SopEnrolment.id == SopStepSend.enrolment_id)
            .where(SopStepSend.status == "pending", SopEnrolment.campaign_id == campaign_id)
        ).scalar_one()
    return [due] if due is not None else []


async def _clicks(engine, browser, now, campaign_id: int, seen_link: int, seed: str, purchases, counts) -> int:
    with session_scope(engine) as session:
        links = session.execute(
            select(SopLink.id, SopLink.token, SopEnrolment.lead_id)
            .join(SopEnrolment, SopEnrolment.id == SopLink.enrolment_id)
            .where(SopLink.id > seen_link, SopEnrolment.campaign_id == campaign_id)
            .order_by(SopLink.id)
        ).all()
    for link_id, token, lead_id in links:
        seen_link = link_id
        if bucket(seed + "-click", str(link_id)) >= CLICK_SHARE:
            continue
        answer = await browser.get(f"/r/{token}", headers={"user-agent": "Mozilla/5.0 MicroMessenger/8.0 (demo)"})
        if answer.status_code == 302:
            counts["clicks"] += 1
            if bucket(seed + "-buy-after-click", str(lead_id)) < BUY_AFTER_CLICK:
                purchases.append((now[0] + timedelta(days=2), lead_id))
    return seen_link


async def _leave(engine, wecom: LocalWeCom, enrolment_id: int, how: str, at, sequences, policy, counts) -> None:
    with session_scope(engine) as session:
        enrolment = session.get(SopEnrolment, enrolment_id)
        if enrolment.state not in ("active", "switched"):
            return
        if how == "opt_out":
            on_reply(session, enrolment, "不要再发了，退订", sequences=sequences, policy=policy, now=at)
            counts["opted_out"] += 1
            return
        external, advisor = enrolment.external_userid, enrolment.advisor_userid
    await wecom.server.simulate_delete(external, advisor, by_customer=True)
    await wecom.wait_processed()
    counts["deleted"] += 1


def _buy(engine, keyring, lead_id: int, at: datetime) -> int:
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        phone = keyring.decrypt_phone(lead.phone_ciphertext)
        [result] = record_conversions(
            session,
            keyring,
            [ConversionIn(f"DEMO-SOP-{lead_id}", "短期意外险", "199", at, phone=phone, row_number=1)],
            source="api",
        )
    return 1 if result.status == "accepted" else 0
