"""A phone call with the robot: the callee speaks, the script answers.

`CallSession` wraps the shared `DialogueAgent` for one call: start() → opening lines;
hear(text) → the robot's answer with the callee's intent; silence() → re-prompt once,
then end; hangup(). A hand-off to a human ends the robot's part either way: handed_off()
when an advisor took the call, handoff_failed() when nobody was free (the robot says so and
ends the call). Every turn is recorded (`intents.finished_call.Turn`) with its time
since the call was answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from bot.conversation.agent import VARIANT_SLOT, BotLine, DialogueAgent, Parse
from bot.core.add_modes import ADD_MODE_SLOT, LINK
from bot.core.errors import UserError
from intents.finished_call import Speaker, Turn

Clock = Callable[[], datetime]

CLOSING_PREFIX = "utter_close_"
QUESTION_PREFIX = "utter_ask_"
SILENCE_REPROMPT = "utter_reprompt_silence"
SILENCE_CLOSE = "utter_close_silence"
# The callee asked for a human: the script says this line, the runtime transfers the call.
HANDOFF = "utter_handoff"
# Nobody was free: the robot promises an advisor's callback and ends the call.
HANDOFF_FAILED = "utter_handoff_failed"
# After this many silences in a row the robot says goodbye (re-prompt once, then end).
MAX_SILENCES = 2


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class LeadContext:
    """What the script needs to know about the callee and the offer."""

    surname: str | None = None
    gender: str | None = None  # "M" / "F" / None
    audience_pack: str | None = None
    script_variant: str = "standard"
    institution: str | None = None
    advisor: str | None = None
    incentive: str | None = None
    # Which add-to-WeCom lines the robot says (bot.core.add_modes.add_mode_for_call).
    add_mode: str = LINK

    @property
    def callee_title(self) -> str:
        if not self.surname:
            return "您"
        honorific = {"M": "先生", "F": "女士"}.get((self.gender or "").upper()[:1], "")
        return f"{self.surname}{honorific}" if honorific else f"{self.surname}先生/女士"

    def slots(self) -> dict[str, Any]:
        values = {
            "callee_title": self.callee_title,
            "institution": self.institution,
            "advisor": self.advisor,
            "incentive": self.incentive,
            VARIANT_SLOT: self.script_variant,
            ADD_MODE_SLOT: self.add_mode,
        }
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class BotReply:
    lines: tuple[BotLine, ...]
    end_call: bool
    intent: str | None = None
    confidence: float | None = None
    entities: tuple[dict[str, Any], ...] = ()

    @property
    def text(self) -> str:
        return "".join(line.text for line in self.lines)


class CallEnded(RuntimeError):
    """The call is over; nothing more can be said in it."""


@dataclass
class CallSession:
    agent: DialogueAgent
    lead: LeadContext = field(default_factory=LeadContext)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    clock: Clock = utc_now
    turns: list[Turn] = field(default_factory=list)
    ended: bool = False
    hangup_by: Literal["bot", "callee"] | None = None  # None after a hand-off: an advisor has the call
    started_at: datetime | None = None
    ended_at: datetime | None = None
    _silences: int = 0
    _last_question: str | None = None

    async def start(self) -> BotReply:
        if self.started_at is not None:
            raise CallEnded(f"call {self.call_id} has already started")
        variants = self.agent.script_variants
        if variants and self.lead.script_variant not in variants:
            raise UserError(
                f"unknown script variant '{self.lead.script_variant}'; the script defines: {', '.join(variants)}"
            )
        self.started_at = self.clock()
        lines = await self.agent.start_conversation(self.call_id, self.lead.slots())
        return await self._bot_says(lines)

    async def hear(self, text: str) -> BotReply:
        """The callee said something (ASR text). Blank text is silence."""
        self._check_open()
        if not text or not text.strip():
            return await self.silence()
        self._silences = 0
        parse = await self.agent.parse(text.strip(), now=self.clock())
        self._record("callee", parse.text, parse=parse)
        lines = await self.agent.respond(self.call_id, parse)
        return await self._bot_says(lines, parse)

    async def silence(self) -> BotReply:
        """No speech before the endpointing timeout: re-prompt once, then end the call."""
        self._check_open()
        self._silences += 1
        slots = self.lead.slots()
        if self._silences >= MAX_SILENCES:
            names = [SILENCE_CLOSE]
        else:
            names = [SILENCE_REPROMPT] + ([self._last_question] if self._last_question else [])
        lines = [BotLine(name, self.agent.render(name, slots)) for name in names]
        return await self._bot_says(lines)

    async def hangup(self, side: Literal["bot", "callee"] = "callee") -> None:
        if not self.ended:
            await self._finish(side)

    async def handed_off(self) -> None:
        """A human took the call: the robot's part is over, nobody hung up."""
        self._check_open()
        await self._finish(None)

    async def handoff_failed(self) -> BotReply:
        """Nobody took the call in time: say so (an advisor will call back) and end the call."""
        self._check_open()
        line = BotLine(HANDOFF_FAILED, self.agent.render(HANDOFF_FAILED, self.lead.slots()))
        reply = await self._bot_says([line])
        if not self.ended:
            await self._finish("bot")
        return BotReply(reply.lines, end_call=True)

    @property
    def talk_time_s(self) -> float:
        if not self.started_at:
            return 0.0
        end = self.ended_at or self.clock()
        return (end - self.started_at).total_seconds()

    async def _bot_says(self, lines: list[BotLine], parse: Parse | None = None) -> BotReply:
        for line in lines:
            self._record("bot", line.text, response=line.response)
            if line.response.startswith(QUESTION_PREFIX):
                self._last_question = line.response
        end_call = any(line.response.startswith(CLOSING_PREFIX) for line in lines)
        if end_call:
            await self._finish("bot")
        return BotReply(
            lines=tuple(lines),
            end_call=end_call,
            intent=parse.intent if parse else None,
            confidence=parse.confidence if parse else None,
            entities=parse.entities if parse else (),
        )

    def _record(self, speaker: Speaker, text: str, *, response: str | None = None, parse: Parse | None = None) -> None:
        now = self.clock()
        started = self.started_at or now
        self.turns.append(
            Turn(
                seq=len(self.turns) + 1,
                speaker=speaker,
                text=text,
                t=(now - started).total_seconds(),
                response=response,
                intent=parse.intent if parse else None,
                confidence=parse.confidence if parse else None,
                entities=parse.entities if parse else (),
            )
        )

    def _check_open(self) -> None:
        if self.started_at is None:
            raise CallEnded(f"call {self.call_id} has not started; call start() first")
        if self.ended:
            raise CallEnded(f"call {self.call_id} has ended")

    async def _finish(self, side: Literal["bot", "callee"] | None) -> None:
        self.ended = True
        self.hangup_by = side
        self.ended_at = self.clock()
        # Free the in-memory tracker; the turns stay on this object for grading and logging.
        await self.agent.forget(self.call_id)
