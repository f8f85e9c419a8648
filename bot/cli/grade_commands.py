"""`waihu grade FILE` and `waihu grade eval FILE`: grade logged calls with the real NLU.

Both spellings are one command, because a click group cannot take a file argument
and a sub-command at the same position: `grade eval FILE` evaluates against gold
labels, `grade FILE` grades. (A file literally named `eval` can be given as ./eval.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from bot.cli.console import console, err_console, print_json
from bot.core.errors import UserError
from bot.core.settings import get_settings

EVAL = "eval"


def register(app: typer.Typer) -> None:
    app.command(name="grade")(grade)


def grade(
    target: str = typer.Argument(
        ..., metavar="[eval] FILE", help="A JSONL call log, or `eval` followed by a labelled one."
    ),
    file: Optional[Path] = typer.Argument(None, metavar="", hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    rules_path: Optional[Path] = typer.Option(
        None, "--rules", help="A grading rules file instead of intents/grading_rules.yml."
    ),
    model: Optional[Path] = typer.Option(None, "--model", help="A model file instead of the current one."),
    now: Optional[str] = typer.Option(None, "--now", help="Call start (ISO 8601) for calls without started_at."),
) -> None:
    """Grade calls A/B/C/D (or their carrier status) with the reason and follow-ups.

    `waihu grade FILE`: one line per call. `waihu grade eval FILE`: accuracy,
    per-grade precision/recall and the confusion matrix against `gold_grade`.
    """
    if target == EVAL:
        if file is None:
            raise UserError("give the labelled file: waihu grade eval FILE")
        _evaluate(file, as_json, rules_path, model, _parse_now(now))
        return
    if file is not None:
        raise UserError(f"unexpected argument '{file}': use `waihu grade FILE` or `waihu grade eval FILE`")
    _grade(Path(target), as_json, rules_path, model, _parse_now(now))


def _grade(
    path: Path, as_json: bool, rules_path: Optional[Path], model: Optional[Path], now: Optional[datetime]
) -> None:
    logged, line_errors = _read(path)
    rules = _rules(rules_path)
    outcomes = _assess([entry.call for entry in logged], rules, model, now)
    if as_json:
        print_json(
            {
                "calls": [o.as_json() for o in outcomes],
                "counts": dict(Counter(o.label for o in outcomes)),
                "errors": [{"line": e.line, "message": e.message} for e in line_errors],
            }
        )
    else:
        table = Table(title=f"{path.name}: {len(outcomes)} call(s) graded")
        for column in ("call", "grade", "reason", "follow-ups"):
            table.add_column(column)
        for outcome in outcomes:
            table.add_row(
                outcome.call_id,
                outcome.label,
                outcome.grade.reason if outcome.grade else outcome.as_json()["reason"],
                ", ".join(f.action for f in outcome.followups) or "—",
            )
        console.print(table)
        counts = Counter(o.label for o in outcomes)
        console.print("  ".join(f"{label}: {n}" for label, n in sorted(counts.items())))
    _report_line_errors(line_errors)


def _evaluate(
    path: Path, as_json: bool, rules_path: Optional[Path], model: Optional[Path], now: Optional[datetime]
) -> None:
    from intents.grade_eval import evaluate_grades, ordered_labels
    from intents.jsonl_calls import LineError

    logged, line_errors = _read(path)
    labelled = [entry for entry in logged if entry.gold is not None]
    line_errors += [
        LineError(e.line, f"call {e.call.call_id}: no `gold_grade` to evaluate against")
        for e in logged
        if e.gold is None
    ]
    line_errors.sort(key=lambda e: e.line)
    if not labelled:
        for error in line_errors:
            err_console.print(f"[yellow]{error}[/]")
        raise UserError(f"{path}: no call with a `gold_grade`; nothing to evaluate.")
    rules = _rules(rules_path)
    outcomes = _assess([entry.call for entry in labelled], rules, model, now)
    report = evaluate_grades([o.call_id for o in outcomes], [e.gold for e in labelled], [o.label for o in outcomes])
    reasons = {o.call_id: o.grade.reason if o.grade else o.status for o in outcomes}
    if as_json:
        print_json(
            {
                **report.as_json(),
                "errors": [{**e, "reason": reasons[e["call_id"]]} for e in report.as_json()["errors"]],
                "line_errors": [{"line": e.line, "message": e.message} for e in line_errors],
            }
        )
    else:
        labels = ordered_labels(set(report.confusion))
        console.print(f"[bold]accuracy {report.accuracy:.3f}[/] on {report.n} call(s)")
        scores = Table(title="per grade")
        for column in ("label", "precision", "recall", "support", "predicted"):
            scores.add_column(column, justify="left" if column == "label" else "right")
        for label, s in report.per_grade.items():
            scores.add_row(label, f"{s.precision:.2f}", f"{s.recall:.2f}", str(s.support), str(s.predicted))
        console.print(scores)
        matrix = Table(title="confusion (rows: gold, columns: predicted)")
        matrix.add_column("gold \\ predicted")
        for label in labels:
            matrix.add_column(label, justify="right")
        for gold in labels:
            matrix.add_row(gold, *[_cell(report.confusion[gold][p], gold == p) for p in labels])
        console.print(matrix)
        for call_id, gold, predicted in report.errors:
            console.print(f"[yellow]{call_id}[/] gold {gold} → {predicted}: {reasons[call_id]}")
    _report_line_errors(line_errors)


def _cell(count: int, diagonal: bool) -> str:
    if not count:
        return "[dim]·[/]"
    return f"[green]{count}[/]" if diagonal else f"[red]{count}[/]"


def _read(path: Path):
    from intents.jsonl_calls import CallLogError, read_call_log

    try:
        return read_call_log(path)
    except CallLogError as exc:
        raise UserError(str(exc)) from None


def _rules(path: Optional[Path]):
    from intents.rules_loader import DEFAULT_RULES_PATH, GradingRulesError, load_rules

    try:
        return load_rules(path or DEFAULT_RULES_PATH)
    except GradingRulesError as exc:
        raise UserError(str(exc), details=exc.details) from None


def _parse_now(value: Optional[str]) -> Optional[datetime]:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"--now {value!r} is not an ISO 8601 time like 2026-03-11T10:20:00+08:00") from None


def _report_line_errors(errors: Iterable[Any]) -> None:
    errors = list(errors)
    for error in errors:
        err_console.print(f"[yellow]{error}[/]")
    if errors:
        raise UserError(f"{len(errors)} line(s) could not be graded (see above); the other calls were graded.")


def _assess(calls: list, rules, model: Optional[Path], now: Optional[datetime]) -> list:
    """Outcomes for the calls; the dialogue model is loaded only if some call connected."""
    from intents.assess import assess_call, screen_carrier

    needs_nlu = any(screen_carrier(call)[0].status == "answered" and call.callee_turns for call in calls)
    if not needs_nlu:
        return [assess_call(call, _no_nlu, rules=rules, default_start=now) for call in calls]
    agent = load_agent(model)
    loop = asyncio.new_event_loop()
    try:
        nlu = agent_nlu(agent, loop)
        script = script_lines(agent)
        return [assess_call(call, nlu, script, rules, default_start=now) for call in calls]
    finally:
        loop.close()


def _no_nlu(text: str, at: datetime):
    raise RuntimeError("no NLU needed for unconnected calls")


def load_agent(model: Optional[Path] = None):
    """The trained model for dialogs/ as it is now (or --model), loaded and warmed up."""
    from bot.conversation.agent import load_shared_agent
    from bot.script.project import DialogsProject
    from bot.script.training import require_model

    settings = get_settings()
    if model is not None and not model.exists():
        raise UserError(f"model {model} does not exist; run `waihu train` or give an existing --model.")
    path = model or require_model(DialogsProject(settings.dialogs_dir), settings.models_dir)
    with err_console.status("loading the dialogue model…"):
        agent = load_shared_agent(path)
        asyncio.run(agent.warm_up())
    return agent


def agent_nlu(agent, loop: asyncio.AbstractEventLoop) -> Callable:
    """The dialogue agent's NLU as the plain function intents.assess expects."""
    from intents.assess import NluResult

    def nlu(text: str, at: datetime) -> NluResult:
        parse = loop.run_until_complete(agent.parse(text, now=at))
        return NluResult(parse.intent, parse.confidence, parse.entities)

    return nlu


def script_lines(agent):
    """The script's response templates, for telling which step a logged bot line is."""
    from intents.script_steps import ScriptLines

    responses = agent.domain.responses
    return ScriptLines.from_templates(
        {name: [v.get("text") or "" for v in variants] for name, variants in responses.items()}
    )
