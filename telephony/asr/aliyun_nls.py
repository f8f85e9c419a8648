"""Alibaba Cloud Intelligent Speech Interaction, real-time speech recognition (NLS
"SpeechTranscriber"), over its WebSocket protocol — what many Chinese insurers' call centres use.

One utterance is one transcription task on its own connection:
1. connect to `<url>?token=<token>` (a temporary token from the NLS token service);
2. send the StartTranscription command (a JSON text frame: header with appkey, message_id,
   task_id, namespace "SpeechTranscriber"; payload with format "pcm" and the sample rate) and
   wait for the TranscriptionStarted event;
3. stream the audio as binary frames; the service answers SentenceBegin /
   TranscriptionResultChanged / SentenceEnd events (payload.result, payload.confidence);
4. send StopTranscription and collect SentenceEnd results until TranscriptionCompleted.
A TaskFailed event (header.status, header.status_text) is an `ASRError` naming the status.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from websockets.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from telephony.asr import ASRError, Transcript

NAMESPACE = "SpeechTranscriber"
DEFAULT_URL = "wss://nls-gateway-cn-shanghai.aliyuncs.com/ws/v1"


@dataclass(frozen=True)
class AliyunNlsConfig:
    appkey: str
    token: str
    url: str = DEFAULT_URL
    timeout_s: float = 10.0  # for each reply of the service (started, completed)
    punctuation: bool = True
    inverse_text_normalization: bool = True  # 一百二十 → 120


def config_from_env(env: Mapping[str, str] | None = None) -> AliyunNlsConfig:
    """WAIHU_NLS_APPKEY and WAIHU_NLS_TOKEN (required), WAIHU_NLS_URL (the Shanghai gateway)."""
    env = os.environ if env is None else env
    missing = [name for name in ("WAIHU_NLS_APPKEY", "WAIHU_NLS_TOKEN") if not env.get(name, "").strip()]
    if missing:
        raise ASRError(
            f"{' and '.join(missing)} not set: the SIP carrier recognises speech with Aliyun NLS; "
            "set the project's appkey and an access token (NLS console)"
        )
    return AliyunNlsConfig(
        appkey=env["WAIHU_NLS_APPKEY"].strip(),
        token=env["WAIHU_NLS_TOKEN"].strip(),
        url=env.get("WAIHU_NLS_URL", "").strip() or DEFAULT_URL,
    )


def _id() -> str:
    return uuid.uuid4().hex  # 32 hex characters, as the protocol asks


@dataclass
class AliyunNlsASR:
    config: AliyunNlsConfig

    async def open(self, sample_rate: int = 8000) -> AliyunNlsStream:
        stream = AliyunNlsStream(self.config, sample_rate)
        await stream.start()
        return stream


@dataclass
class AliyunNlsStream:
    config: AliyunNlsConfig
    sample_rate: int
    task_id: str = field(default_factory=_id)
    sentences: list[tuple[str, float | None]] = field(default_factory=list)
    _ws: Any = None

    def _command(self, name: str, payload: dict | None = None) -> str:
        header = {
            "appkey": self.config.appkey,
            "message_id": _id(),
            "task_id": self.task_id,
            "namespace": NAMESPACE,
            "name": name,
        }
        return json.dumps({"header": header, **({"payload": payload} if payload is not None else {})})

    async def start(self) -> None:
        url = f"{self.config.url}?{urlencode({'token': self.config.token})}"
        try:
            self._ws = await asyncio.wait_for(connect(url, max_size=2**20), self.config.timeout_s)
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as error:
            raise ASRError(f"Aliyun NLS: cannot connect to {self.config.url} ({error})") from None
        await self._ws.send(
            self._command(
                "StartTranscription",
                {
                    "format": "pcm",
                    "sample_rate": self.sample_rate,
                    "enable_intermediate_result": False,
                    "enable_punctuation_prediction": self.config.punctuation,
                    "enable_inverse_text_normalization": self.config.inverse_text_normalization,
                },
            )
        )
        await self._until("TranscriptionStarted")

    async def feed(self, pcm: bytes) -> None:
        if pcm:
            await self._ws.send(pcm)

    async def finish(self) -> Transcript:
        try:
            await self._ws.send(self._command("StopTranscription"))
            await self._until("TranscriptionCompleted")
        finally:
            await self.aclose()
        text = "".join(text for text, _ in self.sentences)
        scores = [score for _, score in self.sentences if score is not None]
        return Transcript(text, round(min(scores), 3) if scores else None)

    async def aclose(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def _until(self, name: str) -> None:
        """Read events until `name`, keeping every finished sentence on the way."""
        while True:
            try:
                raw = await asyncio.wait_for(self._ws.recv(), self.config.timeout_s)
            except asyncio.TimeoutError:
                await self.aclose()
                raise ASRError(f"Aliyun NLS: no {name} within {self.config.timeout_s:g} s") from None
            except ConnectionClosed as closed:
                raise ASRError(f"Aliyun NLS closed the connection before {name} ({closed})") from None
            if isinstance(raw, bytes):
                continue
            event = json.loads(raw)
            header, payload = event.get("header", {}), event.get("payload", {})
            kind = header.get("name")
            if kind == "TaskFailed":
                await self.aclose()
                raise ASRError(
                    f"Aliyun NLS task failed: status {header.get('status')} {header.get('status_text', '')}".strip()
                )
            if kind == "SentenceEnd":
                confidence = payload.get("confidence")
                self.sentences.append(
                    (payload.get("result", ""), float(confidence) if confidence is not None else None)
                )
            if kind == name:
                return
