"""`waihu serve`: the web console (ops, script writers, managers) and its JSON API."""

from __future__ import annotations

import typer

from bot.cli.console import console, err_console


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    preload_agent: bool = typer.Option(
        False, "--preload-agent", help="Load the dialogue model at start (the chat panel is then instant)"
    ),
) -> None:
    """Run the web console: 运营 (lead packs, campaigns), 话术师 (script), 经理 (reports)."""
    import uvicorn

    from bot.core.db.engine import open_database, session_scope
    from bot.users.service import count_users
    from bot.web.app import create_app
    from bot.web.config import web_config

    config = web_config()
    if preload_agent:
        config = config.with_changes(preload_agent=True)
    engine = open_database(config.settings.database_url)
    with session_scope(engine) as session:
        if count_users(session) == 0:
            err_console.print(
                "[yellow]no console users yet:[/] add one with "
                "`waihu users add NAME --role admin` (roles: ops, writer, manager, admin)"
            )
    app = create_app(config, engine)
    console.print(f"waihu console on http://{host}:{port}/  (API schema: /api/v1/openapi.json; Ctrl-C stops)")
    # ws="none": the console uses no websockets, and Rasa pins a websockets too old for uvicorn's.
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, ws="none")
