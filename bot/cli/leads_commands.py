"""Commands for ops: `waihu leads …` (upload, packs, rejects, locate, forget).

`register(app)` also adds the neighbouring data commands (audiences, dnc, db, policy), so
the top-level app needs one line for all of them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from bot.cli.console import console, err_console, print_json

leads_app = typer.Typer(
    help="Lead packs (人群包 files): upload, replace, delete, rejects, erasure.", no_args_is_help=True
)

_REASON_LABELS = {
    "phone_missing": "no phone",
    "phone_invalid": "invalid phone",
    "phone_multiple": "several numbers in one cell",
    "phone_foreign": "non-mainland number",
    "phone_service_number": "service/hotline number",
    "phone_leading_zero_lost": "leading 0 lost (Excel)",
    "phone_scientific_notation": "1.38E+10 (Excel)",
    "extra_cells": "extra cells in row",
    "consent_missing": "no consent record",
    "consent_invalid": "bad consent time/answer",
    "consent_declined": "did not agree to be called",
    "duplicate_in_file": "duplicate in this file",
    "duplicate_existing": "already a lead",
    "dnc_opt_out": "do-not-call (opt-out)",
    "dnc_soft_decline": "do-not-call (declined recently)",
}


def register(app: typer.Typer) -> None:
    from bot.cli.audience_commands import audiences_app
    from bot.cli.db_commands import db_app
    from bot.cli.dnc_commands import dnc_app
    from bot.cli.policy_commands import policy_app

    app.add_typer(leads_app, name="leads")
    app.add_typer(audiences_app, name="audiences")
    app.add_typer(dnc_app, name="dnc")
    app.add_typer(db_app, name="db")
    app.add_typer(policy_app, name="policy")


def open_database():
    from bot.core.db.engine import open_database as _open

    return _open()


def keyring():
    from bot.core.pii import keyring_from_settings

    return keyring_from_settings()


@leads_app.command()
def upload(
    file: Path = typer.Argument(..., help="CSV/TSV (UTF-8, GBK/GB18030, UTF-16) or XLSX; format read from the bytes"),
    pack: str = typer.Option(..., "--pack", help="Name for this lead pack (unique)"),
    audience: Optional[str] = typer.Option(None, "--audience", help="Audience pack for rows without a 人群 column"),
    column_map: list[str] = typer.Option([], "--map", help="FIELD=COLUMN, e.g. phone=联系电话 or phone=#3"),
    first_party: bool = typer.Option(False, "--first-party", help="Our own leads: consent basis stated for all"),
    consent_basis: Optional[str] = typer.Option(None, "--consent-basis", help="How first-party leads consented"),
    sheet: Optional[str] = typer.Option(None, "--sheet", help="XLSX worksheet (default: the first)"),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Replace the earlier pack of this file or --pack name (its leads and rejects), "
        "allowed while none of its leads was dialled",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the summary"),
) -> None:
    """Upload a lead pack: validate, normalise, dedupe, DNC-scrub; every rejected row is kept.

    Consent columns recognised: 留资时间 (first-party: when they left their number on your form),
    同意时间, 授权时间, 注册时间 (times), 授权同意, 是否授权 (是/否)."""
    from bot.campaigns.pack_removal import replace_guard
    from bot.core.tabular_file import parse_column_overrides
    from bot.leads.service import UploadRequest, upload_lead_pack

    request = UploadRequest(
        path=file,
        pack_name=pack,
        audience=audience,
        column_overrides=parse_column_overrides(column_map),
        first_party=first_party,
        consent_basis=consent_basis,
        sheet=sheet,
        replace=replace,
    )
    engine, ring = open_database(), keyring()
    progress = _Progress(enabled=not as_json)
    try:
        summary = upload_lead_pack(
            engine,
            ring,
            request,
            on_progress=progress.update,
            on_start=progress.start,
            replace_guard=replace_guard,
        )
    finally:
        progress.close()
    if as_json:
        print_json(summary.as_json())
        return
    _print_summary(summary)


@leads_app.command("add")
def add(
    phone: str = typer.Option(..., "--phone", help="The number (stored encrypted; shown masked)"),
    audience: str = typer.Option(..., "--audience", help="Audience pack (人群包); created if new"),
    lead_left_at: str = typer.Option(
        ..., "--lead-left-at", help="留资时间: when they left their number, e.g. '2026-12-06 10:30' (Beijing time)"
    ),
    name: Optional[str] = typer.Option(None, "--name"),
    gender: Optional[str] = typer.Option(None, "--gender", help="男/女"),
    external_id: Optional[str] = typer.Option(
        None, "--external-id", help="Your id for this lead: adding it again returns the same lead (default: the number)"
    ),
    pack: Optional[str] = typer.Option(None, "--pack", help="Lead pack (default: API·<audience>)"),
    city: Optional[str] = typer.Option(
        None, "--city", help="Where they live (e.g. 深圳 or 广东深圳); default: the number's region"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Add one lead for speed to lead (like POST /api/v1/leads): checked like an uploaded row, into the
    audience's API pack; a running campaign that includes the pack dials it within minutes in its window."""
    from bot.leads.api_leads import ACCEPTED, DUPLICATE, LeadIn, add_leads

    lead = LeadIn(phone=phone, lead_left_at=lead_left_at, name=name, gender=gender, external_id=external_id, city=city)
    outcome = add_leads(open_database(), keyring(), [lead], audience=audience, pack=pack, added_by="cli")
    result = outcome.results[0]
    if as_json:
        print_json({"pack": outcome.pack, **result.as_json()})
    elif result.status == ACCEPTED:
        console.print(f"added {result.phone_masked} as lead #{result.lead_id} to pack {escape(outcome.pack)!r}")
    elif result.status == DUPLICATE:
        console.print(
            f"already added: external id {escape(result.external_id)!r} is lead #{result.lead_id} "
            f"in pack {escape(outcome.pack)!r}; nothing changed"
        )
    else:
        for error in result.errors:
            label = _REASON_LABELS.get(error.reason, error.reason)
            err_console.print(f"[red]not added[/red] ({label}): {error.field}: {escape(error.message)}")
    if result.status not in (ACCEPTED, DUPLICATE):
        raise typer.Exit(1)


@leads_app.command("api-pack")
def api_pack(
    audience: str = typer.Option(..., "--audience", help="Audience pack (人群包); created if new"),
    pack: Optional[str] = typer.Option(None, "--pack", help="Lead pack (default: API·<audience>)"),
) -> None:
    """Create the audience's API pack before its first lead, so a campaign can include it
    (waihu campaign create … --pack API·<audience>); API leads sent later go into it."""
    from bot.leads.api_leads import ensure_api_pack

    name = ensure_api_pack(open_database(), audience, pack, added_by="cli")
    console.print(f"API pack {escape(name)!r} is ready; include it in a campaign with --pack {escape(name)!r}")


class _Progress:
    """A progress bar on stderr for files that take more than a moment (stdout stays clean)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar = None

    def start(self, facts) -> None:
        if not self.enabled or facts.size < 2_000_000:
            return
        from tqdm import tqdm

        total, unit = (1000, "‰") if facts.kind == "xlsx" else (facts.size, "B")
        self.bar = tqdm(
            total=total, unit=unit, unit_scale=facts.kind != "xlsx", desc=facts.path.name, file=sys.stderr, leave=False
        )

    def update(self, position: int) -> None:
        if self.bar is not None:
            self.bar.update(max(0, position - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_summary(summary) -> None:
    if summary.already_uploaded:
        console.print(f"[yellow]already uploaded:[/] {summary.notes[0]}")
    title = f"lead pack {summary.pack!r} — {summary.file} ({summary.file_format})"
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("[green]accepted[/]", str(summary.accepted))
    for reason, count in sorted(summary.rejected.items(), key=lambda item: -item[1]):
        table.add_row(f"[red]rejected[/]: {_REASON_LABELS.get(reason, reason)} ({reason})", str(count))
    table.add_row("[bold]total rows[/]", str(summary.rows))
    console.print(table)
    extras = [
        f"duplicates {summary.duplicates}",
        f"DNC {summary.dnc}",
        f"landlines (accepted, flagged) {summary.landlines}",
    ]
    if summary.blank_rows:
        extras.append(f"blank rows skipped {summary.blank_rows}")
    console.print(" · ".join(extras))
    if summary.columns:
        console.print("columns: " + ", ".join(f"{k} ← {v}" for k, v in summary.columns.items()))
    if summary.audiences_created:
        console.print(
            f"created audience packs: {', '.join(summary.audiences_created)} "
            "(set scene/tier with `waihu audiences create`/`show`)"
        )
    for note in summary.notes[1 if summary.already_uploaded else 0 :]:
        console.print(f"[yellow]note:[/] {note}")
    for hint in summary.hints:
        console.print(f"[bold red]to fix ({hint.reason}):[/] {escape(hint.text)}", highlight=False, emoji=False)
    if summary.rejected and not summary.already_uploaded:
        console.print(f"rejected rows: waihu leads rejects {summary.pack!r} --csv --out rejects.csv")


@leads_app.command("delete-pack")
def delete_pack(
    pack: str = typer.Argument(..., help="Lead pack name"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Delete a lead pack with its leads and rejected rows; refused once any lead of it was dialled."""
    from bot.campaigns.pack_removal import check_removable, delete_lead_pack
    from bot.core.db.engine import session_scope
    from bot.leads.service import get_pack

    engine = open_database()
    if not yes and not as_json:
        with session_scope(engine) as session:
            lead_pack = get_pack(session, pack)
            use = check_removable(session, lead_pack, "delete")
            campaigns = f" and take it out of campaign {', '.join(use.campaigns)}" if use.campaigns else ""
            question = (
                f"delete lead pack {lead_pack.name!r}: its {lead_pack.accepted} leads and "
                f"{lead_pack.rejected} rejected rows{campaigns}?"
            )
        typer.confirm(question, abort=True, err=True)
    with session_scope(engine) as session:
        deleted = delete_lead_pack(session, pack)
    if as_json:
        print_json(deleted.as_json())
        return
    console.print(
        f"deleted lead pack {deleted.name!r}: {deleted.leads} leads and {deleted.rejects} rejected rows"
        + (f"; taken out of campaign {', '.join(deleted.campaigns)}" if deleted.campaigns else ""),
        highlight=False,
    )


@leads_app.command()
def packs(as_json: bool = typer.Option(False, "--json")) -> None:
    """List uploaded lead packs with their counts."""
    from sqlalchemy import select

    from bot.core.db.engine import session_scope
    from bot.leads.models import LeadPack

    with session_scope(open_database()) as session:
        rows = session.execute(select(LeadPack).order_by(LeadPack.uploaded_at)).scalars().all()
        data = [
            {
                "pack": p.name,
                "file": p.file_name,
                "format": p.file_format,
                "uploaded_by": p.uploaded_by,
                "uploaded_at": p.uploaded_at.isoformat(),
                "rows": p.rows,
                "accepted": p.accepted,
                "rejected": p.rejected,
                "duplicates": p.duplicates,
                "dnc": p.dnc_hits,
            }
            for p in rows
        ]
    if as_json:
        print_json({"packs": data})
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("pack", "file", "uploaded_at", "rows", "accepted", "rejected", "duplicates", "dnc"):
        table.add_column(
            column, justify="right" if column in ("rows", "accepted", "rejected", "duplicates", "dnc") else "left"
        )
    for item in data:
        table.add_row(
            item["pack"],
            item["file"],
            item["uploaded_at"][:16],
            *(str(item[k]) for k in ("rows", "accepted", "rejected", "duplicates", "dnc")),
        )
    console.print(table if data else "no lead packs yet: waihu leads upload FILE --pack NAME")


@leads_app.command()
def routes(
    route: Optional[str] = typer.Option(None, "--route", help="human, advisor or ai (default: all)."),
    show_all: bool = typer.Option(False, "--all", help="Also routes that are done (default: open ones)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Leads routed by dialogs/routing.yml (the advisors' queue): masked numbers only."""
    from bot.core.db.engine import session_scope
    from bot.dialing.routing import list_routes

    with session_scope(open_database()) as session:
        rows = list_routes(session, route=route, status=None if show_all else "open", limit=100_000)
    data: list[dict[str, object]] = [
        {
            "lead_id": r.lead_id,
            "phone_masked": r.phone_masked,
            "route": r.route,
            "status": r.status,
            "rule": r.rule,
            "reason": r.reason,
            "advisor_userid": r.advisor_userid,
            "routed_at": r.routed_at.isoformat(),
        }
        for r in rows
    ]
    if as_json:
        print_json({"routes": data})
        return
    if not data:
        console.print("no routed leads" + (f" on route {route}" if route else "") + " (see dialogs/routing.yml)")
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("lead", "phone", "route", "status", "advisor", "routed_at", "rule", "reason"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r.lead_id),
            r.phone_masked,
            r.route,
            r.status,
            r.advisor_userid or "-",
            r.routed_at.isoformat()[:16],
            escape(r.rule),
            escape(r.reason),
        )
    console.print(table)


@leads_app.command()
def rejects(
    pack: str = typer.Argument(..., help="Lead pack name"),
    as_csv: bool = typer.Option(False, "--csv", help="Export every rejected row as CSV (masked, formula-safe)"),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the CSV to this file (UTF-8 with BOM for Excel)"),
    limit: int = typer.Option(20, "--limit", help="Rows to show without --csv"),
) -> None:
    """Show or export the rows of a pack that were not taken, with row number, reason and message."""
    from bot.core.db.engine import session_scope
    from bot.leads.export import write_rejects_csv
    from bot.leads.service import get_pack, iter_rejects

    with session_scope(open_database()) as session:
        lead_pack = get_pack(session, pack)
        if as_csv or out is not None:
            if out is not None:
                with out.open("w", encoding="utf-8-sig", newline="") as handle:
                    count = write_rejects_csv(session, lead_pack, handle)
                err_console.print(f"wrote {count} rejected rows to {out}")
            else:
                write_rejects_csv(session, lead_pack, sys.stdout)
            return
        table = Table(
            title=f"rejected rows of {pack!r} ({lead_pack.rejected} of {lead_pack.rows})",
            show_header=True,
            header_style="bold",
        )
        for column in ("row", "reason", "message"):
            table.add_column(column)
        for index, reject in enumerate(iter_rejects(session, lead_pack)):
            if index >= limit:
                break
            table.add_row(str(reject.row_number), reject.reason, reject.message)
        console.print(table)
        if lead_pack.rejected > limit:
            console.print(f"… {lead_pack.rejected - limit} more: waihu leads rejects {pack!r} --csv --out rejects.csv")


@leads_app.command()
def locate(
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=50_000, help="Leads per committed batch"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Stop after this many leads (default: all)"),
    retry_unknown: bool = typer.Option(
        False, "--retry-unknown", help="Look again at numbers an earlier run could not place (after an upgrade)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
) -> None:
    """Fill the region (province, city, time zone) of leads stored without one (uploaded before
    this version), from the number's 归属地. Safe to run again; the workers' beat also does it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bot.core.db.engine import session_scope
    from bot.leads.locate import count_unlocated, locate_missing

    engine, ring = open_database(), keyring()
    with session_scope(engine) as session:
        total = count_unlocated(session, retry_unknown)
    if limit is not None:
        total = min(total, limit)
    with Progress(
        TextColumn("[bold]locating leads[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json or total == 0,
    ) as progress:
        task = progress.add_task("locate", total=total)
        report = locate_missing(
            engine,
            ring,
            batch_size=batch_size,
            limit=limit,
            retry_unknown=retry_unknown,
            on_batch=lambda r: progress.update(task, completed=r.looked_at),
        )
    if as_json:
        print_json(report.as_json())
        return
    if not report.looked_at:
        console.print("every lead already has its region (or was looked up before); nothing to do")
        return
    table = Table(title="lead regions filled from the number", show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("leads", justify="right")
    table.add_row("[green]filled[/]", str(report.filled))
    for zone, count in sorted(report.by_timezone.items(), key=lambda item: -item[1]):
        table.add_row(f"  time zone {zone}", str(count))
    table.add_row("[yellow]unknown number[/]: kept as-is (Beijing time)", str(report.unknown))
    table.add_row("[bold]looked at[/]", str(report.looked_at))
    console.print(table)
    if report.remaining:
        console.print(f"{report.remaining} lead(s) still without a region: run again (without --limit) to finish")


@leads_app.command()
def forget(
    phone: str = typer.Argument(..., help="The person's phone number"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Erase a person's data (PIPL deletion request). A do-not-call hash is kept if they opted out.
    Training examples their words became (dialogs/data/nlu/from_calls.yml) go too."""
    from bot.core.db.engine import session_scope
    from bot.core.pii import mask_phone
    from bot.core.settings import get_settings
    from bot.dnc.service import parse_phone_or_fail
    from bot.erasure import forget_phone
    from bot.script.nlu_examples import TOOL_FILE
    from bot.script.project import DialogsProject
    from bot.web.script_workspace import edit_lock

    masked = mask_phone(parse_phone_or_fail(phone).number)
    if not yes and not as_json:
        typer.confirm(f"erase every lead and rejected row for {masked}?", abort=True, err=True)
    settings = get_settings()
    project = DialogsProject(settings.dialogs_dir)
    # The training file is shared with the console's editor and `waihu review label`: one writer at a time.
    with edit_lock(settings.data_dir / "locks", project), session_scope(open_database()) as session:
        result = forget_phone(session, keyring(), phone, project)
    if as_json:
        print_json(
            {
                "phone": result.masked_phone,
                "leads_erased": result.leads,
                "rejects_erased": result.rejects,
                "calls_erased": result.calls,
                "recordings_erased": result.recordings,
                "review_labels_erased": result.review_labels,
                "training_examples_removed": result.training_examples,
                "training_examples_kept_shared": result.training_examples_kept,
                "dnc_hash_kept": result.dnc_kept,
            }
        )
        return
    console.print(
        f"{result.masked_phone}: erased {result.leads} lead(s), {result.rejects} rejected row(s) "
        f"and {result.calls} call(s) with their transcripts and {result.recordings} recording(s)"
        + ("; the do-not-call entry (hash only) is kept so they are never called" if result.dnc_kept else "")
    )
    tool_file = escape(str(Path(project.root.name) / TOOL_FILE))
    if result.training_examples:
        console.print(
            f"training data: {result.training_examples} example(s) from their calls removed from {tool_file} "
            f"(and {result.review_labels} review label(s) erased); the model in use still knows them until the "
            "next `waihu train`, which drops them"
        )
    else:
        console.print(
            f"training data: none of their words was a training example in {tool_file}"
            + (f" ({result.review_labels} review label(s) erased)" if result.review_labels else "")
        )
    if result.training_examples_kept:
        console.print(
            f"{result.training_examples_kept} of their labelled phrase(s) kept: another caller's labelled turn "
            "said the same words"
        )
    if not result.leads and not result.rejects:
        console.print("nothing stored for this number (already erased, or never uploaded)")
