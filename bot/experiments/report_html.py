"""The report as one self-contained HTML file in Simplified Chinese, for managers.

Everything is inside the file (the vendored Chart.js included), so it opens offline, can be
mailed, and shows the same numbers as `waihu report --json`: the report dict is embedded
once and the charts are drawn from it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.experiments.metrics import CONVERSION_METRICS, METRICS

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
CHART_JS = Path(__file__).resolve().parents[1] / "web" / "static" / "vendor" / "chart.umd.min.js"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DECISION_CLASSES = {
    "win": "win",
    "lose": "lose",
    "inconclusive": "wait",
    "different": "diff",
    "check": "check",
    "check_alert": "diff",
}


def _percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _signed_percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:+.{digits}f}%"


def metric_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "yuan":
        return f"{value:,.2f} 元"
    return f"{value:.1f} 秒" if unit == "seconds" else _percent(value)


def _beijing(iso: str | None) -> str:
    if not iso:
        return "—"
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _script_json(value: object) -> str:
    """JSON safe inside <script>: no '</' or HTML comment openers can end the element."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report_html(report: dict) -> str:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(percent=_percent, signed_percent=_signed_percent, beijing=_beijing)
    env.globals.update(metric_value=metric_value, decision_class=DECISION_CLASSES)
    chart_js = CHART_JS.read_text(encoding="utf-8")
    if "</script" in chart_js.lower():  # would end the inline <script> early
        raise ValueError(f"{CHART_JS} contains '</script'; it cannot be inlined as it is")
    return env.get_template("report.html").render(
        report=report,
        chart_js=chart_js,
        report_json=_script_json(report),
        metric_labels={m.key: m.label for m in (*METRICS, *CONVERSION_METRICS)},
    )


def write_report_html(report: dict, path: Path) -> Path:
    path.write_text(render_report_html(report), encoding="utf-8")
    return path
