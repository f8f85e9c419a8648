"""One settings object for every WAIHU_* variable, and the README's table in step with it."""
from __future__ import annotations

import re

import pytest

from bot.core.errors import UserError
from bot.core.settings import PROJECT_ROOT, Settings, get_settings


def _readme_variables() -> set[str]:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Settings"):]
    table = table[:table.index("\n## ", 1)]
    return set(re.findall(r"`(WAIHU_[A-Z0-9_]+)`", table))


def test_every_setting_is_in_the_readme_table_and_nothing_else() -> None:
    fields = {f"WAIHU_{name.upper()}" for name in Settings.__fields__}
    documented = _readme_variables()
    assert fields - documented == set(), "add these to the README's Settings table"
    assert documented - fields == set(), "the README documents variables no code reads"


def test_no_module_reads_waihu_variables_from_the_environment_itself() -> None:
    offenders = []
    for root in ("bot", "intents", "telephony"):
        for path in (PROJECT_ROOT / root).rglob("*.py"):
            if path.name == "settings.py" and path.parent.name == "core":
                continue
            source = path.read_text(encoding="utf-8")
            if re.search(r"environ(\.get)?[\[(]\s*[\"']WAIHU_|getenv\(\s*[\"']WAIHU_", source):
                offenders.append(str(path.relative_to(PROJECT_ROOT)))
    assert offenders == []


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAIHU_DB_POOL_SIZE", "many")
    monkeypatch.setenv("WAIHU_CLOCK_START", "2026-11-24T10:00:00")
    with pytest.raises(UserError) as caught:
        get_settings()
    everything = " ".join([str(caught.value), *caught.value.details])
    assert "WAIHU_DB_POOL_SIZE" in everything and "WAIHU_CLOCK_START" in everything
    assert "time zone" in everything


def test_derived_defaults_follow_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("WAIHU_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("WAIHU_DATABASE_URL", raising=False)
    monkeypatch.setenv("WAIHU_PROMPTS_DIR", "")  # empty means unset
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'waihu.db'}"
    assert settings.prompts_dir == tmp_path / "prompts" and settings.secret_key_file == tmp_path / "secret.key"


def test_secrets_are_not_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAIHU_SECRET_KEY", "do-not-print-me")
    monkeypatch.setenv("WAIHU_WECOM_SECRET", "nor-me")
    text = repr(get_settings())
    assert "do-not-print-me" not in text and "nor-me" not in text
