"""`waihu users …`: console users (add, passwd, role, list) and their API tokens."""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.table import Table

from bot.cli.console import console, err_console, print_json
from bot.core.errors import UserError

users_app = typer.Typer(
    help="Web console users (roles ops/writer/manager/admin/advisor) and API tokens.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


def _session():
    from bot.core.db.engine import open_database, session_scope

    return session_scope(open_database())


def _read_password(name: str, from_stdin: bool) -> str:
    """From stdin (one line, for scripts) or asked twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("--password-stdin: stdin held no password (give it as one line)")
        return password
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask the password on; pipe it in with --password-stdin")
    first = typer.prompt(f"password for {name}", hide_input=True, err=True)
    second = typer.prompt("again", hide_input=True, err=True)
    if first != second:
        raise UserError("the two passwords differ; nothing was changed")
    return first


@users_app.command()
def add(
    name: str = typer.Argument(..., help="Login name, e.g. zhang.san"),
    role: str = typer.Option(..., "--role", help="ops | writer | manager | admin | advisor"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin"),
    wecom_userid: Optional[str] = typer.Option(
        None, "--wecom-userid", help="An advisor's WeCom member account (成员 UserID): whose add tasks are theirs"
    ),
) -> None:
    """Add a console user (the password is asked, or read from stdin)."""
    from bot.users.service import add_user, check_name, check_role, set_wecom_userid

    check_name(name)  # both before asking for a password
    check_role(role)
    password = _read_password(name, password_stdin)
    with _session() as session:
        user = add_user(session, name, password, role)
        if wecom_userid:
            set_wecom_userid(session, user.name, wecom_userid)
        console.print(f"added user [bold]{user.name}[/] ({user.role})")


@users_app.command()
def passwd(
    name: str = typer.Argument(...),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin"),
) -> None:
    """Set a user's password (their open console sessions end and their API tokens are revoked)."""
    from bot.users.service import get_user, set_password

    with _session() as session:
        get_user(session, name)
    password = _read_password(name, password_stdin)
    with _session() as session:
        set_password(session, name, password)
    console.print(
        f"password of [bold]{name}[/] changed; their open sessions are logged out and their API tokens revoked"
    )


@users_app.command()
def role(
    name: str = typer.Argument(...),
    new_role: str = typer.Argument(..., metavar="ROLE", help="ops | writer | manager | admin | advisor"),
) -> None:
    """Change a user's role (their open console sessions end; API tokens act with the new role)."""
    from bot.users.service import set_role

    with _session() as session:
        user = set_role(session, name, new_role)
        console.print(f"[bold]{user.name}[/] is now {user.role}")


@users_app.command()
def wecom(
    name: str = typer.Argument(...),
    wecom_userid: str = typer.Argument(..., metavar="WECOM_USERID", help="成员 UserID; '' to unbind"),
) -> None:
    """Bind a user (an advisor) to their WeCom member account: the add tasks assigned to that
    member (dialogs/wecom/offers.yml: advisor.userid) are theirs on 我的添加任务."""
    from bot.users.service import set_wecom_userid

    with _session() as session:
        user = set_wecom_userid(session, name, wecom_userid)
        console.print(f"[bold]{user.name}[/] is WeCom member {user.wecom_userid or '(none)'}")


@users_app.command(name="list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Users and their roles."""
    from bot.users.service import list_users

    with _session() as session:
        rows = list_users(session)
    if as_json:
        print_json({"users": [{"name": r.name, "role": r.role, "created_at": r.created_at.isoformat()} for r in rows]})
        return
    if not rows:
        console.print("no users yet: waihu users add NAME --role admin")
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("name", "role", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.role, f"{row.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


@users_app.command()
def token(
    name: str = typer.Argument(..., help="The user the token acts as (same role)"),
    label: str = typer.Option(..., "--label", help="What uses it, e.g. nightly-upload"),
    scopes: list[str] = typer.Option(
        [],
        "--scope",
        help="What it may do (repeat): leads:write (upload lead packs, "
        "audiences), campaigns:write (create/start/pause campaigns), "
        "reports:read (calls, reports, WeCom funnel)",
    ),
) -> None:
    """Create an API token for the JSON API (/api/v1) with the scopes it needs (printed once;
    store it in your automation's secret store)."""
    from bot.users.tokens import create_token

    with _session() as session:
        new = create_token(session, name, label, scopes)
    err_console.print(f"token #{new.id} for {new.user} ({new.label}; {' '.join(new.scopes)}); it is shown only now:")
    print(new.token)


@users_app.command()
def tokens(name: Optional[str] = typer.Argument(None, help="Only this user's tokens")) -> None:
    """API tokens (prefix, label, last use); never the tokens themselves."""
    from bot.users.tokens import list_tokens

    with _session() as session:
        rows = list_tokens(session, name)
    table = Table(show_header=True, header_style="bold")
    for column in ("id", "user", "label", "scopes", "prefix", "created", "last used", "state"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id),
            row.user,
            row.label,
            " ".join(row.scopes) or "-",
            row.prefix + "…",
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "-",
            "revoked" if row.revoked else "active",
        )
    console.print(table if rows else "no API tokens")


@users_app.command(name="revoke-token")
def revoke_token(token_id: int = typer.Argument(..., help="Token id from `waihu users tokens`")) -> None:
    """Revoke an API token at once."""
    from bot.users.tokens import revoke_token as revoke

    with _session() as session:
        revoke(session, token_id)
    console.print(f"token #{token_id} revoked")
