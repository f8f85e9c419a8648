"""The WeCom server API (qyapi.weixin.qq.com), async over httpx: the calls add-friend needs.

- `gettoken`: the access token is cached until shortly before `expires_in` and fetched
  again when WeCom says it is invalid or expired (40014, 42001, 42009) — once per call.
- retries (tenacity) with exponential backoff and jitter on HTTP 5xx, transport errors,
  -1 (系统繁忙), 45009 (接口调用超过限制) and 45033 (接口并发调用超过限制); a deadline (the
  welcome code's 20 s) stops retrying in time.
- every call is logged with its errcode, duration and try, identifiers masked (the
  access token and the secret are never logged).

Request and response JSON follow WeCom's documents: 获取access_token (91039), 配置客户联系
「联系我」方式 (92228), 发送新客户欢迎语 (92137), 管理企业标签 (92117), 编辑客户企业标签 (92118).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_result
from tenacity.wait import wait_base, wait_exponential, wait_random_exponential

from bot.wecom.config import WeComSettings

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40014, 42001, 42009})  # invalid / expired access token
RETRYABLE_ERRORS = frozenset({-1, 45009, 45033})  # system busy, rate limit, concurrency limit
WELCOME_BEING_SENT = 41096  # another app is sending this welcome: may still fail, retry
WELCOME_ALREADY_SENT = 41051  # the customer already got a welcome: do not retry
TOKEN_MARGIN_S = 300.0  # fetch a new token this long before WeCom's expiry
MAX_TAG_CHARS = 30


class WeComError(Exception):
    def __init__(
        self, path: str, errcode: int | None, errmsg: str, *, http_status: int | None = None, retryable: bool = False
    ) -> None:
        code = f"errcode {errcode}" if errcode is not None else (f"HTTP {http_status}" if http_status else "error")
        super().__init__(f"WeCom {path}: {code} {errmsg}".strip())
        self.path, self.errcode, self.errmsg = path, errcode, errmsg
        self.http_status, self.retryable = http_status, retryable


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def wait(self) -> wait_base:
        """Exponential with "equal jitter": after try n, half of min(max, base·2ⁿ⁻¹) fixed and
        half random, so clients that failed together do not retry together."""
        half = {"multiplier": self.base_delay_s / 2, "max": self.max_delay_s / 2}
        return wait_exponential(**half) + wait_random_exponential(**half)


@dataclass(frozen=True)
class ContactWay:
    config_id: str
    qr_code: str


def mask_id(value: str | None) -> str:
    """woAJ…AAAA: enough to follow one customer through the log, not to look them up."""
    if not value:
        return "-"
    if len(value) <= 8:
        return value[:2] + "***"
    return f"{value[:4]}…{value[-4:]}"


@dataclass
class WeComClient:
    settings: WeComSettings
    http: httpx.AsyncClient | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float = 10.0
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Any] = asyncio.sleep
    # (path, errcode or "http_5xx"/"transport") → count: what the server said, for tests and figures
    outcomes: Counter = field(default_factory=Counter)
    _token: str | None = None
    _token_expires: float = 0.0
    _token_lock: asyncio.Lock | None = None
    _tag_lock: asyncio.Lock | None = None
    _tag_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    _group_ids: dict[str, str] = field(default_factory=dict)
    _tags_loaded: bool = False
    _owns_http: bool = False

    # ---- plumbing ------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient(base_url=self.settings.api_base, timeout=self.timeout_s)
            self._owns_http = True
        return self.http

    async def aclose(self) -> None:
        if self.http is not None and self._owns_http:
            await self.http.aclose()
            self.http = None

    async def __aenter__(self) -> WeComClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def invalidate_token(self) -> None:
        self._token, self._token_expires = None, 0.0

    async def access_token(self) -> str:
        if self._token and self.monotonic() < self._token_expires:
            return self._token
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:  # one fetch for all the calls waiting on it
            if self._token and self.monotonic() < self._token_expires:
                return self._token
            data = await self._send(
                "GET",
                "/cgi-bin/gettoken",
                params={"corpid": self.settings.corp_id, "corpsecret": self.settings.secret},
                with_token=False,
                what={"corpid": self.settings.corp_id},
            )
            expires_in = float(data.get("expires_in") or 7200)
            self._token = data["access_token"]
            self._token_expires = self.monotonic() + max(expires_in - TOKEN_MARGIN_S, expires_in / 2)
            return self._token

    async def call(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        what: Mapping[str, str] | None = None,
        deadline: float | None = None,
        retry_on: Iterable[int] = (),
    ) -> dict:
        """POST `body` to `path` with the access token; the response JSON (errcode 0)."""
        return await self._send(
            "POST", path, json=dict(body), what=what or {}, deadline=deadline, retry_on=frozenset(retry_on)
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: dict | None = None,
        with_token: bool = True,
        what: Mapping[str, str] | None = None,
        deadline: float | None = None,
        retry_on: frozenset[int] = frozenset(),
    ) -> dict:
        summary = " ".join(f"{k}={v}" for k, v in (what or {}).items())
        tries, elapsed_ms, token_refreshed = 0, 0.0, False

        async def try_once() -> tuple[dict, WeComError | None]:
            nonlocal tries, elapsed_ms, token_refreshed
            tries += 1
            while True:
                query = dict(params or {})
                if with_token:
                    query["access_token"] = await self.access_token()
                started = self.monotonic()
                data, error = await self._one_try(method, path, query, json, retry_on)
                elapsed_ms = (self.monotonic() - started) * 1000
                if error is None:
                    self.outcomes[(path, 0)] += 1
                    log.info("wecom %s %s ok %.0fms try %d %s", method, path, elapsed_ms, tries, summary)
                    return data, None
                self.outcomes[
                    (
                        path,
                        error.errcode
                        if error.errcode is not None
                        else ("http_5xx" if (error.http_status or 0) >= 500 else "transport"),
                    )
                ] += 1
                if with_token and error.errcode in TOKEN_ERRORS and not token_refreshed:
                    token_refreshed = True
                    log.info(
                        "wecom %s %s: access token rejected (errcode %s) after %.0fms, fetching a new one %s",
                        method,
                        path,
                        error.errcode,
                        elapsed_ms,
                        summary,
                    )
                    self.invalidate_token()
                    continue  # a stale token is not the server failing: the same try again
                return data, error

        def give_up(state: RetryCallState) -> bool:  # the last try, or the wait would pass the deadline
            return state.attempt_number >= self.retry.attempts or (
                deadline is not None and self.monotonic() + state.upcoming_sleep >= deadline
            )

        def last_try(state: RetryCallState) -> tuple[dict, WeComError | None]:
            assert state.outcome is not None
            return state.outcome.result()

        def log_retry(state: RetryCallState) -> None:
            log.info(
                "wecom %s %s try %d failed %.0fms (%s); retry in %.2fs %s",
                method,
                path,
                tries,
                elapsed_ms,
                last_try(state)[1],
                state.upcoming_sleep,
                summary,
            )

        retrying = AsyncRetrying(
            retry=retry_if_result(lambda result: result[1] is not None and result[1].retryable),
            stop=give_up,
            wait=self.retry.wait(),
            sleep=self.sleep,
            before_sleep=log_retry,
            retry_error_callback=last_try,
        )
        result: tuple[dict, WeComError | None] = await retrying(try_once)
        data, error = result
        if error is None:
            return data
        if error.retryable and tries < self.retry.attempts:
            log.warning(
                "wecom %s %s failed %.0fms try %d: %s; no time left to retry %s",
                method,
                path,
                elapsed_ms,
                tries,
                error,
                summary,
            )
        else:
            log.warning(
                "wecom %s %s failed %.0fms try %d/%d: %s %s",
                method,
                path,
                elapsed_ms,
                tries,
                self.retry.attempts,
                error,
                summary,
            )
        raise error

    async def _one_try(
        self, method: str, path: str, query: dict, json: dict | None, retry_on: frozenset[int]
    ) -> tuple[dict, WeComError | None]:
        try:
            response = await self._client().request(method, path, params=query, json=json)
        except httpx.TransportError as exc:
            return {}, WeComError(path, None, f"{type(exc).__name__}: {exc}", retryable=True)
        if response.status_code >= 500:
            return {}, WeComError(path, None, response.reason_phrase, http_status=response.status_code, retryable=True)
        if response.status_code != 200:
            return {}, WeComError(path, None, response.reason_phrase, http_status=response.status_code)
        try:
            data = response.json()
        except ValueError:
            return {}, WeComError(path, None, "response is not JSON", http_status=200)
        errcode = int(data.get("errcode", 0) or 0)
        if errcode != 0:
            return data, WeComError(
                path, errcode, str(data.get("errmsg", "")), retryable=errcode in RETRYABLE_ERRORS or errcode in retry_on
            )
        return data, None

    # ---- the API -------------------------------------------------------------------------------

    async def add_contact_way(
        self, *, user: str, state: str, remark: str | None = None, skip_verify: bool = True
    ) -> ContactWay:
        """A single-member 联系我 QR code (type 1, scene 2) carrying `state`."""
        body: dict[str, Any] = {"type": 1, "scene": 2, "skip_verify": skip_verify, "state": state, "user": [user]}
        if remark:
            body["remark"] = remark[:30]
        data = await self.call("/cgi-bin/externalcontact/add_contact_way", body, what={"state": state, "user": user})
        return ContactWay(data["config_id"], data.get("qr_code", ""))

    async def send_welcome_msg(
        self,
        welcome_code: str,
        text: str,
        attachments: Sequence[Mapping] = (),
        *,
        deadline: float | None = None,
        log_as: Mapping[str, str] | None = None,
    ) -> None:
        body: dict[str, Any] = {"welcome_code": welcome_code, "text": {"content": text}}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        await self.call(
            "/cgi-bin/externalcontact/send_welcome_msg",
            body,
            deadline=deadline,
            retry_on={WELCOME_BEING_SENT},
            what={"welcome_code": mask_id(welcome_code), **(log_as or {})},
        )

    async def add_msg_template(
        self,
        *,
        sender: str,
        external_userids: Sequence[str],
        text: str,
        attachments: Sequence[Mapping] = (),
        log_as: Mapping[str, str] | None = None,
    ) -> str:
        """A message task for the member (`sender`) to the customers (externalcontact/add_msg_template,
        chat_type single): the advisor confirms it in their WeCom client, then it goes out
        (get_groupmsg_send_result tells whether it did). Returns the task's msgid."""
        body: dict[str, Any] = {
            "chat_type": "single",
            "external_userid": list(external_userids),
            "sender": sender,
            "text": {"content": text},
        }
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        data = await self.call(
            "/cgi-bin/externalcontact/add_msg_template",
            body,
            what={"sender": sender, "customers": str(len(external_userids)), **(log_as or {})},
        )
        failed = data.get("fail_list") or []
        if failed:
            raise WeComError(
                "/cgi-bin/externalcontact/add_msg_template",
                -2,
                f"not sent to {len(failed)} customer(s): {', '.join(mask_id(f) for f in failed)}",
            )
        return str(data.get("msgid") or "")

    async def get_external_contact(self, external_userid: str) -> dict:
        """The customer's details and the members who follow them (externalcontact/get):
        `{"external_contact": {...}, "follow_user": [{"userid", "remark", "description", ...}]}`."""
        data = await self._send(
            "GET",
            "/cgi-bin/externalcontact/get",
            params={"external_userid": external_userid},
            what={"external_userid": mask_id(external_userid)},
        )
        return {"external_contact": data.get("external_contact") or {}, "follow_user": data.get("follow_user") or []}

    async def mark_tag(
        self, userid: str, external_userid: str, add_tag: Sequence[str], remove_tag: Sequence[str] = ()
    ) -> None:
        body: dict[str, Any] = {"userid": userid, "external_userid": external_userid, "add_tag": list(add_tag)}
        if remove_tag:
            body["remove_tag"] = list(remove_tag)
        await self.call(
            "/cgi-bin/externalcontact/mark_tag",
            body,
            what={"userid": userid, "external_userid": mask_id(external_userid), "tags": str(len(add_tag))},
        )

    async def get_corp_tag_list(self, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> list[dict]:
        data = await self.call(
            "/cgi-bin/externalcontact/get_corp_tag_list", {"tag_id": list(tag_ids), "group_id": list(group_ids)}
        )
        return list(data.get("tag_group") or [])

    async def add_corp_tag(
        self, names: Sequence[str], *, group_name: str | None = None, group_id: str | None = None
    ) -> dict:
        body: dict[str, Any] = {"tag": [{"name": name} for name in names]}
        if group_id:
            body["group_id"] = group_id
        else:
            body["group_name"] = group_name
        data = await self.call(
            "/cgi-bin/externalcontact/add_corp_tag",
            body,
            what={"group": group_name or group_id or "", "tags": str(len(names))},
        )
        return data["tag_group"]

    async def ensure_tags(self, group_name: str, names: Iterable[str]) -> dict[str, str]:
        """Tag ids for these names in this group, creating the ones the corp lacks."""
        wanted = [tag_name(n) for n in dict.fromkeys(names)]
        if self._tag_lock is None:
            self._tag_lock = asyncio.Lock()
        async with self._tag_lock:  # two adds at once must not both create the same tag
            if not self._tags_loaded:
                for group in await self.get_corp_tag_list():
                    if group.get("deleted"):
                        continue
                    self._group_ids[group["group_name"]] = group["group_id"]
                    for tag in group.get("tag") or []:
                        if not tag.get("deleted"):
                            self._tag_ids[(group["group_name"], tag["name"])] = tag["id"]
                self._tags_loaded = True
            missing = [n for n in wanted if (group_name, n) not in self._tag_ids]
            if missing:
                group = await self.add_corp_tag(
                    missing,
                    group_name=None if group_name in self._group_ids else group_name,
                    group_id=self._group_ids.get(group_name),
                )
                self._group_ids[group_name] = group["group_id"]
                for tag in group.get("tag") or []:
                    self._tag_ids[(group_name, tag["name"])] = tag["id"]
            return {n: self._tag_ids[(group_name, n)] for n in wanted if (group_name, n) in self._tag_ids}


def tag_name(text: str) -> str:
    """WeCom tag names are at most 30 characters."""
    return text if len(text) <= MAX_TAG_CHARS else text[: MAX_TAG_CHARS - 1] + "…"
