"""Is anything dialling? `campaign start/resume/status` warn when no dial worker has been
seen lately: a running campaign is only a row until a worker and beat pick it up."""

from __future__ import annotations

from bot.cli.console import err_console
from bot.core.settings import get_settings
from bot.dialing.liveness import SEEN_WITHIN_S, dial_workers_from_settings


def dial_workers_seen() -> list[str] | None:
    """Dial workers seen in the last few minutes; None when that cannot be known."""
    return dial_workers_from_settings().seen(SEEN_WITHIN_S)


def worker_warning(seen: list[str] | None) -> str | None:
    """What to tell ops, or None when workers are there."""
    settings = get_settings()
    minutes = f"{SEEN_WITHIN_S / 60:g}"
    if seen is None:
        return f"could not tell whether a dial worker is running: the broker {settings.broker_url} did not answer."
    if seen:
        return None
    if settings.broker_url:
        how = (
            f"start `celery -A bot.dialing.tasks worker --pool threads` and one `celery -A bot.dialing.tasks beat` "
            f"with WAIHU_BROKER_URL={settings.broker_url}, or `waihu run` (a worker and the beat in one process)"
        )
    else:
        how = "run `waihu run` (a dial worker and the beat in one process, on the embedded broker)"
    return f"no dial worker seen in the last {minutes} minutes: nothing is dialled until one runs; {how}."


def warn_if_no_dial_worker() -> list[str] | None:
    seen = dial_workers_seen()
    warning = worker_warning(seen)
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}")
    return seen
