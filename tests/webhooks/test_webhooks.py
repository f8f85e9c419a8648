"""Issue 17 item 5: outbound webhooks for CRMs, on SQLite and PostgreSQL, through a real HTTP
receiver (tests/webhooks/receiver.py). Time is driven by passing the clock's `now` to the
delivery pass, never by sleeping."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from bot.campaigns.grading import correct_grade
from bot.campaigns.models import CallAttempt
from bot.core.db.engine import session_scope
from bot.dialing.call_runner import CallResult, assess
from bot.dialing.call_store import record_call
from bot.leads.models import Lead
from bot.webhooks.delivery import BACKOFF_S, JITTER, MAX_ATTEMPTS, deliver_due
from bot.webhooks.events import CALL_FINISHED, EVENT_TYPES, LEAD_GRADED, emit
from bot.webhooks.models import DEAD, DELIVERED, PENDING, WebhookDelivery, WebhookEndpoint, WebhookEvent
from bot.webhooks.service import add_endpoint, list_deliveries, replay, replay_dead
from tests.db_fixtures import db, database_url, keyring, migrated_engine  # noqa: F401
from tests.webhooks.receiver import Receiver
from tests.wecom.conftest import _test_secret, graded_result, log_graded_call, seed_campaign, wecom  # noqa: F401

START = datetime(2026, 12, 6, 2, 0, tzinfo=timezone.utc)  # 10:00 in Beijing
CLEAR_MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


@pytest.fixture()
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def subscribe(engine, keyring, receiver: Receiver, events=("all",)) -> int:
    with session_scope(engine) as session:
        endpoint, secret = add_endpoint(session, keyring, receiver.url, events, by="test")
        receiver.secret = secret
        return endpoint.id


def drive(engine, keyring, start: datetime, rng: random.Random, passes: int = 300) -> datetime:
    """Delivery passes at each moment something is due, until nothing is pending; returns the last moment."""
    now = start
    for _ in range(passes):
        deliver_due(engine, keyring.decrypt_text, now=now, rng=rng)
        with session_scope(engine) as session:
            due = session.execute(
                select(func.min(WebhookDelivery.next_attempt_at)).where(WebhookDelivery.status == PENDING)
            ).scalar()
        if due is None:
            return now
        now = max(now, due)
    raise AssertionError("deliveries still pending after every pass")


def no_answer_call(engine, campaign_id: int, lead_id: int, ended_at: datetime) -> int:
    with session_scope(engine) as session:
        lead = session.get(Lead, lead_id)
        attempt = CallAttempt(
            campaign_id=campaign_id,
            lead_id=lead_id,
            attempt_no=1,
            phone_hash=lead.phone_hash,
            arms={"script": "standard"},
            status="dialing",
            history_outcome="scheduled",
            scheduled_at=ended_at,
            dialed_at=ended_at - timedelta(seconds=40),
        )
        session.add(attempt)
        session.flush()
        result = CallResult(
            f"attempt-{attempt.id}",
            carrier_status="no_answer",
            cause="NO_ANSWER",
            dialed_at=ended_at - timedelta(seconds=40),
            ended_at=ended_at,
        )
        result.outcome = assess(result)
        record_call(session, attempt, result)
        return attempt.id


def test_every_event_is_delivered_at_least_once_through_a_receiver_that_fails_half_the_time(db, keyring, receiver):
    subscribe(db, keyring, receiver)
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 6)}, name="webhooks-flaky")
    lead_ids = leads["车主-华东"]
    graded = [
        log_graded_call(db, campaign_id, lead, grade, ended_at=START) for lead, grade in zip(lead_ids[:4], "ABCA")
    ]
    no_answer = no_answer_call(db, campaign_id, lead_ids[4], START)
    with session_scope(db) as session:
        correct_grade(session, graded[2], "B", "客户问了保费", "经理王")
    with session_scope(db) as session:  # a manager quoting the callee's number: masked for the CRM
        correct_grade(session, graded[1], "A", "客户说13812345678可以加", "经理王")

    with session_scope(db) as session:
        events = {e.id: e for e in session.execute(select(WebhookEvent)).scalars()}
    counts = Counter(e.event_type for e in events.values())
    assert counts == {CALL_FINISHED: 5, LEAD_GRADED: 6}  # 5 calls (1 not connected), 4 robot grades + 1 correction

    drive(db, keyring, START, random.Random(7))

    with session_scope(db) as session:
        deliveries = list(session.execute(select(WebhookDelivery)).scalars())
    assert len(deliveries) == len(events) and all(d.status == DELIVERED for d in deliveries)
    delivered = receiver.delivered()
    assert set(delivered) == {d.id for d in deliveries}  # every one, with a valid signature, answered 200
    assert sum(r.answered == 500 for r in receiver.requests) == len(receiver.requests) // 2  # it failed half

    # Retries follow the backoff schedule (with ≤ 20 % jitter), on the clock the pass was given.
    retried = 0
    for delivery in deliveries:
        stamps = [r.timestamp for r in receiver.requests if r.delivery_id == delivery.id]
        assert len(stamps) == delivery.attempts
        for n, (before, after) in enumerate(zip(stamps, stamps[1:])):
            assert BACKOFF_S[n] - 1 <= after - before <= BACKOFF_S[n] * (1 + JITTER) + 1
            retried += 1
    assert retried >= len(deliveries) // 2

    bodies = [r.body for r in receiver.requests]
    finished = next(b["data"] for b in bodies if b["type"] == CALL_FINISHED and b["data"]["attempt_id"] == no_answer)
    assert finished["connected"] is False and finished["outcome"] == "no_answer" and finished["grade"] is None
    assert finished["campaign"] == "webhooks-flaky" and re.fullmatch(r"139\*{4}\d{4}", finished["phone_masked"])
    quoted = next(b["data"] for b in bodies if b["type"] == LEAD_GRADED and b["data"]["attempt_id"] == graded[1]
                  and b["data"]["corrected"])
    assert quoted["reason"] == "客户说138****5678可以加"
    correction = next(b["data"] for b in bodies if b["type"] == LEAD_GRADED and b["data"]["corrected"]
                      and b["data"]["attempt_id"] == graded[2])
    assert (correction["attempt_id"], correction["previous_grade"], correction["grade"]) == (graded[2], "C", "B")
    assert correction["corrected_by"] == "经理王" and correction["reason"] == "客户问了保费"
    robot = next(b["data"] for b in bodies if b["type"] == LEAD_GRADED and b["data"]["attempt_id"] == graded[0])
    assert robot["grade"] == "A" and robot["corrected"] is False and robot["reason"] and robot["arms"]
    # Masked numbers only: no request body holds a phone number in clear.
    assert not any(CLEAR_MOBILE.search(r.raw.decode()) for r in receiver.requests)


def test_a_410_is_dead_at_once_and_replay_sends_it_again(db, keyring, receiver):
    subscribe(db, keyring, receiver, events=["call.finished"])
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"宝妈-华南": ("宝妈", 1)}, name="webhooks-gone")
    no_answer_call(db, campaign_id, leads["宝妈-华南"][0], START)
    receiver.mode = "gone"
    drive(db, keyring, START, random.Random(1))
    with session_scope(db) as session:
        dead = list_deliveries(session, dead_only=True)
    assert len(dead) == 1 and dead[0].attempts == 1 and dead[0].last_status_code == 410
    assert dead[0].event_type == CALL_FINISHED

    receiver.mode = "ok"
    with session_scope(db) as session:
        replay(session, dead[0].id, now=START + timedelta(hours=1))
    drive(db, keyring, START + timedelta(hours=1), random.Random(1))
    with session_scope(db) as session:
        again = session.get(WebhookDelivery, dead[0].id)
        assert (again.status, again.replays, again.attempts) == (DELIVERED, 1, 1)
    assert [r.answered for r in receiver.requests] == [410, 200]
    assert {r.delivery_id for r in receiver.requests} == {dead[0].id}  # same id: the receiver can dedupe


def test_a_receiver_down_for_good_gets_every_attempt_then_the_dead_letter_list(db, keyring, receiver):
    subscribe(db, keyring, receiver, events=["lead.graded"])
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"养老-华北": ("养老", 1)}, name="webhooks-down")
    log_graded_call(db, campaign_id, leads["养老-华北"][0], "C", ended_at=START)
    receiver.mode = "down"
    last = drive(db, keyring, START, random.Random(3))
    assert len(receiver.requests) == MAX_ATTEMPTS == 8
    assert timedelta(seconds=sum(BACKOFF_S)) <= last - START <= timedelta(seconds=sum(BACKOFF_S) * (1 + JITTER))
    with session_scope(db) as session:
        assert session.execute(select(WebhookDelivery.status)).scalar_one() == DEAD
        assert replay_dead(session, since=START) == 1
    receiver.mode = "ok"
    drive(db, keyring, last, random.Random(3))
    assert receiver.requests[-1].answered == 200 and len(receiver.requests) == MAX_ATTEMPTS + 1


def test_the_outbox_is_written_in_the_call_results_transaction(db, keyring, receiver, monkeypatch):
    subscribe(db, keyring, receiver)
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"单身-西南": ("单身", 2)}, name="webhooks-tx")
    lead_id = leads["单身-西南"][0]
    with pytest.raises(RuntimeError):
        with session_scope(db) as session:
            lead = session.get(Lead, lead_id)
            attempt = CallAttempt(
                campaign_id=campaign_id,
                lead_id=lead_id,
                attempt_no=1,
                phone_hash=lead.phone_hash,
                arms={},
                status="dialing",
                history_outcome="scheduled",
                scheduled_at=START,
            )
            session.add(attempt)
            session.flush()
            record_call(session, attempt, graded_result(f"attempt-{attempt.id}", "B", START))
            assert session.execute(select(func.count()).select_from(WebhookEvent)).scalar() == 2  # written…
            raise RuntimeError("the call log's transaction fails")
    with session_scope(db) as session:  # …and rolled back with the call: nothing to send
        assert session.execute(select(func.count()).select_from(WebhookEvent)).scalar() == 0
        assert session.execute(select(func.count()).select_from(WebhookDelivery)).scalar() == 0
        assert session.execute(select(func.count()).select_from(CallAttempt)).scalar() == 0
    attempt_id = log_graded_call(db, campaign_id, lead_id, "B", ended_at=START)
    with session_scope(db) as session:
        types = sorted(e.event_type for e in session.execute(select(WebhookEvent)).scalars())
        assert types == [CALL_FINISHED, LEAD_GRADED]
        assert all(e.payload["attempt_id"] == attempt_id for e in session.execute(select(WebhookEvent)).scalars())


def test_a_payload_with_a_clear_number_is_refused_and_types_are_checked(db, keyring, receiver):
    subscribe(db, keyring, receiver)
    with session_scope(db) as session:
        with pytest.raises(ValueError, match="in clear"):
            emit(
                session,
                "sop.step_sent",
                {
                    "sequence": "T+1",
                    "step": "保单链接",
                    "channel": "wecom",
                    "lead_id": 1,
                    "lead_external_id": None,
                    "phone_masked": "13812345678",
                    "campaign_id": None,
                    "arms": {},
                    "sent_at": START.isoformat(),
                },
            )
        with pytest.raises(ValueError, match="lacks"):
            emit(session, "conversion.matched", {"lead_id": 1})
        # WeCom's external_userid is random hex: 11 digits inside it are not a phone number.
        sent = {
            "sequence": "T+1",
            "step": "保单链接",
            "channel": "wecom",
            "lead_id": 1,
            "lead_external_id": "wmab13812345678cd",
            "phone_masked": "138****5678",
            "campaign_id": None,
            "arms": {},
            "sent_at": START.isoformat(),
        }
        assert emit(session, "sop.step_sent", sent) is not None
        with pytest.raises(ValueError, match="unknown"):
            emit(session, "lead.created", {})
    assert set(EVENT_TYPES) == {"call.finished", "lead.graded", "wecom.added", "sop.step_sent", "conversion.matched", "lead.routed"}


def test_the_secret_is_stored_encrypted(db, keyring, receiver):
    subscribe(db, keyring, receiver)
    with session_scope(db) as session:
        stored = bytes(session.execute(select(WebhookEndpoint.secret_ciphertext)).scalar_one())
    assert receiver.secret.encode() not in stored and keyring.decrypt_text(stored) == receiver.secret


def test_two_concurrent_claimers_never_send_one_delivery_twice(db, keyring, receiver):
    if db.dialect.name != "postgresql":
        pytest.skip("the concurrent claim is PostgreSQL's FOR UPDATE SKIP LOCKED (SQLite serialises writers)")
    receiver.mode = "ok"
    subscribe(db, keyring, receiver, events=["conversion.matched"])
    with session_scope(db) as session:
        for n in range(120):
            emit(
                session,
                "conversion.matched",
                {
                    "lead_id": n,
                    "lead_external_id": f"crm-{n}",
                    "phone_masked": "139****0001",
                    "policy_number": f"P{n:06d}",
                    "product": "驾乘险",
                    "premium": 99.0,
                    "converted_at": START.isoformat(),
                    "source": "test",
                    "campaign_id": None,
                    "attempt_id": None,
                    "arms": {},
                },
                now=START,
            )
    barrier = threading.Barrier(2)
    reports = []

    def worker(seed: int) -> None:
        barrier.wait()
        reports.append(deliver_due(db, keyring.decrypt_text, now=START, limit=10, rng=random.Random(seed)))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    sent = Counter(r.delivery_id for r in receiver.requests)
    assert len(sent) == 120 and max(sent.values()) == 1  # each sent once, by one of them
    assert all(r.claimed > 0 for r in reports) and sum(r.claimed for r in reports) == 120  # both worked
    with session_scope(db) as session:
        assert Counter(session.execute(select(WebhookDelivery.status)).scalars()) == {DELIVERED: 120}


def test_a_matched_wecom_add_is_sent_as_wecom_added(db, keyring, receiver, wecom):
    from tests.conftest import run
    from tests.wecom.test_callback import one_delivered_invite

    receiver.mode = "ok"
    subscribe(db, keyring, receiver, events=["wecom.added"])
    invite = one_delivered_invite(db, keyring, wecom)
    first = run(wecom.server.simulate_add(invite.state))
    run(wecom.wait_processed())
    run(wecom.server.redeliver(first))  # WeCom's retry of the same event: no second wecom.added
    run(wecom.wait_processed())
    drive(db, keyring, datetime.now(timezone.utc), random.Random(5))
    added = [r.body for r in receiver.requests if r.event_type == "wecom.added"]
    assert len(added) == 1  # once per add
    data = added[0]["data"]
    assert (data["invite_id"], data["attempt_id"], data["grade"]) == (invite.id, invite.attempt_id, "A")
    assert data["external_userid"] and data["added_at"] and data["incentive"] == invite.incentive
    assert re.fullmatch(r"139\*{4}\d{4}", data["phone_masked"]) and data["campaign"]


def test_erasing_a_person_deletes_their_webhook_events(db, keyring, receiver):
    from bot.erasure import forget_phone

    subscribe(db, keyring, receiver)
    with session_scope(db) as session:
        campaign_id, leads = seed_campaign(session, keyring, {"车主-华东": ("车主", 2)}, name="webhooks-erase")
    kept, erased = leads["车主-华东"]
    for lead in (kept, erased):
        log_graded_call(db, campaign_id, lead, "B", ended_at=START)
    with session_scope(db) as session:
        forget_phone(session, keyring, "13900000002")  # the second lead's number (seed_campaign numbers them)
    with session_scope(db) as session:
        left = {e.payload["lead_id"] for e in session.execute(select(WebhookEvent)).scalars()}
        assert left == {kept}
        assert session.execute(select(func.count()).select_from(WebhookDelivery)).scalar() == 2


def test_a_commit_that_emitted_kicks_a_delivery_pass_and_a_rollback_does_not(db, keyring, receiver):
    from bot.webhooks import events as webhook_events

    subscribe(db, keyring, receiver, events=["conversion.matched"])
    kicks: list[int] = []

    def kick() -> None:
        kicks.append(1)

    data = {
        "lead_id": 1,
        "lead_external_id": None,
        "phone_masked": "139****0001",
        "policy_number": "P1",
        "product": "驾乘险",
        "premium": 99.0,
        "converted_at": START.isoformat(),
        "source": "test",
        "campaign_id": None,
        "attempt_id": None,
        "arms": {},
    }
    webhook_events.on_commit(kick)
    try:
        with pytest.raises(RuntimeError):
            with session_scope(db) as session:
                emit(session, "conversion.matched", data)
                raise RuntimeError("rolled back")
        assert kicks == []
        with session_scope(db) as session:
            session.execute(select(1))  # a commit that emitted nothing
        assert kicks == []
        with session_scope(db) as session:
            emit(session, "conversion.matched", data)
        assert kicks == [1]
    finally:
        webhook_events._after_commit.remove(kick)
