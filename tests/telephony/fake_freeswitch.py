"""A FreeSWITCH stand-in that speaks mod_event_socket's wire protocol (inbound mode).

Written from the FreeSWITCH Event Socket documentation: auth/request greeting, `auth`,
`event plain|json …`, `api` (api/response with Content-Length), `bgapi` with a
Job-UUID header and a later BACKGROUND_JOB event, text/event-plain bodies whose header
values are URL-encoded, text/event-json, and the text/disconnect-notice on close.
Tests script what the "carrier" does per dialled number.

`uuid_transfer <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]` (mod_commands)
answers "+OK" (or "-ERR No such channel!", or "-USAGE: …" without a destination); the
channel then runs the dialplan at the destination, which tests script per extension in
`transfer_outcomes`: "bridge" (an advisor answers: CHANNEL_BRIDGE on the channel with
Other-Leg-Unique-ID and Bridge-A/B-Unique-ID), "bridge:<seconds>" (answers after that
long), "queue" (the caller waits, nobody answers: no event) or a Q.850 cause (the
dialplan gives up and hangs up: CHANNEL_HANGUP_COMPLETE with that cause). A transfer to
`park inline` parks the channel again, cancelling a bridge still to come.

`uuid_record <uuid> [start|stop|mask|unmask] <path> [<limit>]` (mod_commands) answers
"+OK Success" (or "-ERR No such channel!", or "-USAGE: …"); `start` writes the file as the
switch would (8 kHz mono 16-bit WAV, `record_seconds` of silence) when its folder exists.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import wave
from dataclasses import dataclass, field
from urllib.parse import quote

DISCONNECT_NOTICE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


@dataclass
class Channel:
    uuid: str
    variables: dict[str, str]
    phone: str
    answered: bool = False
    broadcasts: list[str] = field(default_factory=list)
    breaks: int = 0
    transfers: list[str] = field(default_factory=list)  # destinations, in order
    bridged_to: str | None = None  # the other leg once a transfer bridged
    pending_transfer: asyncio.Task | None = None
    records: list[tuple[str, str]] = field(default_factory=list)  # (start|stop, path), in order


class FakeFreeSwitch:
    def __init__(self, password: str = "ClueCon") -> None:
        self.password = password
        # phone → what the carrier does: "answer" or a Q.850 cause (e.g. "USER_BUSY")
        self.outcomes: dict[str, str] = {}
        # transfer destination (dest-exten) → what its dialplan does; see the module docstring
        self.transfer_outcomes: dict[str, str] = {}
        self.channels: dict[str, Channel] = {}
        self.commands: list[str] = []
        self.record_seconds = 1.0  # length of the file a `uuid_record … start` writes
        self._clients: list[tuple[asyncio.StreamWriter, dict]] = []
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for writer, _ in self._clients:
            writer.close()
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    # -- what a test makes the switch do ------------------------------------------
    async def say(self, channel_uuid: str, text: str, *, nlsml: bool = False) -> None:
        """The callee speaks: a DETECTED_SPEECH event with the ASR result."""
        body = (
            (
                f'<result><interpretation grammar="builtin" confidence="87"><input mode="speech">'
                f"{text}</input></interpretation></result>"
            )
            if nlsml
            else text
        )
        await self.emit("DETECTED_SPEECH", channel_uuid, {"Speech-Type": "detected-speech"}, body)

    async def callee_hangs_up(self, channel_uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        await self._hangup(channel_uuid, cause)

    async def drop_connections(self) -> None:
        """The switch goes away mid-call (no disconnect notice, the socket just dies)."""
        for writer, _ in self._clients:
            writer.transport.abort()
        self._clients.clear()

    async def emit(self, name: str, channel_uuid: str, extra: dict[str, str] | None = None, body: str = "") -> None:
        channel = self.channels.get(channel_uuid)
        headers = {
            "Event-Name": name,
            "Core-UUID": "fake-core",
            "Unique-ID": channel_uuid,
            "Channel-Name": f"sofia/gateway/gw/{channel.phone if channel else ''}",
        }
        if channel:
            headers.update({f"variable_{k}": v for k, v in channel.variables.items()})
        headers.update(extra or {})
        for writer, state in list(self._clients):
            if name in state["events"] or "all" in state["events"]:
                await self._send_event(writer, state["format"], headers, body)

    # -- protocol -------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state = {"authed": False, "events": set(), "format": "plain"}
        writer.write(b"Content-Type: auth/request\n\n")
        await writer.drain()
        try:
            while True:
                command = await self._read_command(reader)
                if command is None:
                    break
                self.commands.append(command)
                if not state["authed"]:
                    if command == f"auth {self.password}":
                        state["authed"] = True
                        self._clients.append((writer, state))
                        await self._reply(writer, "+OK accepted")
                    else:
                        await self._reply(writer, "-ERR invalid")
                        await self._disconnect(writer)
                        break
                    continue
                if command == "exit":
                    await self._reply(writer, "+OK bye")
                    await self._disconnect(writer)
                    break
                await self._handle(writer, state, command)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients = [(w, s) for w, s in self._clients if w is not writer]
            writer.close()

    async def _handle(self, writer, state, command: str) -> None:
        first, *rest = command.split("\n")
        verb, _, args = first.partition(" ")
        if verb == "event":
            fmt, *names = args.split()
            state["format"] = fmt
            state["events"].update(names)
            await self._reply(writer, f"+OK event listener enabled {fmt}")
        elif verb == "api":
            await self._api_response(writer, await self._api(args))
        elif verb == "bgapi":
            job = next((l.split(":", 1)[1].strip() for l in rest if l.startswith("Job-UUID:")), "job-1")
            await self._reply(writer, f"+OK Job-UUID: {job}", {"Job-UUID": job})
            asyncio.ensure_future(self._background(args, job))
        else:
            await self._reply(writer, "-ERR command not found")

    async def _api(self, args: str) -> str:
        name, *params = args.split()
        channel = self.channels.get(params[0]) if params else None
        if name in ("uuid_broadcast", "uuid_break", "uuid_kill", "uuid_transfer", "uuid_record") and channel is None:
            return "-ERR No such channel!\n"
        if name == "uuid_broadcast":
            channel.broadcasts.append(params[1])
            return "+OK Message queued\n"
        if name == "uuid_break":
            channel.breaks += 1
            return "+OK\n"
        if name == "uuid_kill":
            asyncio.ensure_future(self._hangup(channel.uuid, params[1] if len(params) > 1 else "NORMAL_CLEARING"))
            return "+OK\n"
        if name == "uuid_transfer":
            destination = [p for p in params[1:] if p not in ("-bleg", "-both")]
            if not destination:
                return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
            channel.transfers.append(" ".join(destination))
            if channel.pending_transfer is not None:
                channel.pending_transfer.cancel()  # the dialplan it was in is left
                channel.pending_transfer = None
            if destination[:2] != ["park", "inline"]:
                outcome = self.transfer_outcomes.get(destination[0], "queue")
                channel.pending_transfer = asyncio.ensure_future(self._run_transfer(channel, outcome))
            return "+OK\n"
        if name == "uuid_record":
            if len(params) < 3 or params[1] not in ("start", "stop", "mask", "unmask"):
                return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>]\n"
            channel.records.append((params[1], params[2]))
            if params[1] == "start":
                self._write_recording(params[2])
            return "+OK Success\n"
        if name == "status":
            return "UP 0 years, 0 days\nFreeSWITCH (fake) is ready\n"
        return f"-ERR {name} Command not found!\n"

    def _write_recording(self, path: str) -> None:
        if not os.path.isdir(os.path.dirname(path)):
            return  # FreeSWITCH logs an error and records nothing
        with wave.open(path, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(b"\x00\x00" * int(8000 * self.record_seconds))

    async def _background(self, args: str, job: str) -> None:
        match = re.match(r"originate \{([^}]*)\}sofia/gateway/[^/]+/(\S+) ", args)
        if not match:
            await self._job_done(job, "-ERR INVALID_NUMBER_FORMAT\n")
            return
        variables = dict(pair.split("=", 1) for pair in match.group(1).split(","))
        phone = match.group(2)
        outcome = self.outcomes.get(phone, "NO_ANSWER")
        if outcome != "answer":
            await asyncio.sleep(0.01)
            await self._job_done(job, f"-ERR {outcome}\n")
            return
        channel = Channel(variables["origination_uuid"], variables, phone, answered=True)
        self.channels[channel.uuid] = channel
        await self._job_done(job, f"+OK {channel.uuid}\n")
        await self.emit("CHANNEL_ANSWER", channel.uuid)

    async def _run_transfer(self, channel: Channel, outcome: str) -> None:
        if outcome == "queue":
            return  # held in the queue: nobody answers, nothing happens until it is taken back
        kind, _, delay = outcome.partition(":")
        await asyncio.sleep(float(delay) if delay else 0.01)
        channel.pending_transfer = None
        if kind == "bridge":
            other = f"advisor-{len(channel.transfers)}-{channel.uuid[:8]}"
            channel.bridged_to = other
            await self.emit(
                "CHANNEL_BRIDGE",
                channel.uuid,
                {"Other-Leg-Unique-ID": other, "Bridge-A-Unique-ID": channel.uuid, "Bridge-B-Unique-ID": other},
            )
        else:
            await self._hangup(channel.uuid, kind)

    async def _hangup(self, channel_uuid: str, cause: str) -> None:
        if channel_uuid in self.channels:
            await self.emit("CHANNEL_HANGUP_COMPLETE", channel_uuid, {"Hangup-Cause": cause})
            del self.channels[channel_uuid]

    async def _job_done(self, job: str, result: str) -> None:
        headers = {"Event-Name": "BACKGROUND_JOB", "Job-UUID": job, "Job-Command": "originate"}
        for writer, state in list(self._clients):
            if "BACKGROUND_JOB" in state["events"]:
                await self._send_event(writer, state["format"], headers, result)

    # -- framing --------------------------------------------------------------------
    @staticmethod
    async def _read_command(reader: asyncio.StreamReader) -> str | None:
        lines: list[str] = []
        while True:
            raw = await reader.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\r\n")
            if not line:
                if lines:
                    return "\n".join(lines)
                continue
            lines.append(line)

    @staticmethod
    async def _reply(writer, text: str, extra: dict[str, str] | None = None) -> None:
        head = "".join(f"{k}: {v}\n" for k, v in (extra or {}).items())
        writer.write(f"Content-Type: command/reply\nReply-Text: {text}\n{head}\n".encode())
        await writer.drain()

    @staticmethod
    async def _api_response(writer, body: str) -> None:
        data = body.encode()
        writer.write(f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data)
        await writer.drain()

    @staticmethod
    async def _send_event(writer, fmt: str, headers: dict[str, str], body: str) -> None:
        if fmt == "json":
            payload = dict(headers)
            if body:
                payload["Content-Length"] = str(len(body.encode()))
                payload["_body"] = body
            data = json.dumps(payload, ensure_ascii=False).encode()
            kind = "text/event-json"
        else:
            block = dict(headers)
            if body:
                block["Content-Length"] = str(len(body.encode()))
            text = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in block.items()) + "\n" + body
            data = text.encode()
            kind = "text/event-plain"
        writer.write(f"Content-Length: {len(data)}\nContent-Type: {kind}\n\n".encode() + data)
        await writer.drain()

    @staticmethod
    async def _disconnect(writer) -> None:
        data = DISCONNECT_NOTICE.encode()
        writer.write(f"Content-Type: text/disconnect-notice\nContent-Length: {len(data)}\n\n".encode() + data)
        await writer.drain()
