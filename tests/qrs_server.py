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

For failures' contexts (issue 26) it answers GETs as Qlik's Repository API documents them:
`/qrs/reloadtask/{id}` (a ReloadTask: name, tags, customProperties, app), `/qrs/app/{id}` (an
App: owner, stream, published, tags, customProperties), `/qrs/executionresult?filter=executionID
eq …` (a list of ExecutionResultCondensed: status as a number, times, node, details,
fileReferenceID), and the script log through both endpoints: `…/scriptlogfile?executionResultId=`
(May 2025 and later) and `…/scriptlog?fileReferenceId=` (older), each answering a reference
(a JSON string) that `/qrs/download/reloadtask/{reference}/{file}` gives the log for.
`log_endpoints` says which of the two this "release" has (the other answers 404); `delay`
holds every GET that long (a slow QRS); `reloadtasks` and `apps` are the objects it knows.
"""

from __future__ import annotations

import json
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
    reloadtasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Task id → the ReloadTask QRS answers (see `reload_task`)."""
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    """App id → the App QRS answers (see `qrs_app`)."""
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Execution id → the ExecutionResult (see `execution_result`)."""
    script_logs: dict[str, str] = field(default_factory=dict)
    """ExecutionResult id → its script log's text."""
    log_endpoints: tuple[str, ...] = ("scriptlogfile", "scriptlog")
    """The script-log endpoints this QRS has (the other answers 404)."""
    delay: float = 0.0
    """Seconds every GET is held (released early by `stop`)."""
    requests: list[QrsRequest] = field(default_factory=list)
    """Starts and `about` requests (what `task/start` and `check` send)."""
    context_requests: list[QrsRequest] = field(default_factory=list)
    """The GETs of failures' contexts, recorded apart from `requests`."""
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
                recorded = self._recorded("GET")
                if owner.delay:
                    owner._release.wait(owner.delay)
                if recorded[0] != "/qrs/about":
                    status, data = owner.get(*recorded)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                status = owner.about(*recorded)
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
                recorded = QrsRequest(method, url.path, query, headers)
                if method == "GET" and url.path != "/qrs/about":
                    owner.context_requests.append(recorded)
                else:
                    owner.requests.append(recorded)
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

    def get(
        self, path: str, query: dict[str, list[str]], xrf_header: str | None, user: str | None
    ) -> tuple[int, bytes]:
        """A GET of a failure's context, as QRS answers it (404 to what it does not know)."""
        if self._refused(query, xrf_header, user):
            return 403, b'"XSRF prevention check failed"'
        parts = path.strip("/").split("/")
        found: object = None
        if parts[:2] == ["qrs", "reloadtask"] and len(parts) == 3:
            found = self.reloadtasks.get(parts[2])
        elif parts[:2] == ["qrs", "app"] and len(parts) == 3:
            found = self.apps.get(parts[2])
        elif parts == ["qrs", "executionresult"]:
            found = self._executions(query.get("filter", [""])[0])
        elif parts[:2] == ["qrs", "reloadtask"] and len(parts) == 4:
            found = self._log_reference(parts[2], parts[3], query)
        elif parts[:3] == ["qrs", "download", "reloadtask"] and len(parts) == 5:
            text = self.script_logs.get(parts[3].removeprefix("ref-"))
            if text is not None:
                return 200, text.encode("utf-8-sig")
        if found is None:
            return 404, b'"Not found"'
        return 200, json.dumps(found).encode()

    def _executions(self, filter_text: str) -> list[dict[str, Any]]:
        """`executionID eq <id>` (or `taskID eq <id>`): the matching results (a list)."""
        field_name, _, value = filter_text.partition(" eq ")
        return [
            {k: v for k, v in result.items() if k not in ("taskID", "executionID", "appID")}
            for result in self.executions.values()
            if str(result.get(field_name.strip(), "")).lower() == value.strip().lower()
        ]

    def _log_reference(
        self, task_id: str, endpoint: str, query: dict[str, list[str]]
    ) -> str | None:
        """A script log's download reference, from the endpoint this release has."""
        if endpoint not in self.log_endpoints or task_id not in self.reloadtasks:
            return None
        if endpoint == "scriptlogfile":
            wanted = query.get("executionResultId", [""])[0]
            result = next((r for r in self.executions.values() if r["id"] == wanted), None)
        elif endpoint == "scriptlog":
            wanted = query.get("fileReferenceId", [""])[0]
            result = next(
                (r for r in self.executions.values() if r["fileReferenceID"] == wanted), None
            )
        else:
            return None
        if result is None or result["id"] not in self.script_logs:
            return None
        return f"ref-{result['id']}"

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


def tag(name: str) -> dict[str, Any]:
    return {"id": f"tag-{name}", "name": name, "privileges": None}


def custom_property(name: str, value: str) -> dict[str, Any]:
    """One value of a custom property, as QRS lists it (one entry per value)."""
    return {
        "id": f"cp-{name}-{value}",
        "value": value,
        "definition": {"id": f"def-{name}", "name": name, "valueType": "Text"},
    }


def reload_task(
    task_id: str,
    name: str,
    app_id: str,
    app_name: str,
    tags: tuple[str, ...] = (),
    properties: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """A ReloadTask as `GET /qrs/reloadtask/{id}` answers it (the fields the bridge reads, and
    some it does not)."""
    return {
        "id": task_id,
        "name": name,
        "taskType": 0,
        "enabled": True,
        "maxRetries": 0,
        "tags": [tag(name) for name in tags],
        "customProperties": [
            custom_property(prop, value)
            for prop, values in (properties or {}).items()
            for value in values
        ],
        "app": {"id": app_id, "name": app_name, "appId": "", "published": True},
        "operational": {"id": "op-1", "lastExecutionResult": None},
        "schemaPath": "ReloadTask",
    }


def qrs_app(
    app_id: str,
    name: str,
    owner: tuple[str, str, str],
    stream: str | None,
    tags: tuple[str, ...] = (),
    properties: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """An App as `GET /qrs/app/{id}` answers it; `owner`: (directory, user id, name)."""
    directory, user_id, user_name = owner
    return {
        "id": app_id,
        "name": name,
        "owner": {
            "id": f"user-{user_id}",
            "userId": user_id,
            "userDirectory": directory,
            "name": user_name,
        },
        "published": stream is not None,
        "publishTime": "2026-11-02T08:00:00.000Z" if stream else "1753-01-01T00:00:00.000Z",
        "stream": {"id": f"stream-{stream}", "name": stream} if stream else None,
        "tags": [tag(name) for name in tags],
        "customProperties": [
            custom_property(prop, value)
            for prop, values in (properties or {}).items()
            for value in values
        ],
        "schemaPath": "App",
    }


def execution_result(
    result_id: str, task_id: str, execution_id: str, message: str = "The task failed"
) -> dict[str, Any]:
    """An ExecutionResult of a failed reload (status 8: FinishedFail)."""
    return {
        "id": result_id,
        "taskID": task_id,
        "executionID": execution_id,
        "appID": "",
        "executingNodeName": "qs-node-2",
        "status": 8,
        "startTime": "2026-12-06T10:00:00.000Z",
        "stopTime": "2026-12-06T10:00:42.000Z",
        "duration": 42000,
        "fileReferenceID": f"file-{result_id}",
        "scriptLogAvailable": True,
        "scriptLogLocation": "",
        "scriptLogSize": 0,
        "details": [
            {
                "detailsType": 2,
                "message": "Changing task state from Started to FinishedFail",
                "detailCreatedDate": "2026-12-06T10:00:42.000Z",
            },
            {
                "detailsType": 0,
                "message": message,
                "detailCreatedDate": "2026-12-06T10:00:42.000Z",
            },
        ],
    }


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


def known_reload_tasks() -> dict[str, dict[str, Any]]:
    """`KNOWN_TASK_IDS` as `GET /qrs/reloadtask/{id}` answers them: Reload Sales, Reload HR."""
    return {
        SALES_ID: reload_task(
            SALES_ID, "Reload Sales", "9f1d2b20-0000-4000-8000-00000000000a", "Sales"
        ),
        HR_ID: reload_task(HR_ID, "Reload HR", "9f1d2b20-0000-4000-8000-00000000000b", "HR"),
    }
