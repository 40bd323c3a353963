"""Local servers that answer as Slack's incoming webhooks and Web API do, for tests:
200 `ok` for a webhook, `{"ok": true, …}` for chat.postMessage, and on request 429 with
Retry-After, 5xx, Slack's own errors (`{"ok": false, "error": …}` with HTTP 200 from the Web
API; the error as text with a 4xx from a webhook), or an answer cut short. `HangingServer`
accepts connections and never answers."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `error`: Slack's error code (`channel_not_found`, `ratelimited`):
    the Web API answers `status` (200 unless set) with `{"ok": false, "error": …}`, a webhook
    answers `status` (give a 4xx) with the code as text. `truncate`: announce the whole body,
    send a few bytes of it and close the connection (the client sees IncompleteRead)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    truncate: bool = False


@dataclass
class SlackServer:
    requests: list[Request] = field(default_factory=list)
    scripted: deque[tuple[int, dict[str, str]] | Reply] = field(default_factory=deque)
    """Responses to give first: (status, headers) or a Reply; then success."""
    arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> SlackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"raw": raw}
                scripted = owner.scripted.popleft() if owner.scripted else Reply()
                reply = scripted if isinstance(scripted, Reply) else Reply(*scripted)
                with owner.arrived:
                    owner.requests.append(Request(self.path, dict(self.headers), body))
                    owner.arrived.notify_all()
                api = self.path.startswith("/api/")
                data = _body(reply, api).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json" if api else "text/plain")
                self.send_header("Content-Length", str(len(data) + (100 if reply.truncate else 0)))
                self.end_headers()
                self.wfile.write(data[:2] if reply.truncate else data)
                if reply.truncate:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Request]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} of {count} requests reached Slack")
            return list(self.requests)


def _body(reply: Reply, api: bool) -> str:
    if reply.error is not None:
        return json.dumps({"ok": False, "error": reply.error}) if api else reply.error
    if reply.status == 200:
        return json.dumps({"ok": True, "channel": "C1", "ts": "1.1"}) if api else "ok"
    if reply.status == 429:
        return json.dumps({"ok": False, "error": "ratelimited"}) if api else "rate_limited"
    return "server_error"


class HangingServer:
    """Accepts TCP connections on loopback, reads nothing and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._arrived = threading.Condition()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    @property
    def connections(self) -> int:
        with self._arrived:
            return len(self._held)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._arrived:
                if self._closed:
                    connection.close()
                    return
                self._held.append(connection)
                self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 20.0) -> int:
        """Waits until `count` connections were accepted; returns how many were."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._held) >= count, timeout):
                raise AssertionError(f"{len(self._held)} of {count} connections reached Slack")
            return len(self._held)

    def stop(self) -> None:
        with self._arrived:
            self._closed = True
            held, self._held = self._held, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        for connection in held:
            connection.close()
