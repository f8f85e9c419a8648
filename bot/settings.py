"""Where things live and which backing services to use, from WAIHU_* environment variables."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    dialogs_dir: Path
    models_dir: Path
    # None: in-memory tracker store (one process). "redis://…" or "postgresql://…"
    # lets several worker processes serve calls.
    tracker_store_url: str | None
    # None: in-memory lock store. "redis://…" when trackers are shared between processes.
    lock_store_url: str | None
    # Local state of an embedded install (SQLite file, generated secret key); never committed.
    data_dir: Path
    # SQLAlchemy URL; default a SQLite file in data_dir, PostgreSQL via WAIHU_DATABASE_URL.
    database_url: str
    # Master secret for phone encryption and hashing (WAIHU_SECRET_KEY); None: read or
    # generate secret_key_file.
    secret_key: str | None
    secret_key_file: Path
    # Compliance profile name (telephony/compliance/profiles/<name>.yml) or a path to a YAML file.
    compliance_profile: str
    # Rendered audio prompts (TTS cache, 8 kHz WAV); default data_dir/prompts (.waihu/prompts).
    prompts_dir: Path


def get_settings() -> Settings:
    env = os.environ
    data_dir = Path(env.get("WAIHU_DATA_DIR", PROJECT_ROOT / ".waihu")).resolve()
    return Settings(
        dialogs_dir=Path(env.get("WAIHU_DIALOGS_DIR", PROJECT_ROOT / "dialogs")).resolve(),
        models_dir=Path(env.get("WAIHU_MODELS_DIR", PROJECT_ROOT / "models")).resolve(),
        tracker_store_url=env.get("WAIHU_TRACKER_STORE_URL") or None,
        lock_store_url=env.get("WAIHU_LOCK_STORE_URL") or None,
        data_dir=data_dir,
        database_url=env.get("WAIHU_DATABASE_URL") or f"sqlite:///{data_dir / 'waihu.db'}",
        secret_key=env.get("WAIHU_SECRET_KEY") or None,
        secret_key_file=Path(env.get("WAIHU_SECRET_KEY_FILE", data_dir / "secret.key")).resolve(),
        compliance_profile=env.get("WAIHU_COMPLIANCE_PROFILE", "CN_INSURANCE_DEFAULT"),
        prompts_dir=Path(env.get("WAIHU_PROMPTS_DIR", data_dir / "prompts")).resolve(),
    )
