"""A local HTTPS server that answers as the Qlik Sense Repository Service does, for tests.

It requires a client certificate signed by the CA it is given (as QRS on port 4242 does), checks
Qlik's xrfkey rule (the `xrfkey` query parameter and the `X-Qlik-Xrfkey` header equal, 16
characters; else 403, as QRS answers) and that `X-Qlik-User` is present, answers 204 to a start
by id and 201 to a start by name of a task it knows, 404 to any other, 200 to `GET /qrs/about`
(what `qlik2mqtt check` asks), and holds the answer to a task in `hanging` (or to the about
request, with `"about"` there) until it is stopped (`hung` is set when such a request
arrived). Every request that got past the TLS handshake is recorded, the refused ones too. For
the client's defences it can also send a large body with a refusal (`body_bytes`: how much of
it went out is in `body_sent` once `body_done` is set) or claim a gzip body that is not one
(`bad_gzip`).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.certs import Certificates

SALES_ID = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
HR_ID = "0b7e1f3c-9a2d-4c5e-8f6a-1d2c3b4a5e6f"
KNOWN_TASK_IDS = (SALES_ID, HR_ID)
"""The tasks the `qrs_server` fixture (tests/conftest.py) knows: Reload Sales and Reload HR."""
KNOWN_TASK_NAMES = ("Reload Sales",)
HANG_LIMIT = 60.0
"""A hanging answer is held at most this long (the server's stop releases it sooner)."""


@dataclass(frozen=True)
class QrsRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class QrsServer:
    certificates: Certificates
    """The server's certificate and key; `client_ca` (default: the same CA) signs clients."""
    client_ca: Path | None = None
    task_ids: set[str] = field(default_factory=set)
    task_names: set[str] = field(default_factory=set)
    hanging: set[str] = field(default_factory=set)
    """Ids or names whose answer is held until the server stops."""
    tls12: bool = False
    """Speak TLS 1.2 at most: a refused client certificate fails the handshake itself (with
    TLS 1.3 the refusal comes after the client's handshake ended)."""
    denied: bool = False
    """Answer 403 to every request, as QRS does to a user without access."""
    body_bytes: int = 0
    """The size of the body sent with an answer other than 201/204 (0: a short text)."""
    bad_gzip: bool = False
    """Send `Content-Encoding: gzip` with a body that is not gzip."""
    requests: list[QrsRequest] = field(default_factory=list)
    hung: threading.Event = field(default_factory=threading.Event)
    """Set when a request for a task in `hanging` has arrived (and is being held)."""
    body_done: threading.Event = field(default_factory=threading.Event)
    body_sent: int = 0
    _release: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> QrsServer:
        owner = self
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.certificates.certfile, self.certificates.keyfile)
        tls.load_verify_locations(cafile=self.client_ca or self.certificates.ca_file)
        tls.verify_mode = ssl.CERT_REQUIRED
        if self.tls12:
            tls.maximum_version = ssl.TLSVersion.TLSv1_2

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self._answer(owner.answer(*self._recorded("POST")))

            def do_GET(self) -> None:
                status = owner.about(*self._recorded("GET"))
                body = b'{"buildVersion": "30.8.1", "requiresBootstrap": false}'
                if status != 200:
                    body = b'"not what QRS expected"'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _recorded(
                self, method: str
            ) -> tuple[str, dict[str, list[str]], str | None, str | None]:
                """Records the request; returns its path, query, xrfkey header and user."""
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                headers = {name.lower(): value for name, value in self.headers.items()}
                owner.requests.append(QrsRequest(method, url.path, query, headers))
                xrf, user = self.headers.get("X-Qlik-Xrfkey"), self.headers.get("X-Qlik-User")
                return url.path, query, xrf, user

            def _answer(self, status: int) -> None:
                body = b"" if status in (201, 204) else b'"not what QRS expected"'
                if owner.bad_gzip:
                    body = b"this is not gzip"
                if owner.body_bytes and status not in (201, 204):
                    self._large(status)
                    return
                self.send_response(status)
                if owner.bad_gzip:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _large(self, status: int) -> None:
                chunk = b"x" * 65536
                self.send_response(status)
                self.send_header("Content-Length", str(owner.body_bytes))
                self.end_headers()
                try:
                    while owner.body_sent < owner.body_bytes:
                        self.wfile.write(chunk[: owner.body_bytes - owner.body_sent])
                        owner.body_sent += min(len(chunk), owner.body_bytes - owner.body_sent)
                except OSError:
                    pass  # the client closed: it read no further
                finally:
                    owner.body_done.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, address = super().get_request()
                # The handshake happens in the handler's thread, on its first read: a client
                # the server refuses never stops it accepting the next one.
                return tls.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                ), address

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a refused handshake: the client sees the alert

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def answer(
        self, path: str, query: dict[str, list[str]], xrf_header: str | None, user: str | None
    ) -> int:
        if self._refused(query, xrf_header, user):
            return 403
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["qrs", "task"] and parts[3] == "start":
            task, known, started = parts[2], parts[2] in self.task_ids, 204
        elif parts == ["qrs", "task", "start"] and "name" in query:
            task = query["name"][0]
            known, started = task in self.task_names, 201
        else:
            return 404
        self._hold(task)
        return started if known else 404

    def about(
        self, path: str, query: dict[str, list[str]], xrf_header: str | None, user: str | None
    ) -> int:
        """`GET /qrs/about`, as `qlik2mqtt check` asks: 200 past the same checks as a start."""
        if self._refused(query, xrf_header, user):
            return 403
        self._hold("about")
        return 200 if path == "/qrs/about" else 404

    def _hold(self, key: str) -> None:
        """An answer in `hanging` waits for the server's stop."""
        if key in self.hanging:
            self.hung.set()
            self._release.wait(HANG_LIMIT)

    def _refused(
        self, query: dict[str, list[str]], xrf_header: str | None, user: str | None
    ) -> bool:
        """What QRS answers 403 to: the xrfkey query parameter and header differ or are not 16
        characters ("XSRF prevention check failed"), no user, or a user without access."""
        xrf = query.get("xrfkey", [None])[0]
        return xrf is None or xrf != xrf_header or len(xrf) != 16 or not user or self.denied

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)


def qrs_settings(server: QrsServer, **overrides: Any) -> dict[str, Any]:
    """The `qrs:` section for a bridge that talks to `server`, with its client certificate."""
    certificates = server.certificates
    return {
        "enabled": True,
        "host": "127.0.0.1",
        "port": server.port,
        "client_cert": str(certificates.client_certfile),
        "client_key": str(certificates.client_keyfile),
        "root_cert": str(certificates.ca_file),
        "allowed_tasks": ["*"],
        **overrides,
    }
