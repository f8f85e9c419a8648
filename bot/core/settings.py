"""Every `WAIHU_*` environment variable, read in one place: `get_settings()`.

One pydantic `BaseSettings` object: each field is the variable `WAIHU_<FIELD>` (upper
case), typed and checked once, so a bad value fails with the variable's name instead of
deep inside a worker. The README's "Settings" table lists them all; a test keeps the two
in step. Lower layers (`intents`, `telephony`) read no environment: they are handed what
they need from here.

`get_settings()` reads the environment on every call (it is cheap): tests and the demo
change variables between calls, and a long-lived process reads them once at start.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseSettings, Field, ValidationError, root_validator, validator

from bot.core.errors import UserError
from telephony.sip.capacity import DEFAULT_MAX_CALLS, MAX_CALLS_LIMIT

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    # --- where things live
    # Local state of an embedded install (SQLite file, generated secret key, prompts); never committed.
    data_dir: Path = PROJECT_ROOT / ".waihu"
    # The script writers' Rasa project, and where trained models are kept (by content hash).
    dialogs_dir: Path = PROJECT_ROOT / "dialogs"
    models_dir: Path = PROJECT_ROOT / "models"
    # Rendered audio prompts (TTS cache, 8 kHz WAV); default data_dir/prompts.
    # (Unset is None until _derived fills it in, so after validation it is always a Path.)
    prompts_dir: Path = Field(None)

    # --- database
    # SQLAlchemy URL; default a SQLite file in data_dir.
    database_url: str = ""
    # Connections per process on PostgreSQL: a dial worker runs claims and call logs on many threads.
    db_pool_size: int = 10
    db_max_overflow: int = 20

    # --- secrets
    # Master secret for phone encryption and hashing; None: read or generate secret_key_file.
    secret_key: Optional[str] = Field(None, repr=False)
    secret_key_file: Path = Field(None)  # derived when unset, like prompts_dir

    # --- dialogue (Rasa)
    # None: in-memory tracker / lock store (one process); redis://… or postgresql://… to share.
    tracker_store_url: Optional[str] = None
    lock_store_url: Optional[str] = None

    # --- compliance
    # Profile name (telephony/compliance/profiles/<name>.yml) or a path to a YAML file.
    compliance_profile: str = "CN_INSURANCE_DEFAULT"

    # --- task queue and dialling
    # None: the embedded in-process broker; redis://… for separate worker and beat processes.
    broker_url: Optional[str] = None
    # One queue (and Redis key prefix) per installation, so two deployments can share a Redis.
    queue: str = "waihu"
    # simulator (default), freeswitch, or sip (telephony.sip: WAIHU_SIP_* for the proxy or
    # trunk, WAIHU_NLS_* for the Aliyun real-time ASR, WAIHU_VAD_* for endpointing).
    carrier: str = "simulator"
    sim_seed: str = "0"
    esl_host: str = "127.0.0.1"
    esl_port: int = 8021
    esl_password: str = Field("ClueCon", repr=False)
    esl_gateway: str = "carrier"
    caller_id: str = "0000000000"
    # An attempt still "dialing" this long after its claim belongs to a dead worker.
    stuck_after_s: float = 20 * 60
    # A planned attempt whose message was lost is sent again after this long.
    requeue_after_s: float = 5 * 60
    # The longest a call may last from dial to hang-up (dialer's clock); a call still going
    # is hung up. With the waits before a dial it sets the broker's visibility timeout.
    max_call_s: float = 15 * 60
    # No event at all from the carrier for this long: the robot hangs up (dialer's clock).
    call_event_timeout_s: float = 120.0
    # A finished call's result: database writes tried this many times before it goes to the journal.
    result_write_attempts: int = 3
    # Where finished calls wait while the database is down (fsync'd JSON lines); default data_dir/journal.
    journal_dir: Path = Field(None)  # derived when unset, like prompts_dir
    # Call recordings (WAV by attempt id, <dir>/<yyyy>/<mm>/<attempt id>.wav); default
    # data_dir/recordings. Kept this many days, then purged by a beat task.
    recordings_dir: Path = Field(None)  # derived when unset, like prompts_dir
    # False: no recordings at all (only where the callee is not told the call is recorded).
    record_calls: bool = True
    recording_retention_days: int = Field(180, ge=1)
    # FreeSWITCH writes the file on its own host: the directory there that is mounted as
    # recordings_dir here (None: the same path on both).
    fs_recordings_dir: Optional[str] = None
    # How often (real seconds) a dial worker tries to replay its journal.
    journal_replay_every_s: float = 5.0
    # Port of a dial worker's Prometheus /metrics; None (default): no metrics server.
    metrics_port: Optional[int] = None
    # Simulator only: an append-only log of every dial and hang-up (JSON lines), for
    # comparing what the carrier saw with what was stored; and carrier faults for
    # fault tests: the share of dials that never return, and of answered calls after
    # which the carrier sends nothing more.
    sim_carrier_log: Optional[Path] = None
    sim_hang_dial_share: float = 0.0
    sim_hang_call_share: float = 0.0

    # --- hand-off to a human (转人工): where the carrier transfers the call (FreeSWITCH: an
    # extension or queue, optionally "<exten> <dialplan> <context>"; the simulator: its advisor
    # pool), how long the callee waits for someone to pick up before the robot books an
    # advisor callback instead, and the simulated advisors (how many, mean busy time per call).
    handoff_target: str = "advisors"
    handoff_wait_s: float = Field(20.0, gt=0)
    sim_advisors: int = Field(2, ge=0)
    sim_advisor_busy_s: float = Field(240.0, gt=0)

    # --- the SIP carrier (telephony.sip), its ASR (Aliyun NLS) and endpointing (telephony.vad).
    # Telephony sits below bot.core and reads these as WAIHU_* names from a mapping the dialer
    # builds from here (bot.dialing.tasks), so they are validated and documented in one place.
    sip_domain: str = ""
    sip_port: int = Field(0, ge=0, le=65535)
    sip_caller: str = "waihu"
    sip_registrar: str = ""
    sip_username: str = ""
    sip_password: str = Field("", repr=False)
    sip_proxy: str = ""
    sip_bind: str = "0.0.0.0"
    # Calls one SIP worker process holds at once (PJSIP call slots; the wheel's limit is 4).
    sip_max_calls: int = Field(DEFAULT_MAX_CALLS, ge=1, le=MAX_CALLS_LIMIT)
    nls_appkey: str = ""
    nls_token: str = Field("", repr=False)
    nls_url: str = ""
    vad_aggressiveness: int = Field(2, ge=0, le=3)
    vad_end_silence_ms: int = Field(700, ge=0)
    vad_reprompt_ms: int = Field(10_000, ge=0)
    vad_hangup_ms: int = Field(30_000, ge=0)

    # --- simulated time (demo, dry runs): start instant with a zone, speed, and the real
    # Unix time that corresponds to the start, so worker and beat agree.
    clock_start: Optional[datetime] = None
    clock_speed: float = 1.0
    clock_anchor: Optional[float] = None

    # --- web console
    web_session_secret: Optional[str] = Field(None, repr=False)
    web_idle_minutes: float = 30.0
    web_session_hours: float = 12.0
    web_max_upload_mb: float = 100.0
    web_secure_cookie: bool = False
    web_preload_agent: bool = False

    # --- WeCom and SMS
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wecom_corp_id: str = ""
    wecom_secret: str = Field("", repr=False)
    wecom_token: str = Field("", repr=False)
    wecom_aes_key: str = Field("", repr=False)
    wecom_agent_id: str = ""
    wecom_callback_max_skew_s: float = 300.0
    # Conversions: a policy is credited to the lead's last connected call this many days before it at most.
    conversion_window_days: int = Field(30, ge=1)
    # The offers file; default dialogs_dir/wecom/offers.yml.
    wecom_offers: Optional[Path] = None
    # outbox (default: the wecom_sms_outbox table + log) or http.
    sms_provider: str = "outbox"
    sms_url: Optional[str] = None
    sms_token: str = Field("", repr=False)

    class Config:
        env_prefix = "WAIHU_"
        case_sensitive = False
        allow_mutation = False

    @validator("*", pre=True)
    def _blank_is_unset(cls, value: Any, field: Any) -> Any:
        # `WAIHU_X=` (empty) means "not set", as it did before, not an invalid value.
        return field.default if isinstance(value, str) and not value.strip() else value

    @validator("clock_start")
    def _zone_required(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-24T10:00:00+08:00 or Z")
        return value

    @validator("carrier")
    def _known_carrier(cls, value: str) -> str:
        if value not in ("simulator", "freeswitch", "sip"):
            raise ValueError("use simulator, freeswitch or sip")
        return value

    @validator("sms_provider")
    def _known_sms(cls, value: str) -> str:
        if value not in ("outbox", "http"):
            raise ValueError("outbox (default) or http")
        return value

    @root_validator(skip_on_failure=True)
    def _derived(cls, values: dict[str, Any]) -> dict[str, Any]:
        for name in ("data_dir", "dialogs_dir", "models_dir"):
            values[name] = Path(values[name]).resolve()
        data_dir: Path = values["data_dir"]
        values["prompts_dir"] = Path(values["prompts_dir"] or data_dir / "prompts").resolve()
        values["secret_key_file"] = Path(values["secret_key_file"] or data_dir / "secret.key").resolve()
        values["journal_dir"] = Path(values["journal_dir"] or data_dir / "journal").resolve()
        values["recordings_dir"] = Path(values["recordings_dir"] or data_dir / "recordings").resolve()
        values["database_url"] = values["database_url"] or f"sqlite:///{data_dir / 'waihu.db'}"
        if values["wecom_offers"] is not None:
            values["wecom_offers"] = Path(values["wecom_offers"]).resolve()
        values["wecom_api_base"] = values["wecom_api_base"].rstrip("/")
        return values

    @property
    def simulated_clock(self) -> bool:
        return self.clock_start is not None

    @property
    def redis_broker(self) -> bool:
        return bool(self.broker_url and self.broker_url.startswith(("redis://", "rediss://")))


def get_settings() -> Settings:
    """The settings from the environment now; a bad value is one clear error naming the variable."""
    try:
        # Fields declared with Field(...) have defaults; without pydantic's mypy plugin (it
        # crashes on pydantic 1.10's BaseSettings) mypy takes them for required arguments.
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = [f"WAIHU_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}" for error in exc.errors()]
        raise UserError(problems[0], details=problems[1:]) from None


def settings_table() -> list[tuple[str, str]]:
    """(variable, default) for every setting, in declaration order: the README's table."""
    return [
        (f"WAIHU_{name.upper()}", "" if field.default is None else str(field.default).replace(str(PROJECT_ROOT), "."))
        for name, field in Settings.__fields__.items()
    ]
