"""Shared tracker and lock stores, so several worker processes can serve calls.

Uses the real PostgreSQL and Redis on this machine."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.conversation.agent import DialogueAgent
from bot.conversation.session import CallSession, LeadContext
from bot.conversation.stores import lock_store_from_url, tracker_store_from_url
from bot.core.errors import UserError
from tests.conftest import POSTGRES_URL, REDIS_URL, run


def _reachable_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")


def _reachable_postgres() -> None:
    import sqlalchemy

    try:
        sqlalchemy.create_engine(POSTGRES_URL).connect().close()
    except sqlalchemy.exc.OperationalError:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")


@pytest.fixture(scope="module")
def shared_store_agent(model_path):
    """An agent as a worker process runs it: trackers in PostgreSQL, locks in Redis."""
    _reachable_redis()
    _reachable_postgres()
    agent = DialogueAgent.load(model_path, tracker_store_url=POSTGRES_URL, lock_store_url=REDIS_URL)
    asyncio.run(agent.warm_up())
    return agent


def test_call_state_lives_in_the_shared_store(shared_store_agent, model_path) -> None:
    call_id = f"pg-{uuid.uuid4().hex}"

    async def first_half():
        session = CallSession(shared_store_agent, LeadContext(surname="周"), call_id=call_id)
        await session.start()
        return await session.hear("嗯你说吧")

    reply = run(first_half())
    assert reply.lines[-1].response == "utter_ask_wecom"

    # Another process (a fresh store object on the same database) sees the whole call so far.
    store = tracker_store_from_url(POSTGRES_URL)
    store.domain = shared_store_agent.domain
    tracker = run(store.retrieve(call_id))
    assert tracker is not None
    from rasa.shared.core.events import BotUttered

    assert tracker.latest_action_name == "action_listen"  # waiting for the callee
    assert tracker.get_last_event_for(BotUttered).metadata["utter_action"] == "utter_ask_wecom"
    assert tracker.get_slot("callee_title") == "周先生/女士"
    assert tracker.latest_message.intent["name"] == "affirm"


def test_redis_tracker_store_round_trip(dialogue_agent) -> None:
    _reachable_redis()
    from rasa.shared.core.events import SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = tracker_store_from_url(REDIS_URL)
    store.domain = dialogue_agent.domain
    call_id = f"redis-{uuid.uuid4().hex}"
    tracker = DialogueStateTracker.from_events(
        call_id, [SlotSet("callee_title", "吴女士"), UserUttered("我在开车", {"name": "busy", "confidence": 0.98})],
        slots=dialogue_agent.domain.slots,
    )
    run(store.save(tracker))
    other_process = tracker_store_from_url(REDIS_URL)
    other_process.domain = dialogue_agent.domain
    again = run(other_process.retrieve(call_id))
    assert again.get_slot("callee_title") == "吴女士"
    assert again.latest_message.intent["name"] == "busy"


def test_redis_lock_store_serialises_a_conversation() -> None:
    _reachable_redis()
    locks = lock_store_from_url(REDIS_URL)
    call_id = f"lock-{uuid.uuid4().hex}"
    order: list[str] = []

    async def turn(name: str):
        async with locks.lock(call_id, wait_time_in_seconds=0.01):
            order.append(f"{name}-in")
            await asyncio.sleep(0.05)
            order.append(f"{name}-out")

    async def both():
        await asyncio.gather(turn("a"), turn("b"))

    run(both())
    # never interleaved: one turn finishes before the other starts
    assert order in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])


@pytest.mark.parametrize("url", ["mongodb://x", "ftp://host"])
def test_unsupported_store_urls_are_user_errors(url: str) -> None:
    with pytest.raises(UserError, match="unsupported scheme"):
        tracker_store_from_url(url)
    with pytest.raises(UserError, match="only redis"):
        lock_store_from_url(url)
