"""Invitations after grading and the callback loop, over real HTTP on both databases:
record_call → invite → delivery (contact way + SMS) → WeCom's signed, encrypted add event →
welcome within 20 s with the promised incentive, tags — and the failure cases: forged and
replayed callbacks, duplicates, an old WelcomeCode, a callback before its invite is
committed, WeCom errors during the welcome, an expired token, delivery failures."""
from __future__ import annotations

import asyncio
import logging
import re
import statistics
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.campaigns.models import CallAttempt
from bot.core.db.base import utc_now
from bot.core.db.engine import session_scope
from bot.wecom.invites import deliver_pending_invites
from bot.wecom.models import SmsOutbox, WeComEvent, WeComInvite
from bot.wecom.offers import incentive_for, load_offers
from bot.wecom.sms import HttpSms
from bot.wecom.state import encode_state
from tests.conftest import run
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.wecom.conftest import STATE_KEY, _test_secret, log_graded_call, seed_campaign, wecom  # noqa: F401

EC = "/cgi-bin/externalcontact"


def invites(engine) -> list[WeComInvite]:
    with session_scope(engine) as session:
        return list(session.execute(select(WeComInvite).order_by(WeComInvite.id)).scalars())


def invite_of(engine, attempt_id: int) -> WeComInvite:
    with session_scope(engine) as session:
        return session.execute(select(WeComInvite).where(WeComInvite.attempt_id == attempt_id)).scalar_one()


def events(engine) -> list[WeComEvent]:
    with session_scope(engine) as session:
        return list(session.execute(select(WeComEvent).order_by(WeComEvent.id)).scalars())


async def until(condition, what: str, timeout_s: float = 30.0) -> None:
    """Poll `condition` until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        await asyncio.sleep(0.05)


def one_delivered_invite(db, keyring, wecom, grade: str = "A", pack=("车主-华东", "车主")) -> WeComInvite:
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {pack[0]: (pack[1], 1)})
    attempt_id = log_graded_call(db, campaign_id, leads[pack[0]][0], grade)
    report = run(wecom.deliver())
    assert report.delivered == 1
    return invite_of(db, attempt_id)


def test_url_verification_answers_the_echo_and_refuses_a_forgery(db, wecom):
    response = run(wecom.server.verify_url("8472957382"))
    assert (response.status_code, response.text) == (200, "8472957382")
    forged = run(_forged_get(wecom))
    assert forged.status_code == 403


async def _forged_get(wecom):
    import httpx

    async with httpx.AsyncClient() as http:
        return await http.get(wecom.server.callback_url, params={
            "msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1",
            "echostr": wecom.server.crypto.encrypt("hello")})


def test_only_a_and_b_calls_get_an_invite_made_with_the_call_log(db, keyring, wecom):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 3)})
    ids = [log_graded_call(db, campaign_id, lead, grade) for lead, grade in zip(leads["车主-华东"], "ABC")]
    made = invites(db)
    assert [i.attempt_id for i in made] == ids[:2]
    offers = load_offers()
    with session_scope(db) as session:
        for invite in made:
            attempt = session.get(CallAttempt, invite.attempt_id)
            assert invite.status == "pending" and invite.grade == attempt.grade
            # the same function the dialer calls: the promise and the invite agree
            from bot.audiences.models import AudiencePack
            from bot.leads.models import Lead

            pack = session.get(AudiencePack, session.get(Lead, attempt.lead_id).audience_id)
            assert invite.incentive == incentive_for(offers, pack, attempt.lead_id, attempt.arms).text
            assert invite.incentive in invite.welcome_text
            assert invite.state == encode_state(STATE_KEY, attempt.id, invite.arms) and len(invite.state) <= 30
            assert invite.arms["script"] == attempt.arms["script"] and invite.arms["incentive"]


def test_an_add_gets_the_welcome_with_the_promised_incentive_and_the_tags(db, keyring, wecom):
    invite = one_delivered_invite(db, keyring, wecom)
    assert invite.status == "sent" and invite.contact_way_id in wecom.server.contact_ways
    way = wecom.server.contact_ways[invite.contact_way_id]
    assert way["state"] == invite.state and way["user"] == ["anxin_advisor01"]
    with session_scope(db) as session:
        [sms] = session.execute(select(SmsOutbox)).scalars().all()
    assert invite.link in sms.text and invite.incentive in sms.text and sms.phone_masked.startswith("139****")
    assert keyring.decrypt_phone(sms.phone_ciphertext).startswith("139")

    sent = run(wecom.server.simulate_add(invite.state))
    run(wecom.wait_processed())
    assert (sent.status_code, sent.response_text) == (200, "success")
    welcome = wecom.server.welcome_to(sent.external_userid)
    assert welcome.text == invite.welcome_text and invite.incentive in welcome.text
    assert welcome.attachments[0]["link"]["url"].startswith("https://")
    assert welcome.received_at - sent.sent_at < 5.0
    print(f"\n[{db.dialect.name}] one add: callback answered in {wecom.endpoint.handled_ms[-1]:.1f} ms, "
          f"welcome at WeCom {(welcome.received_at - sent.sent_at) * 1000:.0f} ms after the event was sent")
    after = invite_of(db, invite.attempt_id)
    assert after.status == "welcomed" and after.external_userid == sent.external_userid
    assert after.added_at and after.welcomed_at and after.sent_at
    tags = wecom.server.tag_names_of("anxin_advisor01", sent.external_userid)
    assert tags["A级-明确意向"] == "外呼意向等级" and tags["车主-华东"] == "外呼人群包"
    assert tags[after.arms["script"]] == "外呼话术" and tags[after.arms["incentive"]] == "外呼利益点"
    assert tags[after.arms["welcome"]] == "外呼欢迎语"
    [event] = events(db)
    assert event.status == "processed" and event.invite_id == after.id and "welcomed" in event.note


def test_a_duplicate_delivery_changes_nothing_and_a_replayed_request_is_refused(db, keyring, wecom, caplog):
    invite = one_delivered_invite(db, keyring, wecom)
    first = run(wecom.server.simulate_add(invite.state))
    run(wecom.wait_processed())
    again = run(wecom.server.redeliver(first))  # WeCom's retry: same event, new envelope
    assert (again.status_code, again.response_text) == (200, "success")
    with caplog.at_level(logging.WARNING, logger="bot.wecom.callback"):
        replay = run(wecom.server.repost(first))  # the captured request sent again
    run(wecom.wait_processed())
    assert replay.status_code == 403 and "replayed_nonce" in caplog.text
    assert len(events(db)) == 1
    assert [w.external_userid for w in wecom.server.welcomes].count(first.external_userid) == 1
    assert invite_of(db, invite.attempt_id).status == "welcomed"


def test_forged_signatures_and_old_timestamps_are_rejected_and_logged(db, keyring, wecom, caplog):
    invite = one_delivered_invite(db, keyring, wecom)
    message = wecom.server.add_event_xml(state=invite.state, userid="anxin_advisor01",
                                         external_userid="wmFORGED000000000001", welcome_code="x",
                                         create_time=int(time.time()))
    before = dict(wecom.endpoint.rejected)
    with caplog.at_level(logging.WARNING, logger="bot.wecom.callback"):
        forged = run(wecom.server.post_callback(message, signature="f" * 40))
        stale = run(wecom.server.post_callback(message, timestamp=int(time.time()) - 3600))
    assert forged.status_code == stale.status_code == 403
    assert wecom.endpoint.rejected["bad_signature"] == before.get("bad_signature", 0) + 1
    assert wecom.endpoint.rejected["stale_timestamp"] == before.get("stale_timestamp", 0) + 1
    assert "bad_signature" in caplog.text and "stale_timestamp" in caplog.text
    assert events(db) == [] and invite_of(db, invite.attempt_id).status == "sent"


def test_a_welcome_code_older_than_20_s_is_not_used_and_the_reason_is_kept(db, keyring, wecom, caplog):
    invite = one_delivered_invite(db, keyring, wecom)
    with caplog.at_level(logging.WARNING, logger="bot.wecom.events"):
        sent = run(wecom.server.simulate_add(invite.state, age_s=25))
        run(wecom.wait_processed())
    after = invite_of(db, invite.attempt_id)
    assert after.status == "added" and after.welcomed_at is None
    age = re.search(r"WelcomeCode is (\d+) s old", after.last_error)
    assert age and 25 <= int(age.group(1)) <= 27 and age.group(0) in caplog.text  # CreateTime has whole seconds
    assert wecom.server.welcome_to(sent.external_userid) is None
    assert tuple(wecom.server.tag_names_of("anxin_advisor01", sent.external_userid))  # still tagged


def test_a_callback_before_its_invite_is_committed_is_not_lost(db, keyring, wecom):
    """The add arrives while the transaction that creates the invite is still open (e.g. a
    slow commit after the contact way was made): it waits, or stays unmatched and the next
    delivery pass matches it. Either way: added, welcomed, tagged."""
    from bot.dialing.call_store import record_call
    from tests.wecom.conftest import graded_result

    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"宝妈-华南": ("宝妈", 1)})
        lead_id = leads["宝妈-华南"][0]

    async def scenario():
        with session_scope(db) as session:  # the call log's transaction, held open
            from bot.campaigns.models import Campaign
            from bot.campaigns.service import campaign_arms
            from bot.leads.models import Lead

            attempt = CallAttempt(campaign_id=campaign_id, lead_id=lead_id, attempt_no=1,
                                  phone_hash=session.get(Lead, lead_id).phone_hash, status="dialing",
                                  arms=campaign_arms(session.get(Campaign, campaign_id)).for_lead(lead_id))
            session.add(attempt)
            session.flush()
            record_call(session, attempt, graded_result(f"attempt-{attempt.id}", "A", utc_now()))
            session.flush()
            state = session.execute(select(WeComInvite.state).where(WeComInvite.attempt_id == attempt.id)).scalar_one()
            async with wecom.client() as client:
                await client.add_contact_way(user="anxin_advisor01", state=state)
            add = asyncio.ensure_future(wecom.server.simulate_add(state))
            if db.dialect.name == "postgresql":  # stored at once; the endpoint gives up waiting for the invite
                await until(lambda: [e.status for e in events(db)] == ["unmatched"], "the add to stay unmatched")
            else:  # SQLite: storing the add waits for this transaction's write lock; hold it until the add is here
                await until(lambda: wecom.callback.server.server_state.connections, "the add to reach the endpoint")
        sent = await add  # committed now
        await wecom.wait_processed()
        report = await wecom.deliver()  # the minute's pass matches what was left unmatched
        return sent, report, attempt.id

    sent, report, attempt_id = run(scenario())
    after = invite_of(db, attempt_id)
    assert sent.status_code == 200
    assert after.status == "welcomed" and after.external_userid == sent.external_userid
    assert "儿童意外险" in wecom.server.welcome_to(sent.external_userid).text
    [event] = events(db)
    assert event.status == "processed"
    if db.dialect.name == "postgresql":  # SQLite's write lock made the callback wait for the commit instead
        assert report.events_matched == 1


def test_states_that_are_not_ours_are_ignored(db, keyring, wecom):
    invite = one_delivered_invite(db, keyring, wecom)
    forged_mac = invite.state[:2] + ("a" if invite.state[2] != "a" else "b") + invite.state[3:]
    sent = [run(wecom.server.simulate_add(state, userid="anxin_advisor01"))
            for state in ("channel_poster_2025", forged_mac, None)]
    run(wecom.wait_processed())
    assert [e.status for e in events(db)] == ["ignored"] * 3
    assert all("not one of ours" in e.note for e in events(db))
    assert invite_of(db, invite.attempt_id).status == "sent"
    assert all(wecom.server.welcome_to(s.external_userid) is None for s in sent)


def test_wecom_errors_during_the_welcome_are_retried_in_time_and_an_expired_token_is_renewed(db, keyring, wecom):
    invite = one_delivered_invite(db, keyring, wecom)
    wecom.server.expire_tokens()
    wecom.server.fail_next(f"{EC}/send_welcome_msg", 503, 45033, -1)
    wecom.server.fail_next(f"{EC}/mark_tag", 45009)
    sent = run(wecom.server.simulate_add(invite.state))
    run(wecom.wait_processed())
    welcome = wecom.server.welcome_to(sent.external_userid)
    assert welcome is not None and welcome.received_at - welcome.issued_at < 20
    answered = wecom.server.answered(f"{EC}/send_welcome_msg")
    assert answered[-5:] == [503, 45033, -1, 42001, 0]  # injected failures, then the expired token, then ok
    assert invite_of(db, invite.attempt_id).status == "welcomed"
    assert "A级-明确意向" in wecom.server.tag_names_of("anxin_advisor01", sent.external_userid)


def test_delete_events_end_the_friendship_and_a_re_add_is_welcomed_again(db, keyring, wecom):
    invite = one_delivered_invite(db, keyring, wecom, grade="B", pack=("养老-华北", "养老"))
    sent = run(wecom.server.simulate_add(invite.state))
    run(wecom.wait_processed())
    run(wecom.server.simulate_delete(sent.external_userid, "anxin_advisor01", by_customer=True))
    run(wecom.wait_processed())
    gone = invite_of(db, invite.attempt_id)
    assert gone.status == "deleted" and gone.deleted_at
    assert "B级-可能意向" in wecom.server.tag_names_of("anxin_advisor01", sent.external_userid)
    back = run(wecom.server.simulate_add(invite.state, external_userid=sent.external_userid))
    run(wecom.wait_processed())
    again = invite_of(db, invite.attempt_id)
    assert again.status == "welcomed" and again.deleted_at is None
    assert [w.external_userid for w in wecom.server.welcomes].count(sent.external_userid) == 2
    assert back.status_code == 200


def test_delivery_retries_what_wecom_could_not_take_and_gives_up_on_what_it_refuses(db, keyring, wecom):
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 2)})
    now = utc_now()
    first = log_graded_call(db, campaign_id, leads["车主-华东"][0], "A")
    # WeCom's rate limit on every try of this pass
    wecom.server.fail_next(f"{EC}/add_contact_way", *([45009] * wecom.retry.attempts))
    report = run(wecom.deliver(now=now))
    assert (report.delivered, report.retry_later, report.failed) == (0, 1, 0)
    second = log_graded_call(db, campaign_id, leads["车主-华东"][1], "A")
    wecom.server.fail_next(f"{EC}/add_contact_way", 40058)  # a request WeCom refuses: no point retrying
    report = run(wecom.deliver(now=now))
    assert (report.delivered, report.retry_later, report.failed) == (0, 0, 1)
    retrying, refused = invite_of(db, first), invite_of(db, second)
    assert retrying.status == "pending" and retrying.next_try_at == now + timedelta(minutes=1)
    assert "45009" in retrying.last_error and refused.status == "failed" and "40058" in refused.last_error
    assert run(wecom.deliver(now=now)).delivered == 0  # not due yet
    report = run(wecom.deliver(now=now + timedelta(minutes=2)))
    assert report.delivered == 1 and invite_of(db, first).status == "sent"
    assert run(wecom.deliver(now=now + timedelta(hours=2))).delivered == 0  # idempotent


def test_the_http_sms_provider_and_the_invite_grades_setting(db, keyring, wecom, tmp_path, monkeypatch):
    offers_file = tmp_path / "offers.yml"
    shipped = Path(load_offers().path).read_text(encoding="utf-8")
    offers_file.write_text(shipped.replace("invite_grades: [A, B]", "invite_grades: [A]"), encoding="utf-8")
    monkeypatch.setenv("WAIHU_WECOM_OFFERS", str(offers_file))
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"宝妈-华南": ("宝妈", 2)})
    a, b = (log_graded_call(db, campaign_id, lead, grade) for lead, grade in zip(leads["宝妈-华南"], "AB"))
    assert [i.attempt_id for i in invites(db)] == [a]
    sms = HttpSms(f"{wecom.server.base_url}/sms/send", token=wecom.server.secret)

    async def deliver():
        async with wecom.client() as client:
            return await deliver_pending_invites(db, client, sms, keyring=keyring)

    assert run(deliver()).delivered == 1
    [text] = wecom.server.sms[-1:]
    assert text["phone"].startswith("139") and text["reference"] == f"invite-{invite_of(db, a).id}"
    assert "儿童意外险" in text["text"] and invite_of(db, a).link in text["text"]


def test_a_broken_offers_file_never_loses_the_call(db, keyring, tmp_path, monkeypatch):
    broken = tmp_path / "offers.yml"
    broken.write_text("advisor: {userid: a}\n", encoding="utf-8")
    monkeypatch.setenv("WAIHU_WECOM_OFFERS", str(broken))
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 1)})
    attempt_id = log_graded_call(db, campaign_id, leads["车主-华东"][0], "A")
    with session_scope(db) as session:
        assert session.get(CallAttempt, attempt_id).grade == "A"
    failed = invite_of(db, attempt_id)
    assert failed.status == "failed" and "offers.yml" in failed.last_error


def test_callback_latency_many_adds_at_once(db, keyring, wecom):
    """Figures: callback handling time (receive → stored → answered) and add → welcome."""
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 20)})
    for lead in leads["车主-华东"]:
        log_graded_call(db, campaign_id, lead, "A")
    assert run(wecom.deliver()).delivered == 20
    handled_before = len(wecom.endpoint.handled_ms)

    async def adds():
        return await asyncio.gather(*(wecom.server.simulate_add(i.state) for i in invites(db)))

    sent = run(adds())
    run(wecom.wait_processed())
    welcomes = [wecom.server.welcome_to(s.external_userid) for s in sent]
    assert all(welcomes)
    to_welcome_ms = [(w.received_at - s.sent_at) * 1000 for w, s in zip(welcomes, sent)]
    handled = wecom.endpoint.handled_ms[handled_before:]
    print(f"\n[{db.dialect.name}] 20 concurrent adds: callback handled median {statistics.median(handled):.1f} ms "
          f"max {max(handled):.1f} ms; add event → welcome received median {statistics.median(to_welcome_ms):.0f} ms "
          f"max {max(to_welcome_ms):.0f} ms")
    assert max(to_welcome_ms) < 20_000
    with session_scope(db) as session:
        assert session.execute(select(func.count()).select_from(WeComInvite)
                               .where(WeComInvite.status == "welcomed")).scalar_one() == 20


def test_the_local_loop_on_a_simulated_clock_as_the_demo_runs_it(db, keyring):
    """The demo's week is simulated time: the test server's CreateTime, the callback's time
    window and the welcome's 20 s all follow that one clock."""
    from bot.wecom.dev.local import LocalWeCom
    from telephony.clock import SimClock

    clock = SimClock(start=utc_now() - timedelta(days=30))  # instant: stands still unless slept
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"宝妈-华南": ("宝妈", 3)})
    for lead in leads["宝妈-华南"]:
        log_graded_call(db, campaign_id, lead, "A", ended_at=clock.now())
    with LocalWeCom.start(db, keyring=keyring, state_key=STATE_KEY, clock=clock.now) as local:
        assert run(local.deliver(now=clock.now())).delivered == 3
        sent = run(local.simulate_adds(share=1.0, campaign_id=campaign_id))
    assert len(sent) == 3
    for invite in invites(db):
        assert invite.status == "welcomed" and invite.welcomed_at == invite.sent_at == clock.now()
        assert timedelta(0) <= clock.now() - invite.added_at < timedelta(seconds=1)  # CreateTime: whole seconds


def test_the_router_the_web_console_includes(db, keyring, wecom, monkeypatch):
    """As `waihu serve` mounts it: include_router(router, prefix="/wecom/callback") on a FastAPI
    app whose state holds the engine; settings from WAIHU_WECOM_*; 503 until configured."""
    from fastapi import FastAPI

    from bot.wecom import callback
    from bot.wecom.dev.server import UvicornThread

    for key in ("WAIHU_WECOM_CORP_ID", "WAIHU_WECOM_TOKEN", "WAIHU_WECOM_AES_KEY"):
        monkeypatch.delenv(key, raising=False)
    app = FastAPI()
    app.state.engine = db
    app.include_router(callback.router, prefix="/wecom/callback", include_in_schema=False)
    console = UvicornThread(app).start()
    callback._served.clear()
    original_url = wecom.server.callback_url
    try:
        wecom.server.callback_url = f"{console.url}/wecom/callback"
        assert run(wecom.server.verify_url()).status_code == 503
        callback._served.clear()
        for key, value in {"WAIHU_WECOM_API_BASE": wecom.server.base_url, "WAIHU_WECOM_CORP_ID": wecom.server.corp_id,
                           "WAIHU_WECOM_SECRET": wecom.server.secret, "WAIHU_WECOM_TOKEN": wecom.server.token,
                           "WAIHU_WECOM_AES_KEY": wecom.server.encoding_aes_key}.items():
            monkeypatch.setenv(key, value)
        assert run(wecom.server.verify_url("42")).text == "42"
        invite = one_delivered_invite(db, keyring, wecom)
        sent = run(wecom.server.simulate_add(invite.state))
        run(wecom.wait_processed())
        assert sent.response_text == "success" and wecom.server.welcome_to(sent.external_userid) is not None
        assert invite_of(db, invite.attempt_id).status == "welcomed"
    finally:
        wecom.server.callback_url = original_url
        console.stop()
        callback._served.clear()
