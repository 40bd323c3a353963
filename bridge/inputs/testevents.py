"""`qlik2mqtt send-test-events`: a realistic burst of Qlik Sense datagrams, in any layout.

Three users log in and open connections, one logs out, a reload fails (logged twice, as Qlik
does) and another is aborted; and each service logs a warning or an error (log events, to the
log port: qlik2mqtt's XML appenders with `--format xml`, Butler SOS's `;` lines with `tagged`;
Butler <= v4 had none) — enough to watch every topic fill up without a Qlik server.

Each run is a new run of the same tasks: the task and app ids stay, the execution ids are new,
so the bridge folds the repeated failure within a run but not a second run's failure into the
first (`tasks.dedup_window` keys on server, event type, task and execution id).
"""

from __future__ import annotations

import base64
import socket
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

Layout = Literal["legacy", "tagged", "xml"]
TASK_LOGGER = "System.Scheduler.Scheduler.Master.Task.TaskSession"
PROXY_LOGGER = "AuditActivity.Proxy"
SERVICE_USER = "CORP\\qlikservice"
_PROXY_TAIL = ("UserDirectory", "UserId", "Command", "Result", "Origin", "Context")
BUTLER_SOS_TAILS = {
    "engine": (
        "ProxySessionId",
        "ActiveUserDirectory",
        "ActiveUserId",
        "EngineTimestamp",
        "ProcessId",
        "Exe Version",
        "Server Started",
        "Entry Type",
        "SessionId",
        "AppId",
    ),
    "proxy": _PROXY_TAIL,
    "repository": _PROXY_TAIL,
    "scheduler": (
        "UserDirectory",
        "UserId",
        "User",
        "TaskName",
        "AppName",
        "TaskId",
        "AppId",
        "ExecutionId",
    ),
}
"""The properties Butler SOS's appenders send after the message (and, but for the engine's,
after the exception), in their order."""


@dataclass(frozen=True, slots=True)
class Sample:
    port_kind: Literal["user", "task", "log"]
    logger: str
    level: str
    message: str
    properties: dict[str, str]
    source: str | None = None
    """For a log event: the service that logs it (engine, proxy, repository, scheduler)."""
    exception: str | None = None


def sample_events(server: str, run: str | None = None) -> list[Sample]:
    """The burst claimed by `server`; `run` (12 hex digits, new each call when None) makes the
    execution ids of this run."""
    run_id = run if run is not None else uuid.uuid4().hex[:12]

    def user(command: str, directory: str, user_id: str, context: str) -> Sample:
        message = f"{command} for user '{directory}\\{user_id}'"
        properties = {
            "Command": command,
            "UserDirectory": directory,
            "UserId": user_id,
            "Origin": "AppAccess",
            "Context": context,
        }
        return Sample("user", PROXY_LOGGER, "INFO", message, properties)

    def task(level: str, message: str, name: str, app: str, number: int) -> Sample:
        properties = {
            "TaskName": name,
            "AppName": app,
            "User": "CORP\\svc_reload",
            "TaskId": f"7c3e5a10-0000-4000-8000-{number:012d}",
            "AppId": f"9f1d2b20-0000-4000-8000-{number:012d}",
            "ExecutionId": f"e4a6c830-{number:04d}-4000-8000-{run_id}",
        }
        return Sample("task", TASK_LOGGER, level, message, properties)

    failure = task(
        "ERROR",
        "Task finished with state FinishedFail. Max retries reached",
        "Reload Sales; daily",
        "Sales € dashboard",
        1,
    )

    def log(source: str, logger: str, level: str, message: str, **extra: str) -> Sample:
        exception = extra.pop("exception", None)
        properties = {key.replace("_", " "): value for key, value in extra.items()}
        return Sample("log", logger, level, message, properties, source, exception)

    engine = {
        "ProxySessionId": "3f6b1c8e-2a41-4d1f-9c3e-7b52a0d9e611",
        "ActiveUserDirectory": "CORP",
        "ActiveUserId": "anna",
        "ProcessId": "9d2c4f10-5e6a-4b7c-8d9e-0f1a2b3c4d5e",
        "Exe_Version": "14.129.5.0",
        "AppId": "9f1d2b20-0000-4000-8000-000000000001",
    }
    events = [
        user("Start session", "CORP", "anna", "/hub/"),
        user("Open connection", "CORP", "anna", "/app/sales"),
        user("Start session", "CORP", "jöran", "/hub/"),
        user("Open connection", "CORP", "jöran", "/app/finance"),
        user("Start session", "EXT", "bob", "/hub/"),
        user("Close connection", "EXT", "bob", "/hub/"),
        user("Stop session", "EXT", "bob", "/hub/"),
        failure,
        failure,  # Qlik logs a failure more than once; the bridge folds it into one event
        task("INFO", "Execution State Change to Aborting", "Reload HR", "HR", 2),
        log("engine", "System.Engine.Engine", "WARN",
            "Document 'Sales € dashboard.qvf': cache full; evicting \"old\" objects", **engine),
        log("engine", "Session.Engine.Session", "ERROR",
            "Out of memory: a request for 2048 MB was refused", **engine),
        log("proxy", "Audit.Proxy.Proxy.SessionEstablishment.Authentication", "WARN",
            "Authentication failed for user 'EXT\\bob'; reason: \"ticket expired\"",
            UserDirectory="EXT", UserId="bob", Command="Login", Result="401",
            Origin="AppAccess", Context="/hub/"),
        log("repository", "System.Repository.Repository.Core.Licensing", "ERROR",
            "License check failed; the LEF <expired> & cannot be renewed",
            exception="System.InvalidOperationException: license expired"),
        log("repository", "Service", "WARN", "Node 'rim01' unreachable; will retry"),
        log("scheduler", TASK_LOGGER, "ERROR",
            "Task finished with state FinishedFail; Max retries reached",
            UserDirectory="CORP", UserId="svc_reload", User="CORP\\svc_reload",
            TaskName="Reload Sales € dashboard", AppName="Sales € dashboard",
            TaskId="7c3e5a10-0000-4000-8000-000000000001",
            AppId="9f1d2b20-0000-4000-8000-000000000001",
            ExecutionId=f"e4a6c830-0001-4000-8000-{run_id}"),
    ]  # fmt: skip
    return [_on(server, sample) for sample in events]


def _on(server: str, sample: Sample) -> Sample:
    return replace(sample, properties={**sample.properties, "log4jmachinename": server})


def render(sample: Sample, layout: Layout) -> bytes:
    """The datagram log4net would send for this event with the given layout."""
    p = sample.properties
    host = p["log4jmachinename"]
    if sample.port_kind == "log":
        return _render_log_event(sample, host, layout)
    if layout == "xml":
        data = "".join(
            f"<log4j:data name={quoteattr(k)} value={quoteattr(v)} />" for k, v in p.items()
        )
        stamp = int(time.time() * 1000)
        text = (
            f'<log4j:event logger={quoteattr(sample.logger)} timestamp="{stamp}" '
            f'level={quoteattr(sample.level)} thread="1">'
            f"<log4j:message>{escape(sample.message)}</log4j:message>"
            f"<log4j:properties>{data}</log4j:properties></log4j:event>\r\n"
        )
        return text.encode("utf-8")
    if sample.port_kind == "user":
        fields = [host, p["Command"], p["UserDirectory"], p["UserId"]]
        if layout == "tagged":
            fields = ["/proxy-session/", *fields, p["Origin"], p["Context"], sample.message]
        # Butler's legacy appenders had no <encoding>: log4net then sends windows-1252.
        return ";".join(fields).encode("utf-8" if layout == "tagged" else "cp1252")
    date = time.strftime("%Y-%m-%d %H:%M:%S,000")
    fields = [
        host,
        p["TaskName"],
        p["AppName"],
        p["User"],
        p["TaskId"],
        p["AppId"],
        date,
        sample.level,
        p["ExecutionId"],
        sample.message,
    ]
    if layout == "legacy":
        # Butler <= v4's 10-field failure line: it carries the execution id, so a second run
        # is not folded into the first as the 4-field line (no ids at all) would be.
        return ";".join(fields).encode("cp1252", errors="replace")
    tag = "/scheduler-task-aborted/" if "Aborting" in sample.message else "/scheduler-task-failed/"
    return ";".join([tag, *fields]).encode("utf-8")


def _render_log_event(sample: Sample, host: str, layout: Layout) -> bytes:
    """A log event as qlik2mqtt's appenders send it (XmlLayout, `xml`), or as Butler SOS's
    (a `;` line, otherwise)."""
    source = sample.source or "engine"
    properties = {k: v for k, v in sample.properties.items() if k != "log4jmachinename"}
    now = datetime.now().astimezone()
    if layout == "xml":
        prefix = f"qseow-{source}"

        def b64(text: str) -> str:
            return base64.b64encode(text.encode("utf-8")).decode("ascii")

        data = "".join(
            f"<{prefix}:data name={quoteattr(k)} value={quoteattr(b64(v))} />"
            for k, v in {"log4net:HostName": host, **properties}.items()
        )
        exception = ""
        if sample.exception is not None:
            exception = f"<{prefix}:exception>{escape(sample.exception)}</{prefix}:exception>"
        text = (
            f"<{prefix}:event logger={quoteattr(sample.logger)} "
            f"timestamp={quoteattr(now.isoformat(timespec='microseconds'))} "
            f'level={quoteattr(sample.level)} thread="1" domain="qlik2mqtt" '
            f"username={quoteattr(SERVICE_USER)}>"
            f"<{prefix}:message>{b64(sample.message)}</{prefix}:message>"
            f"<{prefix}:properties>{data}</{prefix}:properties>{exception}</{prefix}:event>\r\n"
        )
        return text.encode("utf-8")
    head = [
        f"/qseow-{source}/",
        "1",
        now.strftime("%Y%m%dT%H%M%S.000%z"),
        now.strftime("%Y-%m-%d %H:%M:%S,000"),
        sample.level,
        host,
        sample.logger,
        SERVICE_USER,
        sample.message,
    ]
    tail = [properties.get(name, "(null)") for name in BUTLER_SOS_TAILS[source]]
    if source != "engine":
        tail.insert(0, sample.exception or "(null)")
    return ";".join(head + tail).encode("utf-8")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def source_address(host: str, port: int) -> str:
    """The local address datagrams to host:port leave from, as the bridge will see it: the
    kernel's choice for a connected UDP socket (connecting sends nothing)."""
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        return str(sock.getsockname()[0])


def send_test_events(
    host: str, user_port: int, task_port: int, layout: Layout, server: str, log_port: int = 0
) -> int:
    """Send the burst; returns the number of datagrams sent. Log events go to `log_port`, none
    when it is 0 (the input is off) or for the legacy layout (Butler <= v4 had none)."""
    samples = sample_events(server)
    if layout == "legacy":  # Butler <= v4 had no abort datagrams and no log events
        samples = [s for s in samples if "Aborting" not in s.message and s.port_kind != "log"]
    if not log_port:
        samples = [s for s in samples if s.port_kind != "log"]
    ports = {"user": user_port, "task": task_port, "log": log_port}
    with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
        for sample in samples:
            sock.sendto(render(sample, layout), (host, ports[sample.port_kind]))
    return len(samples)
