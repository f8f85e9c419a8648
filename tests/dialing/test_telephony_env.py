"""The SIP carrier's, ASR's and endpointing's settings are ordinary waihu settings (validated,
documented in the README table) handed down to telephony, which cannot import bot.core."""
from __future__ import annotations

import pytest

from bot.core.errors import UserError
from bot.core.settings import get_settings
from bot.dialing.tasks import telephony_env
from telephony.asr.aliyun_nls import config_from_env
from telephony.sip.carrier import SipConfig
from telephony.vad import EndpointerConfig


def test_sip_asr_and_vad_settings_reach_telephony(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"WAIHU_SIP_DOMAIN": "trunk.example.cn:5060", "WAIHU_SIP_USERNAME": "waihu01",
                        "WAIHU_VAD_END_SILENCE_MS": "500", "WAIHU_NLS_APPKEY": "app", "WAIHU_NLS_TOKEN": "tok"}.items():
        monkeypatch.setenv(name, value)
    env = telephony_env(get_settings())
    sip = SipConfig.from_env(env)
    assert (sip.domain, sip.username, sip.caller, sip.bind) == ("trunk.example.cn:5060", "waihu01", "waihu", "0.0.0.0")
    assert EndpointerConfig.from_env(env).end_silence_ms == 500
    assert EndpointerConfig.from_env(env).hangup_ms == 30_000
    assert config_from_env(env) is not None


def test_a_bad_vad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAIHU_VAD_AGGRESSIVENESS", "7")
    with pytest.raises(UserError) as caught:
        get_settings()
    assert "WAIHU_VAD_AGGRESSIVENESS" in " ".join([str(caught.value), *caught.value.details])
