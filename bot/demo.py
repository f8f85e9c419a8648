"""`waihu demo`: train if needed, then play sample calls turn by turn.

The calls use the real trained model and the real call runtime; only the callee's
replies are scripted here (there is no speech recogniser on this machine).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from rich.panel import Panel

from bot.cli.console import console, err_console
from bot.conversation.agent import DialogueAgent, load_shared_agent
from bot.conversation.session import BotReply, CallSession, LeadContext
from bot.script.project import DialogsProject
from bot.script.training import train
from bot.settings import get_settings

SILENCE = None  # a callee turn with no speech


@dataclass(frozen=True)
class SampleCall:
    title: str
    lead: LeadContext
    callee_says: tuple[str | None, ...]


SAMPLE_CALLS = (
    SampleCall(
        "王先生 · 车主 · standard script: questions, then agrees to add WeCom",
        LeadContext(surname="王", gender="M", audience_pack="车主", script_variant="standard",
                    incentive="一份免费的驾乘意外险"),
        ("喂你好", "嗯你说", "你是机器人吧", "这个要钱吗", "那行你加我吧"),
    ),
    SampleCall(
        "李女士 · 宝妈 · benefit_first script: busy, names a callback time",
        LeadContext(surname="李", gender="F", audience_pack="宝妈", script_variant="benefit_first",
                    incentive="一次免费的家庭保单检视"),
        ("你哪位啊", "我在开车呢", "明天上午十点以后再打吧"),
    ),
    SampleCall(
        "张先生 · 银行 · asks where the number came from, then opts out",
        LeadContext(surname="张", gender="M", audience_pack="银行"),
        ("你们怎么有我电话的", "以后别再给我打电话了"),
    ),
    SampleCall(
        "赵女士 · 养老 · silence: re-prompted once, then the robot ends the call",
        LeadContext(surname="赵", gender="F", audience_pack="养老"),
        (SILENCE, SILENCE),
    ),
)


def run_demo() -> None:
    settings = get_settings()
    project = DialogsProject(settings.dialogs_dir)
    with err_console.status("training the dialogue model if dialogs/ changed…"):
        result = train(project, settings.models_dir)
    console.print(
        f"[dim]model {result.model_path.name} ("
        + (f"trained in {result.seconds:.0f} s" if result.trained else "up to date, not retrained")
        + ")[/]"
    )
    with err_console.status("loading the dialogue model…"):
        agent = load_shared_agent(result.model_path, settings.tracker_store_url, settings.lock_store_url)
        asyncio.run(agent.warm_up())
    for call in SAMPLE_CALLS:
        asyncio.run(_play(agent, call))


async def _play(agent: DialogueAgent, call: SampleCall) -> None:
    console.print(Panel(call.title, expand=False))
    session = CallSession(agent, call.lead)
    _show(await session.start(), None, 0.0)
    for text in call.callee_says:
        if session.ended:
            break
        started = time.perf_counter()
        reply = await (session.silence() if text is SILENCE else session.hear(text))
        _show(reply, text, (time.perf_counter() - started) * 1000)
    if not session.ended:
        await session.hangup("callee")
    console.print(f"[dim]call over: hung up by {session.hangup_by}, {len(session.turns)} turns[/]\n")


def _show(reply: BotReply, callee_text: str | None, ms: float) -> None:
    if callee_text is not None or reply.intent is None and ms:
        said = callee_text if callee_text is not None else "（沉默）"
        intent = f"  [cyan]{reply.intent}[/] [dim]{reply.confidence:.2f} · {ms:.0f} ms[/]" if reply.intent else f"  [dim]{ms:.0f} ms[/]"
        console.print(f"[bold]客户[/]  {said}{intent}")
    for line in reply.lines:
        console.print(f"[bold green]机器人[/] {line.text} [dim]{line.response}[/]")
    if reply.end_call:
        console.print("[dim]（机器人挂断）[/]")
