"""`waihu policy …`: the compliance profile in force, and admin approval of a looser one."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bot.cli.console import console, print_json

policy_app = typer.Typer(help="Compliance profiles: show, sign.", no_args_is_help=True)


@policy_app.command()
def show(
    profile: Optional[str] = typer.Argument(None, help="Profile name or YAML file (default: settings)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The profile's windows, caps and cool-downs (validated against the hard limits)."""
    from bot.core.pii import policy_signing_key_from_settings
    from bot.core.settings import get_settings
    from telephony.compliance.policy import load_profile

    name = profile or get_settings().compliance_profile
    policy = load_profile(name, signing_key=policy_signing_key_from_settings())
    document = {k: v for k, v in policy.document.items() if k != "approval"}
    if as_json:
        print_json(document)
        return
    import yaml

    console.print(f"[bold]{policy.label}[/]")
    console.print(yaml.safe_dump(document, allow_unicode=True, sort_keys=False).rstrip())


@policy_app.command()
def sign(
    file: Path = typer.Argument(..., help="A profile YAML that loosens the default"),
    by: str = typer.Option(..., "--by", help="The approving admin's user name"),
    password: str = typer.Option(
        ...,
        "--password",
        prompt="admin password",
        hide_input=True,
        envvar="WAIHU_ADMIN_PASSWORD",
        help="The admin's password (asked for when not given)",
    ),
) -> None:
    """Approve a looser profile as an admin (it still cannot cross the legal hard limits)."""
    import yaml

    from bot.cli.leads_commands import open_database
    from bot.core.db.engine import session_scope
    from bot.core.errors import UserError
    from bot.core.pii import policy_signing_key_from_settings
    from bot.users.service import authenticate
    from telephony.compliance.policy import hard_limit_violations, parse_policy, read_document, sign_profile

    with session_scope(open_database()) as session:
        # The approval is signed in the admin's name, so the admin proves who they are.
        user = authenticate(session, by, password)
        role = user.role if user else None
    if user is None:
        raise UserError(
            f"wrong user name or password for {by!r}; create admins with `waihu users add NAME --role admin`"
        )
    if role != "admin":
        raise UserError(f"{by!r} is not an admin user ({role}); only an admin may approve a looser compliance profile")
    document = read_document(file)
    crossings = hard_limit_violations(parse_policy(document, str(file)))
    if crossings:
        raise UserError(f"{file}: {crossings[0]} (a legal hard limit; no approval can lift it)", details=crossings[1:])
    signed = sign_profile(document, policy_signing_key_from_settings(), by)
    file.write_text(yaml.safe_dump(signed, allow_unicode=True, sort_keys=False), encoding="utf-8")
    console.print(f"{file}: approved by {by}")
