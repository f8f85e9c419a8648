"""`waihu webhooks …`: outbound webhooks for CRMs — endpoints, deliveries, dead letters, replay, test ping."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli.console import console, print_json
from bot.core.errors import UserError

webhooks_app = typer.Typer(
    help="Outbound webhooks for CRMs: signed, retried, dead letters and replay.", no_args_is_help=True
)
BEIJING = ZoneInfo("Asia/Shanghai")


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")


def _database():
    from bot.core.db.engine import open_database

    return open_database()


def _keyring():
    from bot.core.pii import keyring_from_settings

    return keyring_from_settings()


def _when(value: Optional[datetime]) -> str:
    return value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _parse_since(value: Optional[str]) -> Optional[datetime]:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(
            f"--since {value!r} is not a date or time",
            details=["e.g. --since 2026-12-06 or --since '2026-12-06 09:30'"],
        ) from None
    return parsed.replace(tzinfo=BEIJING) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


@webhooks_app.command()
def add(
    url: str = typer.Argument(..., help="The receiver's URL (http or https)"),
    events: list[str] = typer.Option(
        ...,
        "--events",
        help="Event types, comma-separated or repeated: call.finished, lead.graded, wecom.added, "
        "sop.step_sent, conversion.matched, or all",
    ),
    secret: Optional[str] = typer.Option(
        None, "--secret", help="Signing secret (≥16 characters); generated if omitted"
    ),
    description: str = typer.Option("", "--description", help="A note for people (which CRM)"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """Add an endpoint; its signing secret is shown once (stored encrypted)."""
    from bot.core.db.engine import session_scope
    from bot.webhooks.service import add_endpoint

    with session_scope(_database()) as session:
        endpoint, shown = add_endpoint(
            session, _keyring(), url, events, secret=secret, description=description, by="cli"
        )
        summary = {"id": endpoint.id, "url": endpoint.url, "events": list(endpoint.event_types), "secret": shown}
    if as_json:
        print_json(summary)
        return
    console.print(f"endpoint {summary['id']}: {escape(summary['url'])} ← {', '.join(summary['events'])}")
    console.print(f"signing secret (shown once, keep it in the CRM): [bold]{escape(shown)}[/]")


@webhooks_app.command(name="list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON object")) -> None:
    """Endpoints with their events and delivery counts."""
    from bot.core.db.engine import session_scope
    from bot.webhooks.service import list_endpoints

    with session_scope(_database()) as session:
        rows = list_endpoints(session)
    if as_json:
        print_json({"endpoints": [{**r.__dict__, "created_at": r.created_at.isoformat()} for r in rows]})
        return
    if not rows:
        console.print("no webhook endpoints; add one with `waihu webhooks add URL --events …`")
        return
    table = Table("id", "url", "events", "active", "pending", "delivered", "dead")
    for r in rows:
        table.add_row(
            str(r.id),
            escape(r.url),
            ", ".join(r.event_types),
            "yes" if r.active else "no",
            str(r.pending),
            str(r.delivered),
            str(r.dead),
        )
    console.print(table)


@webhooks_app.command()
def disable(endpoint_id: int = typer.Argument(..., help="Endpoint id (see `waihu webhooks list`)")) -> None:
    """Stop sending to an endpoint (no new deliveries; pending ones wait)."""
    from bot.core.db.engine import session_scope
    from bot.webhooks.service import disable_endpoint

    with session_scope(_database()) as session:
        endpoint = disable_endpoint(session, endpoint_id)
        console.print(f"endpoint {endpoint.id} disabled: {escape(endpoint.url)}")


@webhooks_app.command()
def deliveries(
    dead: bool = typer.Option(False, "--dead", help="Only dead letters (gave up)"),
    since: Optional[str] = typer.Option(None, "--since", help="Created from this date/time (Beijing time)"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="How many, newest first"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """Recent deliveries (or the dead letters) with attempts and the last answer."""
    from bot.core.db.engine import session_scope
    from bot.webhooks.service import list_deliveries

    with session_scope(_database()) as session:
        rows = list_deliveries(session, dead_only=dead, limit=limit, since=_parse_since(since))
    if as_json:
        print_json({"deliveries": [r.as_json() for r in rows]})
        return
    if not rows:
        console.print("no dead deliveries" if dead else "no deliveries")
        return
    table = Table("id", "event", "endpoint", "status", "attempts", "next try", "last answer", "created")
    for r in rows:
        answer = str(r.last_status_code) if r.last_status_code else (r.last_error or "—")
        table.add_row(
            str(r.id),
            f"{r.event_type} #{r.event_id}",
            escape(r.url),
            r.status,
            str(r.attempts),
            _when(r.next_attempt_at),
            escape(answer[:60]),
            _when(r.created_at),
        )
    console.print(table)


@webhooks_app.command()
def replay(
    delivery_id: Optional[int] = typer.Argument(None, help="A delivery id (see `waihu webhooks deliveries --dead`)"),
    all_dead: bool = typer.Option(False, "--all-dead", help="Every dead delivery"),
    since: Optional[str] = typer.Option(None, "--since", help="With --all-dead: those that died from this time"),
) -> None:
    """Send a dead delivery again (same delivery id, fresh retry schedule)."""
    from bot.core.db.engine import session_scope
    from bot.webhooks.service import replay as replay_one
    from bot.webhooks.service import replay_dead

    if (delivery_id is None) == (not all_dead):
        raise UserError(
            "give a DELIVERY_ID or --all-dead (not both)",
            details=["waihu webhooks replay 42", "waihu webhooks replay --all-dead"],
        )
    with session_scope(_database()) as session:
        if delivery_id is not None:
            replay_one(session, delivery_id)
            console.print(f"delivery {delivery_id} queued again; the next delivery pass sends it")
        else:
            count = replay_dead(session, since=_parse_since(since))
            console.print(f"{count} dead deliveries queued again")


@webhooks_app.command()
def deliver(as_json: bool = typer.Option(False, "--json", help="One JSON object")) -> None:
    """Run one delivery pass now (workers run one every few seconds)."""
    from bot.webhooks.tasks import run_delivery_pass

    report = run_delivery_pass()
    if as_json:
        print_json(report)
    else:
        console.print("sent {claimed}: delivered {delivered}, retry later {retrying}, dead {dead}".format(**report))


@webhooks_app.command()
def test(
    url: str = typer.Argument(..., help="The receiver's URL"),
    secret: Optional[str] = typer.Option(
        None, "--secret", help="Sign with this secret (default: the endpoint's own, if URL is a registered endpoint)"
    ),
) -> None:
    """Send a signed `ping` event to URL and show the answer (nothing is stored)."""
    from sqlalchemy import select

    from bot.core.db.engine import session_scope
    from bot.webhooks.models import WebhookEndpoint
    from bot.webhooks.service import check_url, ping
    from bot.webhooks.signing import new_secret

    url = check_url(url)
    if secret is None:
        with session_scope(_database()) as session:
            stored = (
                session.execute(
                    select(WebhookEndpoint.secret_ciphertext)
                    .where(WebhookEndpoint.url == url)
                    .order_by(WebhookEndpoint.id.desc())
                )
                .scalars()
                .first()
            )
        if stored is not None:
            secret = _keyring().decrypt_text(bytes(stored))
        else:
            secret = new_secret()
            console.print(f"not a registered endpoint: signed with a one-off secret {escape(secret)}")
    status, error = ping(url, secret)
    if error:
        raise UserError(f"ping to {url} failed: {error}", details=["the receiver must answer 2xx"])
    console.print(f"ping to {escape(url)}: HTTP {status}")
