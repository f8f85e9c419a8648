"""FreeSWITCH Event Socket (mod_event_socket), inbound mode, on asyncio.

Wire format (FreeSWITCH docs, "Event Socket"): every message is a block of
`Name: value` header lines ended by an empty line; `Content-Length` announces a body.
Commands are text lines ended by an empty line. Event bodies of type text/event-plain
are themselves header blocks whose values are URL-encoded (Chinese ASR text arrives
as %E6%88%91…), optionally followed by their own body (e.g. BACKGROUND_JOB's result).

Written here rather than taken from a library: the maintained Python ESL clients are
either synchronous SWIG bindings that need FreeSWITCH's C library or unmaintained;
the protocol is small and this keeps calls on the same event loop as the dialogue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

log = logging.getLogger(__name__)

EventHandler = Callable[["EslEvent"], Awaitable[None] | None]


class EslError(RuntimeError):
    """FreeSWITCH answered -ERR, or the protocol was violated."""


class EslConnectionLost(ConnectionError):
    """The socket closed or FreeSWITCH sent a disconnect notice."""


@dataclass(frozen=True)
class EslMessage:
    headers: dict[str, str]
    body: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


@dataclass(frozen=True)
class EslEvent:
    headers: dict[str, str]
    body: str = ""

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    def get(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    @property
    def channel_uuid(self) -> str:
        return self.headers.get("Unique-ID", "")


def parse_header_block(text: str, *, url_decoded: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        name, _, value = line.partition(":")
        value = value.strip()
        headers[name.strip()] = unquote(value) if url_decoded else value
    return headers


def parse_event(message: EslMessage) -> EslEvent:
    """The event carried by a text/event-plain or text/event-json message."""
    if message.content_type == "text/event-json":
        data = json.loads(message.body)
        body = str(data.pop("_body", ""))
        return EslEvent({k: str(v) for k, v in data.items()}, body)
    head, sep, rest = message.body.partition("\n\n")
    headers = parse_header_block(head, url_decoded=True)
    body = ""
    if sep and "Content-Length" in headers:
        # Content-Length counts bytes, and ASR text is Chinese: slice bytes, not chars.
        body = rest.encode("utf-8")[: int(headers["Content-Length"])].decode("utf-8", "replace")
    return EslEvent(headers, body)


async def read_message(reader: asyncio.StreamReader) -> EslMessage:
    lines: list[str] = []
    while True:
        raw = await reader.readline()
        if not raw:
            raise EslConnectionLost("FreeSWITCH closed the event socket")
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if lines:
                break
            continue  # stray blank line between messages
        lines.append(line)
    headers = parse_header_block("\n".join(lines), url_decoded=False)
    body = ""
    if "Content-Length" in headers:
        body = (await reader.readexactly(int(headers["Content-Length"]))).decode("utf-8")
    return EslMessage(headers, body)


@dataclass
class EslConnection:
    """One inbound connection: commands are answered in order; events go to handlers."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    _replies: asyncio.Queue = field(default_factory=asyncio.Queue)
    _jobs: dict[str, asyncio.Future] = field(default_factory=dict)
    _handlers: list[EventHandler] = field(default_factory=list)
    _command_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _reader_task: asyncio.Task | None = None
    _dispatch_task: asyncio.Task | None = None
    # Events are handled off the read loop, in order: a handler may send a command
    # (e.g. stop a prompt on barge-in) whose reply the read loop must still be free to read.
    _events: asyncio.Queue = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def connect(cls, host: str, port: int, password: str, timeout: float = 5.0) -> EslConnection:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        greeting = await asyncio.wait_for(read_message(reader), timeout)
        if greeting.content_type != "auth/request":
            writer.close()
            raise EslError(f"expected auth/request from FreeSWITCH, got {greeting.content_type!r}")
        writer.write(f"auth {password}\n\n".encode())
        await writer.drain()
        reply = await asyncio.wait_for(read_message(reader), timeout)
        if not reply.headers.get("Reply-Text", "").startswith("+OK"):
            writer.close()
            raise EslError(f"FreeSWITCH refused the password: {reply.headers.get('Reply-Text', '')}")
        connection = cls(reader, writer)
        connection._reader_task = asyncio.create_task(connection._read_loop())
        connection._dispatch_task = asyncio.create_task(connection._dispatch_loop())
        return connection

    def on_event(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    async def subscribe(self, *event_names: str, fmt: str = "plain") -> None:
        await self.command(f"event {fmt} {' '.join(event_names)}")

    async def command(self, line: str) -> EslMessage:
        """Send one command and wait for its command/reply or api/response."""
        async with self._command_lock:
            if self.closed.is_set():
                raise EslConnectionLost("the event socket is closed")
            self.writer.write(f"{line}\n\n".encode())
            await self.writer.drain()
            reply = await self._replies.get()
        if isinstance(reply, Exception):
            raise reply
        text = reply.headers.get("Reply-Text", "")
        if text.startswith("-ERR"):
            raise EslError(f"{line.split()[0]}: {text}")
        return reply

    async def api(self, command: str) -> str:
        reply = await self.command(f"api {command}")
        if reply.body.startswith("-ERR"):
            raise EslError(f"api {command.split()[0]}: {reply.body.strip()}")
        return reply.body

    async def bgapi(self, command: str, job_uuid: str) -> asyncio.Future:
        """Start a background job; the future resolves with the BACKGROUND_JOB body."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._jobs[job_uuid] = future
        try:
            await self.command(f"bgapi {command}\nJob-UUID: {job_uuid}")
        except BaseException:
            self._jobs.pop(job_uuid, None)
            raise
        return future

    async def close(self) -> None:
        if not self.closed.is_set():
            try:
                self.writer.write(b"exit\n\n")
                await self.writer.drain()
                # FreeSWITCH answers with a disconnect notice and closes; wait briefly for it.
                await asyncio.wait_for(self.closed.wait(), 1.0)
            except (ConnectionError, asyncio.TimeoutError):
                pass
        self.writer.close()
        if self._reader_task:
            self._reader_task.cancel()
        self._lost(EslConnectionLost("closed by us"))
        if self._dispatch_task:
            await asyncio.sleep(0)  # let handlers see SOCKET_LOST
            self._dispatch_task.cancel()

    async def _read_loop(self) -> None:
        try:
            while True:
                message = await read_message(self.reader)
                kind = message.content_type
                if kind in ("command/reply", "api/response"):
                    await self._replies.put(message)
                elif kind.startswith("text/event-"):
                    event = parse_event(message)
                    if event.name == "BACKGROUND_JOB":
                        future = self._jobs.pop(event.get("Job-UUID"), None)
                        if future and not future.done():
                            future.set_result(event.body)
                    self._events.put_nowait(event)
                elif kind == "text/disconnect-notice":
                    raise EslConnectionLost(message.body.strip() or "disconnect notice")
        except (EslConnectionLost, ConnectionError, asyncio.IncompleteReadError) as exc:
            self._lost(exc if isinstance(exc, EslConnectionLost) else EslConnectionLost(str(exc)))
        except asyncio.CancelledError:
            pass

    async def _dispatch_loop(self) -> None:
        while True:
            event = await self._events.get()
            for handler in self._handlers:
                try:
                    result = handler(event)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # a handler's bug must not kill the socket for all calls
                    log.exception("ESL event handler failed on %s", event.name)

    def _lost(self, exc: EslConnectionLost) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._jobs.values():
            if not future.done():
                future.set_exception(exc)
        self._jobs.clear()
        self._replies.put_nowait(exc)
        # Handlers learn of the loss after every event that arrived before it.
        self._events.put_nowait(EslEvent({"Event-Name": "SOCKET_LOST", "Reason": str(exc)}))
