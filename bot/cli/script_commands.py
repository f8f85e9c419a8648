"""Commands for script writers: validate, train, shell, test, nlu eval; and the demo."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bot.cli.console import console, err_console, print_json
from bot.core.errors import UserError
from bot.core.settings import get_settings

nlu_app = typer.Typer(help="NLU tools.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(train)
    app.command()(shell)
    app.command(name="test")(test_conversations)
    app.command()(demo)
    app.add_typer(nlu_app, name="nlu")


def _project():
    from bot.script.project import DialogsProject

    project = DialogsProject(get_settings().dialogs_dir)
    project.check_layout()
    return project


def _load_agent(model: Optional[Path] = None):
    """The trained model for dialogs/ as it is now (or --model), loaded and warmed up."""
    from bot.conversation.agent import load_shared_agent
    from bot.script.training import require_model

    settings = get_settings()
    if model is not None and not model.exists():
        raise UserError(f"model {model} does not exist; run `waihu train` or give an existing --model.")
    path = model or require_model(_project(), settings.models_dir)
    with err_console.status("loading the dialogue model…"):
        agent = load_shared_agent(path, settings.tracker_store_url, settings.lock_store_url)
        asyncio.run(agent.warm_up())
    return agent


def _print_problems(problems) -> int:
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        colour = "red" if problem.severity == "error" else "yellow"
        console.print(f"[{colour}]{problem}[/]")
    return len(errors)


def _check_sequences(path: Path) -> int:
    """The WeCom follow-up sequences (dialogs/wecom/sequences.yml), when the project has them:
    every mistake printed as file:line:col; the number of errors."""
    from bot.wecom.sequences import load_sequences
    from intents.yaml_source import YamlError

    if not path.exists():
        return 0
    try:
        load_sequences(path)
    except YamlError as exc:
        for problem in exc.problems:
            console.print(f"[red]{problem}[/]")
        return len(exc.problems)
    return 0


def _check_routing(path: Path) -> int:
    """The routing rules (dialogs/routing.yml), when the project has them: every mistake as
    file:line:col (an audience block naming no pack or scene too); the number of errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.core.db.engine import get_engine, session_scope
    from bot.dialing.routing import check_routing_packs, load_routing
    from intents.yaml_source import YamlError

    try:
        routing = load_routing(path)
    except YamlError as exc:
        for problem in exc.problems:
            console.print(f"[red]{problem}[/]")
        return len(exc.problems)
    if routing is None:
        return 0
    try:
        with session_scope(get_engine()) as session:
            check_routing_packs(session, routing)
    except UserError as exc:
        console.print(f"[red]{exc}[/]")
        return str(exc).count("\n") + 1
    except SQLAlchemyError as exc:  # no database (yet): the file is checked, its pack names wait
        console.print(f"[yellow]{path}: audience pack names not checked (no database: {type(exc).__name__})[/]")
    return 0


def validate(
    rasa_checks: bool = typer.Option(True, "--rasa/--no-rasa", help="Also run Rasa's data validation."),
) -> None:
    """Check dialogs/: YAML, slots, compliance of the opening, every intent handled, TTS lines."""
    from bot.script.lint import lint_project

    project = _project()
    problems = lint_project(project)
    if rasa_checks and not any(p.severity == "error" for p in problems):
        from bot.script.rasa_validation import rasa_validate

        with err_console.status("running Rasa's data validation…"):
            problems += rasa_validate(project)
    n_errors = _print_problems(problems)
    n_warnings = len(problems) - n_errors
    n_errors += _check_sequences(project.root / "wecom" / "sequences.yml")
    n_errors += _check_routing(project.root / "routing.yml")
    if n_errors:
        raise UserError(
            f"{n_errors} error(s), {n_warnings} warning(s) in {project.relative(project.root)}; fix the errors above."
        )
    console.print(f"[green]dialogs are valid[/] ({n_warnings} warning(s))")


def train(force: bool = typer.Option(False, "--force", help="Retrain even if dialogs/ is unchanged.")) -> None:
    """Train the model from dialogs/ (skipped when nothing changed)."""
    from bot.cli.training_progress import train_with_progress
    from bot.script.lint import lint_project

    project = _project()
    problems = [p for p in lint_project(project) if p.severity == "error"]
    if problems:
        _print_problems(problems)
        raise UserError(f"{len(problems)} error(s) in dialogs/; fix them before training (see `waihu validate`).")
    result = train_with_progress(project, get_settings().models_dir, force=force)
    if result.trained:
        console.print(f"[green]trained[/] {result.model_path} in {result.seconds:.0f} s (full log: {result.log_path})")
    else:
        console.print(f"model up to date: {result.model_path} (dialogs/ unchanged, nothing retrained)")


def shell(
    variant: str = typer.Option("standard", "--variant", help="Script variant to use."),
    surname: str = typer.Option("王", "--surname", help="Callee's surname for the script lines."),
    gender: str = typer.Option("M", "--gender", help="M or F (先生/女士)."),
    audience: Optional[str] = typer.Option(
        None,
        "--audience",
        help="Audience pack (its name, or an offers block: pack name or scene): the incentive and advisor "
        "come from dialogs/wecom/offers.yml for it, as on a real call. Default: the offers' default.",
    ),
    incentive_arm: Optional[str] = typer.Option(
        None, "--incentive-arm", help="The pack's incentive arm to say when it has several (default: the first)."
    ),
    add_mode: str = typer.Option(
        "link",
        "--add-mode",
        help="Which add-to-WeCom lines to say: link (SMS link, the callee adds the advisor), advisor_adds "
        "(the advisor adds the callee), callback (a landline callee: the advisor calls back).",
    ),
    model: Optional[Path] = typer.Option(None, "--model", help="A model file instead of the current one."),
) -> None:
    """Talk to the robot as the callee. An empty line is silence; Ctrl-D hangs up.

    After each turn: the grade the call would get if it ended now, and the follow-ups the
    dialer would act on; at the end, the final grade and what the WeCom invitation would carry."""
    from bot.cli.call_preview import assess_so_far, grade_line, invite_preview, lead_context, next_dial, shell_offer
    from bot.conversation.session import CallSession
    from bot.core.add_modes import SCRIPT_ADD_MODES

    if add_mode not in SCRIPT_ADD_MODES:
        raise UserError(f"--add-mode {add_mode}: not an add mode; use one of {', '.join(SCRIPT_ADD_MODES)}.")
    offer = shell_offer(audience, incentive_arm)
    context = lead_context(offer, surname=surname, gender=gender, variant=variant, add_mode=add_mode)
    agent = _load_agent(model)
    others = [arm for arm in offer.arms if arm != offer.incentive.name]
    console.print(
        f"[dim]audience {offer.label}: incentive {offer.incentive.name}「{offer.incentive.text}」"
        + (f" (other arms: {', '.join(others)}; --incentive-arm to try one)" if others else "")
        + f", advisor {offer.advisor.name} — from {offer.offers.path}[/]"
    )

    async def run() -> None:
        session = CallSession(agent, context)
        _show_reply(await session.start())
        interactive = sys.stdin.isatty()
        while not session.ended:
            try:
                text = input("客户> " if interactive else "")
            except EOFError:
                await session.hangup("callee")
                console.print("[dim](callee hung up)[/]")
                break
            if not interactive:
                console.print(f"客户> {text}")
            _show_reply(await session.hear(text))
            if not session.ended:
                console.print(f"  [dim]grade so far[/] {grade_line(assess_so_far(session))}")
        console.print(f"[dim]call ended by {session.hangup_by}, {len(session.turns)} turns[/]")
        outcome = assess_so_far(session)
        console.print(f"[bold]final grade[/] {grade_line(outcome)}")
        for line in invite_preview(offer, outcome, context.callee_title):
            console.print(f"  {line}")
        console.print(f"  next dial: {next_dial(outcome, session.started_at or session.clock())}")

    asyncio.run(run())


def _show_reply(reply) -> None:
    if reply.intent:
        console.print(f"  [dim]intent[/] [cyan]{reply.intent}[/] [dim]{reply.confidence:.2f}[/]")
    for line in reply.lines:
        console.print(f"[bold green]机器人[/] {line.text} [dim]({line.response})[/]")
    if reply.end_call:
        console.print("[dim](robot hangs up)[/]")


def test_conversations(
    nlu: bool = typer.Option(True, "--nlu/--no-nlu", help="Also report NLU on the held-out and realistic files."),
    model: Optional[Path] = typer.Option(None, "--model"),
) -> None:
    """Run the conversation tests in dialogs/tests/ and the NLU reports on both test sets
    (held-out: same hand as the training data; realistic: phone-ASR replies by another writer)."""
    from bot.script.conversation_tests import run_conversation_tests

    project = _project()
    agent = _load_agent(model)
    files = project.conversation_tests
    if not files:
        raise UserError(f"no conversation tests in {project.relative(project.tests_dir)} (files named test_*.yml).")
    results = asyncio.run(run_conversation_tests(agent._agent, files))
    table = Table(title="conversation tests")
    table.add_column("conversation")
    table.add_column("result")
    for result in results:
        table.add_row(result.name, "[green]pass[/]" if result.passed else "[red]FAIL[/]")
    console.print(table)
    for result in (r for r in results if not r.passed):
        console.print(f"[red]✗ {result.name}[/] — where it went wrong (# predicted):")
        console.print(result.failure)
    failed = sum(not r.passed for r in results)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if nlu:
        for path in (project.heldout_nlu_file, project.realistic_nlu_file):
            if path.exists():
                _print_nlu_report(_evaluate_nlu(agent, path), path)
    if failed:
        raise UserError(f"{failed} conversation test(s) failed.")


def _evaluate_nlu(agent, path: Path):
    from intents.evaluation import EvaluationInputError, evaluate, load_labelled_examples

    try:
        examples = load_labelled_examples(path)
    except EvaluationInputError as exc:
        raise UserError(str(exc)) from exc

    loop = asyncio.new_event_loop()

    def predict(text: str) -> tuple[str, str]:
        parse = loop.run_until_complete(agent.parse(text))
        return parse.understood, parse.intent

    try:
        return evaluate(examples, predict)
    finally:
        loop.close()


def _print_nlu_report(report, path: Path) -> None:
    table = Table(
        title=f"NLU on {path.name}: macro-F1 {report.macro_f1:.3f}, accuracy {report.accuracy:.3f}, n={report.n}"
    )
    for col in ("intent", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col == "intent" else "right")
    for name, s in sorted(report.per_intent.items(), key=lambda kv: kv[1].f1):
        table.add_row(name, f"{s.precision:.2f}", f"{s.recall:.2f}", f"{s.f1:.2f}", str(s.support))
    console.print(table)
    if report.faq_as_parents:
        console.print(
            "[dim]this file has no faq/* labels (written before the FAQ topics): a predicted topic is "
            "scored as ask_price (is_it_free, auto_charge) or ask_detail (the others)[/]"
        )
    harmful = report.harmful
    colour = "red" if harmful.count else "green"
    console.print(
        f"[{colour}]harmful errors: {harmful.count} ({harmful.rate:.2%})[/]"
        f" — refusal read as agreement, question or hesitation read as refusal, opt-out not honoured;"
        f" {report.confirmations} agreement(s) the robot would confirm first"
    )
    for error in harmful.examples[:5]:
        console.print(f"  [red]{error.text!r}[/]: {error.gold} → {error.acted} ({error.kind})")
    if report.confusions:
        console.print(
            "most confused (gold → predicted): " + ", ".join(f"{g}→{p} ×{c}" for g, p, c in report.confusions[:5])
        )


@nlu_app.command("eval")
def nlu_eval(
    path: Path = typer.Argument(..., help="A Rasa NLU YAML file with labelled examples."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    model: Optional[Path] = typer.Option(None, "--model"),
    show_errors: bool = typer.Option(False, "--errors", help="List every misclassified example."),
) -> None:
    """Per-intent precision/recall/F1, macro-F1, harmful errors and the most-confused pairs."""
    from intents.evaluation import EvaluationInputError, load_labelled_examples

    try:
        load_labelled_examples(path)  # fail on a bad file before loading the model
    except EvaluationInputError as exc:
        raise UserError(str(exc)) from exc
    report = _evaluate_nlu(_load_agent(model), path)
    if as_json:
        print_json(report.as_json())
        return
    _print_nlu_report(report, path)
    if show_errors:
        for text, gold, predicted in report.errors:
            console.print(f"  {text!r}: {gold} → {predicted}")


def demo() -> None:
    """Train if needed, then play sample calls turn by turn."""
    from bot.cli.demo import run_demo

    run_demo()
