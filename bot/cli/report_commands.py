"""`waihu report CAMPAIGN [--json|--csv|--html FILE]`: the managers' A/B comparison."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bot.cli.console import console, print_json
from bot.core.errors import UserError

CSV_COLUMNS = (
    "breakdown",
    "audience",
    "factor",
    "arm",
    "control",
    "weight",
    "leads",
    "dials",
    "metric",
    "metric_label",
    "value",
    "ci_low",
    "ci_high",
    "numerator",
    "denominator",
    "lift",
    "lift_ci_low",
    "lift_ci_high",
    "p_value",
    "p_adjusted",
    "chance_to_win",
    "risk",
    "decision",
    "decision_label",
    "hint",
    "srm_p_value",
    "srm_alert",
    "reason",
    "check",
    "leads_needed_per_arm",
    "days_needed",
)


def register(app: typer.Typer) -> None:
    app.command(name="report")(report)


def report(
    campaign: str = typer.Argument(..., help="Campaign name"),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as one JSON object."),
    as_csv: bool = typer.Option(False, "--csv", help="Print one CSV row per breakdown, arm and metric."),
    html: Optional[Path] = typer.Option(
        None, "--html", metavar="FILE", help="Write the HTML report (Chinese, self-contained)."
    ),
    factor: Optional[str] = typer.Option(
        None, "--factor", help="Only this factor: script, time_slot, incentive, welcome"
    ),
    audience: Optional[str] = typer.Option(None, "--audience", help="Only the leads of this audience pack"),
    since: Optional[str] = typer.Option(None, "--since", help="Attempts dialled from this date/time (Beijing time)"),
    until: Optional[str] = typer.Option(None, "--until", help="…and before this time (a date: to the end of that day)"),
    method: str = typer.Option(
        "sequential", "--method", help="sequential (peek-safe, default), frequentist or bayesian"
    ),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level"),
    correction: str = typer.Option("holm", "--correction", help="holm (default), bh or none"),
) -> None:
    """Compare the arms of every tested factor: metrics with intervals, lifts, decisions, SRM."""
    from bot.campaigns.service import get_campaign
    from bot.core.db.engine import open_database, session_scope
    from bot.experiments.report import build_report

    if sum((as_json, as_csv, html is not None)) > 1:
        raise UserError("choose one of --json, --csv or --html FILE")
    if html is not None and not html.parent.exists():
        raise UserError(f"--html {html}: the folder {html.parent} does not exist")
    with session_scope(open_database()) as session:
        data = build_report(
            session,
            get_campaign(session, campaign),
            factor=factor,
            audience=audience,
            since=since,
            until=until,
            method=method,
            alpha=alpha,
            correction=correction,
        )
    if as_json:
        print_json(data)
    elif as_csv:
        write_csv(data, sys.stdout)
    elif html is not None:
        from bot.experiments.report_html import write_report_html

        write_report_html(data, html)
        console.print(f"wrote {html} ({html.stat().st_size // 1024} KB): open it in a browser")
    else:
        print_tables(data)


def csv_rows(data: dict):
    labels = {m["key"]: m["label"] for m in data["metrics"]}
    for factor in data["factors"]:
        tables = [("overall", "", factor["overall"])] + [("audience", b["audience"], b) for b in factor["by_audience"]]
        for breakdown, audience, table in tables:
            for arm in table["arms"]:
                for key, value in arm["metrics"].items():
                    versus = arm["vs_control"].get(key, {})
                    yield {
                        "breakdown": breakdown,
                        "audience": audience,
                        "factor": factor["factor"],
                        "arm": arm["arm"],
                        "control": arm["control"],
                        "weight": arm["weight"],
                        "leads": arm["leads"],
                        "dials": arm["dials"],
                        "metric": key,
                        "metric_label": labels[key],
                        "value": value["value"],
                        "ci_low": value["ci"][0],
                        "ci_high": value["ci"][1],
                        "numerator": value["numerator"],
                        "denominator": value["denominator"],
                        "lift": versus.get("lift"),
                        "lift_ci_low": (versus.get("ci") or [None, None])[0],
                        "lift_ci_high": (versus.get("ci") or [None, None])[1],
                        "p_value": versus.get("p_value"),
                        "p_adjusted": versus.get("p_adjusted"),
                        "chance_to_win": versus.get("chance_to_win"),
                        "risk": versus.get("risk"),
                        "decision": versus.get("decision"),
                        "decision_label": versus.get("decision_label"),
                        "hint": versus.get("hint"),
                        "srm_p_value": table["srm"]["p_value"],
                        "srm_alert": table["srm"]["alert"],
                        "reason": versus.get("reason"),
                        "check": versus.get("check"),
                        "leads_needed_per_arm": versus.get("leads_needed_per_arm"),
                        "days_needed": versus.get("days_needed"),
                    }


def write_csv(data: dict, out) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(data):
        writer.writerow(row)


STYLES = {
    "win": "bold green",
    "lose": "bold red",
    "inconclusive": "dim",
    "different": "yellow",
    "check": "dim italic",
    "check_alert": "bold yellow",
}


def metric_label(metric: dict, factor: dict) -> str:
    """The metric's name, marked as a check (核对项) where the factor cannot move it."""
    return metric["label"] + ("（核对项）" if metric["key"] in factor.get("checks", {}) else "")


FUNNEL_COLUMNS = (
    ("dialled", "拨打"),
    ("connected", "接通"),
    ("ab", "A/B"),
    ("invited", "邀请"),
    ("added", "添加"),
    ("converted", "成交"),
    ("premium", "保费（元）"),
)


def print_funnel(data: dict) -> None:
    """The full funnel in leads (拨打 → 接通 → A/B → 邀请 → 添加 → 成交 → 保费), overall and per arm."""
    overall = data["overview"].get("funnel")
    if not overall:
        return
    table = Table(title="全流程漏斗（线索数；保费为归因到本任务的合计）")
    table.add_column("分组")
    for _, label in FUNNEL_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("成交率", justify="right")

    def row(name: str, counts: dict) -> None:
        cells = [f"{counts[key]:,.2f}" if key == "premium" else f"{counts[key]:,}" for key, _ in FUNNEL_COLUMNS]
        rate = f"{counts['converted'] / counts['dialled']:.2%}" if counts["dialled"] else "—"
        table.add_row(name, *cells, rate)

    row("全部", overall)
    for factor in data["factors"]:
        for arm in factor["overall"]["arms"]:
            row(f"{factor['label']}：{arm['arm']}", arm["funnel"])
    console.print(table)


def print_tables(data: dict) -> None:
    from bot.experiments.report_html import metric_value

    console.print(f"[bold]A/B 实验对比报告：{data['campaign']['name']}[/]")
    for line in data["summary"]:
        console.print(line)
    print_funnel(data)
    for factor in data["factors"]:
        overall = factor["overall"]
        table = Table(title=f"{factor['label']}（对照组：{factor['control']}）", show_lines=False)
        for column in ("指标", "分组", "线索", "数值（区间）", "相对提升（区间）", "校正后 p", "胜出概率", "结论"):
            table.add_column(column, justify="left" if column in ("指标", "分组", "结论") else "right")
        for metric in data["metrics"]:
            for i, arm in enumerate(overall["arms"]):
                value = arm["metrics"][metric["key"]]
                cells = [
                    metric_label(metric, factor) if i == 0 else "",
                    arm["arm"] + ("（对照）" if arm["control"] else ""),
                    f"{arm['leads']:,}",
                    f"{metric_value(value['value'], metric['unit'])} "
                    f"[{metric_value(value['ci'][0], metric['unit'])}, {metric_value(value['ci'][1], metric['unit'])}]",
                ]
                if arm["control"]:
                    cells += ["", "", "", ""]
                else:
                    c = arm["vs_control"][metric["key"]]
                    cells += [
                        f"{c['lift']:+.1%} [{c['ci'][0]:+.1%}, {c['ci'][1]:+.1%}]",
                        "—" if c["p_adjusted"] is None else f"{c['p_adjusted']:.3f}",
                        f"{c['chance_to_win']:.0%}",
                        f"[{STYLES[c['decision']]}]{c['decision_label']}[/]",
                    ]
                table.add_row(*cells)
        console.print(table)
        console.print(("[bold red]" if overall["srm"]["alert"] else "[green]") + overall["srm"]["message"] + "[/]")
        if any(any(arm["handoffs"].values()) for arm in overall["arms"]):
            console.print(
                "转人工："
                + "；".join(
                    f"{arm['arm']} 已转人工 {arm['handoffs']['handed_off']}、"
                    f"转人工失败 {arm['handoffs']['handoff_failed']}"
                    for arm in overall["arms"]
                )
            )
        if any(arm["corrected"] for arm in overall["arms"]):
            console.print(
                "人工更正等级（按更正后的等级统计）："
                + "；".join(f"{arm['arm']} 人工更正 {arm['corrected']} 通" for arm in overall["arms"])
            )
        if factor.get("checks"):
            why = "；".join(sorted(set(factor["checks"].values())))
            console.print(f"[dim]核对项（{why}）：只核对分组是否正常，不作结论。[/]")
        console.print("结论说明：")
        for arm in overall["arms"]:
            for metric in data["metrics"]:
                comparison = arm["vs_control"].get(metric["key"])
                if comparison:
                    console.print(f"  · {arm['arm']} · {metric_label(metric, factor)}：{comparison['hint']}")
        if len(factor["by_audience"]) > 1:
            breakdown = Table(title=f"{factor['label']} · 按人群包")
            breakdown.add_column("人群包")
            breakdown.add_column("分组")
            breakdown.add_column("线索", justify="right")
            for metric in data["metrics"]:
                breakdown.add_column(metric_label(metric, factor), justify="right")
            for part in factor["by_audience"]:
                for i, arm in enumerate(part["arms"]):
                    cells = [
                        part["audience"] + (" [red](SRM)[/]" if part["srm"]["alert"] else "") if i == 0 else "",
                        arm["arm"],
                        f"{arm['leads']:,}",
                    ]
                    for metric in data["metrics"]:
                        text = metric_value(arm["metrics"][metric["key"]]["value"], metric["unit"])
                        c = arm["vs_control"].get(metric["key"])
                        if c:
                            text += f" {c['lift']:+.0%} [{STYLES[c['decision']]}]{c['decision_label']}[/]"
                        cells.append(text)
                    breakdown.add_row(*cells)
            console.print(breakdown)
