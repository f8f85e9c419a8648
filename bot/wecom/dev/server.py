"""A local WeCom-compatible server: the endpoints add-friend uses, and WeCom's callbacks.

It speaks WeCom's wire protocol (same paths, query parameters, JSON bodies, errcodes), so
the real client and the real callback endpoint run against it without the internet — in
the tests and in the demo. It is a real HTTP server on 127.0.0.1 (uvicorn in a thread):

- gettoken with `expires_in`; `expire_tokens()` makes every issued token answer 42001;
  a token it never issued answers 40014.
- add_contact_way (type 1/2, scene 1/2, state ≤ 30 chars) → config_id and qr_code.
- send_welcome_msg: only with a WelcomeCode it issued, within 20 s of the add event and
  once (then 41051), recording what was sent and when.
- get_corp_tag_list / add_corp_tag / mark_tag (tags must exist, the customer must be the
  member's).
- add_msg_template (chat_type single): the follow-up sequences' message tasks, recorded with
  their JSON (`message_tasks`); customers not the sender's come back in fail_list.
- `fail_next(path, 503, -1, 45009, …)`: the next calls to a path fail like that (an HTTP
  status 500–599, or an errcode).
- `simulate_add(state)`: a customer scans the contact way of that state: the server sends
  the `change_external_contact` / `add_external_contact` event, encrypted and signed
  exactly as WeCom does (bot.wecom.crypto, checked against WeCom's sample vectors), to the
  callback URL. `repost()` sends a recorded callback again (a replay), `redeliver()` sends
  the same event in a new envelope (WeCom's retry).

One more endpoint that is not WeCom: POST /sms/send, an SMS gateway sink for the HTTP SMS
provider (bot.wecom.sms.HttpSms), recording what it was asked to send.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.wecom.config import WeComSettings
from bot.wecom.crypto import CallbackCrypto, cdata

WELCOME_CODE_TTL_S = 20.0
TOKEN_TTL_S = 7200
_EC = "/cgi-bin/externalcontact"


def _err(errcode: int, errmsg: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg})


def _ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"errcode": 0, "errmsg": "ok", **fields})


@dataclass
class IssuedWelcomeCode:
    code: str
    external_userid: str
    userid: str
    issued_at: float  # the event's CreateTime
    used: bool = False


@dataclass(frozen=True)
class SentWelcome:
    welcome_code: str
    external_userid: str
    userid: str
    text: str
    attachments: list
    issued_at: float
    received_at: float  # server clock when send_welcome_msg arrived


@dataclass(frozen=True)
class MessageTask:
    """One add_msg_template call as received (a message task for the member to confirm)."""

    msgid: str
    sender: str
    external_userids: list
    text: str
    attachments: list
    body: dict  # the JSON exactly as sent
    received_at: float


@dataclass(frozen=True)
class SentCallback:
    """One callback POST as it went out: enough to send it again."""

    url: str
    params: dict[str, str]
    body: str
    message: str
    external_userid: str
    welcome_code: str | None
    sent_at: float
    status_code: int
    response_text: str


class UvicornThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = host, self._socket.getsockname()[1]
        # ws="none": Rasa pins a websockets too old for uvicorn's; nothing here uses them.
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=self.port, log_level="warning", lifespan="off", ws="none", access_log=False
            )
        )
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self._socket]))

    def start(self, timeout_s: float = 10.0) -> UvicornThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@dataclass
class WeComTestServer:
    corp_id: str = "wwwaihutest000001"
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    encoding_aes_key: str = field(
        default_factory=lambda: secrets.token_urlsafe(40)[:43].replace("-", "a").replace("_", "b")
    )
    agent_id: str = "1000002"
    callback_url: str | None = None
    token_ttl_s: int = TOKEN_TTL_S
    welcome_ttl_s: float = WELCOME_CODE_TTL_S
    clock: Callable[[], float] = time.time  # server time (CreateTime, token and code expiry)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self.crypto = CallbackCrypto(self.token, self.encoding_aes_key, self.corp_id)
        self.tokens: dict[str, float] = {}  # token → expiry
        self.contact_ways: dict[str, dict] = {}  # config_id → the request
        self.welcome_codes: dict[str, IssuedWelcomeCode] = {}
        self.welcomes: list[SentWelcome] = []
        self.tag_groups: dict[str, dict] = {}  # group_id → {"group_name", "tags": {tag_id: name}}
        self.customer_tags: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.customers: set[tuple[str, str]] = set()  # (member userid, external_userid)
        # (member userid, external_userid) → the member's remark and description of the customer
        self.remarks: dict[tuple[str, str], dict[str, str]] = {}
        self.callbacks: list[SentCallback] = []
        self.sms: list[dict] = []
        self.message_tasks: list[MessageTask] = []
        self.requests: list[tuple[str, int]] = []  # (path, errcode or HTTP status) as answered
        self._failures: dict[str, deque] = defaultdict(deque)
        self._thread: UvicornThread | None = None
        self.app = Starlette(
            routes=[
                Route("/cgi-bin/gettoken", self._gettoken, methods=["GET"]),
                Route(f"{_EC}/add_contact_way", self._add_contact_way, methods=["POST"]),
                Route(f"{_EC}/send_welcome_msg", self._send_welcome_msg, methods=["POST"]),
                Route(f"{_EC}/get_corp_tag_list", self._get_corp_tag_list, methods=["POST"]),
                Route(f"{_EC}/add_corp_tag", self._add_corp_tag, methods=["POST"]),
                Route(f"{_EC}/mark_tag", self._mark_tag, methods=["POST"]),
                Route(f"{_EC}/get", self._get_external_contact, methods=["GET"]),
                Route(f"{_EC}/add_msg_template", self._add_msg_template, methods=["POST"]),
                Route("/sms/send", self._sms_send, methods=["POST"]),
            ]
        )

    # ---- running -------------------------------------------------------------------------------

    def start(self) -> WeComTestServer:
        self._thread = UvicornThread(self.app).start()
        return self

    def stop(self) -> None:
        if self._thread:
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> WeComTestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if not self._thread:
            raise RuntimeError("start() the test server first")
        return self._thread.url

    def settings(self, **changes: Any) -> WeComSettings:
        """Settings for our client and callback to talk to this server."""
        values: dict[str, Any] = dict(
            corp_id=self.corp_id,
            secret=self.secret,
            token=self.token,
            encoding_aes_key=self.encoding_aes_key,
            api_base=self.base_url,
            agent_id=self.agent_id,
        )
        values.update(changes)
        return WeComSettings(**values)

    # ---- controls ------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens = {t: 0.0 for t in self.tokens}

    def fail_next(self, path: str, *failures: int) -> None:
        """The next calls to `path` (e.g. "/cgi-bin/externalcontact/send_welcome_msg") fail:
        500–599 as that HTTP status, anything else as that errcode (-1, 45009, 45033…)."""
        with self._lock:
            self._failures[path].extend(failures)

    def welcome_to(self, external_userid: str) -> SentWelcome | None:
        with self._lock:
            return next((w for w in self.welcomes if w.external_userid == external_userid), None)

    def tag_names_of(self, userid: str, external_userid: str) -> dict[str, str]:
        """tag name → group name, for the tags marked on one customer."""
        with self._lock:
            names = {}
            for group in self.tag_groups.values():
                for tag_id, name in group["tags"].items():
                    if tag_id in self.customer_tags[(userid, external_userid)]:
                        names[name] = group["group_name"]
            return names

    def answered(self, path: str) -> list[int]:
        with self._lock:
            return [code for p, code in self.requests if p == path]

    # ---- callbacks -----------------------------------------------------------------------------

    def add_event_xml(
        self,
        *,
        state: str | None,
        userid: str,
        external_userid: str,
        welcome_code: str | None,
        create_time: int,
        change_type: str = "add_external_contact",
    ) -> str:
        """The event as WeCom documents it (客户联系 事件格式: 添加企业客户事件)."""
        parts = [
            f"<ToUserName>{cdata(self.corp_id)}</ToUserName>",
            f"<FromUserName>{cdata('sys')}</FromUserName>",
            f"<CreateTime>{create_time}</CreateTime>",
            f"<MsgType>{cdata('event')}</MsgType>",
            f"<Event>{cdata('change_external_contact')}</Event>",
            f"<ChangeType>{cdata(change_type)}</ChangeType>",
            f"<UserID>{cdata(userid)}</UserID>",
            f"<ExternalUserID>{cdata(external_userid)}</ExternalUserID>",
        ]
        if state is not None:
            parts.append(f"<State>{cdata(state)}</State>")
        if welcome_code is not None:
            parts.append(f"<WelcomeCode>{cdata(welcome_code)}</WelcomeCode>")
        if change_type == "del_follow_user":
            parts = [p for p in parts if not p.startswith(("<State>", "<WelcomeCode>"))]
        return "<xml>" + "".join(parts) + "</xml>"

    async def simulate_add(
        self,
        state: str | None,
        *,
        external_userid: str | None = None,
        userid: str | None = None,
        age_s: float = 0.0,
        welcome_code: bool = True,
        half: bool = False,
    ) -> SentCallback:
        """A customer adds the member through the contact way with `state`: WeCom's event
        arrives at our callback. `age_s` backdates the event (a welcome code that old);
        `half` sends add_half_external_contact (免验证添加) instead."""
        with self._lock:
            way = next((w for w in self.contact_ways.values() if w.get("state") == state), None)
            member = userid or ((way or {}).get("user") or ["unknown_member"])[0]
            customer = external_userid or "wm" + secrets.token_hex(15)
            create_time = int(self.clock() - age_s)
            code = secrets.token_urlsafe(24) if welcome_code else None
            if code:
                self.welcome_codes[code] = IssuedWelcomeCode(code, customer, member, float(create_time))
            self.customers.add((member, customer))
        message = self.add_event_xml(
            state=state,
            userid=member,
            external_userid=customer,
            welcome_code=code,
            create_time=create_time,
            change_type="add_half_external_contact" if half else "add_external_contact",
        )
        return await self.post_callback(message, external_userid=customer, welcome_code=code)

    async def simulate_advisor_add(
        self,
        userid: str,
        *,
        remark: str = "",
        description: str = "",
        external_userid: str | None = None,
        welcome_code: bool = True,
    ) -> SentCallback:
        """The member adds a customer by searching their phone number (advisor_adds mode): WeCom's
        add_external_contact event carries no State; the member's remark (and description) of the
        customer is what externalcontact/get then answers."""
        with self._lock:
            customer = external_userid or "wm" + secrets.token_hex(15)
            create_time = int(self.clock())
            code = secrets.token_urlsafe(24) if welcome_code else None
            if code:
                self.welcome_codes[code] = IssuedWelcomeCode(code, customer, userid, float(create_time))
            self.customers.add((userid, customer))
            self.remarks[(userid, customer)] = {"remark": remark, "description": description}
        message = self.add_event_xml(
            state=None, userid=userid, external_userid=customer, welcome_code=code, create_time=create_time
        )
        return await self.post_callback(message, external_userid=customer, welcome_code=code)

    async def simulate_delete(
        self, external_userid: str, userid: str, *, state: str | None = None, by_customer: bool = False
    ) -> SentCallback:
        """The member deletes the customer (del_external_contact), or the customer deletes
        the member (del_follow_user)."""
        change = "del_follow_user" if by_customer else "del_external_contact"
        message = self.add_event_xml(
            state=state,
            userid=userid,
            external_userid=external_userid,
            welcome_code=None,
            create_time=int(self.clock()),
            change_type=change,
        )
        return await self.post_callback(message, external_userid=external_userid, welcome_code=None)

    async def post_callback(
        self,
        message: str,
        *,
        external_userid: str = "",
        welcome_code: str | None = None,
        timestamp: int | None = None,
        nonce: str | None = None,
        signature: str | None = None,
    ) -> SentCallback:
        if not self.callback_url:
            raise RuntimeError("set callback_url (our callback endpoint) before simulating events")
        timestamp_text = str(timestamp if timestamp is not None else int(self.clock()))
        nonce = nonce or str(secrets.randbelow(10**10))
        good_signature, body = self.crypto.envelope(message, timestamp_text, nonce, agent_id=self.agent_id)
        params = {"msg_signature": signature or good_signature, "timestamp": timestamp_text, "nonce": nonce}
        return await self._post(self.callback_url, params, body, message, external_userid, welcome_code)

    async def repost(self, sent: SentCallback) -> SentCallback:
        """The very same request again: what an attacker who captured it would send."""
        return await self._post(
            sent.url, dict(sent.params), sent.body, sent.message, sent.external_userid, sent.welcome_code
        )

    async def redeliver(self, sent: SentCallback) -> SentCallback:
        """The same event in a fresh envelope (new timestamp, nonce, IV): WeCom retrying."""
        return await self.post_callback(
            sent.message, external_userid=sent.external_userid, welcome_code=sent.welcome_code
        )

    async def _post(
        self, url: str, params: dict, body: str, message: str, external_userid: str, welcome_code: str | None
    ) -> SentCallback:
        sent_at = self.clock()
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                url, params=params, content=body.encode("utf-8"), headers={"Content-Type": "text/xml"}
            )
        sent = SentCallback(
            url, params, body, message, external_userid, welcome_code, sent_at, response.status_code, response.text
        )
        with self._lock:
            self.callbacks.append(sent)
        return sent

    async def verify_url(self, echo: str = "1288432023552776189") -> httpx.Response:
        """WeCom's URL check when the callback is configured: GET with an encrypted echostr."""
        if not self.callback_url:
            raise RuntimeError("set callback_url (our callback endpoint) before checking it")
        timestamp, nonce = str(int(self.clock())), str(secrets.randbelow(10**10))
        encrypted = self.crypto.encrypt(echo)
        params = {
            "msg_signature": self.crypto.sign(timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": encrypted,
        }
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.get(self.callback_url, params=params)

    # ---- endpoints -----------------------------------------------------------------------------

    def _answer(self, path: str, response: JSONResponse) -> JSONResponse:
        import json

        code = (
            json.loads(bytes(response.body)).get("errcode", 0) if response.status_code == 200 else response.status_code
        )
        with self._lock:
            self.requests.append((path, code))
        return response

    def _gate(self, request: Request, path: str, needs_token: bool = True) -> JSONResponse | None:
        with self._lock:
            if self._failures[path]:
                failure = self._failures[path].popleft()
                if 500 <= failure < 600:
                    return JSONResponse({"error": "injected"}, status_code=failure)
                messages = {-1: "system busy", 45009: "api freq out of limit", 45033: "api concurrent out of limit"}
                return _err(failure, messages.get(failure, "injected error"))
            if not needs_token:
                return None
            token = request.query_params.get("access_token", "")
            if token not in self.tokens:
                return _err(40014, "invalid access_token")
            if self.tokens[token] <= self.clock():
                return _err(42001, "access_token expired")
        return None

    async def _gettoken(self, request: Request) -> JSONResponse:
        path = "/cgi-bin/gettoken"
        failure = self._gate(request, path, needs_token=False)
        if failure:
            return self._answer(path, failure)
        if request.query_params.get("corpid") != self.corp_id:
            return self._answer(path, _err(40013, "invalid corpid"))
        if request.query_params.get("corpsecret") != self.secret:
            return self._answer(path, _err(40001, "invalid credential"))
        token = secrets.token_urlsafe(48)
        with self._lock:
            self.tokens[token] = self.clock() + self.token_ttl_s
        return self._answer(path, _ok(access_token=token, expires_in=self.token_ttl_s))

    async def _json(self, request: Request) -> dict | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def _add_contact_way(self, request: Request) -> JSONResponse:
        path = f"{_EC}/add_contact_way"
        failure = self._gate(request, path)
        if failure:
            return self._answer(path, failure)
        body = await self._json(request)
        if body is None:
            return self._answer(path, _err(47001, "data format error"))
        if body.get("type") not in (1, 2):
            return self._answer(path, _err(41037, "missing contact way type"))
        if body.get("scene") not in (1, 2):
            return self._answer(path, _err(41038, "missing contact way scene"))
        users = body.get("user") or []
        if body["type"] == 1 and len(users) != 1:
            return self._answer(path, _err(40058, "type 1 needs exactly one user"))
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > 30):
            return self._answer(path, _err(40058, "state longer than 30 characters"))
        config_id = uuid.uuid4().hex
        response = {"config_id": config_id}
        if body["scene"] == 2:
            response["qr_code"] = f"https://wework.qpic.cn/wwpic/{config_id}/0"
        with self._lock:
            self.contact_ways[config_id] = {**body, "qr_code": response.get("qr_code")}
        return self._answer(path, _ok(**response))

    async def _send_welcome_msg(self, request: Request) -> JSONResponse:
        path = f"{_EC}/send_welcome_msg"
        received_at = self.clock()
        failure = self._gate(request, path)
        if failure:
            return self._answer(path, failure)
        body = await self._json(request) or {}
        code = body.get("welcome_code")
        text = (body.get("text") or {}).get("content", "")
        attachments = body.get("attachments") or []
        if not text and not attachments:
            return self._answer(path, _err(41048, "text and attachments are both empty"))
        if len(attachments) > 9:
            return self._answer(path, _err(40058, "at most 9 attachments"))
        with self._lock:
            issued = self.welcome_codes.get(code or "")
            if issued is None:
                return self._answer(path, _err(40035, "invalid welcome_code"))
            if issued.used:
                return self._answer(path, _err(41051, "externaluser has started chatting"))
            if received_at - issued.issued_at > self.welcome_ttl_s:
                # WeCom: only within 20 s of the event. (Its exact errcode for a stale code is
                # not documented; a stale code is an invalid parameter here.)
                return self._answer(path, _err(40035, "welcome_code expired (more than 20 s after the event)"))
            issued.used = True
            self.welcomes.append(
                SentWelcome(
                    issued.code, issued.external_userid, issued.userid, text, attachments, issued.issued_at, received_at
                )
            )
        return self._answer(path, _ok())

    async def _get_corp_tag_list(self, request: Request) -> JSONResponse:
        path = f"{_EC}/get_corp_tag_list"
        failure = self._gate(request, path)
        if failure:
            return self._answer(path, failure)
        body = await self._json(request) or {}
        with self._lock:
            groups = []
            for group_id, group in self.tag_groups.items():
                if body.get("group_id") and group_id not in body["group_id"]:
                    continue
                tags = [
                    {"id": tid, "name": name, "create_time": 0, "order": 0, "deleted": False}
                    for tid, name in group["tags"].items()
                    if body.get("group_id") or not body.get("tag_id") or tid in body["tag_id"]
                ]
                if tags or not body.get("tag_id"):
                    groups.append(
                        {
                            "group_id": group_id,
                            "group_name": group["group_name"],
                            "create_time": 0,
                            "order": 0,
                            "deleted": False,
                            "tag": tags,
                        }
                    )
        return self._answer(path, _ok(tag_group=groups))

    async def _add_corp_tag(self, request: Request) -> JSONResponse:
        path = f"{_EC}/add_corp_tag"
        failure = self._gate(request, path)
        if failure:
            return self._answer(path, failure)
        body = await self._json(request) or {}
        names = [t.get("name", "") for t in body.get("tag") or []]
        if not names or any(not n or len(n) > 30 for n in names):
            return self._answer(path, _err(40058, "tag name empty or longer than 30 characters"))
        with self._lock:
            group_id = body.get("group_id")
            if group_id:
                if group_id not in self.tag_groups:
                    return self._answer(path, _err(40068, "invalid tagid"))
            else:
                name = body.get("group_name") or ""
                if not name or len(name) > 30:
                    return self._answer(path, _err(40058, "group_name empty or longer than 30 characters"))
                # an existing group name adds the tags to that group (WeCom's documented behaviour)
                group_id = next((gid for gid, g in self.tag_groups.items() if g["group_name"] == name), None)
                if group_id is None:
                    group_id = "et" + secrets.token_hex(12)
                    self.tag_groups[group_id] = {"group_name": name, "tags": {}}
            group = self.tag_groups[group_id]
            if any(n in group["tags"].values() for n in names):
                return self._answer(path, _err(40071, "tag name already exists"))
            created = []
            for n in names:
                tag_id = "et" + secrets.token_hex(12)
                group["tags"][tag_id] = n
                created.append({"id": tag_id, "name": n, "create_time": int(self.clock()), "order": 0})
        return self._answer(
            path,
            _ok(
                tag_group={
                    "group_id": group_id,
                    "group_name": group["group_name"],
                    "create_time": int(self.clock()),
                    "order": 0,
                    "tag": created,
                }
            ),
        )

    async def _mark_tag(self, request: Request) -> JSONResponse:
        path = f"{_EC}/mark_tag"
        failure = self._gate(request, path)
        if failure:
            return self._answer(path, failure)
        body = await self._json(request) or {}
        add, remove = body.get("add_tag") or [], body.get("remove_tag") or []
        if not add and not remove:
            return self._answer(path, _err(40058, "add_tag and remove_tag are both empty"))
        key = (body.get("userid", ""), body.get("external_userid", ""))
        with self._lock:
            if key not in self.customers:
                return self._answer(path, _err(40096, "invalid external userid"))
            known = {tid for g in self.tag_groups.values() for tid in g["tags"]}
            if any(t not in known for t in add + remove):
                return self._answer(path, _err(40068, "invalid tagid"))
            self.customer_tags[key].update(add)
            self.customer_tags[key].difference_update(remove)
        return self._answer(path, _ok())

    async def _add_msg_template(self, request: Request) -> JSONResponse:
        """A message task (群发 to single customers): the customers must be the sender's; those
        who are not come back in fail_list, as WeCom does."""
        path = f"{_EC}/add_msg_template"
        received_at = self.clock()
        failure = self._gate(request, path)
        if failure:
            return self._answer(path, failure)
        body = await self._json(request) or {}
        if body.get("chat_type", "single") != "single":
            return self._answer(path, _err(40058, "only chat_type single is simulated"))
        customers = body.get("external_userid") or []
        sender = body.get("sender") or ""
        text = (body.get("text") or {}).get("content", "")
        attachments = body.get("attachments") or []
        if not customers or not sender:
            return self._answer(path, _err(40058, "external_userid and sender are required"))
        if not text and not attachments:
            return self._answer(path, _err(41048, "text and attachments are both empty"))
        with self._lock:
            failed = [c for c in customers if (sender, c) not in self.customers]
            msgid = "msg" + secrets.token_hex(12)
            if len(failed) < len(customers):
                self.message_tasks.append(
                    MessageTask(msgid, sender, list(customers), text, attachments, body, received_at)
                )
        return self._answer(path, _ok(fail_list=failed, msgid=msgid))

    def message_tasks_to(self, external_userid: str) -> list[MessageTask]:
        with self._lock:
            return [t for t in self.message_tasks if external_userid in t.external_userids]

    async def _get_external_contact(self, request: Request) -> JSONResponse:
        path = f"{_EC}/get"
        failure = self._gate(request, path)
        if failure:
            return self._answer(path, failure)
        customer = request.query_params.get("external_userid", "")
        with self._lock:
            members = sorted(member for member, external in self.customers if external == customer)
            follow = [
                {
                    "userid": member,
                    "add_way": 2,
                    **self.remarks.get((member, customer), {"remark": "", "description": ""}),
                }
                for member in members
            ]
        if not follow:
            return self._answer(path, _err(84061, "not external contact"))
        contact = {"external_userid": customer, "name": "客户", "type": 1}
        return self._answer(path, _ok(external_contact=contact, follow_user=follow))

    async def _sms_send(self, request: Request) -> JSONResponse:
        path = "/sms/send"
        failure = self._gate(request, path, needs_token=False)
        if failure:
            return self._answer(path, failure)
        if request.headers.get("authorization") != f"Bearer {self.secret}":
            return self._answer(path, JSONResponse({"error": "unauthorized"}, status_code=401))
        body = await self._json(request) or {}
        with self._lock:
            message_id = f"sms-{len(self.sms) + 1}"
            self.sms.append({**body, "message_id": message_id, "received_at": self.clock()})
        return self._answer(path, JSONResponse({"message_id": message_id}))
