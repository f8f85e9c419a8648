"""`waihu prompts render [--variant NAME] [--json]`: pre-render a script variant's lines
to telephone audio and report how long each one takes to say.

The lines come from the domain YAML in dialogs/domain (read as plain YAML: loading
Rasa's Domain would add ~6 s for nothing). A response's variation for a variant is
the one conditioned on `script_variant: NAME`; the unconditioned one is the default
(dialogs/domain/variants.yml). Slots are filled with sample values (callee_title
王先生, the others their initial_value) so the durations are those of a real call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import JustifyMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.cli.console import console, print_json
from bot.core.errors import UserError
from bot.core.settings import get_settings
from bot.script.project import DialogsProject
from bot.script.script_lines import ScriptLine, load_script_domain

DEFAULT_VARIANT = "standard"

prompts_app = typer.Typer(help="Audio prompts: script lines rendered to 8 kHz telephone WAV.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(prompts_app, name="prompts")


def script_lines(project: DialogsProject, variant: str) -> tuple[list[ScriptLine], dict[str, str]]:
    """The variant's lines and the sample slot values to render them with."""
    domain = load_script_domain(project)
    known = domain.variants()
    if known and variant not in known:
        raise UserError(f"unknown script variant '{variant}'; the script has: {', '.join(known)}.")
    return domain.lines_for_variant(variant), domain.sample_slots(variant)


def espeak_renderer(prompts_dir: Path):
    from telephony.prompts import EspeakNgProvider, PromptRenderer

    return PromptRenderer(EspeakNgProvider(), prompts_dir)


def render_script(renderer, lines: list[ScriptLine], slots: dict[str, str], progress: Optional[Progress] = None):
    """Render every line; TTS and template problems become one clear UserError."""
    from telephony.prompts import PromptTemplateError, TtsError, TtsUnavailableError

    task = progress.add_task("rendering", total=len(lines)) if progress else None
    rendered = []
    for line in lines:
        if progress is not None and task is not None:
            progress.update(task, description=line.response)
        try:
            rendered.append((line, renderer.render_line(line.template, slots)))
        except TtsUnavailableError as exc:
            raise UserError(str(exc)) from exc
        except (TtsError, PromptTemplateError) as exc:
            raise UserError(f"{line.response}: {exc}") from exc
        if progress is not None and task is not None:
            progress.advance(task)
    return rendered


@prompts_app.command("render")
def render(
    variant: str = typer.Option(DEFAULT_VARIANT, "--variant", help="Script variant (script_variant slot value)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Pre-render every line of a script variant to 8 kHz WAV (cached) and report durations."""
    from telephony.prompts import LONG_PROMPT_SECONDS

    settings = get_settings()
    project = DialogsProject(settings.dialogs_dir)
    lines, slots = script_lines(project, variant)
    renderer = espeak_renderer(settings.prompts_dir)
    progress = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    )
    with progress:
        rendered = render_script(renderer, lines, slots, progress)

    flagged = [line.response for line, prompt in rendered if prompt.is_long]
    if as_json:
        print_json(
            {
                "variant": variant,
                "provider": renderer.provider.name,
                "voice": renderer.provider.voice,
                "prompts_dir": str(settings.prompts_dir),
                "limit_seconds": LONG_PROMPT_SECONDS,
                "lines": [
                    {
                        "response": line.response,
                        "seconds": round(prompt.duration_s, 3),
                        "cached": prompt.cached,
                        "flagged": prompt.is_long,
                        "path": str(prompt.path),
                        "text": line.template,
                    }
                    for line, prompt in rendered
                ],
                "total_seconds": round(sum(prompt.duration_s for _, prompt in rendered), 3),
                "flagged": flagged,
            }
        )
        return
    table = Table(title=f"prompts for variant '{variant}' ({renderer.provider.name} {renderer.provider.voice})")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("response", "left"),
        ("seconds", "right"),
        ("cached?", "center"),
        ("flagged", "left"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for line, prompt in rendered:
        table.add_row(
            line.response,
            f"{prompt.duration_s:.1f}",
            "yes" if prompt.cached else "no",
            f"[yellow]over {LONG_PROMPT_SECONDS:g} s[/]" if prompt.is_long else "",
        )
    console.print(table)
    from_cache = sum(prompt.cached for _, prompt in rendered)
    console.print(f"{len(rendered)} line(s), {from_cache} from the cache, in {settings.prompts_dir}")
    if flagged:
        console.print(
            f"[yellow]{len(flagged)} line(s) take longer than {LONG_PROMPT_SECONDS:g} s to say: "
            f"{', '.join(flagged)}. Shorten them in dialogs/domain.[/]"
        )
