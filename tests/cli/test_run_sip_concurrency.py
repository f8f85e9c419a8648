"""`waihu run` on the SIP carrier: no more dial threads than PJSIP holds calls per process."""

from __future__ import annotations

import pytest

from bot.cli.run_commands import dial_concurrency
from bot.core.settings import get_settings


def test_a_sip_worker_dials_no_more_at_once_than_its_carrier_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WAIHU_CARRIER", "sip")
    monkeypatch.setenv("WAIHU_SIP_MAX_CALLS", "3")
    settings = get_settings()
    assert dial_concurrency(settings, 50) == 3
    assert "--concurrency 50 lowered to 3" in capsys.readouterr().err
    assert dial_concurrency(settings, 2) == 2


def test_other_carriers_keep_the_concurrency_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAIHU_CARRIER", "simulator")
    assert dial_concurrency(get_settings(), 50) == 50


def test_a_celery_sip_worker_started_with_more_threads_is_told_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.dialing.tasks import sip_concurrency_warning

    monkeypatch.setenv("WAIHU_CARRIER", "sip")
    monkeypatch.setenv("WAIHU_SIP_MAX_CALLS", "4")
    warning = sip_concurrency_warning(get_settings(), 50)
    assert warning is not None and "--concurrency 4" in warning and "50 dial threads" in warning
    assert sip_concurrency_warning(get_settings(), 4) is None
    monkeypatch.setenv("WAIHU_CARRIER", "simulator")
    assert sip_concurrency_warning(get_settings(), 50) is None
