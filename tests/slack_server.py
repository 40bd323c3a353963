"""A local HTTP server that answers as Slack's incoming webhooks and Web API do, for tests:
200 `ok` for a webhook, `{"ok": true, …}` for chat.postMessage, and on request 429 with
Retry-After, or 5xx."""

from __future__ import annotations

import json
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


@dataclass
class SlackServer:
    requests: list[Request] = field(default_factory=list)
    scripted: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    """Responses to give first: (status, headers); then success."""
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
                status, headers = owner.scripted.popleft() if owner.scripted else (200, {})
                with owner.arrived:
                    owner.requests.append(Request(self.path, dict(self.headers), body))
                    owner.arrived.notify_all()
                api = self.path.startswith("/api/")
                if status == 200:
                    reply = json.dumps({"ok": True, "channel": "C1", "ts": "1.1"}) if api else "ok"
                elif status == 429:
                    reply = (
                        json.dumps({"ok": False, "error": "ratelimited"}) if api else "rate_limited"
                    )
                else:
                    reply = "server_error"
                data = reply.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json" if api else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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
