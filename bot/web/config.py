"""Settings of the web console: the WAIHU_WEB_* part of `bot.core.settings`, with derived values."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.core.pii import load_secret
from bot.core.settings import Settings, get_settings
from bot.web.login_guard import LoginLimits

DEFAULT_MAX_UPLOAD_MB = 100.0
DEFAULT_IDLE_MINUTES = 30.0
DEFAULT_SESSION_HOURS = 12.0


@dataclass(frozen=True)
class WebConfig:
    settings: Settings
    # Signs the session cookie; derived from the master secret unless WAIHU_WEB_SESSION_SECRET is set.
    session_secret: str
    # A session ends after this long without a request, and in any case this long after login.
    idle_timeout_s: float
    session_lifetime_s: float
    # Largest lead-pack upload accepted (bytes); bigger ones are refused before they are read.
    max_upload_bytes: int
    # Cookie only over HTTPS (set WAIHU_WEB_SECURE_COOKIE=1 behind TLS).
    secure_cookie: bool
    # Load the dialogue agent when the server starts instead of on the first chat (~15 s).
    preload_agent: bool = False
    # Import Rasa's validator in the background at start, so the first script save is quick.
    # Tests turn it off: a process that ends during that import prints atexit noise.
    warm_up_validation: bool = True
    # Password guessing and login floods (bot.web.login_guard).
    login_limits: LoginLimits = LoginLimits()
    # CPU seconds a script save check may use (its own process; bot.web.script_workspace).
    check_cpu_seconds: int = 60

    @property
    def dialogs_dir(self) -> Path:
        return self.settings.dialogs_dir

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir

    def with_changes(self, **changes) -> WebConfig:
        return replace(self, **changes)


def _derived_session_secret(settings: Settings) -> str:
    master = load_secret(settings.secret_key, settings.secret_key_file)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"waihu-web", info=b"session-cookie-v1").derive(master)
    return key.hex()


def web_config(settings: Settings | None = None) -> WebConfig:
    settings = settings or get_settings()
    return WebConfig(
        settings=settings,
        session_secret=settings.web_session_secret or _derived_session_secret(settings),
        idle_timeout_s=settings.web_idle_minutes * 60,
        session_lifetime_s=settings.web_session_hours * 3600,
        max_upload_bytes=int(settings.web_max_upload_mb * 1024 * 1024),
        secure_cookie=settings.web_secure_cookie,
        preload_agent=settings.web_preload_agent,
    )
