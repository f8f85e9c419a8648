"""`waihu ab stats INPUT.json` and `waihu ab power`: experiment statistics for analysts."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bot.cli.console import console, print_json
from bot.core.errors import UserError

ab_app = typer.Typer(help="A/B statistics on given counts (GrowthBook's engine), and planning.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(ab_app, name="ab")


@ab_app.command("stats")
def stats(
    input_path: Path = typer.Argument(..., metavar="INPUT.json", help="Counts per arm (the first arm is control)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Lift, interval, p-value (Holm-adjusted), chance to win, risk and SRM for each arm vs control.

    INPUT.json: {"alpha": 0.05, "method": "frequentist"|"bayesian"|"sequential",
    "arms": [{"name": "A", "n": 28, "conversions": 14, "weight": 1}, …]}
    """
    from bot.experiments.ab_stats import ab_stats, load_input

    result = ab_stats(load_input(input_path))
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{result['method']}, alpha {result['alpha']:g}, correction {result['correction']}")
    for column in ("arm", "n", "conversions", "rate", "lift", "interval", "p", "p adjusted", "chance to win", "risk"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for arm in result["arms"]:
        if arm["control"]:
            table.add_row(
                f"{arm['name']} (control)", str(arm["n"]), str(arm["conversions"]), f"{arm['rate']:.2%}", *[""] * 6
            )
            continue
        lo, hi = arm["ci_rel"]
        table.add_row(
            arm["name"],
            str(arm["n"]),
            str(arm["conversions"]),
            f"{arm['rate']:.2%}",
            f"{arm['lift_rel']:+.2%}",
            f"[{lo:+.2%}, {hi:+.2%}]",
            _p(arm["p_value"]),
            _p(arm["p_adjusted"]),
            f"{arm['chance_to_win']:.1%}",
            f"{arm['risk']:.4f}",
        )
    console.print(table)
    flag = "[bold red]SRM alert[/]: the split does not match the weights" if result["srm_alert"] else "no SRM"
    console.print(f"sample ratio check: p = {result['srm_p_value']:.4g} ({flag})")


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


@ab_app.command("power")
def power_command(
    rate: float = typer.Option(..., "--rate", help="Control conversion rate per lead, e.g. 0.3"),
    lift: Optional[float] = typer.Option(None, "--lift", help="Relative lift to detect, e.g. 0.1 for +10%"),
    leads: Optional[int] = typer.Option(None, "--leads", help="Leads in the whole experiment (for power and MDE)"),
    arms: int = typer.Option(2, "--arms", help="Arms, control included"),
    alpha: float = typer.Option(0.05, "--alpha"),
    sequential: bool = typer.Option(False, "--sequential", help="Plan for the sequential (peek-safe) test"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Planning: leads per arm needed for a lift, or power and MDE for a number of leads."""
    from bot.experiments.power import minimum_detectable_effect, power, sample_size_per_arm
    from bot.experiments.sequential import DEFAULT_TUNING

    if not 0 < rate < 1:
        raise UserError(f"--rate must be between 0 and 1 (a share of leads); got {rate}")
    if arms < 2:
        raise UserError("--arms must be at least 2 (control and one treatment)")
    if lift is None and leads is None:
        raise UserError("give --lift (how many leads are needed) and/or --leads (power and MDE for that many)")
    tuning = DEFAULT_TUNING if sequential else None
    variance = rate * (1 - rate)
    result: dict = {"rate": rate, "arms": arms, "alpha": alpha, "sequential": sequential}
    if lift is not None:
        result["lift"] = lift
        result["leads_per_arm"] = sample_size_per_arm(rate, variance, lift, arms, alpha, tuning=tuning)
    if leads is not None:
        result["leads"] = leads
        result["mde"] = minimum_detectable_effect(rate, variance, leads, arms, alpha, tuning=tuning)
        if lift is not None:
            result["power"] = power(rate, variance, lift, leads, arms, alpha, tuning)
    if as_json:
        print_json(result)
        return
    if "leads_per_arm" in result:
        needed = result["leads_per_arm"]
        console.print(
            f"to detect {lift:+.1%} on {rate:.1%} with 80% power: "
            + (f"{needed:,} leads per arm ({needed * arms:,} in all)" if needed else "more than 10⁹ leads")
        )
    if "mde" in result:
        mde = result["mde"]
        console.print(
            f"with {leads:,} leads over {arms} arms: minimum detectable lift "
            + (f"{mde:+.1%}" if mde is not None else "none (too few leads)")
            + (f", power for {lift:+.1%}: {result['power']:.1%}" if "power" in result else "")
        )
