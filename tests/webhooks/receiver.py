"""A CRM's webhook receiver for the tests: a real HTTP server on a free port that checks the
signature like the README's snippet and answers as told (fail every other request, 410, 200)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bot.webhooks.signing import verify


@dataclass
class Received:
    delivery_id: int
    event_type: str
    timestamp: int
    signature_ok: bool
    body: dict
    raw: bytes
    answered: int


@dataclass
class Receiver:
    secret: str = ""
    mode: str = "flaky"  # flaky: 500, 200, 500, 200 … | ok | gone (410) | down (500 always)
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/waihu"

    def answer_for(self, index: int) -> int:
        if self.mode == "ok":
            return 200
        if self.mode == "gone":
            return 410
        if self.mode == "down":
            return 500
        return 500 if index % 2 == 0 else 200

    def delivered(self) -> dict[int, list[Received]]:
        """Delivery id → the requests it answered 2xx with a valid signature."""
        out: dict[int, list[Received]] = {}
        for r in self.requests:
            if r.signature_ok and 200 <= r.answered < 300:
                out.setdefault(r.delivery_id, []).append(r)
        return out

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify(
                    receiver.secret,
                    self.headers.get("X-Waihu-Timestamp", ""),
                    raw,
                    self.headers.get("X-Waihu-Signature", ""),
                )
                with receiver._lock:
                    status = receiver.answer_for(len(receiver.requests)) if ok else 401
                    receiver.requests.append(
                        Received(
                            int(self.headers["X-Waihu-Delivery"]),
                            self.headers["X-Waihu-Event"],
                            int(self.headers["X-Waihu-Timestamp"]),
                            ok,
                            json.loads(raw),
                            raw,
                            status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "try later"}')

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
