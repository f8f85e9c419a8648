"""`waihu wecom …`: the add-friend loop — offers file, delivery, advisor tasks, funnel, callback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Column, Table

from bot.cli.console import console, print_json

wecom_app = typer.Typer(
    help="WeCom add-friend: offers, invitations, advisor tasks, funnel, callback.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(wecom_app, name="wecom")


@wecom_app.command()
def offers(
    file: Optional[Path] = typer.Option(
        None, "--file", help="Offers file (default dialogs/wecom/offers.yml or WAIHU_WECOM_OFFERS)"
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """Check the offers file (incentives and welcome scripts per audience pack); errors give file:line."""
    from bot.wecom.offers import load_offers

    loaded = load_offers(file)
    summary: dict[str, Any] = {
        "file": loaded.path,
        "invite_grades": list(loaded.invite_grades),
        "delivery": loaded.delivery,
        "advisor": loaded.advisor.userid,
        "audiences": {
            key: {
                "incentives": [{"name": o.name, "text": o.text, "weight": o.weight} for o in block.incentives],
                "welcome": {grade: [o.name for o in options] for grade, options in block.welcomes.items()},
            }
            for key, block in loaded.audiences.items()
        },
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{loaded.path}: ok — invites grades {'/'.join(loaded.invite_grades)}, "
        f"delivery {loaded.delivery}, advisor {loaded.advisor.name} ({loaded.advisor.userid})"
    )
    table = Table("人群包", "利益点（权重）", "欢迎语")
    for key, block in summary["audiences"].items():
        incentives = (
            "；".join(f"{i['name']}：{i['text']}（{i['weight']:g}）" for i in block["incentives"]) or "（用 default）"
        )
        welcomes = (
            "；".join(f"{grade}: {', '.join(names)}" for grade, names in block["welcome"].items()) or "（用 default）"
        )
        table.add_row(key, incentives, welcomes)
    console.print(table)


@wecom_app.command()
def deliver(as_json: bool = typer.Option(False, "--json", help="One JSON object")) -> None:
    """Run one delivery pass now (contact ways, SMS or advisor tasks, late callbacks) — beat runs it every minute."""
    import asyncio

    from bot.wecom.tasks import run_delivery_pass

    report = asyncio.run(run_delivery_pass())
    if as_json:
        print_json(report)
    else:
        console.print(
            "delivered {delivered}, retry later {retry_later}, failed {failed}, "
            "late callbacks matched {events_matched}".format(**report)
        )


@wecom_app.command()
def tasks(
    campaign: Optional[str] = typer.Option(None, "--campaign", help="Only this campaign (name)"),
    include_done: bool = typer.Option(False, "--all", help="Also invitations already added or welcomed"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """Invitations for advisors to follow up by hand: who (masked), what was promised, the link;
    then the advisors' tasks: 加好友 (advisor_adds: the advisor adds the callee), 回电 (a landline
    A/B callee: 座机·回电) and 转人工·回电 (a hand-off nobody took). Numbers masked here; the clear number
    only on the assigned advisor's console page, audited."""
    from bot.campaigns.service import get_campaign
    from bot.core.db.engine import open_database, session_scope
    from bot.wecom.advisor_tasks import TASK_KIND_LABELS, list_tasks
    from bot.wecom.invites import advisor_tasks
    from intents.callback_times import to_shanghai

    with session_scope(open_database()) as session:
        campaign_id = get_campaign(session, campaign).id if campaign else None
        rows = advisor_tasks(session, campaign_id=campaign_id, include_done=include_done)
        add_tasks = list_tasks(session, campaign_id=campaign_id, include_closed=include_done)
    if as_json:
        print_json({"tasks": rows, "advisor_adds": [t.as_json() for t in add_tasks]})
        return
    if add_tasks:
        adds = Table(
            "任务",
            Column("类型", min_width=12),
            "外呼任务",
            Column("手机号", min_width=11),
            "称呼",
            "等级",
            "人群包",
            "顾问",
            "状态",
            "查看",
            Column("回电时段/截止", no_wrap=True),
            title="顾问任务",
        )
        for task in add_tasks:
            # Beijing time, as the robot said it to the callee (stored in UTC); a same-day
            # window as 11-24 10:30–12:30.
            due = to_shanghai(task.due_at)
            starts = to_shanghai(task.call_from) if task.call_from else None
            when = f"{due:%m-%d %H:%M}"
            if starts is not None:
                when = f"{starts:%m-%d %H:%M}–" + (f"{due:%H:%M}" if starts.date() == due.date() else when)
            adds.add_row(
                task.code,
                TASK_KIND_LABELS.get(task.kind, task.kind),
                task.campaign,
                task.phone_masked,
                task.callee,
                task.grade,
                task.audience or "",
                task.advisor_name or task.advisor_userid,
                task.status_label + ("（已超时）" if task.overdue else ""),
                str(task.reveals),
                when,
            )
        console.print(adds)
    if not rows:
        console.print("no open invitations")
        return
    table = Table("邀请", "任务", "线索", "手机号", "称呼", "等级", "人群包", "利益点", "发送方式", "状态", "链接")
    for row in rows:
        table.add_row(
            str(row["invite_id"]),
            row["campaign"],
            str(row["lead_id"]),
            row["phone"],
            row["callee"],
            row["grade"],
            row["audience"] or "",
            row["incentive"] or "",
            row["channel"],
            row["status"],
            row["link"] or (row["last_error"] or "（待生成）"),
        )
    console.print(table)


@wecom_app.command()
def funnel(
    campaign: str = typer.Argument(..., help="Campaign name"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """The add-friend funnel: graded A/B → invited → sent → added → welcomed, per audience pack and arm."""
    from bot.campaigns.service import get_campaign
    from bot.core.db.engine import open_database, session_scope
    from bot.wecom.funnel import wecom_funnel

    with session_scope(open_database()) as session:
        data = wecom_funnel(session, get_campaign(session, campaign).id)
    if as_json:
        print_json(data)
        return
    console.print(funnel_table(data))
    landlines = data["total"].get("landline", 0)
    if landlines:
        console.print(
            f"landlines: {landlines} A/B lead(s) on a landline (座机) cannot be added on WeCom and were not invited "
            "(not counted as invited)"
        )
    latency = data["welcome_after_add_s"]
    if latency:
        console.print(f"欢迎语在加好友后 {latency['median']:.1f} 秒（中位数）送达，最慢 {latency['max']:.1f} 秒")


# The call funnel (waihu campaign status, the demo) counts calls; this one counts leads.
FUNNEL_UNIT_NOTE = "每条线索只算一次，不论打了几次电话；按通话计的 A/B 等级数（waihu campaign status）会更多"


def funnel_table(data: dict) -> Table:
    """The add-friend funnel as a table: total, per audience pack, grade and arm (short
    headers and a dimension column, so it fits an 80-column terminal)."""
    stages = data["stages"]
    short = {
        "graded_ab": "A/B线索",
        "invited": "邀请",
        "sent": "发送",
        "added": "加好友",
        "welcomed": "欢迎语",
        "task_created": "任务",
        "revealed": "查看号码",
        "done": "标记添加",
    }
    mode = f"，添加方式：{data['add_mode_label']}" if data.get("add_mode_label") else ""
    table = Table(
        "维度",
        "分组",
        *(short.get(s, s) for s in stages),
        "加粉率",
        title=f"{data['campaign']}：企业微信加粉漏斗（单位：线索{mode}）",
        caption=FUNNEL_UNIT_NOTE,
    )
    for column in table.columns[2:]:
        column.justify = "right"

    def add(dimension: str, name: str, counts: dict) -> None:
        rate = counts["rates"]["added_of_graded_ab"]
        table.add_row(dimension, name, *(str(counts[s]) for s in stages), f"{rate:.1%}" if rate is not None else "-")

    add("合计", "", data["total"])
    for row in data["by_audience"]:
        add("人群包", row["name"], row)
    for row in data["by_grade"]:
        add("等级", row["name"], row)
    labels = {"script": "话术", "time_slot": "时段", "incentive": "利益点", "welcome": "欢迎语"}
    for factor, rows in data["by_arm"].items():
        for row in rows:
            add(labels[factor], row["name"], row)
    return table


@wecom_app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)"),
    port: int = typer.Option(8001, "--port", help="TCP port"),
) -> None:
    """Run the WeCom callback endpoint alone at /wecom/callback (WAIHU_WECOM_CORP_ID, _TOKEN, _AES_KEY).

    Bodies over 64 KiB are refused before they are read (Content-Length) or as soon as a
    streamed body passes the cap; connections and header sizes are bounded too."""
    import uvicorn

    from bot.core.db.engine import open_database
    from bot.wecom.callback import create_callback_app, endpoint_for, uvicorn_limits
    from bot.wecom.config import wecom_settings

    endpoint = endpoint_for(open_database(), wecom_settings())
    console.print(f"WeCom callback on http://{host}:{port}/wecom/callback  (Ctrl-C stops)")
    # ws="none": nothing here uses websockets, and Rasa pins a websockets too old for uvicorn's.
    uvicorn.run(create_callback_app(endpoint), host=host, port=port, log_level="info", ws="none", **uvicorn_limits())
