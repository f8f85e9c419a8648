"""ASR: the deterministic clip recogniser on real speech (also after G.711 and trimming), and
the Aliyun NLS adapter against a local WebSocket server that speaks the NLS protocol."""

from __future__ import annotations

import asyncio
import audioop
import json
from pathlib import Path

import pytest
import websockets

from telephony.asr import ASRError
from telephony.asr.aliyun_nls import NAMESPACE, AliyunNlsASR, AliyunNlsConfig, config_from_env
from telephony.asr.clips import ClipError, ClipRecogniser
from telephony.prompts.audio import write_wav_atomically
from tests.telephony.audio_clips import needs_espeak, pcm, speech

REPLIES = ["好的，你说吧。", "我现在很忙，没时间。", "我已经买过保险了。", "可以加微信。"]


def through_the_phone(audio: bytes) -> bytes:
    """G.711 μ-law there and back, as a SIP call carries it."""
    return audioop.ulaw2lin(audioop.lin2ulaw(audio, 2), 2)


@pytest.fixture(scope="module")
def recogniser(tmp_path_factory: pytest.TempPathFactory) -> ClipRecogniser:
    folder = tmp_path_factory.mktemp("clips")
    clips = {}
    for number, text in enumerate(REPLIES):
        path = folder / f"reply{number}.wav"
        write_wav_atomically(speech(text), path)
        clips[path] = text
    return ClipRecogniser.from_files(clips)


@needs_espeak
@pytest.mark.parametrize("text", REPLIES)
def test_each_clip_is_recognised_after_g711_with_edges_trimmed_or_padded(recogniser: ClipRecogniser, text: str) -> None:
    audio = through_the_phone(pcm(speech(text)))
    trimmed = audio[1600:-1600]  # 100 ms less at each end, as a strict endpointer cuts
    padded = pcm(300) + audio + pcm(700)
    for heard in (audio, trimmed, padded):
        transcript = recogniser.recognise(heard)
        assert transcript.text == text
        assert transcript.confidence is not None and transcript.confidence >= 0.8


@needs_espeak
def test_unknown_speech_and_silence_are_not_recognised(recogniser: ClipRecogniser) -> None:
    assert recogniser.recognise(pcm(speech("请问明天下午三点有空吗？"))).text == ""
    assert recogniser.recognise(pcm(2000)).text == ""


@needs_espeak
def test_streaming_interface_collects_the_utterance(recogniser: ClipRecogniser) -> None:
    async def go() -> str:
        stream = await recogniser.open(8000)
        audio = pcm(speech(REPLIES[1]))
        for start in range(0, len(audio), 320):
            await stream.feed(audio[start : start + 320])
        return (await stream.finish()).text

    assert asyncio.run(go()) == REPLIES[1]


def test_a_clip_that_is_not_a_wav_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "reply.wav"
    bad.write_text("not audio")
    with pytest.raises(ClipError, match=r"reply\.wav: not a WAV file"):
        ClipRecogniser.from_files({bad: "好的"})


# ---------------------------------------------------------------------- Aliyun NLS


class FakeNls:
    """A local NLS gateway: checks the token and the commands, counts the audio, and answers
    with the events of the public protocol (TranscriptionStarted, SentenceBegin, SentenceEnd,
    TranscriptionCompleted, TaskFailed)."""

    def __init__(self, token: str = "tok-1", sentences: tuple[str, ...] = ("我已经买过保险了。",)) -> None:
        self.token = token
        self.sentences = sentences
        self.commands: list[dict] = []
        self.audio_bytes = 0

    def event(
        self, task_id: str, name: str, payload: dict | None = None, status: int = 20000000, text: str = ""
    ) -> str:
        header = {
            "namespace": NAMESPACE,
            "name": name,
            "status": status,
            "message_id": "0" * 32,
            "task_id": task_id,
            "status_text": text or "Gateway:SUCCESS:Success.",
        }
        return json.dumps({"header": header, "payload": payload or {}})

    async def handler(self, ws, path: str) -> None:
        if f"token={self.token}" not in path:
            start = json.loads(await ws.recv())
            await ws.send(
                self.event(
                    start["header"]["task_id"],
                    "TaskFailed",
                    status=40000001,
                    text="Gateway:ACCESS_DENIED:The token is invalid!",
                )
            )
            return
        async for message in ws:
            if isinstance(message, bytes):
                self.audio_bytes += len(message)
                continue
            command = json.loads(message)
            self.commands.append(command)
            header = command["header"]
            task = header["task_id"]
            if header["name"] == "StartTranscription":
                await ws.send(self.event(task, "TranscriptionStarted", {"session_id": "s1"}))
            elif header["name"] == "StopTranscription":
                for index, text in enumerate(self.sentences, 1):
                    await ws.send(self.event(task, "SentenceBegin", {"index": index, "time": 0}))
                    await ws.send(
                        self.event(
                            task,
                            "SentenceEnd",
                            {
                                "index": index,
                                "time": 1800,
                                "begin_time": 100,
                                "result": text,
                                "confidence": 0.91 - index / 100,
                            },
                        )
                    )
                await ws.send(self.event(task, "TranscriptionCompleted"))


async def with_server(fake: FakeNls, body):
    server = await websockets.serve(fake.handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await body(f"ws://127.0.0.1:{port}/ws/v1")
    finally:
        server.close()
        await server.wait_closed()


def test_nls_streams_audio_and_returns_the_final_sentences() -> None:
    fake = FakeNls(sentences=("好的，", "你说吧。"))

    async def body(url: str):
        asr = AliyunNlsASR(AliyunNlsConfig(appkey="app-9", token="tok-1", url=url))
        stream = await asr.open(8000)
        for _ in range(10):
            await stream.feed(b"\x00\x01" * 160)
        return await stream.finish()

    transcript = asyncio.run(with_server(fake, body))
    assert transcript.text == "好的，你说吧。"
    assert transcript.confidence == 0.89  # the least sure sentence
    assert fake.audio_bytes == 3200
    start, stop = fake.commands
    assert start["header"]["name"] == "StartTranscription" and stop["header"]["name"] == "StopTranscription"
    assert start["header"]["appkey"] == "app-9" and start["header"]["namespace"] == "SpeechTranscriber"
    assert start["header"]["task_id"] == stop["header"]["task_id"] and len(start["header"]["task_id"]) == 32
    assert start["header"]["message_id"] != stop["header"]["message_id"]
    assert start["payload"]["format"] == "pcm" and start["payload"]["sample_rate"] == 8000


def test_nls_task_failed_is_an_error_naming_the_status() -> None:
    async def body(url: str):
        await AliyunNlsASR(AliyunNlsConfig(appkey="app-9", token="expired", url=url)).open(8000)

    with pytest.raises(ASRError, match="status 40000001 Gateway:ACCESS_DENIED"):
        asyncio.run(with_server(FakeNls(), body))


def test_nls_unreachable_gateway_is_an_error_naming_the_url() -> None:
    async def body() -> None:
        await AliyunNlsASR(AliyunNlsConfig(appkey="a", token="t", url="ws://127.0.0.1:9/ws/v1", timeout_s=2)).open()

    with pytest.raises(ASRError, match="cannot connect to ws://127.0.0.1:9/ws/v1"):
        asyncio.run(body())


def test_nls_settings_missing_name_the_variables() -> None:
    with pytest.raises(ASRError, match="WAIHU_NLS_APPKEY and WAIHU_NLS_TOKEN not set"):
        config_from_env({})
    config = config_from_env({"WAIHU_NLS_APPKEY": "app", "WAIHU_NLS_TOKEN": "tok"})
    assert (config.appkey, config.token, config.url) == (
        "app",
        "tok",
        "wss://nls-gateway-cn-shanghai.aliyuncs.com/ws/v1",
    )
