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


def get_settings() -> Settings:
    env = os.environ
    return Settings(
        dialogs_dir=Path(env.get("WAIHU_DIALOGS_DIR", PROJECT_ROOT / "dialogs")).resolve(),
        models_dir=Path(env.get("WAIHU_MODELS_DIR", PROJECT_ROOT / "models")).resolve(),
        tracker_store_url=env.get("WAIHU_TRACKER_STORE_URL") or None,
        lock_store_url=env.get("WAIHU_LOCK_STORE_URL") or None,
    )
