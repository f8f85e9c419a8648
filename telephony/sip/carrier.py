"""The SIP carrier: real calls through a SIP proxy or trunk, on PJSIP (the pjsua2 bindings).

PJSIP runs in its own thread (it owns the SIP stack and the media clock); everything it
reports is handed to the asyncio loop with `call_soon_threadsafe`. Each call's audio goes
through one `AudioMediaPort` both ways, 20 ms frames of 8 kHz 16-bit PCM:
- to the callee: the current prompt's WAV samples (the renderer's 8 kHz files), frame by
  frame; stopping a prompt (barge-in) is dropping what is left of it;
- from the callee: into the endpointer (telephony.vad). Voice that lasts `start_ms` during an
  interruptible prompt stops it (barge-in); the utterance streams into the ASR and its final
  text becomes a "speech" event at the end of the turn. No voice for 10 s after the robot
  stopped talking: an empty speech event (the runner re-prompts); 30 s: the carrier hangs up.
  Before an answer (early media: 183 with an operator recording) the text goes out as
  answered=False speech, which intents.announcements reads.
SIP final responses become hang-ups with the cause and call status of telephony.sip.causes.

Recording (全程录音): a dial with `recording_path` records the call there, 8 kHz mono 16-bit
WAV, from the answer to the hang-up: a pjsua2 AudioMediaRecorder on the conference bridge
hears both the callee (the call's AudioMedia) and the robot (our port), mixed. The hang-up
event goes out only once the recorder is deleted on the PJSIP thread and its WAV header is
written (PJSIP closes the file a media tick later, at most RECORDING_CLOSE_WAIT_S), so the
file is whole by the time the call's result and its recording row are stored.

Configuration (`SipConfig.from_env`): WAIHU_SIP_DOMAIN (where INVITEs go: host[:port] of the
proxy or trunk), WAIHU_SIP_REGISTRAR / WAIHU_SIP_USERNAME / WAIHU_SIP_PASSWORD (register
first; optional), WAIHU_SIP_PROXY (outbound proxy URI; optional), WAIHU_SIP_PORT (local UDP
port, 0 = any), WAIHU_SIP_CALLER (the user part we call from), WAIHU_SIP_MAX_CALLS (calls
this carrier holds at once).

Capacity: PJSIP has a fixed number of call slots: uaConfig.maxCalls (pjsua2's default is 4),
capped silently by the wheel's compile-time PJSUA_MAX_CALLS (telephony.sip.capacity: 4 for
this build). A slot is taken by the INVITE and freed when the INVITE session is over: a
hang-up is reported DISCONNECTED at once, but the slot stays taken until the far end answers
our CANCEL with 487 or our BYE with 200 (64 × T1 = 32 s if it never does). The dialer takes a
slot with `reserve_line` BEFORE its last T-0 check (bot.dialing.dialer.CheckedCarrier), so the
wait for one never falls between the check and the INVITE; a dial PJSIP still refuses
(PJ_ETOOMANY: our count said free, PJSIP had not let go yet) raises NoLineFree with nothing
sent, and the dialer waits, checks again and dials again — never graded as if the callee's
network had failed (an INVITE PJSIP refused to send was graded `unreachable`). Keep the
worker's concurrency at or below WAIHU_SIP_MAX_CALLS so that wait is milliseconds, not a
whole call.

Registration: with WAIHU_SIP_REGISTRAR set, `start()` waits for the registrar's answer (at
most REGISTER_WAIT_S) and raises SipRegistrationError with the SIP code when it is not 2xx:
a worker that cannot register takes no dial (its INVITEs would all be refused and graded).
Later refreshes that fail are logged with their code (`registration`: the last answer).
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import os
import queue
import threading
import time
import wave
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj

from telephony.asr import ASR, ASRError, ASRStream
from telephony.carrier import CALL_ENDED, REJECTED, SILENCE, CallEvent, NoLineFree, Prompt, TransferResult
from telephony.hangup_causes import status_for_hangup
from telephony.sip.capacity import DEFAULT_MAX_CALLS, MAX_CALLS_LIMIT
from telephony.sip.causes import cause_for_sip
from telephony.vad import Endpointer, EndpointerConfig, VadEvent

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000
MAX_FINISHED_CALLS = 1000  # ended calls kept for inspection (tests, the endpointing bench)
RELEASE_AFTER_S = 32.0  # a UAC transaction's longest life (64 × T1): then a call's objects can go
RECORDING_CLOSE_WAIT_S = 3.0  # the longest a hang-up waits for its recording's WAV header
FRAME_BYTES = SAMPLE_RATE // 50 * 2  # 20 ms of 16-bit PCM
REGISTER_WAIT_S = 10.0  # how long start() waits for the registrar's first answer
PJ_ETOOMANY = 70010  # pj_status_t: every PJSIP call slot is taken
# This PJSIP build polls its sockets with select(): it refuses a socket numbered at or above
# FD_SETSIZE (PJ_ETOOBIG), so in a process with a thousand files open every call's RTP socket
# failed and every call came back `unreachable` (measured). The PJSIP thread keeps a few low
# descriptor numbers (/dev/null) and frees two right before each INVITE (RTP and RTCP).
SELECT_FD_LIMIT = 1024
FDS_PER_CALL = 2
PJ_ETOOBIG = 70017  # pj_status_t: a socket numbered past what select() takes


def media_ports_for(max_calls: int) -> int:
    """Conference-bridge slots for `max_calls` calls: each call's own slot, our audio port and
    a recorder while it lasts, plus ended calls' ports kept until RELEASE_AFTER_S (PJSIP's own
    default, 254, when that is more)."""
    return max(254, 8 * max_calls)


class SipConfigError(ValueError):
    """A WAIHU_SIP_* setting that is missing or wrong."""


class SipRegistrationError(RuntimeError):
    """The registrar refused (or never answered) our REGISTER: no call can go out."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Registration:
    """The registrar's last answer to our REGISTER (code 0: none yet)."""

    code: int = 0
    reason: str = ""
    expires: int = 0  # seconds granted (0 after an unregister or a failure)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True)
class SipConfig:
    domain: str  # host[:port] INVITEs are sent to (the proxy or trunk)
    caller: str = "waihu"
    registrar: str = ""  # sip:host[:port]; empty: no registration (a trunk that trusts our IP)
    username: str = ""
    password: str = ""
    proxy: str = ""  # outbound proxy URI
    local_port: int = 0
    bind: str = "127.0.0.1"
    max_calls: int = DEFAULT_MAX_CALLS  # calls held at once (PJSIP call slots)

    def __post_init__(self) -> None:
        if not 1 <= self.max_calls <= MAX_CALLS_LIMIT:
            raise SipConfigError(
                f"WAIHU_SIP_MAX_CALLS={self.max_calls}: set it between 1 and {MAX_CALLS_LIMIT} "
                f"(this PJSIP build holds at most {MAX_CALLS_LIMIT} calls per process; run more workers for more lines)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SipConfig:
        env = os.environ if env is None else env
        domain = env.get("WAIHU_SIP_DOMAIN", "").strip()
        if not domain:
            raise SipConfigError("WAIHU_SIP_DOMAIN is not set: set it to the SIP proxy or trunk (host[:port])")
        port = env.get("WAIHU_SIP_PORT", "0").strip() or "0"
        if not port.isdigit():
            raise SipConfigError(f"WAIHU_SIP_PORT={port!r}: set it to a UDP port number (0 = any)")
        max_calls = env.get("WAIHU_SIP_MAX_CALLS", str(DEFAULT_MAX_CALLS)).strip() or str(DEFAULT_MAX_CALLS)
        if not max_calls.isdigit():
            raise SipConfigError(
                f"WAIHU_SIP_MAX_CALLS={max_calls!r}: set it to a number of calls (1–{MAX_CALLS_LIMIT})"
            )
        return cls(
            domain=domain,
            caller=env.get("WAIHU_SIP_CALLER", "waihu").strip() or "waihu",
            registrar=env.get("WAIHU_SIP_REGISTRAR", "").strip(),
            username=env.get("WAIHU_SIP_USERNAME", "").strip(),
            password=env.get("WAIHU_SIP_PASSWORD", ""),
            proxy=env.get("WAIHU_SIP_PROXY", "").strip(),
            local_port=int(port),
            bind=env.get("WAIHU_SIP_BIND", "0.0.0.0").strip() or "0.0.0.0",
            max_calls=int(max_calls),
        )


def read_prompt_pcm(path: str) -> bytes:
    """A rendered prompt's samples (8 kHz mono 16-bit, what telephony.prompts writes)."""
    with wave.open(path, "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path}: prompts must be 8 kHz mono 16-bit WAV (render them with waihu prompts)")
        return wav.readframes(wav.getnframes())


# ---------------------------------------------------------------------- PJSIP side


class _Port(pj.AudioMediaPort):
    """One call's audio both ways. Runs on PJSIP's media clock thread: it only moves bytes."""

    def __init__(self, on_audio: Callable[[bytes], None], on_prompt_end: Callable[[int, bool], None]) -> None:
        super().__init__()
        self._on_audio = on_audio
        self._on_prompt_end = on_prompt_end
        self._lock = threading.Lock()
        self._playing: bytes = b""
        self._offset = 0
        self._prompt_no = 0
        self.first_frame_at: float | None = None  # monotonic time the current prompt's first frame went out
        self.sent_frames = 0

    def play(self, prompt_no: int, pcm: bytes) -> None:
        with self._lock:
            self._prompt_no, self._playing, self._offset = prompt_no, pcm, 0
            self.first_frame_at = None

    def stop(self) -> None:
        with self._lock:
            was_playing = bool(self._playing)
            prompt_no, self._playing, self._offset = self._prompt_no, b"", 0
        if was_playing:
            self._on_prompt_end(prompt_no, True)

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802 (pjsua2's name)
        ended: int | None = None
        with self._lock:
            if self._playing:
                chunk = self._playing[self._offset : self._offset + FRAME_BYTES]
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                self._offset += FRAME_BYTES
                if self._offset >= len(self._playing):
                    ended, self._playing = self._prompt_no, b""
                chunk = chunk.ljust(FRAME_BYTES, b"\x00")
                self.sent_frames += 1
            else:
                chunk = bytes(FRAME_BYTES)
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(chunk)
        frame.size = FRAME_BYTES
        if ended is not None:
            self._on_prompt_end(ended, False)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self._on_audio(bytes(frame.buf))


class _Call(pj.Call):
    def __init__(self, account: pj.Account, owner: _SipCall) -> None:
        super().__init__(account)
        self.owner = owner

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.owner.start_recording()  # on this thread: before the robot's first frame
        self.owner.pj_state(info.state, info.lastStatusCode, info.lastReason)
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.owner.slot_freed()  # PJSIP frees the call's slot once this callback returns

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        for index, media in enumerate(info.media):
            # REMOTE_HOLD: the far end only sends (a=sendonly), as an operator recording may.
            receiving = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in receiving:
                audio = self.getAudioMedia(index)
                self.owner.connect_media(audio)


class _Account(pj.Account):
    """Our SIP account: hands each registrar answer to the thread's `on_registration`."""

    def __init__(self, on_registration: Callable[[Registration], None]) -> None:
        super().__init__()
        self._on_registration = on_registration

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        code = int(prm.code)
        self._on_registration(Registration(code, str(prm.reason), int(prm.expiration) if 200 <= code < 300 else 0))


class _PjThread:
    """The thread that owns PJSIP: runs commands sent from asyncio and polls SIP events."""

    def __init__(self, config: SipConfig) -> None:
        self.config = config
        self.commands: queue.Queue[Callable[[], None]] = queue.Queue()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.stopping = False
        self.endpoint: pj.Endpoint | None = None
        self.account: pj.Account | None = None
        self.local_port = 0
        self.objects: list[Any] = []  # every pjsua2 Call and port made, released at shutdown
        # The same, weakly: any that outlives `objects` (a stray reference) is deleted at
        # teardown before libDestroy — a Call deleted after it aborts the interpreter.
        self.made: weakref.WeakSet[Any] = weakref.WeakSet()
        self.destroyed = False
        self.registration = Registration()
        self.spare_fds: list[int] = []  # low descriptor numbers kept free for the next call's sockets
        self.registered = threading.Event()  # set at the registrar's first final answer
        self.thread = threading.Thread(target=self._main, name="pjsip", daemon=True)

    def on_registration(self, registration: Registration) -> None:
        """On this thread: the registrar's answer (a refresh's too)."""
        previous, self.registration = self.registration, registration
        registrar = self.config.registrar
        if registration.ok:
            if not previous.ok:
                log.info(
                    "SIP registration at %s: %d %s, expires in %d s",
                    registrar,
                    registration.code,
                    registration.reason,
                    registration.expires,
                )
        else:
            log.warning("SIP registration at %s failed: %d %s", registrar, registration.code, registration.reason)
        self.registered.set()

    def track(self, obj: Any) -> None:
        """Keep a pjsua2 object alive until it is released (on this thread) or shutdown."""
        self.objects.append(obj)
        self.made.add(obj)

    def start(self) -> None:
        # A carrier never closed still tears PJSIP down in order at interpreter exit (this
        # daemon thread would otherwise be frozen mid-poll and its objects freed after it).
        atexit.register(self.stop)
        self.thread.start()
        self.ready.wait(15)
        if self.error is not None:
            raise self.error
        if not self.ready.is_set():
            raise RuntimeError("PJSIP did not start within 15 s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling and tear PJSIP down on its own thread; wait for that."""
        self.stopping = True
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout_s)

    def _main(self) -> None:
        try:
            self._setup()
        except BaseException as error:  # reported to start() in the caller's thread
            self.error = error
            self.ready.set()
            return
        self.ready.set()
        assert self.endpoint is not None
        while not self.stopping:
            self._run_commands()
            self.endpoint.libHandleEvents(5)
        self._run_commands()
        self._teardown()

    def _run_commands(self) -> None:
        # A method of its own: no command (and no Call it holds) outlives it in a local.
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except Exception:
                log.exception("SIP command failed")

    def _setup(self) -> None:
        endpoint = pj.Endpoint()
        endpoint.libCreate()
        ep_config = pj.EpConfig()
        ep_config.uaConfig.threadCnt = 0  # SIP events are polled on this thread
        ep_config.uaConfig.mainThreadOnly = False
        ep_config.uaConfig.maxCalls = self.config.max_calls  # pjsua2's default is 4
        ep_config.medConfig.maxMediaPorts = media_ports_for(self.config.max_calls)
        ep_config.logConfig.level = 1
        ep_config.logConfig.consoleLevel = 1
        ep_config.medConfig.clockRate = SAMPLE_RATE
        ep_config.medConfig.sndClockRate = SAMPLE_RATE
        ep_config.medConfig.channelCount = 1
        ep_config.medConfig.ecTailLen = 0  # nothing to cancel: no loudspeaker
        ep_config.medConfig.noVad = True  # keep sending audio (our VAD reads it raw)
        endpoint.libInit(ep_config)
        transport = pj.TransportConfig()
        transport.port = self.config.local_port
        transport.boundAddress = self.config.bind if self.config.bind != "0.0.0.0" else ""
        transport_id = endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.local_port = endpoint.transportGetInfo(transport_id).localName.rsplit(":", 1)[-1]
        endpoint.libStart()
        endpoint.audDevManager().setNullDev()  # no sound card: the media clock still runs
        for codec in endpoint.codecEnum2():
            priority = 255 if codec.codecId.startswith(("PCMA/", "PCMU/")) else 0
            endpoint.codecSetPriority(codec.codecId, priority)
        account_config = pj.AccountConfig()
        host = self.config.domain
        account_config.idUri = f"sip:{self.config.username or self.config.caller}@{host}"
        if self.config.registrar:
            account_config.regConfig.registrarUri = self.config.registrar
        else:
            account_config.regConfig.registerOnAdd = False
        if self.config.username:
            account_config.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", self.config.username, 0, self.config.password)
            )
        if self.config.proxy:
            account_config.sipConfig.proxies.append(self.config.proxy)
        if self.config.bind != "0.0.0.0":  # RTP on the same address as SIP (loopback tests)
            account_config.mediaConfig.transportConfig.boundAddress = self.config.bind
            account_config.mediaConfig.transportConfig.publicAddress = self.config.bind
        account = _Account(self.on_registration)
        account.create(account_config)
        self.endpoint, self.account = endpoint, account
        self.keep_spare_fds()

    def keep_spare_fds(self) -> None:
        """On this thread: hold descriptor numbers select() can take (below SELECT_FD_LIMIT),
        as many as the calls' sockets need; numbers above it are not worth keeping."""
        wanted = FDS_PER_CALL * (self.config.max_calls + 2)
        while len(self.spare_fds) < wanted:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd >= SELECT_FD_LIMIT:
                os.close(fd)
                return
            self.spare_fds.append(fd)

    def free_fds_for_a_call(self) -> None:
        """On this thread, right before makeCall: the call's RTP and RTCP sockets get the
        lowest free numbers, so free two of ours (after taking back any a past call freed)."""
        self.keep_spare_fds()
        for _ in range(min(FDS_PER_CALL, len(self.spare_fds))):
            os.close(self.spare_fds.pop())

    def open_files(self) -> int:
        try:
            return len(os.listdir("/proc/self/fd"))
        except OSError:
            return -1

    def _teardown(self) -> None:
        if self.endpoint is None or self.destroyed:
            return
        self.destroyed = True  # libDestroy runs once
        while self.spare_fds:
            os.close(self.spare_fds.pop())
        try:
            self.endpoint.hangupAllCalls()
            self.endpoint.libHandleEvents(50)
            # pjsua2's Call, port and recorder objects, then the account, must be gone before
            # the library: their destructors call into it (a Call's, after libDestroy, fails
            # an assertion in pjsua_call_set_user_data and aborts the process).
            self.objects.clear()
            gc.collect()
            strays = [obj for obj in list(self.made) if obj.thisown]
            for obj in strays:  # still referenced somewhere: delete the C++ object now
                obj.__swig_destroy__(obj)  # disowns it: Python never deletes it again
            if strays:
                log.info("PJSIP shutdown: deleted %d pjsua2 objects still referenced", len(strays))
            self.account = None
            gc.collect()
            self.endpoint.libDestroy()
            # The Endpoint goes here, on the thread PJSIP knows: its destructor run later by
            # another thread (the garbage collector's) aborts the process, and a carrier made
            # again in this process (a worker retrying its start) needs it gone.
            self.endpoint = None
            gc.collect()
        except Exception:
            log.exception("PJSIP shutdown failed")


# ---------------------------------------------------------------------- one call


@dataclass
class _SipCall:
    carrier: SipCarrier
    call_id: str
    phone: str
    loop: asyncio.AbstractEventLoop
    pj_call: _Call | None = None
    port: _Port | None = None
    media: Any = None
    answered: bool = False
    ended: bool = False
    endpointer: Endpointer = field(default_factory=Endpointer)
    prompts: list[Prompt] = field(default_factory=list)  # queued after the one playing
    playing: Prompt | None = None
    prompt_no: int = 0
    utterance: asyncio.Queue[bytes | None] | None = None
    ring_timer: asyncio.TimerHandle | None = None
    hangup_after_playback: str = ""  # the robot hung up while talking: BYE once it has finished
    # For the endpointing bench: when the callee's last turn ended (its last voiced frame,
    # on the monotonic clock) and when the robot's next audio frame went out.
    turn_ended_at: float | None = None
    reply_latencies: list[float] = field(default_factory=list)
    recording_path: str | None = None  # where to record the call (None: not recorded)
    # Touched on the PJSIP thread only: the call's recorder, whether the answer came, and
    # whether the recording is over (a late media update must not start another).
    recorder: Any = None
    pj_confirmed: bool = False
    recording_closed: bool = False
    holds_slot: bool = False  # one of the carrier's PJSIP call slots, from the INVITE to DISCONNECTED

    # ---- from the PJSIP thread (called there; hop to asyncio)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the event loop is closed (shutdown): nobody listens to this call any more

    def pj_state(self, state: int, code: int, reason: str) -> None:
        self._to_loop(self._state, state, code, reason)

    def slot_freed(self) -> None:
        self._to_loop(self.carrier.free_slot, self)

    def connect_media(self, audio: Any) -> None:
        if self.port is None:
            port = _Port(self._audio_from_pj, self._prompt_end_from_pj)
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, SAMPLE_RATE, 1, 20000, 16)
            port.createPort(f"waihu-{self.call_id}", fmt)
            self.port = port
            self.carrier.track(port)
        audio.startTransmit(self.port)
        self.port.startTransmit(audio)
        self.media = audio
        if self.recorder is not None:
            audio.startTransmit(self.recorder)  # new media after a re-INVITE: keep hearing it
        elif self.pj_confirmed:
            self.start_recording()

    def start_recording(self) -> None:
        """On the PJSIP thread, once the call is answered and its media connected: the
        recorder hears the callee and the robot's port. A failure is logged, the call goes on."""
        self.pj_confirmed = True
        if self.recording_path is None or self.recorder is not None or self.recording_closed:
            return
        if self.media is None or self.port is None:
            return  # no media yet: connect_media starts it
        recorder = pj.AudioMediaRecorder()
        try:
            recorder.createRecorder(self.recording_path)
            self.media.startTransmit(recorder)
            self.port.startTransmit(recorder)
        except pj.Error as error:
            log.warning("call %s: not recorded (%s)", self.call_id, error.info())
            return
        self.recorder = recorder
        self.carrier.track(recorder)

    def _audio_from_pj(self, pcm: bytes) -> None:
        self._to_loop(self._audio, pcm, time.monotonic())

    def _prompt_end_from_pj(self, prompt_no: int, stopped: bool) -> None:
        self._to_loop(self._prompt_end, prompt_no, stopped)

    # ---- on the asyncio loop

    def _state(self, state: int, code: int, reason: str) -> None:
        if self.ended:
            return
        if state == pj.PJSIP_INV_STATE_CONFIRMED and not self.answered:
            self.answered = True
            if self.ring_timer:
                self.ring_timer.cancel()
            self.endpointer.reset_silence()
            self.carrier.emit(CallEvent(self.call_id, "answered", answered=True))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            cause = cause_for_sip(code) if not self.answered or code >= 300 else "NORMAL_CLEARING"
            self.finish(cause)

    def finish(self, cause: str, status: str | None = None) -> None:
        """The call is over: one hang-up event, whoever ended it."""
        if self.ended:
            return
        self.ended = True
        if self.ring_timer:
            self.ring_timer.cancel()
        if self.utterance is not None:
            self.utterance.put_nowait(None)
        status = status if status is not None else status_for_hangup(cause, self.answered)
        self.carrier.forget(self)
        hangup = CallEvent(self.call_id, "hangup", cause=cause, status=status, answered=self.answered)
        if self.recording_path is None:
            self.carrier.emit(hangup)
        else:
            self.carrier.close_recording(self, hangup)

    def _audio(self, pcm: bytes, at: float) -> None:
        if self.ended:
            return
        events = self.endpointer.feed(pcm)
        for event in events:
            self._vad(event, at)
        # PJSIP delivers 20 ms frames, the endpointer's size: a frame that started the speech
        # is in the start event's audio already.
        if self.utterance is not None and not any(event.kind == "speech_start" for event in events):
            self.utterance.put_nowait(pcm)

    def _vad(self, event: VadEvent, at: float) -> None:
        if event.kind == "speech_start":
            if self.playing is not None and self.playing.interruptible and self.answered:
                self.carrier.barge_ins += 1
                self.stop()  # barge-in: the robot stops talking
            self.utterance = asyncio.Queue()
            self.utterance.put_nowait(event.audio)
            asyncio.ensure_future(self._recognise(self.utterance))
        elif event.kind == "end_of_turn":
            if self.utterance is not None:
                self.utterance.put_nowait(None)
                self.utterance = None
            # The last voiced frame was (at_ms - last_voiced_ms) of audio ago.
            self.turn_ended_at = at - (event.at_ms - event.last_voiced_ms) / 1000
        elif self.playing is not None or self.prompts:
            return  # the robot is talking: not the callee's silence
        elif event.kind == "no_input" and self.answered:
            self.carrier.emit(CallEvent(self.call_id, "speech", text=SILENCE, answered=True))
        elif event.kind == "silence_timeout" and self.answered:
            self.carrier.hang_up_call(self, "NO_USER_RESPONSE")

    async def _recognise(self, utterance: asyncio.Queue[bytes | None]) -> None:
        stream: ASRStream | None = None
        try:
            stream = await self.carrier.asr.open(SAMPLE_RATE)
            while (pcm := await utterance.get()) is not None:
                await stream.feed(pcm)
            if self.ended:
                await stream.aclose()
                return
            transcript = await stream.finish()
        except ASRError as error:
            log.warning("call %s: speech not recognised (%s)", self.call_id, error)
            if stream is not None:
                await stream.aclose()
            return
        if self.ended or not transcript.text:
            return  # a noise the ASR found no words in: not a turn
        self.carrier.emit(
            CallEvent(
                self.call_id, "speech", text=transcript.text, confidence=transcript.confidence, answered=self.answered
            )
        )

    def play(self, prompt: Prompt) -> None:
        if self.playing is None:
            self._start(prompt)
        else:
            self.prompts.append(prompt)

    def _start(self, prompt: Prompt) -> None:
        if self.port is None or prompt.audio_path is None:
            # No media yet, or a line without audio: nothing to hear, but the turn goes on.
            self.carrier.emit(CallEvent(self.call_id, "playback_done", answered=self.answered))
            return
        self.prompt_no += 1
        self.playing = prompt
        self.port.play(self.prompt_no, read_prompt_pcm(prompt.audio_path))
        if self.turn_ended_at is not None:
            self.loop.call_later(0.1, self._note_reply_latency, self.turn_ended_at)
            self.turn_ended_at = None

    def _note_reply_latency(self, turn_ended_at: float) -> None:
        if self.port is not None and self.port.first_frame_at is not None:
            self.reply_latencies.append(self.port.first_frame_at - turn_ended_at)

    def stop(self) -> None:
        self.prompts.clear()
        if self.port is not None:
            self.port.stop()

    def _prompt_end(self, prompt_no: int, stopped: bool) -> None:
        if prompt_no != self.prompt_no or self.playing is None or self.ended:
            return
        self.playing = None
        self.carrier.emit(CallEvent(self.call_id, "playback_done", answered=self.answered))
        if self.prompts and not stopped:
            self._start(self.prompts.pop(0))
        elif self.hangup_after_playback:
            self.carrier.hang_up_call(self, self.hangup_after_playback)
        elif not self.prompts:
            self.endpointer.reset_silence()  # the callee's turn: the no-input clock starts now


# ---------------------------------------------------------------------- the carrier


class SipCarrier:
    """A `Carrier` over SIP. `asr`: the recogniser for the callee's speech (telephony.asr)."""

    def __init__(
        self,
        config: SipConfig,
        asr: ASR,
        *,
        vad: EndpointerConfig | None = None,
        register_wait_s: float = REGISTER_WAIT_S,
    ) -> None:
        self.config = config
        self.register_wait_s = register_wait_s
        self.asr = asr
        self.vad = vad or EndpointerConfig.from_env()
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.barge_ins = 0
        self.goodbye_wait_s = 15.0
        self._calls: dict[str, _SipCall] = {}
        self._done: dict[str, _SipCall] = {}  # ended calls, for the bench and tests
        self._pj = _PjThread(config)
        self._started = False
        self._closing: set[asyncio.Task[None]] = set()  # hang-ups waiting for their recording
        self._slots: asyncio.Semaphore | None = None  # PJSIP call slots (made on the loop)
        self.slots_in_use = 0
        self.peak_slots_in_use = 0
        self.capacity_waits = 0  # dials that waited for a free call slot
        self.slot_retries = 0  # INVITEs PJSIP refused (PJ_ETOOMANY) and sent again once a slot was free
        self._reserved: set[str] = set()  # call ids holding a slot taken by reserve_line, not yet dialled

    async def start(self) -> None:
        """Start PJSIP; with a registrar, wait for its answer and raise SipRegistrationError
        (PJSIP stopped again) when it refuses or does not answer within `register_wait_s`."""
        if self._started:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._pj.start)
        self._started = True
        if not self.config.registrar:
            return
        answered = await loop.run_in_executor(None, self._pj.registered.wait, self.register_wait_s)
        registration = self._pj.registration
        if answered and registration.ok:
            return
        await self.aclose()
        if not answered:
            raise SipRegistrationError(
                f"SIP registration at {self.config.registrar}: no answer within {self.register_wait_s:g} s "
                "(check WAIHU_SIP_REGISTRAR and that the registrar is reachable)",
                0,
            )
        raise SipRegistrationError(
            f"SIP registration at {self.config.registrar} failed: {registration.code} {registration.reason} "
            "(check WAIHU_SIP_USERNAME and WAIHU_SIP_PASSWORD)",
            registration.code,
        )

    @property
    def registration(self) -> Registration:
        """The registrar's last answer (code 0: none yet, or no registrar configured)."""
        return self._pj.registration

    async def _take_slot(self, call_id: str) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.config.max_calls)
        if self._slots.locked():
            self.capacity_waits += 1
            log.warning(
                "call %s waits for a free SIP call slot: all %d in use (WAIHU_SIP_MAX_CALLS; keep the worker's "
                "concurrency at or below it)",
                call_id,
                self.config.max_calls,
            )
        await self._slots.acquire()
        self.slots_in_use += 1
        self.peak_slots_in_use = max(self.peak_slots_in_use, self.slots_in_use)

    async def reserve_line(self, call_id: str) -> None:
        """Wait for, and take, a call slot for `call_id` ahead of its dial (the dialer does this
        before its last T-0 check: the wait for a slot never comes between the check and the
        INVITE). `dial(call_id, …)` uses it; `release_line` gives it back if it is not dialled."""
        if call_id in self._reserved:
            return
        await self._take_slot(call_id)
        self._reserved.add(call_id)

    def release_line(self, call_id: str) -> None:
        """A reserved slot whose dial was cancelled (its check failed): free again."""
        if call_id in self._reserved and self._slots is not None:
            self._reserved.discard(call_id)
            self.slots_in_use -= 1
            self._slots.release()

    def free_slot(self, call: _SipCall) -> None:
        """On the loop: PJSIP has freed `call`'s slot (DISCONNECTED), or it never took one."""
        if call.holds_slot and self._slots is not None:
            call.holds_slot = False
            self.slots_in_use -= 1
            self._slots.release()

    @property
    def pj_objects(self) -> list[Any]:
        return self._pj.objects

    def track(self, obj: Any) -> None:
        """On the PJSIP thread: keep a pjsua2 object until its call is released (or shutdown)."""
        self._pj.track(obj)

    @property
    def local_port(self) -> int:
        return int(self._pj.local_port)

    def emit(self, event: CallEvent) -> None:
        self.events.put_nowait(event)

    def forget(self, call: _SipCall) -> None:
        self._calls.pop(call.call_id, None)
        self._done[call.call_id] = call
        while len(self._done) > MAX_FINISHED_CALLS:
            self._done.pop(next(iter(self._done)))
        # Free the call's PJSIP objects once its last transaction (BYE, CANCEL) is over.
        call.loop.call_later(RELEASE_AFTER_S, self._release, call)

    def _release(self, call: _SipCall) -> None:
        if not self._started or self._pj.stopping:
            return  # shutdown releases everything at once
        doomed = [obj for obj in (call.pj_call, call.port) if obj is not None]
        call.pj_call, call.port, call.media = None, None, None

        def release() -> None:
            for obj in doomed:
                if obj in self._pj.objects:
                    self._pj.objects.remove(obj)
            doomed.clear()  # the last references: destroyed here, on the PJSIP thread

        self._pj.commands.put(release)

    def close_recording(self, call: _SipCall, hangup: CallEvent) -> None:
        """Close the call's recorder, then send `hangup`: whoever reads the file after the
        hang-up (the recorder storing its row) finds it finished, its WAV header written.

        The recorder is deleted on the PJSIP thread; PJSIP 2.15's conference bridge removes
        ports asynchronously, so the WAV writer's close (flush + header) may still come a
        media tick later on the clock thread — the hang-up waits for the header too."""
        if not self._started or self._pj.stopping:
            self.emit(hangup)  # shutdown: the teardown closes the file
            return
        path = call.recording_path

        def close() -> None:
            call.recording_closed = True
            recorder, call.recorder = call.recorder, None
            if recorder is not None and recorder in self._pj.objects:
                self._pj.objects.remove(recorder)
            started = recorder is not None
            del recorder  # the last reference: pjsua_recorder_destroy
            call._to_loop(self._after_recording_closed, path if started else None, hangup)

        self._pj.commands.put(close)

    def _after_recording_closed(self, path: str | None, hangup: CallEvent) -> None:
        if path is None:
            self.emit(hangup)  # never recorded (no answer, or the recorder failed)
            return
        task = asyncio.get_running_loop().create_task(self._emit_when_written(path, hangup))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _emit_when_written(self, path: str, hangup: CallEvent) -> None:
        deadline = time.monotonic() + RECORDING_CLOSE_WAIT_S
        while not wav_is_finished(path):
            if time.monotonic() >= deadline:
                log.warning(
                    "call %s: the recording's WAV header is not written %.0f s after its recorder "
                    "was closed; the hang-up goes on",
                    hangup.call_id,
                    RECORDING_CLOSE_WAIT_S,
                )
                break
            await asyncio.sleep(0.01)
        self.emit(hangup)

    def finished_call(self, call_id: str) -> _SipCall | None:
        return self._done.get(call_id)

    async def _in_pj(self, command: Callable[[], Any]) -> Any:
        """Run `command` on the PJSIP thread and wait for its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def run() -> None:
            try:
                result = command()
            except BaseException as error:
                loop.call_soon_threadsafe(future.set_exception, error)
            else:
                loop.call_soon_threadsafe(future.set_result, result)

        self._pj.commands.put(run)
        return await future

    async def dial(
        self,
        call_id: str,
        phone: str,
        timeout_s: int = 30,
        *,
        caller_id: str | None = None,
        recording_path: str | None = None,
    ) -> str:
        """`recording_path`: a local .wav file to record the answered call to (both ways)."""
        if call_id in self._calls:
            raise ValueError(f"call {call_id} is already in progress")
        await self.start()
        loop = asyncio.get_running_loop()
        call = _SipCall(self, call_id, phone, loop, endpointer=Endpointer(self.vad), recording_path=recording_path)
        self._calls[call_id] = call
        if call_id in self._reserved:  # taken by reserve_line before the dialer's last check
            self._reserved.discard(call_id)
        else:
            try:
                await self._take_slot(call_id)
            except BaseException:  # cancelled while waiting: nothing was sent
                self._calls.pop(call_id, None)
                raise
        call.holds_slot = True
        if call.ended:  # hung up while it waited for a slot: no INVITE
            self.free_slot(call)
            return ""
        uri = f"sip:{phone}@{self.config.domain}"

        def make_call() -> str:
            assert self._pj.account is not None
            if call.ended:
                return ""
            self._pj.free_fds_for_a_call()
            pj_call = _Call(self._pj.account, call)
            params = pj.CallOpParam(True)
            if caller_id:
                params.txOption.headers.append(
                    _header("P-Asserted-Identity", f"<sip:{caller_id}@{self.config.domain}>")
                )
            pj_call.makeCall(uri, params)  # raises: the Call object goes with this frame
            call.pj_call = pj_call
            self._pj.track(pj_call)
            return str(pj_call.getInfo().callIdString)

        try:
            sip_call_id = await self._in_pj(make_call)
        except pj.Error as error:
            self.free_slot(call)  # no INVITE: PJSIP took no slot
            if error.status == PJ_ETOOMANY and not call.ended:
                # PJSIP reports a call we hang up DISCONNECTED at once, but keeps its slot until
                # the INVITE transaction is over (the 487 to our CANCEL; at worst 64 × T1): a
                # slot our count says is free may still be taken. Nothing was sent, and the
                # callee did nothing: NoLineFree, and the dialer waits, checks the rules again
                # and dials again (bot.dialing.dialer.CheckedCarrier) — a wait here, after the
                # dialer's last check, could carry the INVITE past a closing window.
                self.slot_retries += 1
                call.ended = True
                self._calls.pop(call_id, None)
                raise NoLineFree(f"every PJSIP call slot is taken ({self.config.max_calls})") from None
            call.finish("NORMAL_TEMPORARY_FAILURE", "unreachable")
            if error.status == PJ_ETOOBIG:
                log.error(
                    "call %s: INVITE not sent: PJSIP cannot use a socket numbered %d or above (it polls "
                    "with select()) and this process has %d files open; close what leaks descriptors",
                    call_id,
                    SELECT_FD_LIMIT,
                    self._pj.open_files(),
                )
            else:
                log.warning("call %s: INVITE not sent (%s)", call_id, error.info())
            return ""
        if not sip_call_id:  # hung up before the INVITE went out
            self.free_slot(call)
            return ""
        sent = call.pj_call
        if call.ended and sent is not None:  # hung up while the INVITE was going out: CANCEL it
            self._pj.commands.put(lambda: _hangup_quietly(sent))
        call.ring_timer = loop.call_later(timeout_s, self._ring_out, call)
        return sip_call_id

    def _ring_out(self, call: _SipCall) -> None:
        """Nobody answered within the dial timeout: CANCEL, and the call rang out."""
        if not call.answered and not call.ended:
            self.hang_up_call(call, "NO_ANSWER")

    def hang_up_call(self, call: _SipCall, cause: str) -> None:
        pj_call = call.pj_call
        call.finish(cause)
        if pj_call is not None:
            self._pj.commands.put(lambda: _hangup_quietly(pj_call))

    async def play(self, call_id: str, prompt: Prompt) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            call.play(prompt)

    async def stop_playback(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            call.stop()

    async def hangup(self, call_id: str, cause: str = "NORMAL_CLEARING") -> None:
        """End the call. A normal hang-up lets the robot finish what it is saying first (the
        goodbye is heard), for at most `goodbye_wait_s`; the BYE follows."""
        call = self._calls.get(call_id)
        if call is None:
            return
        if cause == "NORMAL_CLEARING" and (call.playing is not None or call.prompts):
            call.hangup_after_playback = cause
            call.loop.call_later(self.goodbye_wait_s, self._hang_up_if_live, call, cause)
            return
        self.hang_up_call(call, cause)

    def _hang_up_if_live(self, call: _SipCall, cause: str) -> None:
        if not call.ended:
            self.hang_up_call(call, cause)

    async def transfer(self, call_id: str, target: str, wait_s: float = 20.0) -> TransferResult:
        # A blind REFER would end the robot's part without knowing whether anyone answered;
        # until attended transfer is built, the robot keeps the call and books a callback.
        if call_id not in self._calls:
            return TransferResult(False, CALL_ENDED)
        return TransferResult(False, REJECTED, detail="the SIP carrier does not transfer calls yet")

    async def aclose(self) -> None:
        for call in list(self._calls.values()):
            self.hang_up_call(call, "NORMAL_CLEARING")
        if self._started:
            await asyncio.sleep(0.2)  # let the BYEs go out
            for call in [*self._calls.values(), *self._done.values()]:
                call.pj_call, call.port, call.media = None, None, None
            await asyncio.get_running_loop().run_in_executor(None, self._pj.stop)


def wav_is_finished(path: str) -> bool:
    """Whether PJSIP's WAV writer has closed `path`: it writes its 44-byte header with zero
    lengths first and fills in the RIFF and data lengths when the file is closed."""
    try:
        with open(path, "rb") as wav:
            header = wav.read(44)
            size = os.fstat(wav.fileno()).st_size
    except OSError:
        return False
    if len(header) < 44 or header[:4] != b"RIFF" or header[36:40] != b"data":
        return False
    riff_len = int.from_bytes(header[4:8], "little")
    data_len = int.from_bytes(header[40:44], "little")
    return riff_len == size - 8 and data_len == size - 44


def _header(name: str, value: str) -> pj.SipHeader:
    header = pj.SipHeader()
    header.hName, header.hValue = name, value
    return header


def _hangup_quietly(pj_call: _Call) -> None:
    try:
        params = pj.CallOpParam()
        params.statusCode = pj.PJSIP_SC_DECLINE if not pj_call.owner.answered else pj.PJSIP_SC_OK
        pj_call.hangup(params)
    except pj.Error:
        pass  # already over on the far side
