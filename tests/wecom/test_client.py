"""The WeCom client against the local WeCom-compatible server over real HTTP: token cache
and refresh, retries on 5xx / busy / rate limits, errors that must not be retried, the
welcome deadline, tags, and what the log shows."""
from __future__ import annotations

import logging
import time

import pytest

from bot.wecom.client import RetryPolicy, WeComClient, WeComError, mask_id
from bot.wecom.dev.server import WeComTestServer
from tests.conftest import run

EC = "/cgi-bin/externalcontact"
FAST = RetryPolicy(attempts=4, base_delay_s=0.02, max_delay_s=0.1)


@pytest.fixture(scope="module")
def server():
    with WeComTestServer() as running:
        yield running


def client_for(server, **options) -> WeComClient:
    return WeComClient(server.settings(), retry=options.pop("retry", FAST), **options)


def test_token_is_cached_and_refreshed_when_it_expires_mid_run(server):
    async def scenario():
        async with client_for(server) as client:
            for i in range(3):
                await client.add_contact_way(user="adv01", state=f"w1token{i}")
            first = client._token
            server.expire_tokens()  # WeCom now answers 42001 for that token
            way = await client.add_contact_way(user="adv01", state="w1after")
            return first, client._token, way, client.outcomes

    before = len(server.answered("/cgi-bin/gettoken"))
    first, second, way, outcomes = run(scenario())
    assert len(server.answered("/cgi-bin/gettoken")) - before == 2  # one at start, one after expiry
    assert first != second and way.config_id in server.contact_ways
    assert outcomes[(f"{EC}/add_contact_way", 42001)] == 1
    assert server.contact_ways[way.config_id]["state"] == "w1after"
    assert server.contact_ways[way.config_id]["type"] == 1 and server.contact_ways[way.config_id]["scene"] == 2


def test_a_token_wecom_never_issued_is_replaced_once(server):
    async def scenario():
        async with client_for(server) as client:
            client._token, client._token_expires = "forged-or-revoked", time.monotonic() + 3600
            await client.add_contact_way(user="adv01", state="w1x")
            return client.outcomes

    assert run(scenario())[(f"{EC}/add_contact_way", 40014)] == 1


def test_5xx_busy_and_rate_limits_are_retried_with_backoff(server):
    sleeps: list[float] = []

    async def recorded_sleep(seconds):
        sleeps.append(seconds)

    async def scenario():
        async with client_for(server, sleep=recorded_sleep) as client:
            await client.access_token()
            server.fail_next(f"{EC}/add_contact_way", 503, -1, 45009)
            way = await client.add_contact_way(user="adv01", state="w1retry")
            server.fail_next(f"{EC}/add_contact_way", 45033, 502)
            again = await client.add_contact_way(user="adv01", state="w1retry2")
            return way, again

    way, again = run(scenario())
    assert way.config_id and again.config_id
    assert len(sleeps) == 5
    # exponential: the third wait is longer than the first (equal jitter keeps the order)
    assert sleeps[2] > sleeps[0] and all(0 < s <= FAST.max_delay_s for s in sleeps)


def test_retries_stop_after_the_last_attempt_and_other_errors_are_not_retried(server):
    async def scenario():
        async with client_for(server) as client:
            server.fail_next(f"{EC}/add_contact_way", *([45009] * FAST.attempts))
            with pytest.raises(WeComError) as exhausted:
                await client.add_contact_way(user="adv01", state="w1give-up")
            before = len(server.answered(f"{EC}/add_contact_way"))
            with pytest.raises(WeComError) as invalid:
                await client.add_contact_way(user="adv01", state="x" * 31)  # state over 30 characters
            return exhausted.value, invalid.value, len(server.answered(f"{EC}/add_contact_way")) - before

    exhausted, invalid, tries = run(scenario())
    assert exhausted.errcode == 45009 and exhausted.retryable
    assert invalid.errcode == 40058 and not invalid.retryable and tries == 1


def test_welcome_deadline_stops_retrying_in_time(server):
    async def scenario():
        async with client_for(server, retry=RetryPolicy(attempts=10, base_delay_s=0.3, max_delay_s=0.3)) as client:
            server.fail_next(f"{EC}/send_welcome_msg", 503, 503, 503, 503)
            started = time.monotonic()
            with pytest.raises(WeComError):
                await client.send_welcome_msg("code", "hi", deadline=time.monotonic() + 0.5)
            return time.monotonic() - started

    assert run(scenario()) < 0.7  # gave up before the deadline rather than retry past it
    server._failures.clear()


def test_tags_are_created_once_and_marked(server):
    server.customers.add(("adv01", "wmCUSTOMER0000000001"))

    async def scenario():
        async with client_for(server) as client:
            first = await client.ensure_tags("外呼人群包", ["车主-华东", "宝妈-华南"])
            second = await client.ensure_tags("外呼人群包", ["车主-华东", "养老-华北"])
            await client.mark_tag("adv01", "wmCUSTOMER0000000001", [first["车主-华东"], second["养老-华北"]])
            with pytest.raises(WeComError) as unknown:
                await client.mark_tag("adv01", "wmNOT_A_CUSTOMER", [first["车主-华东"]])
            return first, second, unknown.value

    first, second, unknown = run(scenario())
    assert first["车主-华东"] == second["车主-华东"]
    groups = [g for g in server.tag_groups.values() if g["group_name"] == "外呼人群包"]
    assert len(groups) == 1 and sorted(groups[0]["tags"].values()) == ["养老-华北", "宝妈-华南", "车主-华东"]
    assert server.tag_names_of("adv01", "wmCUSTOMER0000000001") == {"车主-华东": "外呼人群包", "养老-华北": "外呼人群包"}
    assert unknown.errcode == 40096


def test_a_fresh_client_finds_tags_that_already_exist(server):
    async def scenario():
        async with client_for(server) as client:
            return await client.ensure_tags("外呼人群包", ["车主-华东"])

    before = len(server.answered(f"{EC}/add_corp_tag"))
    ids = run(scenario())
    assert ids["车主-华东"] and len(server.answered(f"{EC}/add_corp_tag")) == before


def test_the_log_masks_identifiers_and_never_shows_the_token_or_secret(server, caplog):
    server.customers.add(("adv01", "wmSECRETCUSTOMERID123"))

    async def scenario():
        async with client_for(server) as client:
            ids = await client.ensure_tags("外呼等级", ["A级"])
            await client.mark_tag("adv01", "wmSECRETCUSTOMERID123", list(ids.values()))
            return client._token

    with caplog.at_level(logging.INFO, logger="bot.wecom.client"):
        token = run(scenario())
    text = caplog.text
    assert "wmSECRETCUSTOMERID123" not in text and mask_id("wmSECRETCUSTOMERID123") in text
    assert token not in text and server.secret not in text
    assert "mark_tag ok" in text
