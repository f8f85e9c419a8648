"""One Rasa agent per process, shared by every concurrent call session.

Loading takes ~20 s (TensorFlow) and the first parse traces the graph, so a process
loads once (`load_shared_agent`) and warms up before taking calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel  # noqa: E402

from bot.conversation.stores import lock_store_from_url, tracker_store_from_url
from bot.core.errors import UserError
from bot.core.rasa_env import quiet_rasa  # first: sets quiet, offline defaults for Rasa
from intents.entities import extract_entities
from intents.taxonomy import CALL_START_INTENT, RETRIEVAL_INTENT, UNCERTAIN_AGREEMENT_INTENT

log = logging.getLogger(__name__)

VARIANT_SLOT = "script_variant"


@dataclass(frozen=True)
class Parse:
    """What the NLU made of one callee utterance. `intent` is what the robot acts on, with
    an FAQ question named by its topic (faq/claims)."""

    text: str
    intent: str
    confidence: float
    entities: tuple[dict[str, Any], ...] = ()
    ranking: tuple[tuple[str, float], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def understood(self) -> str:
        """The classifier's reading: for an agreement the robot will confirm first
        (uncertain_agreement), the agreement intent it looked like."""
        if self.intent == UNCERTAIN_AGREEMENT_INTENT:
            return str((self.raw.get("reply_check") or {}).get("intent") or self.intent)
        return self.intent


def intent_label(data: dict[str, Any]) -> str:
    """The parsed intent's name; for the FAQ, the topic the ResponseSelector chose (faq/claims)."""
    name = (data.get("intent") or {}).get("name") or ""
    if name == RETRIEVAL_INTENT:
        selected = ((data.get("response_selector") or {}).get(name) or {}).get("response") or {}
        return selected.get("intent_response_key") or name
    return name


@dataclass(frozen=True)
class BotLine:
    """One line the robot says: the script response and its rendered text."""

    response: str
    text: str


class ScriptLineChannel(CollectingOutputChannel):
    """Collects what the robot says with the response it came from (Rasa's collecting
    channel keeps only the text)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[BotLine] = []

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.lines.append(BotLine(message.get("utter_action") or "", message.get("text") or ""))


class DialogueAgent:
    def __init__(self, agent: Any, model_path: Path) -> None:
        self._agent = agent
        self.model_path = model_path
        self.domain = agent.domain
        self._memory_store = _in_memory_store(agent.tracker_store)

    @classmethod
    def load(
        cls,
        model_path: Path,
        tracker_store_url: str | None = None,
        lock_store_url: str | None = None,
    ) -> DialogueAgent:
        if not Path(model_path).exists():
            raise UserError(f"model {model_path} does not exist. Run `waihu train` first.")
        quiet_rasa()
        from rasa.core.agent import Agent

        agent = Agent.load(
            str(model_path),
            tracker_store=tracker_store_from_url(tracker_store_url),
            lock_store=lock_store_from_url(lock_store_url),
        )
        if agent.processor is None or agent.domain is None:
            raise UserError(f"{model_path} is not a complete Rasa model; run `waihu train --force`.")
        return cls(agent, Path(model_path))

    @property
    def script_variants(self) -> tuple[str, ...]:
        slot = next((s for s in self.domain.slots if s.name == VARIANT_SLOT), None)
        values = getattr(slot, "values", None) or []
        return tuple(v for v in values if v != "__other__")

    async def warm_up(self) -> None:
        """Trace the TensorFlow graph and the policies once before real calls arrive."""
        sender = "__warm_up__"
        await self.start_conversation(sender, {})
        await self.respond(sender, await self.parse("嗯你说"))
        await self.forget(sender)

    async def parse(self, text: str, now: datetime | None = None) -> Parse:
        """Rasa's NLU plus waihu's spaCy entities (callback times resolved against `now`,
        the moment the callee spoke; the clock when not given)."""
        data = await self._agent.parse_message(text)
        intent = data.get("intent") or {}
        return Parse(
            text=text,
            intent=intent_label(data),
            confidence=float(intent.get("confidence") or 0.0),
            entities=tuple(data.get("entities") or ()) + tuple(extract_entities(text, now)),
            ranking=tuple((r["name"], float(r["confidence"])) for r in data.get("intent_ranking") or ()),
            raw=data,
        )

    async def start_conversation(self, sender_id: str, slots: dict[str, Any]) -> list[BotLine]:
        """Fill the lead's slots, then let the script speak first (the `call_start` intent)."""
        from rasa.shared.core.events import SlotSet

        processor = self._agent.processor
        async with self._agent.lock_store.lock(sender_id):
            tracker = await processor.fetch_tracker_and_update_session(sender_id)
            tracker.update_with_events([SlotSet(k, v) for k, v in slots.items()], self.domain)
            await processor.save_tracker(tracker)
        return await self._handle(sender_id, f"/{CALL_START_INTENT}", parse_data=None)

    async def respond(self, sender_id: str, parse: Parse) -> list[BotLine]:
        return await self._handle(sender_id, parse.text, parse_data=parse.raw)

    async def _handle(self, sender_id: str, text: str, parse_data: dict | None) -> list[BotLine]:
        from rasa.core.channels.channel import UserMessage

        channel = ScriptLineChannel()
        message = UserMessage(text, channel, sender_id, parse_data=parse_data)
        await self._agent.handle_message(message)
        return channel.lines

    def render(self, response: str, slots: dict[str, Any]) -> str:
        """Render a script line outside the dialogue (e.g. the silence re-prompt), with the
        slots' initial values from the domain for any the call does not set (as in a turn)."""
        values = {slot.name: slot.initial_value for slot in self.domain.slots if slot.initial_value is not None}
        generated = self._agent.nlg.generate_from_slots(response, {**values, **slots}, "collector")
        if not generated:
            raise UserError(f"response '{response}' is not defined in dialogs/domain.")
        return generated.get("text") or ""

    async def forget(self, sender_id: str) -> None:
        """Drop a finished conversation from an in-memory store (shared stores expire it)."""
        if self._memory_store is not None:
            self._memory_store.store.pop(sender_id, None)

    def holds_in_memory(self, sender_id: str) -> bool:
        """Whether this process still keeps the conversation in its in-memory store."""
        return self._memory_store is not None and sender_id in self._memory_store.store


def _in_memory_store(store: Any) -> Any:
    """Rasa wraps stores (fail-safe, awaitable); find an in-memory one inside, if any."""
    from rasa.core.tracker_store import InMemoryTrackerStore

    while store is not None and not isinstance(store, InMemoryTrackerStore):
        store = getattr(store, "_tracker_store", None)
    return store


_shared: dict[tuple, DialogueAgent] = {}


def load_shared_agent(
    model_path: Path, tracker_store_url: str | None = None, lock_store_url: str | None = None
) -> DialogueAgent:
    """The process-wide agent for this model and stores (loaded on first use)."""
    key = (str(model_path), tracker_store_url, lock_store_url)
    if key not in _shared:
        _shared[key] = DialogueAgent.load(model_path, tracker_store_url, lock_store_url)
    return _shared[key]
