"""WAIHU_SIP_MAX_CALLS is an ordinary waihu setting (validated, in the README table) that
reaches the SIP carrier's config through telephony_env."""

from __future__ import annotations

import pytest

from bot.core.errors import UserError
from bot.core.settings import get_settings
from bot.dialing.tasks import telephony_env
from telephony.sip.capacity import DEFAULT_MAX_CALLS, MAX_CALLS_LIMIT
from telephony.sip.carrier import SipConfig


def test_sip_max_calls_reaches_the_carrier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAIHU_SIP_DOMAIN", "trunk.example.cn:5060")
    assert SipConfig.from_env(telephony_env(get_settings())).max_calls == DEFAULT_MAX_CALLS
    monkeypatch.setenv("WAIHU_SIP_MAX_CALLS", "2")
    assert SipConfig.from_env(telephony_env(get_settings())).max_calls == 2


@pytest.mark.parametrize("value", ["0", str(MAX_CALLS_LIMIT + 1), "many"])
def test_a_bad_sip_max_calls_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WAIHU_SIP_MAX_CALLS", value)
    with pytest.raises(UserError) as caught:
        get_settings()
    assert "WAIHU_SIP_MAX_CALLS" in " ".join([str(caught.value), *caught.value.details])
