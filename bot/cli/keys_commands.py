"""`waihu keys …`: the secret key phone numbers are encrypted and hashed with (status, rotate, adopt).

The key itself is never printed: only its fingerprint (`PhoneKeyring.key_check`), which is also
what the database records and compares before any number is read or written (bot.core.keys).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Optional

import typer

from bot.cli.console import console, err_console, print_json

keys_app = typer.Typer(
    help="The secret key for phone numbers: status, rotate, adopt (the key is never shown).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _current_keyring(engine, settings):
    """The key in use without making one (None when there is neither WAIHU_SECRET_KEY nor a key file)."""
    from bot.core.pii import PhoneKeyring, load_secret

    if not settings.secret_key and not settings.secret_key_file.exists():
        return None
    return PhoneKeyring.from_secret(load_secret(settings.secret_key, settings.secret_key_file, database=engine))


@keys_app.command()
def status(as_json: bool = typer.Option(False, "--json", help="One JSON object")) -> None:
    """Which key is in use, whether it is the database's, and what depends on it."""
    from sqlalchemy import func, inspect, select, table

    from bot.core.db.engine import open_database, session_scope
    from bot.core.keys import KEYED_TABLES, SecretKeyFingerprint, short
    from bot.core.pii import pending_key_file
    from bot.core.settings import get_settings

    settings = get_settings()
    engine = open_database()
    ring = _current_keyring(engine, settings)
    with session_scope(engine) as session:
        recorded = session.execute(select(SecretKeyFingerprint)).scalar_one_or_none()
        existing = set(inspect(session.connection()).get_table_names())
        rows = {
            name: session.execute(select(func.count()).select_from(table(name))).scalar()
            for name in KEYED_TABLES
            if name in existing
        }
    source = "WAIHU_SECRET_KEY" if settings.secret_key else str(settings.secret_key_file)
    report = {
        "key_source": source,
        "key_fingerprint": short(ring.key_check) if ring else None,
        "database_fingerprint": short(recorded.fingerprint) if recorded else None,
        "matches": bool(ring and recorded and ring.key_check == recorded.fingerprint),
        "rotations": recorded.rotations if recorded else 0,
        "rotated_at": recorded.rotated_at.isoformat() if recorded and recorded.rotated_at else None,
        "rotation_pending": pending_key_file(settings.secret_key_file).exists(),
        "rows": rows,
    }
    if as_json:
        print_json(report)
        return
    console.print(f"key: {source} (fingerprint {report['key_fingerprint'] or '— no key yet'})")
    if recorded is None:
        console.print("database: no key recorded yet (it is recorded the first time numbers are written)")
    else:
        state = "[green]matches[/]" if report["matches"] else "[red]does NOT match the key in use[/]"
        console.print(
            f"database: written with key {report['database_fingerprint']} — {state}; "
            f"{recorded.rotations} rotation(s)" + (f", last {report['rotated_at']}" if recorded.rotated_at else "")
        )
    console.print("rows that depend on the key: " + ", ".join(f"{name} {count:,}" for name, count in rows.items()))
    if report["rotation_pending"]:
        console.print(
            f"[yellow]a new key is waiting in {pending_key_file(settings.secret_key_file)}[/]: "
            "run `waihu keys rotate` to finish (or delete it if no rotation is under way)"
        )


@keys_app.command()
def rotate(
    new_key_file: Optional[Path] = typer.Option(
        None,
        "--new-key-file",
        help="Where to write the new key (needed when the key comes from WAIHU_SECRET_KEY); default: next to the "
        "key file, then put in its place",
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
) -> None:
    """Move every stored number to a new key: re-encrypt phones, extend phone hashes (leads, rejects,
    do-not-call, call attempts, SMS outbox) in one transaction, then record the new key.

    Stop the web console, the dial workers and beat first: a process that keeps the old key refuses to
    work after the rotation, and a call in progress would write its result under the old key. If the
    command stops half-way, nothing changed: run it again. If it stops after the database moved but
    before the new key file was put in place, running it again finishes that step.
    """
    from sqlalchemy import func, select

    from bot.campaigns.models import CallAttempt
    from bot.core.db.base import utc_now
    from bot.core.db.engine import open_database, session_scope
    from bot.core.errors import UserError
    from bot.core.keys import rotate_keyed_data, short, stored_fingerprint
    from bot.core.pii import PhoneKeyring, pending_key_file, require_key_with_advice
    from bot.core.private_files import private_dir
    from bot.core.settings import get_settings

    settings = get_settings()
    engine = open_database()
    key_file = settings.secret_key_file
    from_env = bool(settings.secret_key)
    if from_env and new_key_file is None:
        raise UserError(
            "the key comes from WAIHU_SECRET_KEY: say where the new key should be written with "
            "--new-key-file PATH (then set WAIHU_SECRET_KEY to its content, or unset it and set "
            "WAIHU_SECRET_KEY_FILE=PATH)"
        )
    target = (new_key_file or pending_key_file(key_file)).resolve()
    old = _current_keyring(engine, settings)
    if old is None:
        raise UserError(f"no key to rotate: neither WAIHU_SECRET_KEY nor {key_file} is set; nothing was changed")
    recorded = stored_fingerprint(engine)

    if recorded is not None and recorded != old.key_check and target.exists():
        # A rotation committed but its key file was not put in place: finish that step.
        waiting = PhoneKeyring.from_secret(target.read_bytes().strip())
        if waiting.key_check == recorded:
            _install(target, key_file, from_env)
            console.print(
                f"finished the rotation: the database and {'the new key file' if from_env else key_file} "
                f"both use key {short(recorded)}"
            )
            return

    require_key_with_advice(engine, old, key_file)
    with session_scope(engine) as session:
        busy = session.execute(
            select(func.count())
            .select_from(CallAttempt)
            .where(
                CallAttempt.status == "dialing",
                CallAttempt.dialed_at > utc_now() - timedelta(seconds=settings.stuck_after_s),
            )
        ).scalar()
    if busy:
        raise UserError(
            f"{busy} call(s) are in progress; stop the dial workers and beat, let the calls end, and "
            "rotate again (a call that ends after the rotation would write its result under the old key)"
        )
    if not yes:
        typer.confirm("Rotate the key now? Stop the web console, dial workers and beat first", abort=True)

    secret, new = old.rotated()
    private_dir(target.parent)
    # Written before the database moves, so a crash after the commit cannot lose the only copy.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret + b"\n")
        handle.flush()
        os.fsync(handle.fileno())

    def progress(table: str, done: int) -> None:
        if done % 50_000 == 0:
            err_console.print(f"  {table}: {done:,} rows")

    summary = rotate_keyed_data(engine, old, new, on_progress=progress)
    _install(target, key_file, from_env, retired_as=_retired(key_file, old.key_check))
    console.print(
        f"rotated: key {short(summary.old_fingerprint)} → {short(summary.new_fingerprint)}; "
        + ", ".join(f"{table} {rows:,}" for table, rows in summary.rows.items())
    )
    if from_env:
        console.print(
            f"[yellow]now set WAIHU_SECRET_KEY to the content of {target}[/] (or unset it and set "
            f"WAIHU_SECRET_KEY_FILE={target}) everywhere waihu runs; until then it refuses to start"
        )
    else:
        console.print(
            f"the new key is in {key_file}; the previous one was moved to {_retired(key_file, old.key_check)}: keep it "
            "only as long as you keep database backups made before now, then delete it"
        )
    console.print(
        "back up the new key now. Also changed by the new key: web sessions (everyone logs in again), "
        "signed compliance profiles (sign them again: `waihu policy sign`), and WeCom add-friend links "
        "sent before now (their adds arrive unmatched)"
    )


def _retired(key_file: Path, fingerprint: str) -> Path:
    """Where a replaced key file goes: named by its fingerprint, so a later rotation never overwrites it."""
    from bot.core.keys import short

    return key_file.with_name(f"{key_file.name}.{short(fingerprint)}.old")


def _install(target: Path, key_file: Path, from_env: bool, retired_as: Path | None = None) -> None:
    """Put the new key where the settings read it (a key from WAIHU_SECRET_KEY is the operator's to change)."""
    from bot.core.pii import PhoneKeyring

    if from_env or target == key_file:
        return
    if key_file.exists():
        if retired_as is None:
            retired_as = _retired(key_file, PhoneKeyring.from_secret(key_file.read_bytes().strip()).key_check)
        os.replace(key_file, retired_as)
        os.chmod(retired_as, 0o600)
    os.replace(target, key_file)


@keys_app.command()
def adopt(yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation")) -> None:
    """Record the key in use as the database's key, when none is recorded and the stored data cannot prove
    it (a database upgraded from before fingerprints that holds only do-not-call hashes)."""
    from bot.core.db.engine import open_database
    from bot.core.errors import UserError
    from bot.core.keys import adopt_key, short, stored_fingerprint
    from bot.core.settings import get_settings

    settings = get_settings()
    engine = open_database()
    ring = _current_keyring(engine, settings)
    if ring is None:
        raise UserError("no key: set WAIHU_SECRET_KEY or put the key file back first")
    recorded = stored_fingerprint(engine)
    if recorded is not None and recorded == ring.key_check:
        console.print(f"the database already records this key ({short(recorded)})")
        return
    if recorded is None and not yes:
        typer.confirm(
            "Record the key in use as the one the database's do-not-call list was written with? "
            "(with another key the list would match nothing)",
            abort=True,
        )
    adopt_key(engine, ring)
    console.print(f"recorded key {short(ring.key_check)} for this database")
