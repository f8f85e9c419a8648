"""Long-lived parts of the console process: the phone keyring, the training job, and the one
dialogue agent the writers' chat panel talks to.

The agent is loaded once per process (`load_shared_agent`, ~15 s) on a dedicated thread with
its own asyncio loop: every chat turn runs on that loop, so Rasa's stores and locks always
see the same loop, whichever request thread asks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from bot.core.errors import UserError
from bot.core.pii import PhoneKeyring, load_secret, require_key_with_advice
from bot.script.project import DialogsProject
from bot.script.training import MODEL_PREFIX, current_model
from bot.web.config import WebConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

CHAT_IDLE_S = 30 * 60
MAX_CHATS_PER_USER = 5


# ---- training -----------------------------------------------------------------------------------


@dataclass
class TrainingStatus:
    state: str = "idle"  # idle | running | succeeded | failed
    started_by: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: str | None = None
    trained: bool | None = None
    seconds: float | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "state": self.state,
            "started_by": self.started_by,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "model": self.model,
            "trained": self.trained,
            "seconds": self.seconds,
            "error": self.error,
            "problems": self.problems,
            "log_tail": self.log_tail[-20:],
        }


class TrainingJob:
    """One training at a time, in a child process (`bot.web.train_worker`)."""

    def __init__(self, project: DialogsProject, models_dir: Path, environment: dict[str, str] | None = None) -> None:
        self.project = project
        self.models_dir = models_dir
        self.environment = environment or {}
        self._lock = threading.Lock()
        self.status = TrainingStatus()
        self._process: subprocess.Popen | None = None

    def start(self, user: str, force: bool = False) -> TrainingStatus:
        with self._lock:
            if self.status.state == "running":
                raise UserError(f"已有一次训练在进行中（{self.status.started_by} 发起），请等它结束")
            self.status = TrainingStatus(state="running", started_by=user, started_at=datetime.now(timezone.utc))
            command = [sys.executable, "-m", "bot.web.train_worker", str(self.project.root), str(self.models_dir)]
            if force:
                command.append("--force")
            env = {**os.environ, **self.environment}
            self._process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=str(Path(__file__).resolve().parents[2]),
            )
            threading.Thread(
                target=self._follow, args=(self._process, self.status), name="waihu-train", daemon=True
            ).start()
            return self.status

    def _follow(self, process: subprocess.Popen, status: TrainingStatus) -> None:
        tail: deque[str] = deque(maxlen=200)
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                status.log_tail = list(tail)[-20:]
        code = process.wait()
        result = _last_json(tail)
        with self._lock:
            status.finished_at = datetime.now(timezone.utc)
            if code == 0 and result.get("ok"):
                status.state = "succeeded"
                status.model, status.trained, status.seconds = result["model"], result["trained"], result["seconds"]
            else:
                status.state = "failed"
                status.error = result.get("error") or f"训练进程退出码 {code}"
                status.problems = list(result.get("problems") or [])

    def wait(self, timeout: float) -> TrainingStatus:
        deadline = time.monotonic() + timeout
        while self.status.state == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.status

    def close(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()


def _last_json(lines) -> dict:
    for line in reversed(list(lines)):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


# ---- the dialogue agent -------------------------------------------------------------------------


def newest_model(models_dir: Path) -> Path | None:
    models = sorted(models_dir.glob(f"{MODEL_PREFIX}*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


class AgentHost:
    """The process-wide agent on its own event loop thread."""

    def __init__(
        self,
        project: DialogsProject,
        models_dir: Path,
        tracker_store_url: str | None = None,
        lock_store_url: str | None = None,
    ) -> None:
        self.project = project
        self.models_dir = models_dir
        self.tracker_store_url = tracker_store_url
        self.lock_store_url = lock_store_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="waihu-agent-loop", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._agent: Any = None
        self._model: Path | None = None

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def model_choice(self) -> tuple[Path, bool]:
        """The model for dialogs/ as it is now, else the newest one (stale=True: edits not trained yet)."""
        model = current_model(self.project, self.models_dir)
        if model is not None:
            return model, False
        fallback = newest_model(self.models_dir)
        if fallback is None:
            raise UserError("还没有训练好的模型：请先点击“训练”")
        return fallback, True

    def agent(self) -> tuple[Any, Path, bool]:
        """The loaded, warmed-up agent (loading it on first use), its model, and whether it is stale."""
        model, stale = self.model_choice()
        with self._lock:
            if self._agent is None or self._model != model:
                from bot.conversation.agent import load_shared_agent

                agent = load_shared_agent(model, self.tracker_store_url, self.lock_store_url)
                self.run(agent.warm_up(), timeout=300)
                self._agent, self._model = agent, model
            return self._agent, self._model, stale

    def load_in_background(self) -> None:
        def load() -> None:
            try:
                self.agent()
            except UserError as exc:
                log.warning("dialogue agent not preloaded: %s", exc)

        threading.Thread(target=load, name="waihu-agent-preload", daemon=True).start()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


@dataclass
class ChatSession:
    id: str
    owner: str
    variant: str
    model: str
    stale_model: bool
    call: Any  # bot.conversation.session.CallSession
    last_used: float = field(default_factory=time.monotonic)


class ChatRooms:
    """The writers' open test calls (in memory, per process; idle ones are dropped)."""

    def __init__(self, host: AgentHost) -> None:
        self.host = host
        self._chats: dict[str, ChatSession] = {}
        self._lock = threading.Lock()

    def open(
        self, owner: str, variant: str, surname: str | None, gender: str | None, incentive: str | None = None
    ) -> tuple[ChatSession, Any]:
        from bot.conversation.session import CallSession, LeadContext

        self._drop_idle()
        agent, model, stale = self.host.agent()
        lead = LeadContext(
            surname=surname or None, gender=gender or None, script_variant=variant, incentive=incentive or None
        )
        call = CallSession(agent, lead)
        reply = self.host.run(call.start())
        chat = ChatSession(uuid.uuid4().hex, owner, variant, model.name, stale, call)
        with self._lock:
            mine = sorted((c for c in self._chats.values() if c.owner == owner), key=lambda c: c.last_used)
            for old in mine[: max(0, len(mine) - MAX_CHATS_PER_USER + 1)]:
                self._close(old)
            self._chats[chat.id] = chat
        return chat, reply

    def get(self, chat_id: str, owner: str) -> ChatSession:
        with self._lock:
            chat = self._chats.get(chat_id)
        if chat is None or chat.owner != owner:
            raise UserError("这通试聊已结束或已过期，请点击“开始新通话”")
        chat.last_used = time.monotonic()
        return chat

    def say(self, chat: ChatSession, text: str) -> Any:
        if chat.call.ended:
            raise UserError("这通试聊已经挂断，请点击“开始新通话”")
        return self.host.run(chat.call.hear(text))

    def hang_up(self, chat: ChatSession) -> None:
        self.host.run(chat.call.hangup("callee"))

    def _close(self, chat: ChatSession) -> None:
        self._chats.pop(chat.id, None)
        if not chat.call.ended:
            asyncio.run_coroutine_threadsafe(chat.call.hangup("callee"), self.host._loop)

    def _drop_idle(self) -> None:
        now = time.monotonic()
        with self._lock:
            for chat in [c for c in self._chats.values() if now - c.last_used > CHAT_IDLE_S]:
                self._close(chat)


class ConsoleServices:
    def __init__(self, config: WebConfig, engine: Engine) -> None:
        settings = config.settings
        self.config = config
        self.project = DialogsProject(settings.dialogs_dir)
        # Checked against the database's key fingerprint before the console serves anything:
        # with another key, do-not-call and duplicate checks would silently find nothing.
        self.keyring = PhoneKeyring.from_secret(
            load_secret(settings.secret_key, settings.secret_key_file, database=engine)
        )
        require_key_with_advice(engine, self.keyring, settings.secret_key_file)
        # The child process sees the same settings as this server (tests pass theirs in).
        self.trainer = TrainingJob(
            self.project,
            settings.models_dir,
            {"WAIHU_DIALOGS_DIR": str(settings.dialogs_dir), "WAIHU_MODELS_DIR": str(settings.models_dir)},
        )
        self.agent_host = AgentHost(
            self.project, settings.models_dir, settings.tracker_store_url, settings.lock_store_url
        )
        self.chats = ChatRooms(self.agent_host)

    def warm_up_validation(self) -> None:
        """Import Rasa's validator in the background: the first script save then takes ~1 s, not ~4 s."""

        def load() -> None:
            import rasa.shared.importers.importer  # noqa: F401
            import rasa.validator  # noqa: F401

            import bot.core.rasa_env  # noqa: F401  (quiet, offline Rasa defaults)

        threading.Thread(target=load, name="waihu-rasa-import", daemon=True).start()

    @property
    def lock_dir(self) -> Path:
        return self.config.settings.data_dir / "locks"

    def close(self) -> None:
        self.trainer.close()
        self.agent_host.close()
